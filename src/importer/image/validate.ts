/**
 * Validation of a downloaded (hostile) disk image before anything converts it. Two stages:
 * 1. prescreen(head): refusals that must happen before qemu-img opens the image at all, because qemu-img would
 *    already follow the reference while opening it. Every place where one of the sniffed formats can name another
 *    file or endpoint (a path, `json:{…}`, `nbd:…`, `http://…`), as qemu 7.2's block drivers read them:
 *    - qcow2: the backing file name (header) and the external data file (incompatible feature bit; the name is a
 *      header extension). A backing name is also blocked by the `"backing": null` spec, the data file is not;
 *    - vmdk: a text descriptor (every createType names extent files: monolithicFlat, twoGbMaxExtent*, vmfs*,
 *      seSparse), and a sparse header that embeds one (capacity 0 with a descriptor offset: qemu then parses the
 *      embedded descriptor's extent lines and opens them). parentFileNameHint is a backing file (blocked by the
 *      spec, refused after info);
 *    - vpc: a differencing disk (type 4) names its parent in locators qemu ignores, and would be read as a dynamic
 *      disk without it (the wrong bytes, silently);
 *    - vdi: a differencing image names its parent by UUID only (qemu refuses non-null parent UUIDs itself);
 *    - vhdx: the parent locator of a differencing image lies in the metadata region, beyond the head; qemu 7.2
 *      refuses such images while opening them (not supported) and never opens the parent.
 *    Formats not sniffed (qed, qcow v1 is refused by `-f qcow2`, COWD vmdk, descriptors without the comment line)
 *    never reach qemu-img: they are raw bytes.
 * 2. inspectImage(): one bounded `qemu-img info` through the no-backing json: spec; only when its answer names no
 *    other file do `check` and `map` run; then the rules below.
 */
import { ErrorKind, ImportError, largerPvcRequired } from '../errors.ts';
import type { DiskFormat } from '../format/sniff.ts';
import { humanSize } from '../size.ts';
import { ExtentCollector } from './extents.ts';
import { check, info, map, type ImageLocation, type MapEntry, type QemuImgInfo } from './qemu.ts';
import { MIN_CHILD_BYTES, type Limits } from './run.ts';

const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;
const VPC_FIXED = 2;
const VPC_DYNAMIC = 3;
const VPC_DIFFERENCING = 4;
const VDI_TYPE_DIFF = 4;

function refuse(message: string): ImportError {
  return new ImportError(ErrorKind.Invalid, message);
}

function truncatedHeader(format: string, need: number, head: Buffer): void {
  if (head.length < need) throw refuse(`the ${format} image is truncated: its header is incomplete`);
}

/** Header checks done on the first bytes, before qemu-img sees the image. */
export function prescreen(format: DiskFormat, head: Buffer): void {
  if (format === 'qcow2') {
    truncatedHeader('qcow2', 104, head);
    const version = head.readUInt32BE(4);
    if (version >= 3 && (head.readBigUInt64BE(72) & QCOW2_INCOMPAT_DATA_FILE) !== 0n) {
      throw refuse('the qcow2 image keeps its data in an external data file; such images are refused');
    }
    const backingLen = head.readUInt32BE(16);
    if (backingLen > 0)
      throw refuse('the qcow2 image names a backing file; images with backing files are refused');
  }
  if (format === 'vmdk') {
    if (head.subarray(0, 4).toString('latin1') !== 'KDMV') {
      throw refuse(
        'the vmdk is a text descriptor that points at other extent files; only single-file vmdk images are accepted',
      );
    }
    truncatedHeader('vmdk', 44, head);
    // VMDK4Header (little-endian, after the magic): capacity at 12, desc_offset at 28 (sectors).
    if (head.readBigUInt64LE(12) === 0n && head.readBigUInt64LE(28) !== 0n) {
      throw refuse(
        'the vmdk header embeds a descriptor (capacity 0 with a descriptor offset) that can point at other extent files; only single-file vmdk images are accepted',
      );
    }
  }
  if (format === 'vpc') {
    truncatedHeader('vhd', 64, head);
    // The footer copy at the start of a dynamic or differencing disk: disk type at 60 (big-endian).
    const type = head.readUInt32BE(60);
    if (type === VPC_DIFFERENCING) {
      throw refuse(
        'the vhd is a differencing disk that needs its parent disk; images with backing files are refused',
      );
    }
    if (type !== VPC_FIXED && type !== VPC_DYNAMIC)
      throw refuse(`the vhd has an unknown disk type ${type}; only fixed and dynamic disks are accepted`);
  }
  if (format === 'vdi') {
    truncatedHeader('vdi', 0x1c8, head);
    // image_type at 0x4c, uuid_parent at 0x1b8 (little-endian header after the 64-byte text).
    if (head.readUInt32LE(0x4c) === VDI_TYPE_DIFF || head.subarray(0x1b8, 0x1c8).some((b) => b !== 0)) {
      throw refuse(
        'the vdi is a differencing image that needs its parent image; images with backing files are refused',
      );
    }
  }
}

