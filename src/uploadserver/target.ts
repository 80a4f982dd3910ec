/**
 * Where an upload goes, as upstream's upload server and the importer pod decide it: a block device when DESTINATION
 * names one (the controller sets DESTINATION=/dev/cdi-block-volume for Block PVCs), otherwise /data/disk.img, or the
 * /data directory for archives. The space an image may use is the importer's: the smaller of UPLOAD_IMAGE_SIZE and
 * the free space, less the filesystem overhead, aligned down to 1 MiB. Scratch space is /scratch when mounted.
 */
import { stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { ErrorKind, ImportError } from '../importer/errors.ts';
import { ContentType, type ImportRequest } from '../importer/import.ts';
import { usableSpace } from '../importer/size.ts';
import { deviceSize } from '../importer/sink/raw.ts';

export interface TargetPaths {
  /** upstream DESTINATION: the image file or block device. */
  destination: string;
  /** The volume's mount (archives are extracted here; its free space bounds file images). */
  dataDir: string;
  scratchDir: string;
}

type Env = Record<string, string | undefined>;

/** upstream defaults; CDI_IMPORTER_DATA_DIR / CDI_IMPORTER_SCRATCH_DIR move them for tests, as for the importer. */
export function targetPaths(env: Env): TargetPaths {
  const dataDir = env.CDI_IMPORTER_DATA_DIR ?? '/data';
  return {
    destination: env.DESTINATION || path.join(dataDir, 'disk.img'),
    dataDir,
    scratchDir: env.CDI_IMPORTER_SCRATCH_DIR ?? '/scratch',
  };
}

export interface ResolvedTarget {
  target: ImportRequest['target'];
  available: number;
  /** Final size of a file target (grown to fill the volume, as upstream's resize). */
  size?: number;
  scratchDir?: string;
}

export async function resolveTarget(
  p: TargetPaths,
  contentType: ContentType,
  o: { filesystemOverhead: number; imageSize?: number },
): Promise<ResolvedTarget> {
  const dest = await stat(p.destination).catch(() => undefined);
  const scratch = (await stat(p.scratchDir).catch(() => undefined))?.isDirectory() ? p.scratchDir : undefined;
  const withScratch = scratch ? { scratchDir: scratch } : {};
  if (dest?.isBlockDevice()) {
    if (contentType === ContentType.Archive) {
      throw new ImportError(
        ErrorKind.Invalid,
        'an archive upload needs a Filesystem volume; this one is a block device',
      );
    }
    return {
      target: { kind: 'block', path: p.destination },
      available: usableSpace(o.filesystemOverhead, await deviceSize(p.destination)),
      ...withScratch,
    };
  }
  const fs = await statfs(p.dataDir).catch((e: NodeJS.ErrnoException) => {
    throw new ImportError(
      ErrorKind.Internal,
      `the volume ${p.dataDir} is not mounted: ${e.code ?? e.message}`,
    );
  });
  const free = fs.bavail * fs.bsize;
  const available = usableSpace(
    o.filesystemOverhead,
    o.imageSize !== undefined ? Math.min(o.imageSize, free) : free,
  );
  if (contentType === ContentType.Archive) {
    return { target: { kind: 'dir', path: p.dataDir }, available, ...withScratch };
  }
  return { target: { kind: 'file', path: p.destination }, available, size: available, ...withScratch };
}
