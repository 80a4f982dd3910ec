/**
 * Transfer `raw`: raw data (and iso, and tar written as a disk), decompressed in-process when it came compressed,
 * streamed straight into the target by RawWriter (sparse, capacity-bounded, fsynced, renamed into place).
 */
import { RawWriter } from '../sink/raw.ts';
import { commitTarget, rawTarget, type Transfer } from './context.ts';

export const rawTransfer: Transfer = async ({ req, plan, content, tap, progress }) => {
  const { stream } = content;
  const w = await RawWriter.open(rawTarget(req), {
    ...(req.available !== undefined ? { capacity: req.available } : {}),
    preallocate: req.preallocate ?? false,
  });
  try {
    await w.writeStream(stream);
    tap?.verify();
    const size = await commitTarget(w, req);
    progress.set(1);
    return {
      layers: plan.layers,
      format: plan.format,
      virtualSize: w.written,
      path: plan.path,
      preallocationApplied: req.preallocate ?? false,
      size,
    };
  } catch (err) {
    stream.destroy();
    await w.abort();
    throw err;
  }
};
