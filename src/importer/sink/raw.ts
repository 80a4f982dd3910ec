/**
 * Writes a raw disk stream to a file or a block device.
 * - Files: written under a temporary name next to the target, zero blocks skipped (sparse), grown to the requested
 *   size (never shrunk), optionally preallocated, fsynced, then renamed into place: a `disk.img` exists only when
 *   it is complete. Any earlier `disk.img` is removed first, so a failed retry never leaves an old one behind.
 * - Block devices: every block is written (the device may hold old data), fsynced; on failure the first MiB is
 *   zeroed so the device does not look like a complete disk.
 * - A stream longer than `capacity` is stopped as soon as it passes it (decompression bombs, too-small volumes).
 */
import { execFile } from 'node:child_process';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ErrorKind, ImportError, tooLargeForSpace } from '../errors.ts';

const run = promisify(execFile);
const SEG = 64 * 1024;
const BATCH = 4 * 1024 * 1024;
const ZERO = Buffer.alloc(SEG);
/**
 * Written bytes after which a data-only flush starts in the background, so the device writes while the transfer goes
 * on and the final fsync has little left to do (measured: docs/adr/0005-extent-copy.md).
 */
export const SYNC_EVERY = 16 << 20;

export interface RawTarget {
  kind: 'file' | 'block';
  path: string;
}

/** Temporary name used for a file target while it is incomplete. */
export function partialPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.partial`);
}

/** The progress record of a download into the partial file (sink/record.ts); gone whenever a fresh write starts. */
export function recordPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.resume`);
}

/** A fresh start on a file target: no old image, no old partial file's record. */
async function clearFileTarget(target: string): Promise<void> {
  await rm(target, { force: true });
  await rm(recordPath(target), { force: true });
}

export class RawWriter {
  readonly target: RawTarget;
  private fh: FileHandle | undefined;
  private readonly writePath: string;
  private readonly sparse: boolean;
  private readonly capacity: number | undefined;
  private readonly syncEvery: number;
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  /** An I/O error a background flush saw: Linux reports it to one fsync only, so commit() must throw it. */
  private syncError: Error | undefined;
  /** writeStream(): every byte below this is written (zero segments as holes); the next flush makes it durable. */
  private completed = 0;
  private onDurable: ((offset: number) => void) | undefined;
  written = 0;

  private constructor(
    target: RawTarget,
    fh: FileHandle | undefined,
    writePath: string,
    sparse: boolean,
    capacity: number | undefined,
    syncEvery = 0,
  ) {
    this.target = target;
    this.fh = fh;
    this.writePath = writePath;
    this.sparse = sparse;
    this.capacity = capacity;
    this.syncEvery = syncEvery;
  }

  static async open(
    target: RawTarget,
    opts: {
      capacity?: number;
      preallocate?: boolean;
      /** 0: no background flushes (scratch files) */ syncEvery?: number;
      /**
       * A file target only: continue the partial file of an earlier run, whose first `resumeAt` bytes are on disk
       * (it is cut there: anything after may be stale); writeStream() then writes from there.
       */
      resumeAt?: number;
      /** writeStream(): called after each background flush with the offset up to which the data is now durable. */
      onDurable?: (offset: number) => void;
    },
  ): Promise<RawWriter> {
    const syncEvery = opts.syncEvery ?? SYNC_EVERY;
    let w: RawWriter;
    if (target.kind === 'block') {
      const fh = await open(target.path, 'r+');
      w = new RawWriter(target, fh, target.path, false, opts.capacity, syncEvery);
    } else {
      const tmp = partialPath(target.path);
      let fh: FileHandle;
      if (opts.resumeAt !== undefined) {
        await rm(target.path, { force: true });
        fh = await open(tmp, 'r+');
        await fh.truncate(opts.resumeAt);
      } else {
        await clearFileTarget(target.path);
        fh = await open(tmp, 'w', 0o660);
      }
      w = new RawWriter(target, fh, tmp, !opts.preallocate, opts.capacity, syncEvery);
      w.written = w.completed = opts.resumeAt ?? 0;
    }
    w.onDurable = opts.onDurable;
    return w;
  }

