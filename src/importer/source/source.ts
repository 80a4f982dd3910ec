/**
 * The source strategy. Every source (http, s3, gcs, registry, upload stream, imageio, vddk, blank, file) says what it
 * offers and yields the image bytes; one file per source in this folder. The data path (import.ts) asks a
 * source only these questions, and the planner (plan.ts) decides from the answers how the bytes travel, so a new
 * source implements this interface and nothing else.
 *
 * The calls, in the order the data path makes them:
 *
 *   info()          what the source offers. May do the first request (HttpSource: its answer is kept and becomes
 *                   the body of the next open(), so a flaky server sees one request per attempt, not two).
 *   open()          the bytes from offset 0, once per attempt. A one-way source (`oneWay`: an upload's request body)
 *                   can be opened once in all; everything else may be opened again (a restart from byte 0).
 *   open(o, v)      only when `resumable` is set and info() gave a `validator`: the bytes from offset `o` of the
 *                   content that validator `v` names, to continue a body that broke at `o` (HTTP: `Range` with
 *                   `If-Range`). When the source cannot promise that (the content changed, no ranges), it rejects
 *                   with `CannotResume` (errors.ts) and the data path starts again from 0: two versions of a file are
 *                   never spliced. open(o, v) may also be the first call of a run (a pod continuing an earlier run's
 *                   download); info() then describes what that answer said.
 *   readRange()     only when info() says `ranges`: exact byte ranges, in parallel (the NBD server and the extent
 *                   copy read qcow2 and friends this way).
 *   disk()          a disk source (imageio, vddk) instead of open(): the guest disk's extents, whose data ones are
 *                   read with readRange() (the `disk` plan: transfer/disk.ts).
 *   succeeded()     once every byte is committed to the target.
 *   close()         always, once, at the end (also after errors): releases sockets, children, temporary files.
 *
 * What each source offers, so the planner chooses right (docs/importer.md "Sources" has the table): `ranges`
 * (readRange), `oneWay` (open() once in all: the upload stream, the registry's layer walk), `resumable` with a
 * `validator` (open(offset, validator): http, s3, gcs, file), `checksum` (a digest the source publishes), disk().
 *
 * After open(), info() describes the bytes open() returned (a source whose content can change updates it).
 * Errors are ImportErrors (errors.ts) with a one-line message a user can act on: `connectError()` for a source that
 * cannot be reached at all (upstream's "Unable to connect to <kind> data source: …"), ErrorKind.Transfer for a
 * break later on (a break inside the body is retried by the data path: source/resumable.ts).
 */
import type { Readable } from 'node:stream';
import type { Checksum } from '../checksum.ts';

/** Room a readRange() `into` buffer has beyond the bytes asked for (an HTTP answer's head, one socket read). */
export const RANGE_SLACK = 320 << 10;

export interface SourceInfo {
  /** Length of the bytes `open()` yields, when known. */
  size?: number;
  /** The source can serve byte ranges (readRange; required to stream non-raw formats without a scratch copy). */
  ranges: boolean;
  /** The media type the source labels the bytes with (HTTP Content-Type); text/* draws upstream's warning. */
  contentType?: string;
  /** For local files: qemu-img can read them directly. */
  localPath?: string;
  /**
   * Names this exact content (HTTP: a strong ETag, else Last-Modified; S3: the ETag; GCS: the generation).
   * A broken body is continued only when the source gives one (and `resumable` is set), and only while it is
   * unchanged; it is also what the progress record of a file target keeps across runs.
   */
  validator?: string;
  /**
   * The bytes can be read once only (an upload's request body; the registry's walk through an image's layers): no
   * second open(), no ranges, no resume.
   */
  oneWay?: boolean;
  /**
   * A digest the source itself publishes for the bytes open() yields (an object store's MD5 of the object, for
   * instance; the registry checks its layers' digests itself, below open()). Verified whenever the chosen path reads
   * every byte anyway; a checksum in the request is verified always.
   */
  checksum?: Checksum;
}

/** A range of a raw disk: data (read with readRange) or zeros. */
export interface DiskExtent {
  offset: number;
  length: number;
  zero: boolean;
}

/**
 * What a disk source (imageio, vddk) knows about the VM disk it reads: the guest's raw bytes as extents, so only
 * data crosses the wire (transfer/disk.ts copies them). The bytes are the guest's, never sniffed for a format.
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
  /** For messages: `http://host/path` (no credentials) or a file name. */
  readonly description: string;
  /** open(offset, validator) continues a body from `offset` (see above). Sources without it never get an offset. */
  readonly resumable?: boolean;
  info(): Promise<SourceInfo>;
  /**
   * The byte stream from `offset` (default 0). Errors on the stream are ImportErrors; a body that ends short of
   * `info().size` is an error too (the source knows its length, the data path may not).
   */
  open(offset?: number, validator?: string): Promise<Readable>;
  /**
   * `length` bytes at `offset` (all of them, or an ImportError), for sources whose info() says `ranges`:
   * the streaming path serves these to qemu-img over NBD (image/nbd-server.ts) and copies extents with them.
   * `into`, when given, is memory the caller owns and reuses once it is done with the answer (at least
   * `length + RANGE_SLACK` bytes): a source may read into it and answer views of it, so that a long copy does not
   * allocate (and leave to the garbage collector) a new buffer per read.
   */
  readRange?(offset: number, length: number, into?: Buffer): Promise<Buffer[]>;
  /**
   * Disk sources (imageio, vddk): the guest disk as extents, read by readRange(); the planner's `disk` plan
   * (transfer/disk.ts) copies them and never calls open(). The bytes are the guest's, never sniffed for a format.
   */
  disk?(): Promise<DiskMap>;
  /**
   * The data path wrote and committed every byte (runImport calls it once, before close()): close() may report
   * success to the server (imageio finalizes its image transfer then, and cancels it otherwise).
   */
  succeeded?(): void;
  /**
   * Extra fields for the pod's termination message, known after the transfer (vddk: `vddkInfo`; registry: the
   * image's KUBEVIRT_IO_* env as `labels`).
   */
  terminationInfo?(): Record<string, unknown>;
  close(): Promise<void>;
}
