/**
 * A byte stream handed in by the caller, read once from offset 0: the body of an upload (src/uploadserver). It knows
 * its length when the client sent one, serves no ranges, and cannot be opened twice, so the data path never plans
 * anything that reads the source again (formats that need random access go through scratch space).
 */
import type { Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../errors.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export class StreamSource implements ImportSource {
  readonly description: string;
  private stream: Readable | undefined;
  private readonly size: number | undefined;
  constructor(stream: Readable, opts: { size?: number; description?: string } = {}) {
    this.stream = stream;
    this.size = opts.size;
    this.description = opts.description ?? 'the upload';
  }

  info(): Promise<SourceInfo> {
    // `oneWay` tells the planner the bytes cannot be fetched again (no second attempt, no ranged re-reads).
    const info: SourceInfo = {
      ...(this.size !== undefined ? { size: this.size } : {}),
      ranges: false,
      oneWay: true,
    };
    return Promise.resolve(info);
  }

  open(): Promise<Readable> {
    const s = this.stream;
    if (!s)
      return Promise.reject(new ImportError(ErrorKind.Internal, `${this.description} can only be read once`));
    this.stream = undefined;
    return Promise.resolve(s);
  }

  async close(): Promise<void> {}
}
