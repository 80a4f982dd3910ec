/**
 * Transfer `raw`: raw data (and iso, and tar written as a disk), decompressed in-process when it came compressed,
 * streamed straight into the target by RawWriter (sparse, capacity-bounded, fsynced, renamed into place).
 * When the plan says `resume.record` (raw without layers into a file, from a source that can continue), a progress
 * record beside the disk follows the data flushes, so a later run continues where this one stopped
 * (transfer/continue.ts); it is removed on success.
 */
import { isBreak, RestartNeeded } from '../errors.ts';
import { partialPath, RawWriter } from '../sink/raw.ts';
import { RecordKeeper } from '../sink/record.ts';
import { commitTarget, rawTarget, type Transfer } from './context.ts';

export const rawTransfer: Transfer = async ({
  req,
  plan,
  source,
  info,
  content,
  tap,
  progress,
  log,
  continued,
}) => {
  const { stream } = content;
  const target = rawTarget(req);
  const keeper =
    plan.resume.record && target.kind === 'file' && info.validator !== undefined && info.size !== undefined
      ? new RecordKeeper(target.path, {
          version: 1,
          source: source.description,
          validator: info.validator,
          size: info.size,
        })
      : undefined;
  const w = await RawWriter.open(target, {
    ...(req.available !== undefined ? { capacity: req.available } : {}),
    preallocate: req.preallocate ?? false,
    ...(continued ? { resumeAt: continued.offset } : {}),
    ...(keeper ? { onDurable: (offset: number) => keeper.update(offset) } : {}),
  });
  try {
    await w.writeStream(stream);
    tap?.verify();
    const size = await commitTarget(w, req);
    await keeper?.remove();
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
    if (keeper && isBreak(err) && !(err instanceof RestartNeeded)) {
      // The source is unreachable for now, not wrong: keep what arrived for the next run.
      const at = await w.suspend();
      await keeper.save(at);
      log(
        `kept the first ${at} bytes in ${partialPath(target.path)}: a later run on this target continues from there`,
      );
    } else {
      await w.abort();
      await keeper?.remove();
    }
    throw err;
  }
};
