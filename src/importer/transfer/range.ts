/**
 * Transfer `range`: a disk image (no compression layer) on a source that serves byte ranges, without a scratch copy.
 * Our NBD server (image/nbd-server.ts) exports the remote file to qemu-img, which validates it; then either the
 * extent copy (image/extents.ts, docs/adr/0005-extent-copy.md) fetches the map's data ranges and writes them at
 * their guest offsets, or qemu-img converts over NBD (settleRange in plan.ts says which).
 */
import { ErrorKind, ImportError } from '../errors.ts';
import { copyExtents, type ExtentPlan } from '../image/extents.ts';
import { startNbdServer } from '../image/nbd-server.ts';
import type { RangeReader } from '../image/range.ts';
import { settleRange } from '../plan.ts';
import { RawWriter } from '../sink/raw.ts';
import { commitTarget, rangeRetries, rawTarget, type Transfer, type TransferContext } from './context.ts';
import { convertInto, prescreenContent, validateAt } from './convert.ts';

export const rangeTransfer: Transfer = async (ctx) => {
  const { plan, source, info, content, progress } = ctx;
  prescreenContent(ctx);
  content.stream.destroy();
  const size = info.size;
  const read = source.readRange?.bind(source);
  if (size === undefined || !read)
    throw new ImportError(ErrorKind.Internal, 'the range path needs a source of known size with readRange');
  const nbd = await startNbdServer({ size, read }, rangeRetries(ctx));
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
      size: await copyByExtents(ctx, settled.extents, nbd.reader, facts.virtualSize),
    };
  } catch (err) {
    // qemu-img only says "Input/output error" when a ranged read failed for good: tell what really happened.
    throw nbd.lastError() ?? err;
  } finally {
    await nbd.stop();
  }
};

/**
 * The extent copy: the image's data ranges, read by range (image/extents.ts copyExtents: 4 reads in flight, each
 * worker reading into its own reused buffer, every read retried as the NBD server's are), written at their guest
 * offsets into a new sparse file of the image's virtual size; then grown, fsynced and renamed into place like every
 * other target.
 */
async function copyByExtents(
  ctx: TransferContext,
  plan: ExtentPlan,
  reader: RangeReader,
  virtualSize: number,
): Promise<number> {
  const { req, progress } = ctx;
  const w = await RawWriter.open(rawTarget(req), {});
  let done = 0;
  try {
    await copyExtents(plan, reader, (chunks, guest) => w.writeAt(chunks, guest), {
      onBytes: (n) => progress.set((done += n) / Math.max(1, plan.dataBytes)),
    });
    w.extendTo(virtualSize);
    return await commitTarget(w, req);
  } catch (err) {
    await w.abort();
    throw err;
  }
}
