/**
 * Transfer `disk`: a VM disk read by extents (imageio, vddk: ImportSource.disk()), so only data crosses the wire.
 *
 *   full import   the data extents are read by range (4 in flight, at most 8 MiB each, no gaps read through) and
 *                 written at their offsets into a fresh sparse `.disk.img.partial` (zero extents stay holes; a block
 *                 device gets them written), grown to the volume's size, fsynced, renamed: sink/raw.ts's rules.
 *   delta         (a warm-import checkpoint after the first) the changed extents are written in place onto the
 *                 target the earlier stages filled, zero extents as zeros; nothing is resized (upstream neither).
 *
 * The bytes are the guest's own and are never sniffed for a format (a guest disk may well start with a qcow2
 * header): the planner chose this path from the offer alone. runImport tells the source once the target is
 * committed (succeeded(): imageio finalizes its image transfer) and closes it. See docs/importer.md "Transfer
 * `disk`" and docs/adr/0036-warm-import-deltas.md.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ErrorKind, ImportError, largerPvcRequired } from '../errors.ts';
import { copyExtents, WINDOW, type Piece } from '../image/extents.ts';
import { retrying } from '../image/range.ts';
import type { TransferOutcome } from '../request.ts';
import { deviceSize, RawWriter, type RawTarget } from '../sink/raw.ts';
import type { DiskExtent } from '../source/source.ts';
import { commitTarget, rangeRetries, rawTarget, type PlanContext } from './context.ts';

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

export async function diskTransfer(ctx: PlanContext): Promise<TransferOutcome> {
  const { req, plan, source: src, progress } = ctx;
  const target = rawTarget(req);
  if (!src.disk || !src.readRange)
    throw new ImportError(ErrorKind.Internal, `${src.description} is not a disk source`);
  const map = await src.disk();
  checkExtents(map.extents, map.size, !map.delta, src.description);
  const copy = pieces(map.extents);
  const zeroBytes = map.extents.reduce((n, e) => n + (e.zero ? e.length : 0), 0);
  const reader = retrying({ size: map.size, read: src.readRange.bind(src) }, rangeRetries(ctx));
  progress.total = copy.dataBytes + zeroBytes;
  const count = (n: number): void => progress.add(n);
  const copyOpts = { gap: 0, onBytes: count };
  progress.setPhase('transferring');
  const outcome = (size: number, preallocationApplied: boolean): TransferOutcome => ({
    layers: [],
    format: 'raw',
    virtualSize: map.size,
    path: plan.path,
    preallocationApplied,
    size,
    disk: { delta: map.delta, dataBytes: copy.dataBytes, zeroBytes },
  });

  if (map.delta) {
    const fh = await openExisting(target, map.size);
    try {
      const write = (chunks: Buffer[], at: number): Promise<void> => writeAll(fh, chunks, at);
      await copyExtents(copy, reader, write, copyOpts);
      for (const e of map.extents) {
        if (!e.zero) continue;
        await writeZeros(write, e);
        count(e.length);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    progress.set(1);
    return outcome((await stat(target.path)).size, false);
  }

  if (req.available !== undefined && map.size > req.available)
    throw largerPvcRequired(map.size, req.available);
  const w = await RawWriter.open(target, { preallocate: req.preallocate ?? false });
  try {
    const write = (chunks: Buffer[], at: number): Promise<void> => w.writeAt(chunks, at);
    await copyExtents(copy, reader, write, copyOpts);
    // A new file reads zeros where nothing was written; a block device may hold old data.
    for (const e of map.extents) {
      if (!e.zero) continue;
      if (target.kind === 'block') await writeZeros(write, e);
      count(e.length);
    }
    w.extendTo(map.size);
    const size = await commitTarget(w, req);
    progress.set(1);
    return outcome(size, req.preallocate ?? false);
  } catch (err) {
    await w.abort();
    throw err;
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
