/** A local file (for the `cdi` command: `cdi import ./disk.qcow2 --to …`, `cdi inspect ./disk.qcow2`). */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../errors.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export class FileSource implements ImportSource {
  readonly description: string;
  private readonly path: string;
  constructor(p: string) {
    this.path = path.resolve(p);
    this.description = p;
  }
  async info(): Promise<SourceInfo> {
    const st = await stat(this.path).catch(() => undefined);
    if (!st?.isFile()) throw new ImportError(ErrorKind.Invalid, `${this.description} is not a readable file`);
    return { size: st.size, ranges: true, localPath: this.path };
  }
  open(): Promise<Readable> {
    return Promise.resolve(createReadStream(this.path, { highWaterMark: 1 << 20 }));
  }
  async close(): Promise<void> {}
}
