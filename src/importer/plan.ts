/**
 * The one decision point of the data path: from what the source offers (size, ranges, a local file, one-way or
 * resumable, a checksum) and what the content needs (its layers and innermost format, looked at once), choose how
 * the bytes travel. Each transfer path executes a plan in its own file under transfer/; `cdi inspect` prints the
 * same plan. Pure: no I/O here, so a plan is the same whether it is executed or only shown.
 *
 *   content                                   transfer      path (ImportResult.path)
 *   raw | iso | tar-as-disk (any layers)      raw           direct      stream to the sink (sink/raw.ts)
 *   raw under one xz/zst layer, child ok ¹    decompressor  direct      xz/zstd writes the target (format/direct.ts)
 *   tar, archive content                      archive       archive     extract (sink/archive.ts)
 *   disk format, local file                   local         local       qemu-img reads it in place
 *   disk format, ranges, no layer, no sum ²   range         extents     copy the map's data extents by range,
 *                                                           | nbd       or convert over our NBD server
 *   disk format, otherwise                    scratch       scratch     download, validate, convert
 *   a disk source's extents (imageio, vddk) ³ disk          disk        copy the data extents by range
 *
 * ¹ kubevirt content to a file or block device without preallocation (examined by transfer/content.ts).
 * ² and streaming allowed; extents when the target is a file, no preallocation, extent copy allowed, and qemu-img's
 *   map gives every data range a plain offset (settleRange(), after validation).
 * ³ decided from the offer alone: the guest's bytes are never examined (a guest disk may well start with a qcow2
 *   header), so there is no content to look at and open() is never called.
 */
import { Message } from '../api/constants.ts';
import { ErrorKind, ImportError, RefusedReason, RefusedRequest } from './errors.ts';
import type { DiskFormat, Layer } from './format/sniff.ts';
import { planExtents, type ExtentPlan } from './image/extents.ts';
import type { ImageFacts } from './image/validate.ts';
import { ContentType, TransferPath } from './request.ts';
import type { ImportSource, SourceInfo } from './source/source.ts';

export const TransferKind = {
  Raw: 'raw',
  Decompressor: 'decompressor',
  Archive: 'archive',
  Range: 'range',
  Scratch: 'scratch',
  Local: 'local',
  Disk: 'disk',
} as const;
export type TransferKind = (typeof TransferKind)[keyof typeof TransferKind];

/** What the source offers. */
export interface SourceOffer {
  info: SourceInfo;
  /** The source implements readRange(). */
  readRange: boolean;
  /** The source implements open(offset, validator) (ImportSource.resumable). */
  resumable?: boolean;
  /** The source describes a VM disk by extents (ImportSource.disk(): imageio, vddk). */
  disk?: boolean;
}

/** What `src` offers, as the planner sees it (`info`: what its info() said). */
export function offerOf(src: ImportSource, info: SourceInfo): SourceOffer {
  return {
    info,
    readRange: src.readRange !== undefined,
    resumable: src.resumable === true,
    disk: src.disk !== undefined,
  };
}

/**
 * What happens when the body breaks in the middle (source/resumable.ts):
 *   continue  open(offset, validator) from the byte where it broke: a resumable source that serves ranges and names
 *             its content (a validator), so the rest provably belongs to the same file;
 *   restart   the transfer starts again from byte 0 (a source without ranges or without a validator);
 *   fail      a one-way source (a request body) cannot be read again.
 */
export type BreakPolicy = 'continue' | 'restart' | 'fail';

export function breakPolicy(offer: SourceOffer): { policy: BreakPolicy; why: string } {
  const { info } = offer;
  if (info.oneWay) return { policy: 'fail', why: 'the source can be read once only' };
  if (!offer.resumable) return { policy: 'restart', why: 'the source cannot be read from an offset' };
  if (!info.ranges) return { policy: 'restart', why: 'the server does not serve byte ranges' };
  if (!info.validator)
    return {
      policy: 'restart',
      why: 'the server names no ETag or Last-Modified, so the rest could not be checked to belong to the same file',
    };
  return { policy: 'continue', why: `the source serves byte ranges of one version (${info.validator})` };
}

/** What the request allows. */
export interface PlanRequest {
  contentType: ContentType;
  target: { kind: 'file' | 'block' | 'dir'; path: string };
  preallocate: boolean;
  /** A checksum is requested: every byte must be read once, in order. */
  checksum: boolean;
  /** A scratch directory is available. */
  scratch: boolean;
  /** Streaming by range allowed (`--no-stream` clears it). */
  stream: boolean;
  /** Extent copy allowed (`--no-extent-copy` clears it). */
  extentCopy: boolean;
  /** A progress record may be kept beside a file target for a later run to continue (default true). */
  resumeRecord?: boolean;
}

