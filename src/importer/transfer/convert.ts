/**
 * What the paths for disk formats (qcow2, vmdk, vdi, vhd, vhdx: transfers `range`, `scratch`, `local`) share: the
 * header prescreen before qemu-img sees the image, validation (image/validate.ts), and `qemu-img convert -O raw`
 * into the target.
 */
import path from 'node:path';
import { largerPvcRequired } from '../errors.ts';
import type { DiskFormat } from '../format/sniff.ts';
import { convert, type ImageLocation } from '../image/qemu.ts';
import { inspectImage, prescreen, type ImageFacts } from '../image/validate.ts';
import type { TransferPath, TransferOutcome } from '../request.ts';
import { RawWriter } from '../sink/raw.ts';
import { commitTarget, directIoWorks, rawTarget, type TransferContext } from './context.ts';

/** The header prescreen (image/validate.ts); the body is dropped when it refuses. */
export function prescreenContent(ctx: TransferContext): DiskFormat {
  const { content } = ctx;
  const format = content.format as DiskFormat;
  try {
    prescreen(format, content.head);
  } catch (err) {
    content.stream.destroy();
    throw err;
  }
  return format;
}

/** qemu-img info/check/map over the image at `loc` (`bytes` long), with the progress phase saying so. */
export async function validateAt(
  ctx: TransferContext,
  loc: ImageLocation,
  bytes: number | undefined,
): Promise<ImageFacts> {
  ctx.progress.setPhase('validating');
  const facts = await inspectImage(
    ctx.content.format as DiskFormat,
    loc,
    bytes,
    ctx.req.available,
    ctx.limits,
    ctx.req.log, // the import's log (the maxExtents note); stderr when the request has none
  );
  ctx.progress.setPhase('converting');
  return facts;
}

/**
 * `qemu-img convert -O raw` from `loc` into the target, then grown, fsynced and renamed like every target.
 * `track`: qemu-img's own progress is the import's (not after a scratch copy, whose download already counted).
 */
export async function convertInto(
  ctx: TransferContext,
  loc: ImageLocation,
  facts: ImageFacts,
  o: { path: TransferPath; track: boolean },
): Promise<TransferOutcome> {
  const { req, plan, progress, limits } = ctx;
  const target = rawTarget(req);
  const w = await RawWriter.external(target);
  let cache: 'writeback' | 'none' = req.cache === 'none' ? 'none' : 'writeback';
  if (req.cache === 'trynone') cache = (await directIoWorks(path.dirname(w.path))) ? 'none' : 'writeback';
  try {
    if (target.kind === 'block' && req.available !== undefined && facts.virtualSize > req.available)
      throw largerPvcRequired(facts.virtualSize, req.available);
    const { preallocationApplied } = await convert({
      format: facts.format,
      from: loc,
      to: w.path,
      existingTarget: target.kind === 'block',
      cache,
      preallocate: req.preallocate ?? false,
      limits,
      ...(o.track ? { onProgress: (f: number) => progress.set(f) } : {}),
    });
    const size = await commitTarget(w, req);
    progress.set(1);
    return {
      layers: plan.layers,
      format: plan.format,
      virtualSize: facts.virtualSize,
      path: o.path,
      preallocationApplied,
      size,
    };
  } catch (err) {
    await w.abort();
    throw err;
  }
}
