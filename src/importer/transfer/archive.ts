/** Transfer `archive`: a tar (decompressed in-process when it came compressed) extracted into the target directory. */
import { ErrorKind, ImportError } from '../errors.ts';
import { extractTar } from '../sink/archive.ts';
import type { Transfer } from './context.ts';

export const archiveTransfer: Transfer = async ({ req, plan, content, tap, progress }) => {
  if (req.target.kind !== 'dir')
    throw new ImportError(ErrorKind.Internal, 'an archive needs a directory target');
  const r = await extractTar(content.stream, req.target.path, req.available, () => tap?.verify());
  progress.set(1);
  return {
    layers: plan.layers,
    format: plan.format,
    virtualSize: r.bytes,
    path: plan.path,
    preallocationApplied: false,
    size: r.bytes,
  };
};