/** What the content is (transfer/content.ts looked at it). */
export interface ContentFacts {
  layers: readonly Layer[];
  format: Layer;
  /** The body is still compressed with this (one layer over raw or tar): a decompressor child can write the target. */
  compressed?: 'xz' | 'zst';
}

export interface TransferPlan {
  transfer: TransferKind;
  /** What ImportResult.path will say; for `range`, `extents` may still settle to `nbd` (settleRange). */
  path: TransferPath;
  layers: Layer[];
  format: Layer;
  /** The decompressor child that writes the target (transfer `decompressor`). */
  decompressedBy?: 'xz' | 'zstd';
  /**
   * Which checksum the source bytes are verified against: the request's (always: it forces a path that reads every
   * byte), or the one the source publishes (SourceInfo.checksum: on every path that reads every byte anyway).
   */
  verify?: 'request' | 'source';
  /**
   * `broken`: what a break in the body does (breakPolicy; `retry` for the range path, whose ranged reads are retried
   * one by one). `record`: a progress record beside the file target lets a later run (a restarted pod, `cdi import`
   * run again) continue the download (raw without layers only: docs/adr/0009-resumable-downloads.md).
   */
  resume: { broken: BreakPolicy | 'retry'; record: boolean; why: string };
  /** One sentence: how the bytes travel and why (what `cdi inspect` prints). */
  reason: string;
}

/** Whether a decompressor child may write the target directly (raw.xz, raw.zst; docs/adr/0004). */
export function childMayWriteTarget(r: Pick<PlanRequest, 'contentType' | 'target' | 'preallocate'>): boolean {
  return r.contentType === ContentType.KubeVirt && r.target.kind !== 'dir' && !r.preallocate;
}

/**
 * The decompressor child that would write the target for these layers, as transfer/content.ts finds it by decoding
 * the first block (for `cdi inspect`, which peels the layers in-process).
 */
export function childDecoder(
  r: Pick<PlanRequest, 'contentType' | 'target' | 'preallocate'>,
  layers: readonly Layer[],
  format: Layer,
): 'xz' | 'zst' | undefined {
  const [outer] = layers;
  if (!childMayWriteTarget(r) || layers.length !== 1 || (format !== 'raw' && format !== 'tar'))
    return undefined;
  return outer === 'xz' || outer === 'zst' ? outer : undefined;
}

const isDiskFormat = (f: Layer): f is DiskFormat => f !== 'tar' && f !== 'gz' && f !== 'xz' && f !== 'zst';

const RANGED_READS = {
  broken: 'retry',
  record: false,
  why: 'every ranged read is retried on its own',
} as const;

/**
 * The plan for a disk source: its data extents copied by range (transfer/disk.ts). Kubevirt content into a file or
 * block device only, and no checksum (only the data extents are read, never every byte of one stream).
 */
function diskPlan(req: PlanRequest): TransferPlan {
  if (req.contentType !== ContentType.KubeVirt || req.target.kind === 'dir') {
    throw new ImportError(
      ErrorKind.Invalid,
      `Unsupported content type ${req.contentType} for a VM disk read by its extents: it is imported as a disk image (content type kubevirt)`,
    );
  }
  if (req.checksum) {
    throw new RefusedRequest(
      RefusedReason.ChecksumUnsupported,
      'a checksum cannot be verified for a VM disk read by its extents: only its data extents are read, never every byte in one stream; import it without a checksum',
    );
  }
  return {
    transfer: TransferKind.Disk,
    path: TransferPath.Disk,
    layers: [],
    format: 'raw',
    resume: RANGED_READS,
    reason: `a VM disk read by its extents: the data extents would be copied to their places on the ${req.target.kind === 'block' ? 'block device (zero extents written as zeros)' : 'disk (zero extents stay holes)'}, never sniffed for a format; a warm-import delta is written in place onto the disk the earlier checkpoints imported`,
  };
}

/**
 * The plan, or an ImportError saying why there is none (archive content that is not a tar, a directory target for
 * a disk image, a disk image that needs scratch space when there is none). `content` is what transfer/content.ts
 * found in the body; a disk source (`offer.disk`) is planned without it.
 */
