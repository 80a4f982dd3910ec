/**
 * Validation of a downloaded (hostile) disk image before anything converts it. Two stages:
 * 1. prescreen(head): refusals that must happen before qemu-img opens the image at all, because qemu-img
 *    would already follow the reference while opening it (qcow2 external data file, vmdk descriptor extents).
 * 2. inspectImage(): qemu-img info/check/map through a no-backing json: spec, then the rules below.
 */
import { ErrorKind, ImportError, largerPvcRequired } from '../errors.ts';
import type { DiskFormat } from '../format/sniff.ts';
import { humanSize } from '../size.ts';
import { check, info, map, type ImageLocation, type MapEntry, type QemuImgInfo } from './qemu.ts';
import type { Limits } from './run.ts';

const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;

function refuse(message: string): ImportError {
  return new ImportError(ErrorKind.Invalid, message);
}

/** Header checks done on the first bytes, before qemu-img sees the image. */
export function prescreen(format: DiskFormat, head: Buffer): void {
  if (format === 'qcow2') {
    if (head.length < 104) throw refuse('the qcow2 image is truncated: its header is incomplete');
    const version = head.readUInt32BE(4);
    if (version >= 3 && (head.readBigUInt64BE(72) & QCOW2_INCOMPAT_DATA_FILE) !== 0n) {
      throw refuse('the qcow2 image keeps its data in an external data file; such images are refused');
    }
    const backingLen = head.readUInt32BE(16);
    if (backingLen > 0)
      throw refuse('the qcow2 image names a backing file; images with backing files are refused');
  }
  if (format === 'vmdk' && head.subarray(0, 4).toString('latin1') !== 'KDMV') {
    throw refuse(
      'the vmdk is a text descriptor that points at other extent files; only single-file vmdk images are accepted',
    );
  }
}

export interface ImageFacts {
  format: DiskFormat;
  virtualSize: number;
  info: QemuImgInfo;
  /** qemu-img map of the image (formats with tables). */
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
): Promise<ImageFacts> {
  // info, check and map only read the image (through the same no-backing json: spec, after the prescreen), so they run
  // at the same time; every rule below is still applied to all three results before anything converts the image.
  const tables = format !== 'raw';
  const [ri, c, entries] = await Promise.allSettled([
    info(format, loc, limits),
    tables ? check(format, loc, limits) : Promise.resolve(undefined),
    tables ? map(format, loc, limits) : Promise.resolve(undefined),
  ]);
  // info's verdict first (format, references, size), then check's, then map's, as when they ran in turn.
  if (ri.status === 'rejected') throw ri.reason;
  const i = ri.value;
  if (i.format !== format) throw refuse(`Invalid format: qemu-img sees ${i.format}, expected ${format}`);
  const problem = findReferences(i, i.filename);
  if (problem) throw refuse(problem);
  const virtualSize = i['virtual-size'];
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0)
    throw refuse('the image reports an invalid virtual size');
  if (available !== undefined && virtualSize > available) throw largerPvcRequired(virtualSize, available);

  if (tables) {
    if (c.status === 'rejected') throw c.reason;
    const cr = c.value;
    if (cr?.supported && (cr.corruptions > 0 || cr.checkErrors > 0)) {
      throw refuse(
        `the ${format} image is corrupt (qemu-img check: ${cr.corruptions} corruptions, ${cr.checkErrors} errors${cr.message ? `: ${cr.message}` : ''})`,
      );
    }
    if (entries.status === 'rejected') throw entries.reason;
    if (sourceBytes !== undefined) {
      for (const e of entries.value ?? []) {
        if (e.data && e.offset !== undefined && e.offset + e.length > sourceBytes) {
          throw refuse(
            `the ${format} image is truncated: its tables point at byte ${e.offset + e.length} but the file has ${sourceBytes} bytes (${humanSize(sourceBytes)})`,
          );
        }
      }
    }
  }
  const extents = entries.status === 'fulfilled' ? entries.value : undefined;
  return { format, virtualSize, info: i, ...(extents ? { extents } : {}) };
}
