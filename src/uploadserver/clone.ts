/**
 * The target side of a host-assisted clone: a clone stream (src/clonestream/format.ts) written into this pod's
 * volume. Holes and zero blocks never cross the wire; what they become here depends on the volume:
 * - Filesystem volume: the tree is written into a staging directory on the volume (`.cdi-clone-<random>`), files
 *   sparse (nothing is written for what the stream leaves out), and moved into place only when the whole stream has
 *   arrived and is on disk: a failed clone leaves nothing that looks like data. `disk.img` grows to the volume's
 *   usable space (a larger target grows the disk, as the importer's resize); a block source arrives as `disk.img`.
 * - Block volume: only `disk.img` is written (a Filesystem source's other files are read past), at its offsets. The
 *   device may hold old bytes, so every range the stream leaves out is read back and zeroed only where it is not
 *   zero already (cheap on thin devices, which read unwritten space as zeros, and no write where none is needed);
 *   with preallocation those ranges are written with zeros instead. A failure zeroes the first MiB.
 * Entry paths are checked (relative, no `..`) and every file is created with O_EXCL|O_NOFOLLOW inside the fresh
 * staging directory, under directories this stream created: nothing is ever written through a symbolic link.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  lutimes,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  statfs,
  symlink,
  utimes,
  chmod,
  type FileHandle,
} from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { CloneContentType } from '../api/upload.ts';
import {
  CloneStreamParser,
  DISK_IMAGE,
  EntryType,
  StreamFormatError,
  StreamKind,
  type Entry,
  type StreamEvent,
} from '../clonestream/format.ts';
import { ErrorKind, ImportError, largerPvcRequired } from '../importer/errors.ts';
import { usableSpace } from '../importer/size.ts';
import { deviceSize, writevAll } from '../importer/sink/raw.ts';
import type { TargetPaths } from './target.ts';

const run = promisify(execFile);

export interface CloneTargetOptions {
  paths: TargetPaths;
  /** The x-cdi-content-type the source sent. */
  contentType: string;
  filesystemOverhead: number;
  /** UPLOAD_IMAGE_SIZE (the PVC's requested size), when set. */
  imageSize?: number;
  preallocation: boolean;
  /** False when the input ended because its connection broke (not at the end of the body). */
  complete?: () => boolean;
  log?: (line: string) => void;
}

export interface CloneResult {
  kind: 'filesystem' | 'block';
  entries: number;
  dataBytes: number;
  /** Size of the target's disk image (the device for Block volumes), when there is one. */
  diskSize?: number;
  preallocationApplied: boolean;
}

/** Staging directories of earlier attempts start with this. */
export const STAGING_PREFIX = '.cdi-clone-';

const SEG = 64 * 1024;
const CHECK = 4 << 20;
const ZERO = Buffer.alloc(CHECK);
const BATCH = 4 << 20;
/** Written bytes after which a data-only flush starts in the background (as the importer's raw sink). */
const SYNC_EVERY = 16 << 20;

/** A stream that breaks the format (or does not fit the request): the client's fault, answered 400. */
export class BadCloneStream extends ImportError {
  constructor(message: string) {
    super(ErrorKind.Invalid, message);
    this.name = 'BadCloneStream';
  }
}

function asImportError(e: unknown): unknown {
  if (e instanceof StreamFormatError) return new BadCloneStream(e.message);
  return e;
}

function ioError(what: string, e: unknown): ImportError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC' || err.code === 'EDQUOT') {
    return new ImportError(
      ErrorKind.Invalid,
      `${what} failed: the target volume is full (${err.code}). A larger PVC is required`,
    );
  }
  return new ImportError(ErrorKind.Internal, `${what} failed: ${err.code ?? err.message}`);
}

