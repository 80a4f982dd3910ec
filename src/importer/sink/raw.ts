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
import { ErrorKind, ImportError } from '../errors.ts';

const run = promisify(execFile);
const SEG = 64 * 1024;
const BATCH = 4 * 1024 * 1024;
const ZERO = Buffer.alloc(SEG);

export interface RawTarget {
  kind: 'file' | 'block';
  path: string;
}

/** Temporary name used for a file target while it is incomplete. */
export function partialPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.partial`);
}

export class RawWriter {
  readonly target: RawTarget;
  private fh: FileHandle | undefined;
  private readonly writePath: string;
  private readonly sparse: boolean;
  private readonly capacity: number | undefined;
  written = 0;

  private constructor(
    target: RawTarget,
    fh: FileHandle | undefined,
    writePath: string,
    sparse: boolean,
    capacity: number | undefined,
  ) {
    this.target = target;
    this.fh = fh;
    this.writePath = writePath;
    this.sparse = sparse;
    this.capacity = capacity;
  }

  static async open(
    target: RawTarget,
    opts: { capacity?: number; preallocate?: boolean },
  ): Promise<RawWriter> {
    if (target.kind === 'block') {
      const fh = await open(target.path, 'r+');
      return new RawWriter(target, fh, target.path, false, opts.capacity);
    }
    await rm(target.path, { force: true });
    const tmp = partialPath(target.path);
    const fh = await open(tmp, 'w', 0o660);
    return new RawWriter(target, fh, tmp, !opts.preallocate, opts.capacity);
  }

  /**
   * For an external writer (qemu-img convert): file targets are removed and written under the temporary name
   * (which the writer creates), block devices in place. commit()/abort() work as for streamed writes.
   */
  static async external(target: RawTarget): Promise<RawWriter> {
    if (target.kind === 'block') return new RawWriter(target, undefined, target.path, false, undefined);
    await rm(target.path, { force: true });
    const tmp = partialPath(target.path);
    await rm(tmp, { force: true });
    return new RawWriter(target, undefined, tmp, false, undefined);
  }

  /** The path being written (the temporary file for file targets): qemu-img can write here with -n. */
  get path(): string {
    return this.writePath;
  }

  /** Writes the stream from offset 0. */
  async writeStream(input: Readable): Promise<void> {
    const fh = this.handle();
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const flush = async (): Promise<void> => {
      if (pendingLen === 0) return;
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen);
      pending = [];
      pendingLen = 0;
      await this.writeAt(fh, buf, this.written);
      this.written += buf.length;
    };
    for await (const chunk of input as AsyncIterable<Buffer>) {
      if (this.capacity !== undefined && this.written + pendingLen + chunk.length > this.capacity) {
        throw new ImportError(
          ErrorKind.Invalid,
          `the image is larger than the available space of ${this.capacity} bytes (it kept going past it). A larger PVC is required`,
        );
      }
      pending.push(chunk);
      pendingLen += chunk.length;
      if (pendingLen >= BATCH) await flush();
    }
    await flush();
  }

  private async writeAt(fh: FileHandle, buf: Buffer, base: number): Promise<void> {
    if (!this.sparse) {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, base + off);
        off += bytesWritten;
      }
      return;
    }
    // Coalesce runs of non-zero segments; segments are aligned to absolute offsets.
    let i = 0;
    while (i < buf.length) {
      const segEnd = (p: number): number => Math.min(buf.length, p + (SEG - ((base + p) % SEG)));
      let end = segEnd(i);
      if (isZero(buf, i, end)) {
        i = end;
        continue;
      }
      let j = end;
      while (j < buf.length) {
        const e = segEnd(j);
        if (isZero(buf, j, e)) break;
        j = e;
      }
      end = j;
      let off = i;
      while (off < end) {
        const { bytesWritten } = await fh.write(buf, off, end - off, base + off);
        off += bytesWritten;
      }
      i = end;
    }
  }

  private handle(): FileHandle {
    if (!this.fh) throw new ImportError(ErrorKind.Internal, 'the target is already closed');
    return this.fh;
  }

  /** Closes our handle so an external writer (qemu-img) can take over. */
  async release(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }

  /**
   * Grows the file to `size` (never shrinks; preallocating the new part when asked), fsyncs, and renames it into
   * place. For a block device: checks the data fits, fsyncs.
   */
  async commit(opts: { size?: number; preallocate?: boolean }): Promise<{ size: number }> {
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
      await fh.sync();
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
    const fh = this.fh;
    this.fh = undefined;
    if (this.target.kind === 'file') {
      await fh?.close().catch(() => undefined);
      await rm(this.writePath, { force: true });
      await rm(this.target.path, { force: true });
      return;
    }
    const h = fh ?? (await open(this.target.path, 'r+').catch(() => undefined));
    if (!h) return;
    await h.write(Buffer.alloc(1024 * 1024), 0, 1024 * 1024, 0).catch(() => undefined);
    await h.sync().catch(() => undefined);
    await h.close().catch(() => undefined);
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
