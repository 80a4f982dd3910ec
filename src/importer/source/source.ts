/**
 * The source strategy: every source (http, blank now; registry, s3, gcs, upload, imageio, vddk later) says what it
 * knows and yields the image bytes from offset 0. One file per source in this folder.
 */
import type { Readable } from 'node:stream';

/** How nbdkit's curl plugin can read the same bytes by range (the streaming path for qcow2 and friends). */
export interface CurlSpec {
  url: string;
  headers: string[];
  user?: string;
  password?: string;
  /** A PEM bundle of the extra CAs (file path). */
  cainfo?: string;
  insecure: boolean;
}

export interface SourceInfo {
  /** Length of the bytes `open()` yields, when known. */
  size?: number;
  /** The source can serve byte ranges (required to stream non-raw formats without a scratch copy). */
  ranges: boolean;
  contentType?: string;
  /** For http: the final URL (after redirects) and what nbdkit needs to read it. */
  curl?: CurlSpec;
  /** For local files: qemu-img can read them directly. */
  localPath?: string;
}

export interface ImportSource {
  /** For messages: `http://host/path` or a file name. */
  readonly description: string;
  info(): Promise<SourceInfo>;
  /** The whole byte stream from offset 0. Errors on the stream are ImportErrors. */
  open(): Promise<Readable>;
  close(): Promise<void>;
}