/** Receives one clone stream into the volume; resolves once everything is on disk. */
export async function receiveClone(
  input: AsyncIterable<Buffer>,
  o: CloneTargetOptions,
): Promise<CloneResult> {
  if (o.contentType !== CloneContentType.Filesystem && o.contentType !== CloneContentType.Block) {
    throw new BadCloneStream(`unknown clone content type "${o.contentType}"`);
  }
  const dest = await stat(o.paths.destination).catch(() => undefined);
  const sink: Sink = dest?.isBlockDevice()
    ? new DeviceSink(o.paths.destination, await deviceSize(o.paths.destination), o)
    : await TreeSink.create(o);
  let kind: 'filesystem' | 'block' | undefined;
  let entries = 0;
  let dataBytes = 0;
  let result: { diskSize?: number; preallocationApplied: boolean } | undefined;
  const handle = async (ev: StreamEvent): Promise<void> => {
    if (ev.kind === 'header') {
      kind = ev.header.kind;
      const want = o.contentType === CloneContentType.Block ? StreamKind.Block : StreamKind.Filesystem;
      if (kind !== want)
        throw new BadCloneStream(
          `the clone stream is a ${kind} stream, but the request says ${o.contentType}`,
        );
      o.log?.(
        `clone stream: ${kind}, ${ev.header.total} bytes of files, about ${ev.header.data} bytes of data to come`,
      );
    } else if (ev.kind === 'entry') {
      entries++;
      await sink.entry(ev.entry);
    } else if (ev.kind === 'data') {
      dataBytes += ev.length;
      await sink.data(ev.offset, ev.chunks, ev.length);
    } else {
      result = await sink.finish();
    }
  };
  const parser = new CloneStreamParser();
  let received = 0;
  try {
    try {
      for await (const chunk of input) {
        received += chunk.length;
        for (const ev of parser.push(chunk)) await handle(ev);
      }
      if (o.complete && !o.complete()) throw new Error('the connection ended before the body');
    } catch (e) {
      if (e instanceof ImportError || e instanceof StreamFormatError) throw e;
      throw new ImportError(
        ErrorKind.Transfer,
        `the clone stream was cut off after ${received} bytes (${(e as Error).message})`,
      );
    }
    parser.end();
    if (!result) throw new ImportError(ErrorKind.Internal, 'the clone stream ended but was not committed');
    return { kind: kind!, entries, dataBytes, ...result };
  } catch (e) {
    await sink.abort().catch(() => undefined);
    if (e instanceof StreamFormatError && /ended before its trailer/.test(e.message)) {
      throw new ImportError(ErrorKind.Transfer, `the clone stream was cut off after ${received} bytes`);
    }
    throw asImportError(e);
  }
}

interface Sink {
  entry(e: Entry): Promise<void>;
  data(offset: number, chunks: Buffer[], length: number): Promise<void>;
  finish(): Promise<{ diskSize?: number; preallocationApplied: boolean }>;
  abort(): Promise<void>;
}

/**
 * Writes consecutive data at offsets of one open file: batches of up to 4 MiB, one batch written while the next
 * one arrives, background data flushes every 16 MiB.
 */
class OffsetWriter {
  private readonly fh: FileHandle;
  private readonly what: string;
  private pending: Buffer[] = [];
  private pendingStart = 0;
  private pendingLen = 0;
  private inflight: Promise<void> | undefined;
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  private syncError: unknown;

  constructor(fh: FileHandle, what: string) {
    this.fh = fh;
    this.what = what;
  }

  async write(offset: number, chunks: Buffer[], length: number): Promise<void> {
    if (this.pendingLen > 0 && this.pendingStart + this.pendingLen !== offset) await this.flush();
    if (this.pendingLen === 0) this.pendingStart = offset;
    this.pending.push(...chunks);
    this.pendingLen += length;
    if (this.pendingLen >= BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pendingLen === 0) return;
    const bufs = this.pending;
    const at = this.pendingStart;
    const len = this.pendingLen;
    this.pending = [];
    this.pendingLen = 0;
    await this.inflight;
    this.inflight = this.writev(bufs, at, len);
    this.inflight.catch(() => undefined);
  }