export function planTransfer(offer: SourceOffer, req: PlanRequest, content?: ContentFacts): TransferPlan {
  if (offer.disk) return diskPlan(req);
  if (!content) throw new ImportError(ErrorKind.Internal, 'a plan for a body needs its content examined');
  const layers = [...content.layers];
  const format = content.format;
  const info = offer.info;
  const under = layers.length > 0 ? ` under ${layers.join('+')}` : '';
  const verify = (transfer: TransferKind): TransferPlan['verify'] =>
    req.checksum ? 'request' : info.checksum && transfer !== TransferKind.Range ? 'source' : undefined;
  const brk = breakPolicy(offer);
  const resume = (transfer: TransferKind): TransferPlan['resume'] => {
    if (transfer === TransferKind.Range) return RANGED_READS;
    const record =
      transfer === TransferKind.Raw &&
      layers.length === 0 &&
      brk.policy === 'continue' &&
      req.target.kind === 'file' &&
      info.size !== undefined &&
      req.resumeRecord !== false;
    return { broken: brk.policy, record, why: brk.why };
  };
  const plan = (transfer: TransferKind, path: TransferPath, reason: string): TransferPlan => {
    const v = verify(transfer);
    return { transfer, path, layers, format, reason, ...(v ? { verify: v } : {}), resume: resume(transfer) };
  };

  if (req.contentType === ContentType.Archive) {
    if (format !== 'tar') {
      throw new ImportError(
        ErrorKind.Invalid,
        `archive content must be a tar archive (optionally gz/xz/zst compressed); found ${format}`,
      );
    }
    if (req.target.kind !== 'dir')
      throw new ImportError(ErrorKind.Invalid, 'archive content needs a directory as the target');
    return plan(
      TransferKind.Archive,
      TransferPath.Archive,
      `a tar archive${under}: it would be extracted into the target directory (entries are checked while extracting)`,
    );
  }
  if (req.target.kind === 'dir') {
    throw new ImportError(
      ErrorKind.Invalid,
      `${req.target.path} is a directory: a disk image needs a file or block device as the target`,
    );
  }
  if (format === 'raw' || format === 'tar') {
    if (content.compressed) {
      const tool = content.compressed === 'xz' ? 'xz' : 'zstd';
      return {
        ...plan(
          TransferKind.Decompressor,
          TransferPath.Direct,
          `raw data under ${content.compressed}: ${tool} would decompress it straight into the target (the size is known only at the end)`,
        ),
        decompressedBy: tool,
      };
    }
    return plan(
      TransferKind.Raw,
      TransferPath.Direct,
      layers.length === 0
        ? 'raw data: it would be streamed straight to the target'
        : `raw data${under}: it would be decompressed while streaming straight to the target (the size is known only at the end)`,
    );
  }
  if (!isDiskFormat(format))
    throw new ImportError(ErrorKind.Internal, `unexpected innermost layer ${format}`);

  if (layers.length === 0 && info.localPath) {
    return plan(
      TransferKind.Local,
      TransferPath.Local,
      `a ${format} image: it would be converted from the local file`,
    );
  }
  const byRange =
    layers.length === 0 && info.ranges && info.size !== undefined && offer.readRange && !info.oneWay;
  if (byRange && !req.checksum && req.stream) {
    const extents = req.target.kind === 'file' && !req.preallocate && req.extentCopy;
    return plan(
      TransferKind.Range,
      extents ? TransferPath.Extents : TransferPath.Nbd,
      extents
        ? `a ${format} image read by range: its data extents would be copied to their places on the disk (no scratch copy; qemu-img converts over NBD instead if its map has clusters without a plain offset)`
        : `a ${format} image read by range: qemu-img would convert it over NBD (no scratch copy${req.target.kind === 'block' ? '; a block device gets every block written' : ''}${req.preallocate ? '; preallocated' : ''})`,
    );
  }
  if (!req.scratch) throw new ImportError(ErrorKind.ScratchRequired, Message.ScratchSpaceRequired);
  const why =
    layers.length > 0
      ? `${format}${under}`
      : req.checksum && byRange
        ? `${format} with a checksum to verify (every byte is read once)`
        : !req.stream && byRange
          ? `${format} (streaming turned off)`
          : `${format} from a source without range support`;
  return plan(
    TransferKind.Scratch,
    TransferPath.Scratch,
    `${why}: it would be downloaded to scratch space first, validated there and converted`,
  );
}

/**
 * A `range` plan, once qemu-img has validated the image over NBD: the extent list to copy, or converting over NBD
 * when the plan did not ask for extents or qemu-img's map cannot be copied as plain extents.
 */
export function settleRange(
  plan: TransferPlan,
  facts: ImageFacts,
  sourceSize: number,
): { path: typeof TransferPath.Extents; extents: ExtentPlan } | { path: typeof TransferPath.Nbd } {
  const extents =
    plan.path === TransferPath.Extents && facts.extents
      ? planExtents(facts.extents, facts.virtualSize, sourceSize)
      : undefined;
  return extents ? { path: TransferPath.Extents, extents } : { path: TransferPath.Nbd };
}
