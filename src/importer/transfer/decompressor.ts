/**
 * Transfer `decompressor`: raw data under one xz or zst layer. The decompressor child writes the target itself
 * (format/direct.ts, docs/adr/0004-decompressor-writes-target.md); the body it reads has already passed the checksum
 * tap and the progress counter, so both count source bytes as on every other path.
 */
import { ErrorKind, ImportError } from '../errors.ts';
import { decompressInto } from '../format/direct.ts';
import { RawWriter } from '../sink/raw.ts';
import { commitTarget, rawTarget, type Transfer } from './context.ts';

export const decompressorTransfer: Transfer = async ({ req, plan, content, tap, progress, limits }) => {
  const { compressed, stream } = content;
  if (!compressed) throw new ImportError(ErrorKind.Internal, 'the decompressor path got a decompressed body');
  const target = rawTarget(req);
  const w = await RawWriter.external(target);
  try {
    const virtualSize = await decompressInto({
      compression: compressed,
      input: stream,
      target: { kind: target.kind, path: w.path },
      ...(req.available !== undefined ? { available: req.available } : {}),
      memoryBytes: limits.memoryBytes,
    });
    tap?.verify();
    const size = await commitTarget(w, req);
    progress.set(1);
    return {
      layers: plan.layers,
      format: plan.format,
      virtualSize,
      path: plan.path,
      preallocationApplied: false,
      size,
      ...(plan.decompressedBy ? { decompressedBy: plan.decompressedBy } : {}),
    };
  } catch (err) {
    stream.destroy();
    await w.abort();
    throw err;
  }
};
