/**
 * Transfer `scratch`: a disk image that cannot be read by range (compressed, a server without ranges, a checksum to
 * verify, streaming turned off) is downloaded to the scratch directory (checksummed on the way, bounded so a
 * compressed bomb cannot fill it), validated there and converted.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ErrorKind, ImportError } from '../errors.ts';
import { RawWriter } from '../sink/raw.ts';
import { freeSpace, type Transfer } from './context.ts';
import { convertInto, prescreenContent, validateAt } from './convert.ts';

/**
 * Bound for the scratch copy: the free space, and (when the volume size is known) what an image of that virtual size
 * can reasonably occupy, so a compressed bomb cannot fill the scratch volume.
 */
function scratchCapacity(free: number, available: number | undefined): number {
  if (available === undefined) return free;
  return Math.min(free, Math.ceil(available * 1.1) + 64 * 1024 * 1024);
}

export const scratchTransfer: Transfer = async (ctx) => {
  const { req, plan, content, tap } = ctx;
  prescreenContent(ctx);
  const dir = req.scratchDir;
  if (!dir) throw new ImportError(ErrorKind.Internal, 'the scratch path needs a scratch directory');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `tmpimage-${process.pid}`);
  try {
    const w = await RawWriter.open(
      { kind: 'file', path: file },
      { capacity: scratchCapacity(await freeSpace(dir), req.available), syncEvery: 0 },
    );
    try {
      await w.writeStream(content.stream);
      tap?.verify();
      await w.commit({ sync: false }); // scratch needs no durability
    } catch (err) {
      content.stream.destroy();
      await w.abort();
      throw err;
    }
    const loc = { file };
    const facts = await validateAt(ctx, loc, w.written);
    return await convertInto(ctx, loc, facts, { path: plan.path, track: false });
  } finally {
    await rm(file, { force: true });
  }
};