  private async writev(bufs: Buffer[], position: number, len: number): Promise<void> {
    try {
      await writevAll(this.fh, bufs, position);
    } catch (e) {
      throw ioError(`writing ${this.what}`, e);
    }
    this.unsynced += len;
    if (this.unsynced >= SYNC_EVERY && !this.syncing) {
      this.unsynced = 0;
      this.syncing = this.fh
        .datasync()
        .catch((e: unknown) => {
          this.syncError ??= e;
        })
        .finally(() => {
          this.syncing = undefined;
        });
    }
  }

  /** Everything handed to the kernel (the caller fsyncs); throws what a write or a background flush hit. */
  async done(): Promise<void> {
    await this.flush();
    await this.inflight;
    await this.syncing;
    if (this.syncError !== undefined) throw ioError(`flushing ${this.what}`, this.syncError);
  }

  /** Waits for what is in flight, ignoring its outcome (on the way out of a failure). */
  async settle(): Promise<void> {
    await this.inflight?.catch(() => undefined);
    await this.syncing;
  }
}

/** A Filesystem volume: the tree into a staging directory, moved into place at the end. */
class TreeSink implements Sink {
  private readonly o: CloneTargetOptions;
  private readonly dataDir: string;
  private readonly staging: string;
  /** The usable space for disk.img (the importer's arithmetic). */
  private readonly available: number;
  private readonly kinds = new Map<string, 'dir' | 'file' | 'symlink'>([['', 'dir']]);
  private readonly dirs: Entry[] = [];
  private file: { entry: Entry; fh: FileHandle; writer: OffsetWriter; size: number } | undefined;
  private diskSize: number | undefined;
  private preallocationApplied = false;

  private constructor(o: CloneTargetOptions, staging: string, available: number) {
    this.o = o;
    this.dataDir = o.paths.dataDir;
    this.staging = staging;
    this.available = available;
  }

  static async create(o: CloneTargetOptions): Promise<TreeSink> {
    const dataDir = o.paths.dataDir;
    const fs = await statfs(dataDir).catch((e: NodeJS.ErrnoException) => {
      throw new ImportError(
        ErrorKind.Internal,
        `the volume ${dataDir} is not mounted: ${e.code ?? e.message}`,
      );
    });
    // leftovers of an attempt that was killed
    for (const name of await readdir(dataDir)) {
      if (name.startsWith(STAGING_PREFIX))
        await rm(path.join(dataDir, name), { recursive: true, force: true });
    }
    const free = fs.bavail * fs.bsize;
    const available = usableSpace(
      o.filesystemOverhead,
      o.imageSize !== undefined ? Math.min(o.imageSize, free) : free,
    );
    const staging = path.join(dataDir, STAGING_PREFIX + randomBytes(6).toString('hex'));
    await mkdir(staging, { mode: 0o700 });
    return new TreeSink(o, staging, available);
  }

  private abs(rel: string): string {
    return path.join(this.staging, rel);
  }

  async entry(e: Entry): Promise<void> {
    await this.closeFile();
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    if (this.kinds.get(parent) !== 'dir') {
      throw new StreamFormatError(
        `the clone stream entry "${e.path}" comes before its directory "${parent}"`,
      );
    }
    if (this.kinds.has(e.path)) throw new StreamFormatError(`the clone stream names "${e.path}" twice`);
    const abs = this.abs(e.path);
    try {
      if (e.type === EntryType.Dir) {
        // owner rwx while the tree is filled; the entry's mode at the end
        await mkdir(abs, { mode: 0o700 });
        this.kinds.set(e.path, 'dir');
        this.dirs.push(e);
      } else if (e.type === EntryType.Symlink) {
        await symlink(e.target!, abs);
        this.kinds.set(e.path, 'symlink');
        await lutimes(abs, e.mtimeMs / 1000, e.mtimeMs / 1000).catch(() => undefined);
      } else {
        let size = e.size!;
        if (e.path === DISK_IMAGE) {
          if (size > this.available) throw largerPvcRequired(size, this.available);
          size = Math.max(size, this.available);
          this.diskSize = size;
        }
        const fh = await open(
          abs,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          0o600,
        );
        this.kinds.set(e.path, 'file');
        this.file = { entry: e, fh, writer: new OffsetWriter(fh, e.path), size };
      }
    } catch (err) {
      if (err instanceof ImportError) throw err;
      throw ioError(`creating ${e.path} on the target`, err);
    }
  }

