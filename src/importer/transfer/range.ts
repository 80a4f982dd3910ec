/**
 * Transfer `range`: a disk image (no compression layer) on a source that serves byte ranges, without a scratch copy.
 * Our NBD server (image/nbd-server.ts) exports the remote file to qemu-img, which validates it; then either the
 * extent copy (image/extents.ts, docs/adr/0005-extent-copy.md) fetches the map's data ranges and writes them at
 * their guest offsets, or qemu-img converts over NBD (settleRange in plan.ts says which).
 */
import { slice, windows, WINDOW, type ExtentPlan } from '../image/extents.ts';
import { startNbdServer } from '../image/nbd-server.ts';
import { retrying } from '../image/range.ts';
import { settleRange } from '../plan.ts';
import type { Progress } from '../progress.ts';
import type { ImportRequest } from '../request.ts';
import { ErrorKind, ImportError } from '../errors.ts';
import { RawWriter } from '../sink/raw.ts';
import { RANGE_SLACK, type ImportSource } from '../source/source.ts';
import { commitTarget, rawTarget, type Transfer } from './context.ts';
import { convertInto, prescreenContent, validateAt } from './convert.ts';

export const rangeTransfer: Transfer = async (ctx) => {
  const { req, plan, source, info, content, progress } = ctx;
  prescreenContent(ctx);
  content.stream.destroy();
  const size = info.size;
  const read = source.readRange?.bind(source);
  if (size === undefined || !read)
    throw new ImportError(ErrorKind.Internal, 'the range path needs a source of known size with readRange');
  const nbd = await startNbdServer({ size, read });
  try {
    progress.restart();
    const loc = { nbdSocket: nbd.socket };
    const facts = await validateAt(ctx, loc, size);
    const settled = settleRange(plan, facts, size);
    if (settled.path === 'nbd')
      return await convertInto(ctx, loc, facts, { path: settled.path, track: true });
    return {
      layers: plan.layers,
      format: plan.format,
      virtualSize: facts.virtualSize,
      path: settled.path,
      preallocationApplied: false,
      size: await copyByExtents(settled.extents, source, req, facts.virtualSize, progress),
    };
  } catch (err) {
    // qemu-img only says "Input/output error" when a ranged read failed for good: tell what really happened.
    throw nbd.lastError() ?? err;
  } finally {
    await nbd.stop();
  }
};

/** Windows read at once (and buffers held). */
const CONCURRENCY = 4;

/**
 * The extent copy: the image's data ranges, read by range, written at their guest offsets into a new sparse file of
 * the image's virtual size; then grown, fsynced and renamed into place like every other target.
 * Each of the CONCURRENCY workers owns one buffer of a window's size and reads every window into it (readRange's
 * `into`), so a copy of any size holds the same memory and leaves the garbage collector nothing per read; the reads
 * are retried as the NBD server's are (image/range.ts).
 */
async function copyByExtents(
  plan: ExtentPlan,
  source: ImportSource,
  req: ImportRequest,
  virtualSize: number,
  progress: Progress,
): Promise<number> {
  const read = source.readRange?.bind(source);
  if (!read) throw new ImportError(ErrorKind.Internal, 'the extent copy needs a source with readRange');
  const list = windows(plan.pieces);
  const w = await RawWriter.open(rawTarget(req), {});
  let next = 0;
  let done = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    const into = Buffer.allocUnsafe(WINDOW + RANGE_SLACK);
    const reader = retrying({ size: virtualSize, read: (o, l) => read(o, l, into) });
    try {
      while (!stop && next < list.length) {
        const win = list[next++]!;
        const chunks = await reader.read(win.start, win.length);
        for (const p of win.pieces) {
          await w.writeAt(slice(chunks, p.host - win.start, p.length), p.guest);
          progress.set((done += p.length) / Math.max(1, plan.dataBytes));
        }
      }
    } catch (err) {
      stop = true;
      throw err;
    }
  };
  try {
    const n = Math.max(1, Math.min(CONCURRENCY, list.length));
    const results = await Promise.allSettled(Array.from({ length: n }, worker));
    const bad = results.find((r) => r.status === 'rejected');
    if (bad) throw bad.reason;
    w.extendTo(virtualSize);
    return await commitTarget(w, req);
  } catch (err) {
    await w.abort();
    throw err;
  }
}
