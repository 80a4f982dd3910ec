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

/** A range of a raw disk: data (read with readRange) or zeros. */
export interface DiskExtent {
  offset: number;
  length: number;
  zero: boolean;
}

/**
 * What a disk source (imageio, vddk) knows about the VM disk it reads: the guest's raw bytes as extents, so only
 * data crosses the wire (disk.ts copies them). The bytes are the guest's, never sniffed for a format.
 */
export interface DiskMap {
  /** Virtual size of the disk. */
  size: number;
  /**
   * Full import: extents covering [0, size). Delta (a warm-import checkpoint after the first): only the ranges that
   * changed since the previous checkpoint, written in place onto the target the earlier stages filled.
   */
  extents: DiskExtent[];
  delta: boolean;
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
  /** Disk sources (imageio, vddk): the disk's extents; readRange() reads the data ones. See disk.ts. */
  disk?(): Promise<DiskMap>;
  /**
   * The data path wrote and committed every byte: close() may report success to the server (imageio finalizes its
   * image transfer then, and cancels it otherwise).
   */
  succeeded?(): void;
  /** Extra fields for the pod's termination message (vddk: `vddkInfo`), known after the transfer. */
  terminationInfo?(): Record<string, unknown>;
  close(): Promise<void>;
}