  async data(offset: number, chunks: Buffer[], length: number): Promise<void> {
    // the parser only lets data through inside a file entry
    await this.file!.writer.write(offset, chunks, length);
  }

  private async closeFile(): Promise<void> {
    const f = this.file;
    if (!f) return;
    this.file = undefined;
    try {
      await f.writer.done();
      await f.fh.truncate(f.size).catch((e: unknown) => {
        throw ioError(`sizing ${f.entry.path}`, e);
      });
      if (this.o.preallocation && f.size > 0) {
        await f.fh.close();
        const ok = await run('fallocate', ['-l', String(f.size), this.abs(f.entry.path)]).then(
          () => true,
          () => false,
        );
        if (ok) this.preallocationApplied = true;
        else this.o.log?.(`cannot preallocate ${f.entry.path} (fallocate failed): it stays sparse`);
        const fh = await open(this.abs(f.entry.path), constants.O_WRONLY | constants.O_NOFOLLOW);
        await this.finishFile(f.entry, fh);
        return;
      }
      await this.finishFile(f.entry, f.fh);
    } catch (e) {
      await f.fh.close().catch(() => undefined);
      throw e;
    }
  }

  private async finishFile(e: Entry, fh: FileHandle): Promise<void> {
    try {
      await fh.sync().catch((err: unknown) => {
        throw ioError(`flushing ${e.path}`, err);
      });
      // disk images are 0660 whatever the source said (upstream's permission check); other files keep theirs
      await fh.chmod(e.path === DISK_IMAGE ? 0o660 : e.mode);
      await fh.utimes(e.mtimeMs / 1000, e.mtimeMs / 1000);
    } finally {
      await fh.close();
    }
  }

  async finish(): Promise<{ diskSize?: number; preallocationApplied: boolean }> {
    await this.closeFile();
    // directory modes and times, deepest first (a mode without w would stop the writes inside it)
    for (const d of [...this.dirs].reverse()) {
      await chmod(this.abs(d.path), d.mode);
      await utimes(this.abs(d.path), d.mtimeMs / 1000, d.mtimeMs / 1000).catch(() => undefined);
    }
    // the stream is complete and on disk: move it into place
    for (const name of await readdir(this.staging)) {
      const to = path.join(this.dataDir, name);
      await rm(to, { recursive: true, force: true });
      await rename(path.join(this.staging, name), to);
    }
    await rm(this.staging, { recursive: true, force: true });
    const dir = await open(this.dataDir, 'r');
    await dir.sync().catch(() => undefined);
    await dir.close();
    return {
      ...(this.diskSize !== undefined ? { diskSize: this.diskSize } : {}),
      preallocationApplied: this.preallocationApplied,
    };
  }

  async abort(): Promise<void> {
    const f = this.file;
    this.file = undefined;
    if (f) {
      await f.writer.settle();
      await f.fh.close().catch(() => undefined);
    }
    await rm(this.staging, { recursive: true, force: true });
  }
}

/** A Block volume: `disk.img` onto the device; the ranges the stream leaves out made zero. */
class DeviceSink implements Sink {
  private readonly device: string;
  private readonly size: number;
  private readonly o: CloneTargetOptions;
  private fh: FileHandle | undefined;
  private writer: OffsetWriter | undefined;
  /** Inside disk.img: the offset up to which the device is known to hold the image. */
  private cursor = 0;
  private inDisk = false;
  private diskEnd = 0;
  private seen = false;
  /** Bytes read back and bytes zeroed in the ranges the stream left out. */
  private verified = 0;
  private zeroed = 0;

