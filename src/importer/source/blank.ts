/**
 * The blank source: no bytes at all. The pipeline writes an empty raw stream and then grows the target to the
 * requested size (sparse, or preallocated when asked), which is exactly a blank disk.
 */
import { Readable } from 'node:stream';
import type { ImportSource, SourceInfo } from './source.ts';

export class BlankSource implements ImportSource {
  readonly description = 'blank';
  info(): Promise<SourceInfo> {
    return Promise.resolve({ size: 0, ranges: false });
  }
  open(): Promise<Readable> {
    return Promise.resolve(Readable.from([]));
  }
  async close(): Promise<void> {}
}