export interface ImageFacts {
  format: DiskFormat;
  virtualSize: number;
  info: QemuImgInfo;
  /**
   * qemu-img map of the image (formats with tables), neighbours merged (image/extents.ts); absent when no extent
   * copy can come of it (compressed clusters, or too many extents to hold).
   */
  extents?: MapEntry[];
}

function findReferences(i: QemuImgInfo, self: string | undefined): string | undefined {
  if (i['backing-filename'] || i['full-backing-filename'] || i['backing-filename-format']) {
    return `the image names a backing file (${i['backing-filename'] ?? i['full-backing-filename'] ?? '?'}); images with backing files are refused`;
  }
  const data = i['format-specific']?.data ?? {};
  if (data['data-file'] !== undefined || data['data-file-raw'] !== undefined) {
    return 'the qcow2 image keeps its data in an external data file; such images are refused';
  }
  const createType = data['create-type'];
  if (
    typeof createType === 'string' &&
    createType !== 'monolithicSparse' &&
    createType !== 'streamOptimized'
  ) {
    return `the vmdk is of type ${createType}, which keeps its data in other extent files; only single-file vmdk images are accepted`;
  }
  const extents = data.extents;
  if (Array.isArray(extents)) {
    for (const e of extents as { filename?: string }[]) {
      if (e.filename !== undefined && self !== undefined && e.filename !== self) {
        return `the vmdk names an extent outside the image (${e.filename}); such images are refused`;
      }
    }
  }
  return undefined;
}

/**
 * Runs qemu-img info (and check/map for the formats that have tables) and enforces the rules.
 * `sourceBytes` is the length of the image file (to spot tables that point past its end);
 * `available` is the space for the raw result (undefined: no limit).
 */
export async function inspectImage(
  format: DiskFormat,
  loc: ImageLocation,
  sourceBytes: number | undefined,
  available: number | undefined,
  limits: Limits,
  /** Where a note for the operator goes (the pod's and the command's stderr by default). */
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<ImageFacts> {
  // info alone first: if the image names another file after all (something the prescreen does not know),
  // qemu-img has opened it once, in one bounded process, and check and map never open it again.
  const i = await info(format, loc, limits);
  if (i.format !== format) throw refuse(`Invalid format: qemu-img sees ${i.format}, expected ${format}`);
  const problem = findReferences(i, i.filename);
  if (problem) throw refuse(problem);
  const virtualSize = i['virtual-size'];
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0)
    throw refuse('the image reports an invalid virtual size');
  if (available !== undefined && virtualSize > available) throw largerPvcRequired(virtualSize, available);

  if (format === 'raw') return { format, virtualSize, info: i };
  // check and map only read the image (through the same no-backing spec, now known to name nothing else), so they
  // run at the same time, each with half the memory; check's verdict comes first, as when they ran in turn.
  const half = { ...limits, memoryBytes: Math.max(MIN_CHILD_BYTES, Math.floor(limits.memoryBytes / 2)) };
  const plan = new ExtentCollector(limits.maxExtents);
  let pastEnd: number | undefined;
  const [c, m] = await Promise.allSettled([
    check(format, loc, half),
    map(format, loc, half, (e) => {
      if (sourceBytes !== undefined && pastEnd === undefined && e.data && e.offset !== undefined) {
        if (e.offset + e.length > sourceBytes) pastEnd = e.offset + e.length;
      }
      plan.add(e);
    }),
  ]);
  if (c.status === 'rejected') throw c.reason;
  const cr = c.value;
  if (cr.supported && (cr.corruptions > 0 || cr.checkErrors > 0)) {
    throw refuse(
      `the ${format} image is corrupt (qemu-img check: ${cr.corruptions} corruptions, ${cr.checkErrors} errors${cr.message ? `: ${cr.message}` : ''})`,
    );
  }
  if (m.status === 'rejected') throw m.reason;
  if (pastEnd !== undefined && sourceBytes !== undefined) {
    throw refuse(
      `the ${format} image is truncated: its tables point at byte ${pastEnd} but the file has ${sourceBytes} bytes (${humanSize(sourceBytes)})`,
    );
  }
  if (plan.tooMany) {
    log(
      `the ${format} image maps to ${plan.seen} extents, more than the ${plan.max} a copy plan may hold: qemu-img converts it instead`,
    );
  }
  const extents = plan.entries;
  return { format, virtualSize, info: i, ...(extents ? { extents } : {}) };
}
