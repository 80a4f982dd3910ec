/** A local file (for the `cdi` command: `cdi import ./disk.qcow2 --to …`, `cdi inspect ./disk.qcow2`). */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CannotResume, ErrorKind, ImportError } from '../errors.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export class FileSource implements ImportSource {
  readonly description: string;
  readonly resumable = true;
  private readonly path: string;
  constructor(p: string) {
    this.path = path.resolve(p);
    this.description = p;
  }
  async info(): Promise<SourceInfo> {
    const st = await stat(this.path).catch(() => undefined);
    if (!st?.isFile()) throw new ImportError(ErrorKind.Invalid, `${this.description} is not a readable file`);
    // Size and modification time name this content, as Last-Modified does over HTTP.
    return { size: st.size, ranges: true, localPath: this.path, validator: `${st.size}@${st.mtimeMs}` };
  }
  async open(offset = 0, validator?: string): Promise<Readable> {
    if (offset > 0 && validator !== undefined) {
      const now = (await this.info()).validator;
      if (now !== validator)
        throw new CannotResume(`${this.description} changed (${validator} is now ${now})`);
    }
    return createReadStream(this.path, { highWaterMark: 1 << 20, start: offset });
  }
  async close(): Promise<void> {}
}
