/**
 * The data path of disk sources (imageio, vddk): a VM disk read by extents, so only data crosses the wire.
 *
 *   full import   the data extents are read by range (4 in flight, at most 8 MiB each, no gaps read through) and
 *                 written at their offsets into a fresh sparse `.disk.img.partial` (zero extents stay holes; a block
 *                 device gets them written), grown to the volume's size, fsynced, renamed: sink/raw.ts's rules.
 *   delta         (a warm-import checkpoint after the first) the changed extents are written in place onto the
 *                 target the earlier stages filled, zero extents as zeros; nothing is resized (upstream neither).
 *
 * The bytes are the guest's own and are never sniffed for a format (a guest disk may well start with a qcow2
 * header). See docs/importer.md "Disk sources" and docs/adr/0036-warm-import-deltas.md.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ErrorKind, ImportError, largerPvcRequired } from './errors.ts';
import { copyExtents, WINDOW, type Piece } from './image/extents.ts';
import { retrying, type RangeReader } from './image/range.ts';
import { Progress } from './progress.ts';
import { deviceSize, RawWriter, type RawTarget } from './sink/raw.ts';
import type { DiskExtent, ImportSource } from './source/source.ts';

export interface DiskImportRequest {
  source: ImportSource;
  target: RawTarget;
  /** Final size of a file target (grown to it, never shrunk). Undefined: the disk's size. */
  size?: number;
  /** Space the disk may use. Undefined: no limit. */
  available?: number;
  preallocate?: boolean;
  progress?: Progress;
  /** Ranged reads in flight (default 4). */
  concurrency?: number;
  /** Retries of one ranged read (default 5) and the pause between them. */
  retries?: number;
  retryDelayMs?: number;
}

export interface DiskImportResult {
  virtualSize: number;
  delta: boolean;
  /** Bytes read from the source (the data extents). */
  dataBytes: number;
  /** Bytes of zero extents (skipped, or written as zeros). */
  zeroBytes: number;
  /** Final size of the target (file: after growing). */
  size: number;
  preallocationApplied: boolean;
}

const ZEROS = Buffer.alloc(WINDOW);

/** The data extents as extent-copy pieces (host offset = guest offset: the source is the raw disk itself). */
function pieces(extents: readonly DiskExtent[]): { pieces: Piece[]; dataBytes: number } {
  const out: Piece[] = [];
  let dataBytes = 0;
  for (const e of extents) {
    if (e.zero) continue;
    for (let o = 0; o < e.length; o += WINDOW) {
      const length = Math.min(WINDOW, e.length - o);
      out.push({ host: e.offset + o, guest: e.offset + o, length });
    }
    dataBytes += e.length;
  }
  return { pieces: out, dataBytes };
}

/** Checks that extents lie inside the disk and do not overlap (a server answer is input like any other). */
function checkExtents(extents: readonly DiskExtent[], size: number, full: boolean, what: string): void {
  let next = 0;
  for (const e of extents) {
    const ok =
      Number.isSafeInteger(e.offset) && Number.isSafeInteger(e.length) && e.length > 0 && e.offset >= next;
    if (!ok || e.offset + e.length > size || (full && e.offset !== next)) {
      throw new ImportError(
        ErrorKind.Transfer,
        `${what} described the disk with an invalid extent (offset ${e.offset}, length ${e.length}, disk size ${size})`,
      );
    }
    next = e.offset + e.length;
  }
  if (full && next !== size) {
    throw new ImportError(
      ErrorKind.Transfer,
      `${what} described only ${next} of the disk's ${size} bytes with extents`,
    );
  }
}

async function writeZeros(write: (c: Buffer[], at: number) => Promise<void>, e: DiskExtent): Promise<void> {
  for (let o = 0; o < e.length; o += WINDOW)
    await write([ZEROS.subarray(0, Math.min(WINDOW, e.length - o))], e.offset + o);
}

async function writeAll(fh: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let pos = position;
  for (const c of chunks) {
    for (let done = 0; done < c.length;) {
      const { bytesWritten } = await fh.write(c, done, c.length - done, pos);
      done += bytesWritten;
      pos += bytesWritten;
    }
  }
}