  /**
   * For an external writer (qemu-img convert): file targets are removed and written under the temporary name
   * (which the writer creates), block devices in place. commit()/abort() work as for streamed writes.
   */
  static async external(target: RawTarget): Promise<RawWriter> {
    if (target.kind === 'block') return new RawWriter(target, undefined, target.path, false, undefined);
    await clearFileTarget(target.path);
    const tmp = partialPath(target.path);
    await rm(tmp, { force: true });
    return new RawWriter(target, undefined, tmp, false, undefined);
  }

  /** The path being written (the temporary file for file targets): qemu-img can write here with -n. */
  get path(): string {
    return this.writePath;
  }

  /** Writes the stream from where the data ends (offset 0, or `resumeAt`). */
  async writeStream(input: Readable): Promise<void> {
    const fh = this.handle();
    let pending: Buffer[] = [];
    let pendingLen = 0;
    // One batch is written while the next one is read (double buffering keeps the socket flowing).
    let inflight: Promise<void> | undefined;
    const flush = async (): Promise<void> => {
      if (pendingLen === 0) return;
      const chunks = pending;
      const base = this.written;
      this.written += pendingLen;
      pending = [];
      pendingLen = 0;
      await inflight;
      const end = this.written;
      inflight = this.writeChunks(fh, chunks, base).then(() => {
        this.completed = Math.max(this.completed, end);
      });
      inflight.catch(() => undefined);
    };
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        if (this.capacity !== undefined && this.written + pendingLen + chunk.length > this.capacity) {
          throw tooLargeForSpace(this.capacity);
        }
        pending.push(chunk);
        pendingLen += chunk.length;
        if (pendingLen >= BATCH) await flush();
      }
      await flush();
    } catch (err) {
      // What arrived before a break is good data: written, so a run that continues the download keeps it.
      await flush().catch(() => undefined);
      throw err;
    } finally {
      await inflight?.catch(() => undefined);
    }
    await inflight;
  }

  /**
   * Writes consecutive chunks at `position` (sparse like writeStream). Calls may run concurrently and in any order;
   * the data then ends at least at the end of the furthest write.
   */
  async writeAt(chunks: Buffer[], position: number): Promise<void> {
    const end = chunks.reduce((n, c) => n + c.length, position);
    this.written = Math.max(this.written, end);
    await this.writeChunks(this.handle(), chunks, position);
  }

  /** The data ends at least at `size` (a file whose tail is a hole still ends there). */
  extendTo(size: number): void {
    this.written = Math.max(this.written, size);
  }

  /**
   * Writes consecutive chunks starting at `base` with vectored writes (no copying). When sparse, 64 KiB segments
   * (aligned to absolute offsets) that are all zero are skipped: the file is new, so they read back as zeros.
   */
  private async writeChunks(fh: FileHandle, chunks: Buffer[], base: number): Promise<void> {
    let run: Buffer[] = [];
    let runStart = -1;
    const flushRun = async (): Promise<void> => {
      if (run.length > 0) {
        await writevAll(fh, run, runStart);
        this.flushInBackground(fh, run);
      }
      run = [];
      runStart = -1;
    };
    let pos = base;
    for (const chunk of chunks) {
      if (!this.sparse) {
        if (runStart < 0) runStart = pos;
        run.push(chunk);
        pos += chunk.length;
        continue;
      }
      let i = 0;
      let keepFrom = -1; // start (in this chunk) of the non-zero bytes being collected
      while (i < chunk.length) {
        const end = Math.min(chunk.length, i + (SEG - ((pos + i) % SEG)));
        if (isZero(chunk, i, end)) {
          if (keepFrom >= 0) run.push(chunk.subarray(keepFrom, i));
          keepFrom = -1;
          await flushRun();
        } else {
          if (runStart < 0) runStart = pos + i;
          if (keepFrom < 0) keepFrom = i;
        }
        i = end;
      }
      if (keepFrom >= 0) run.push(chunk.subarray(keepFrom));
      pos += chunk.length;
    }
    await flushRun();
  }

  private flushInBackground(fh: FileHandle, written: Buffer[]): void {
    if (this.syncEvery <= 0) return;
    this.unsynced += written.reduce((n, b) => n + b.length, 0);
    if (this.unsynced < this.syncEvery || this.syncing) return;
    this.unsynced = 0;
    // Everything below `completed` was written before this flush starts, so the flush makes it durable.
    const durable = this.completed;
    this.syncing = fh
      .datasync()
      .then(() => {
        try {
          this.onDurable?.(durable);
        } catch {
          // A listener's trouble is not a write error.
        }
      })
      .catch((err: unknown) => {
        this.syncError ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        this.syncing = undefined;
      });
  }

  /** Waits for a background flush; throws the I/O error one saw. */
  private async settle(): Promise<void> {
    await this.syncing;
    if (this.syncError !== undefined) throw this.syncError;
  }

  private handle(): FileHandle {
    if (!this.fh) throw new ImportError(ErrorKind.Internal, 'the target is already closed');
    return this.fh;
  }

  /**
   * Stops writing without giving up the data (a later run continues it): flushes what writeStream() wrote and
   * closes the file, which stays under its temporary name. Returns the offset up to which the data is durable.
   */
  async suspend(): Promise<number> {
    await this.syncing;
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return 0;
    try {
      await fh.datasync();
      return this.completed;
    } catch {
      return 0;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** Closes our handle so an external writer (qemu-img) can take over. */
  async release(): Promise<void> {
    await this.settle();
    await this.fh?.close();
    this.fh = undefined;
  }

  /**
   * Grows the file to `size` (never shrinks; preallocating the new part when asked), fsyncs, and renames it into
   * place. For a block device: checks the data fits, fsyncs.
   */
  async commit(opts: { size?: number; preallocate?: boolean; sync?: boolean }): Promise<{ size: number }> {
    await this.settle();
    const fh = this.fh ?? (await open(this.writePath, 'r+'));
    this.fh = fh;
    const current = (await fh.stat()).size;
    let size = current;
    if (this.target.kind === 'file') {
      const want = Math.max(current, this.written, opts.size ?? 0);
      if (want > current) {
        await fh.truncate(want);
        if (opts.preallocate) {
          await run('fallocate', ['-o', String(current), '-l', String(want - current), this.writePath]).catch(
            async () => {
              // Filesystems without fallocate: write the zeros.
              for (let o = current; o < want; o += BATCH)
                await fh.write(Buffer.alloc(Math.min(BATCH, want - o)), 0, Math.min(BATCH, want - o), o);
            },
          );
        }
      }
      size = want;
      await fh.chmod(0o660);
      if (opts.sync !== false) await fh.sync();
      await fh.close();
      this.fh = undefined;
      await rename(this.writePath, this.target.path);
      const dir = await open(path.dirname(this.target.path), 'r');
      await dir.sync().catch(() => undefined);
      await dir.close();
    } else {
      if (opts.preallocate) {
        // Upstream preallocates blank block volumes by writing zeros over them.
        const end = await deviceSize(this.writePath);
        const zeros = Buffer.alloc(BATCH);
        for (let o = this.written; o < end; o += BATCH) await fh.write(zeros, 0, Math.min(BATCH, end - o), o);
      }
      await fh.sync();
      await fh.close();
      this.fh = undefined;
    }
    return { size };
  }

  /** Makes sure nothing looks complete after a failure. */
  async abort(): Promise<void> {
    await this.syncing;
    const fh = this.fh;
    this.fh = undefined;
    if (this.target.kind === 'file') {
      await fh?.close().catch(() => undefined);
      await rm(this.writePath, { force: true });
      await clearFileTarget(this.target.path);
      return;
    }
    const h = fh ?? (await open(this.target.path, 'r+').catch(() => undefined));
    if (!h) return;
    await h.write(Buffer.alloc(1024 * 1024), 0, 1024 * 1024, 0).catch(() => undefined);
    await h.sync().catch(() => undefined);
    await h.close().catch(() => undefined);
  }
}

/** pwritev until every byte of `bufs` is written at `position` (a short write continues where it stopped). */
export async function writevAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let list = bufs;
  let pos = position;
  while (list.length > 0) {
    const total = list.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(list, pos);
    if (bytesWritten >= total) return;
    pos += bytesWritten;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of list) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    list = rest;
  }
}

function isZero(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  return buf.subarray(start, end).equals(len === SEG ? ZERO : ZERO.subarray(0, len));
}

/** Size of a block device, or of a regular file standing in for one (tests). */
export async function deviceSize(p: string): Promise<number> {
  const fh = await open(p, 'r');
  try {
    const st = await fh.stat();
    if (!st.isBlockDevice()) return st.size;
  } finally {
    await fh.close();
  }
  const { stdout } = await run('blockdev', ['--getsize64', p]);
  return Number(stdout.trim());
}
