/**
 * What `cdi inspect` reports: the layers, the format, the sizes, and whether an import would be accepted and why,
 * without writing anything (only the first bytes are downloaded; qcow2 and friends are read by range through
 * our NBD server when the server allows it).
 */
import { ErrorKind, ImportError, describe } from './errors.ts';
import { headerVirtualSize, type DiskFormat, type Layer } from './format/sniff.ts';
import { planExtents } from './image/extents.ts';
import { startNbdServer, type NbdServer } from './image/nbd-server.ts';
import type { ImageLocation } from './image/qemu.ts';
import { DEFAULT_LIMITS, type Limits } from './image/run.ts';
import { inspectImage, prescreen } from './image/validate.ts';
import { ContentType, peelLayers, TransferPath } from './import.ts';
import type { ImportSource } from './source/source.ts';

export interface InspectReport {
  source: string;
  /** Bytes the source serves (compressed size for compressed images). */
  sourceSize?: number;
  ranges: boolean;
  contentType?: string;
  layers: Layer[];
  format: Layer;
  virtualSize?: number;
  /** Bytes the image file itself occupies (as qemu-img reports it). */
  actualSize?: number;
  accepted: boolean;
  reason: string;
  /** How `cdi import` would move the data. */
  transfer: TransferPath;
}

export async function inspectSource(
  src: ImportSource,
  opts: { size?: number; contentType?: ContentType; checksum?: boolean; limits?: Limits } = {},
): Promise<InspectReport> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const contentType = opts.contentType ?? ContentType.KubeVirt;
  try {
    const info = await src.info();
    const body = await src.open();
    const { layers, format, head, stream } = await peelLayers(body, limits.memoryBytes);
    stream.destroy();
    const base = {
      source: src.description,
      ...(info.size !== undefined ? { sourceSize: info.size } : {}),
      ranges: info.ranges,
      ...(info.contentType ? { contentType: info.contentType } : {}),
      layers,
      format,
    };
    const verdict = (
      accepted: boolean,
      reason: string,
      transfer: TransferPath,
      extra: Partial<InspectReport> = {},
    ): InspectReport => ({
      ...base,
      ...extra,
      accepted,
      reason,
      transfer,
    });
    if (contentType === ContentType.Archive) {
      return format === 'tar'
        ? verdict(
            true,
            'a tar archive: it would be extracted into the target directory (entries are checked while extracting)',
            TransferPath.Archive,
          )
        : verdict(false, `archive content must be a tar archive; found ${format}`, TransferPath.Archive);
    }
    if (format === 'raw' || format === 'tar') {
      const virtualSize = layers.length === 0 ? info.size : undefined;
      if (virtualSize !== undefined && opts.size !== undefined && virtualSize > opts.size) {
        return verdict(
          false,
          `virtual image size ${virtualSize} is larger than the reported available storage ${opts.size}. A larger PVC is required`,
          TransferPath.Direct,
          { virtualSize },
        );
      }
      return verdict(
        true,
        layers.length === 0
          ? 'raw data: it would be streamed straight to the target'
          : `raw data under ${layers.join('+')}: it would be decompressed while streaming straight to the target (the size is known only at the end)`,
        TransferPath.Direct,
        virtualSize !== undefined ? { virtualSize } : {},
      );
    }
    const disk = format as DiskFormat;
    try {
      prescreen(disk, head);
    } catch (err) {
      return verdict(false, describe(err), TransferPath.Scratch);
    }
    let loc: ImageLocation | undefined;
    let nbd: NbdServer | undefined;
    let transfer: TransferPath = TransferPath.Scratch;
    if (layers.length === 0 && info.localPath) {
      loc = { file: info.localPath };
      transfer = TransferPath.Local;
    } else if (layers.length === 0 && info.ranges && info.size !== undefined && src.readRange) {
      const size = info.size;
      nbd = await startNbdServer({ size, read: (o, l) => src.readRange!(o, l) });
      loc = { nbdSocket: nbd.socket };
      transfer = opts.checksum ? TransferPath.Scratch : TransferPath.Nbd;
    }
    if (!loc) {
      const hv = headerVirtualSize(disk, head);
      return verdict(
        true,
        `${layers.length ? `${format} under ${layers.join('+')}` : `${format} from a server without range support`}: it would be downloaded to scratch space first, and fully validated there`,
        TransferPath.Scratch,
        hv !== undefined ? { virtualSize: hv } : {},
      );
    }
    try {
      const facts = await inspectImage(disk, loc, info.size, opts.size, limits);
      const actual = facts.info['actual-size'];
      if (
        transfer === TransferPath.Nbd &&
        facts.extents &&
        planExtents(facts.extents, facts.virtualSize, info.size ?? 0)
      )
        transfer = TransferPath.Extents;
      const how: Partial<Record<TransferPath, string>> = {
        [TransferPath.Extents]:
          'by copying its data ranges, read by range, to their places on the disk (no scratch copy; a block device or preallocation would stream it through qemu-img instead)',
        [TransferPath.Nbd]: 'while streaming it by range (no scratch copy)',
        [TransferPath.Local]: 'from the local file',
      };
      return verdict(
        true,
        `a valid ${format} image: it would be converted to raw ${how[transfer] ?? 'after a scratch copy'}`,
        transfer,
        { virtualSize: facts.virtualSize, ...(typeof actual === 'number' ? { actualSize: actual } : {}) },
      );
    } catch (err) {
      if (err instanceof ImportError && err.kind === ErrorKind.Invalid)
        return verdict(false, err.message, transfer);
      throw err;
    } finally {
      await nbd?.stop();
    }
  } finally {
    await src.close();
  }
}
