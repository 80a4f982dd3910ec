/**
 * The source strategy: every source (http, blank now; registry, s3, gcs, upload, imageio, vddk later) says what it
 * knows and yields the image bytes from offset 0. One file per source in this folder.
 */
import type { Readable } from 'node:stream';

export interface SourceInfo {
  /** Length of the bytes `open()` yields, when known. */
  size?: number;
  /** The source can serve byte ranges (required to stream non-raw formats without a scratch copy). */
  ranges: boolean;
  contentType?: string;
  /** For local files: qemu-img can read them directly. */
  localPath?: string;
}

export interface ImportSource {
  /** For messages: `http://host/path` or a file name. */
  readonly description: string;
  info(): Promise<SourceInfo>;
  /** The whole byte stream from offset 0. Errors on the stream are ImportErrors. */
  open(): Promise<Readable>;
  /**
   * `length` bytes at `offset` (all of them, or an ImportError), for sources whose info() says `ranges`:
   * the streaming path serves these to qemu-img over NBD (image/nbd-server.ts).
   */
  readRange?(offset: number, length: number): Promise<Buffer[]>;
  close(): Promise<void>;
}