  constructor(device: string, size: number, o: CloneTargetOptions) {
    this.device = device;
    this.size = size;
    this.o = o;
  }

  async entry(e: Entry): Promise<void> {
    await this.closeDisk();
    if (e.path !== DISK_IMAGE || e.type !== EntryType.File) {
      // a Filesystem source's other files have no place on a block device
      if (e.type === EntryType.File)
        this.o.log?.(`skipping ${e.path}: a Block volume holds only the disk image`);
      return;
    }
    if (this.seen) throw new StreamFormatError(`the clone stream names "${e.path}" twice`);
    this.seen = true;
    if (e.size! > this.size) throw largerPvcRequired(e.size!, this.size);
    this.fh = await open(this.device, 'r+').catch((err: unknown) => {
      throw ioError(`opening the block device ${this.device}`, err);
    });
    this.writer = new OffsetWriter(this.fh, `the block device ${this.device}`);
    this.inDisk = true;
    this.cursor = 0;
    this.diskEnd = e.size!;
  }

  async data(offset: number, chunks: Buffer[], length: number): Promise<void> {
    if (!this.inDisk) return;
    await this.fillGap(offset);
    await this.writer!.write(offset, chunks, length);
    this.cursor = offset + length;
  }

  /** Makes [cursor, to) zero on the device: written with zeros (preallocation), or read and zeroed where needed. */
  private async fillGap(to: number): Promise<void> {
    if (to <= this.cursor) return;
    const fh = this.fh!;
    await this.writer!.flush();
    for (let at = this.cursor; at < to;) {
      const len = Math.min(CHECK - (at % CHECK), to - at);
      if (this.o.preallocation) {
        await this.writer!.write(at, [ZERO.subarray(0, len)], len);
        this.zeroed += len;
      } else {
        const buf = Buffer.allocUnsafe(len);
        let got = 0;
        try {
          while (got < len) {
            const { bytesRead } = await fh.read(buf, got, len - got, at + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
        } catch (e) {
          throw ioError(`reading back the block device ${this.device}`, e);
        }
        this.verified += len;
        for (let i = 0; i < len; i += SEG) {
          const end = Math.min(len, i + SEG);
          if (i >= got || !buf.subarray(i, end).equals(ZERO.subarray(0, end - i))) {
            await this.writer!.write(at + i, [ZERO.subarray(0, end - i)], end - i);
            this.zeroed += end - i;
          }
        }
      }
      at += len;
    }
    this.cursor = to;
  }

  private async closeDisk(): Promise<void> {
    if (!this.inDisk) return;
    this.inDisk = false;
    await this.fillGap(this.diskEnd);
    await this.writer!.done();
    await this.fh!.sync().catch((e: unknown) => {
      throw ioError(`flushing the block device ${this.device}`, e);
    });
    await this.fh!.close();
    this.fh = undefined;
    this.o.log?.(
      `disk image written to ${this.device}: ${this.verified} bytes left out by the stream read back, ${this.zeroed} zeroed`,
    );
  }

  async finish(): Promise<{ diskSize?: number; preallocationApplied: boolean }> {
    await this.closeDisk();
    if (!this.seen) {
      throw new ImportError(
        ErrorKind.Invalid,
        `the source volume holds no ${DISK_IMAGE}: a Filesystem volume can be cloned to a Block volume only when it holds a disk image (kubevirt content)`,
      );
    }
    return { diskSize: this.size, preallocationApplied: this.o.preallocation };
  }

  async abort(): Promise<void> {
    await this.writer?.settle();
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    if (!this.seen) return;
    const h = await open(this.device, 'r+').catch(() => undefined);
    if (!h) return;
    await h.write(Buffer.alloc(1 << 20), 0, Math.min(1 << 20, this.size), 0).catch(() => undefined);
    await h.sync().catch(() => undefined);
    await h.close().catch(() => undefined);
  }
}
