/**
 * What `cdi inspect` reports: the layers, the format, the sizes, whether an import would be accepted, and the plan
 * it would follow (plan.ts, the same decision runImport makes), without writing anything. Only the first bytes are
 * downloaded; qcow2 and friends are validated by range through our NBD server when the server allows it.
 */
import { ErrorKind, ImportError, describe, largerPvcRequired } from './errors.ts';
import { headerVirtualSize, type DiskFormat, type Layer } from './format/sniff.ts';
import { startNbdServer, type NbdServer } from './image/nbd-server.ts';
import type { ImageLocation } from './image/qemu.ts';
import { DEFAULT_LIMITS, type Limits } from './image/run.ts';
import { inspectImage, prescreen } from './image/validate.ts';
import {
  childDecoder,
  offerOf,
  planTransfer,
  settleRange,
  TransferKind,
  type PlanRequest,
  type SourceOffer,
  type TransferPlan,
} from './plan.ts';
import { ContentType, TransferPath } from './request.ts';
import { peelLayers } from './transfer/content.ts';
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
  /** How `cdi import` would move the data (the plan's path). */
  transfer: TransferPath;
  /** The plan `cdi import` would follow (undefined when the image is refused before a plan exists). */
  plan?: TransferPlan;
}

export interface InspectOptions {
  /** The space the import would have. */
  size?: number;
  contentType?: ContentType;
  /** A checksum would be verified. */
  checksum?: boolean;
  /** The target would be a block device (default: a file). */
  block?: boolean;
  /** As `cdi import --no-stream` / `--no-extent-copy`. */
  stream?: boolean;
  extentCopy?: boolean;
  limits?: Limits;
}

export async function inspectSource(src: ImportSource, opts: InspectOptions = {}): Promise<InspectReport> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const contentType = opts.contentType ?? ContentType.KubeVirt;
  const allowed: PlanRequest = {
    contentType,
    target:
      contentType === ContentType.Archive
        ? { kind: 'dir', path: '(target directory)' }
        : { kind: opts.block ? 'block' : 'file', path: '(target)' },
    preallocate: false,
    checksum: opts.checksum ?? false,
    // `cdi import` always has a scratch directory (a temporary one unless --scratch-dir says).
    scratch: true,
    stream: opts.stream ?? true,
    extentCopy: opts.extentCopy ?? true,
  };
  try {
    const info = await src.info();
    const offer = offerOf(src, info);
    if (offer.disk) return inspectDisk(src.description, offer, allowed, opts.size);
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
    const report = (
      accepted: boolean,
      reason: string,
      plan: TransferPlan | undefined,
      extra: Partial<InspectReport> = {},
    ): InspectReport => ({
      ...base,
      ...extra,
      accepted,
      reason,
      transfer:
        plan?.path ?? (contentType === ContentType.Archive ? TransferPath.Archive : TransferPath.Scratch),
      ...(plan ? { plan } : {}),
    });

    let plan: TransferPlan;
    try {
      const compressed = childDecoder(allowed, layers, format);
      plan = planTransfer(offer, allowed, {
        layers,
        format,
        ...(compressed ? { compressed } : {}),
      });
    } catch (err) {
      if (err instanceof ImportError && err.kind === ErrorKind.Invalid)
        return report(false, err.message, undefined);
      throw err;
    }

    if (plan.transfer === TransferKind.Archive) return report(true, 'a tar archive', plan);
    if (format === 'raw' || format === 'tar') {
      const virtualSize = layers.length === 0 ? info.size : undefined;
      if (virtualSize !== undefined && opts.size !== undefined && virtualSize > opts.size)
        return report(false, largerPvcRequired(virtualSize, opts.size).message, plan, { virtualSize });
      const what = layers.length > 0 ? `raw data under ${layers.join('+')}` : 'raw data';
      return report(true, what, plan, virtualSize !== undefined ? { virtualSize } : {});
    }

    const disk = format as DiskFormat;
    try {
      prescreen(disk, head);
    } catch (err) {
      return report(false, describe(err), plan);
    }
    // Validated in place: the local file, or by range when the source allows it (also when the plan is a scratch
    // copy because of a checksum: the verdict is the same, only the import reads every byte).
    let loc: ImageLocation | undefined;
    let nbd: NbdServer | undefined;
    if (layers.length === 0 && info.localPath) loc = { file: info.localPath };
    else if (layers.length === 0 && info.ranges && info.size !== undefined && src.readRange && !info.oneWay) {
      nbd = await startNbdServer({ size: info.size, read: (o, l) => src.readRange!(o, l) });
      loc = { nbdSocket: nbd.socket };
    }
    if (!loc) {
      const hv = headerVirtualSize(disk, head);
      return report(
        true,
        `a ${format} image (validated in full once downloaded)`,
        plan,
        hv !== undefined ? { virtualSize: hv } : {},
      );
    }
    try {
      const facts = await inspectImage(disk, loc, info.size, opts.size, limits);
      const actual = facts.info['actual-size'];
      if (plan.transfer === TransferKind.Range) {
        const settled = settleRange(plan, facts, info.size ?? 0);
        if (settled.path !== plan.path)
          plan = {
            ...plan,
            path: settled.path,
            reason: `a ${format} image read by range: qemu-img would convert it over NBD (its map has clusters without a plain offset, so its extents cannot be copied as they are; no scratch copy)`,
          };
      }
      return report(true, `a valid ${format} image`, plan, {
        virtualSize: facts.virtualSize,
        ...(typeof actual === 'number' ? { actualSize: actual } : {}),
      });
    } catch (err) {
      if (err instanceof ImportError && err.kind === ErrorKind.Invalid)
        return report(false, err.message, plan);
      throw err;
    } finally {
      await nbd?.stop();
    }
  } finally {
    await src.close();
  }
}

/**
 * A disk source (imageio, vddk): the plan comes from the offer alone and nothing is read (the extents and the disk's
 * size are what info() already learned).
 */
function inspectDisk(
  source: string,
  offer: SourceOffer,
  allowed: PlanRequest,
  space: number | undefined,
): InspectReport {
  const size = offer.info.size;
  const base = {
    source,
    ...(size !== undefined ? { sourceSize: size, virtualSize: size } : {}),
    ranges: offer.info.ranges,
    layers: [],
    format: 'raw' as const,
  };
  let plan: TransferPlan;
  try {
    plan = planTransfer(offer, allowed);
  } catch (err) {
    if (err instanceof ImportError && err.kind === ErrorKind.Invalid)
      return { ...base, accepted: false, reason: err.message, transfer: TransferPath.Disk };
    throw err;
  }
  const fits = size === undefined || space === undefined || size <= space;
  return {
    ...base,
    accepted: fits,
    reason: fits ? 'a VM disk' : largerPvcRequired(size, space).message,
    transfer: plan.path,
    plan,
  };
}