export async function importDisk(req: DiskImportRequest): Promise<DiskImportResult> {
  const src = req.source;
  const progress = req.progress ?? new Progress();
  try {
    if (!src.disk || !src.readRange)
      throw new ImportError(ErrorKind.Internal, `${src.description} is not a disk source`);
    progress.setPhase('connecting');
    const map = await src.disk();
    checkExtents(map.extents, map.size, !map.delta, src.description);
    const plan = pieces(map.extents);
    const zeroBytes = map.extents.reduce((n, e) => n + (e.zero ? e.length : 0), 0);
    const read = src.readRange.bind(src);
    const reader: RangeReader = retrying(
      { size: map.size, read },
      {
        ...(req.retries !== undefined ? { retries: req.retries } : {}),
        ...(req.retryDelayMs !== undefined ? { retryDelayMs: req.retryDelayMs } : {}),
      },
    );
    progress.total = plan.dataBytes + zeroBytes;
    const count = (n: number): void => progress.add(n);
    const copyOpts = { concurrency: req.concurrency ?? 4, gap: 0, onBytes: count };
    progress.setPhase('transferring');

    if (map.delta) {
      const fh = await openExisting(req.target, map.size);
      try {
        const write = (chunks: Buffer[], at: number): Promise<void> => writeAll(fh, chunks, at);
        await copyExtents(plan, reader, write, copyOpts);
        for (const e of map.extents) {
          if (!e.zero) continue;
          await writeZeros(write, e);
          count(e.length);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      src.succeeded?.();
      return {
        virtualSize: map.size,
        delta: true,
        dataBytes: plan.dataBytes,
        zeroBytes,
        size: (await stat(req.target.path)).size,
        preallocationApplied: false,
      };
    }

    if (req.available !== undefined && map.size > req.available)
      throw largerPvcRequired(map.size, req.available);
    const w = await RawWriter.open(req.target, { preallocate: req.preallocate ?? false });
    try {
      const write = (chunks: Buffer[], at: number): Promise<void> => w.writeAt(chunks, at);
      await copyExtents(plan, reader, write, copyOpts);
      // A new file reads zeros where nothing was written; a block device may hold old data.
      for (const e of map.extents) {
        if (!e.zero) continue;
        if (req.target.kind === 'block') await writeZeros(write, e);
        count(e.length);
      }
      w.extendTo(map.size);
      const want =
        req.size !== undefined && req.available !== undefined ? Math.min(req.size, req.available) : req.size;
      const { size } = await w.commit({
        ...(want !== undefined ? { size: want } : {}),
        preallocate: req.preallocate ?? false,
      });
      progress.set(1);
      src.succeeded?.();
      return {
        virtualSize: map.size,
        delta: false,
        dataBytes: plan.dataBytes,
        zeroBytes,
        size,
        preallocationApplied: req.preallocate ?? false,
      };
    } catch (err) {
      await w.abort();
      throw err;
    }
  } finally {
    await src.close();
  }
}

/** The target of a delta: it must exist (an earlier stage wrote it) and hold the whole disk. */
async function openExisting(target: RawTarget, size: number): Promise<FileHandle> {
  const fh = await open(target.path, 'r+').catch((err: NodeJS.ErrnoException) => {
    throw new ImportError(
      ErrorKind.Invalid,
      err.code === 'ENOENT'
        ? `${target.path} does not exist: a delta (a checkpoint after the first) applies onto the disk the earlier checkpoints imported, and there is none`
        : `cannot open ${target.path} to apply the delta: ${err.message}`,
    );
  });
  const st = await fh.stat();
  const have = st.isBlockDevice() ? await deviceSize(target.path) : st.size;
  if (have < size) {
    await fh.close();
    throw new ImportError(
      ErrorKind.Invalid,
      `${target.path} holds ${have} bytes but the disk has ${size}: the earlier checkpoints imported another disk`,
    );
  }
  return fh;
}
