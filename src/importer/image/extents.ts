/**
 * The extent copy: converting an image whose data clusters are stored as plain bytes (qcow2, vmdk, vdi, vhd, vhdx
 * without compression or encryption) without running its data through qemu-img.
 *
 * qemu-img still parses the hostile image: `qemu-img map` (through the no-backing json: spec, bounded, already run by
 * validation) says, for every guest range, whether it is zero or data, and where the data lies in the image file
 * (`offset`). That list is the transfer plan: the image's data ranges are fetched by range (few, large, sequential
 * reads of the source) and written at their guest offsets into a fresh sparse file. Everything qemu-img does not map
 * to plain bytes (compressed or encrypted clusters, a map that does not cover the disk exactly) makes the plan
 * `undefined`, and the caller converts with qemu-img instead. See docs/adr/0005-extent-copy.md.
 */
import { RANGE_SLACK } from '../source/source.ts';
import type { MapEntry } from './qemu.ts';
import type { RangeReader } from './range.ts';

/** `length` bytes at `host` in the image file are the guest disk's bytes at `guest`. */
export interface Piece {
  host: number;
  guest: number;
  length: number;
}

export interface ExtentPlan {
  /** Sorted by host offset. */
  pieces: Piece[];
  dataBytes: number;
}

/** Largest single read (and the memory one read in flight holds). */
export const WINDOW = 8 << 20;
/** Bytes between two pieces that are read and thrown away rather than starting a new read. */
const GAP = 1 << 20;

const isOffset = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/** Most separate extents a plan holds by default (~100 bytes each); Limits.maxExtents overrides it. */
export const MAX_EXTENTS = 100_000;

/** Read as zeros: zero (allocated or not), or unallocated (there is no backing file). */
const noData = (e: MapEntry): boolean => e.zero || !e.data;

/**
 * Gathers `qemu-img map` entries for planExtents() as they are parsed, merging neighbours that copy the same way
 * (zero runs; data runs contiguous in the image file too), and holding at most `max` of them. `entries` becomes
 * undefined when no plan can come of them: a data extent without a plain file offset (compressed or encrypted
 * clusters), or more than `max` separate extents (`tooMany`: an image of alternating tiny clusters would otherwise
 * hold millions of them in memory).
 */
export class ExtentCollector {
  entries: MapEntry[] | undefined = [];
  tooMany = false;
  /** Entries seen (before merging). */
  seen = 0;

  readonly max: number;

  constructor(max = MAX_EXTENTS) {
    this.max = max;
  }

  add(e: MapEntry): void {
    this.seen++;
    const list = this.entries;
    if (!list) return;
    if (!noData(e) && !isOffset(e.offset)) {
      this.entries = undefined;
      return;
    }
    const last = list.at(-1);
    if (last && last.start + last.length === e.start) {
      if (noData(last) && noData(e)) {
        list[list.length - 1] = {
          start: last.start,
          length: last.length + e.length,
          data: false,
          zero: true,
        };
        return;
      }
      if (!noData(last) && !noData(e) && last.offset! + last.length === e.offset) {
        last.length += e.length;
        return;
      }
    }
    if (list.length >= this.max) {
      this.entries = undefined;
      this.tooMany = true;
      return;
    }
    // Only what a plan needs (qemu also prints depth and present).
    const { start, length, data, zero, offset } = e;
    list.push(offset === undefined ? { start, length, data, zero } : { start, length, data, zero, offset });
  }
}

/**
 * The plan for `entries` (qemu-img map --output=json) of an image of `virtualSize` stored in `sourceSize` bytes, or
 * undefined when the image is not all plain data and zeros.
 */
export function planExtents(
  entries: readonly MapEntry[],
  virtualSize: number,
  sourceSize: number,
): ExtentPlan | undefined {
  const pieces: Piece[] = [];
  let next = 0;
  let dataBytes = 0;
  for (const e of entries) {
    if (!isOffset(e.start) || !isOffset(e.length) || e.start !== next || e.length === 0) return undefined;
    next = e.start + e.length;
    // Zero (allocated or not) and unallocated ranges read as zeros (there is no backing file): the new file has them.
    if (e.zero || !e.data) continue;
    if (!isOffset(e.offset) || e.offset + e.length > sourceSize) return undefined;
    for (let o = 0; o < e.length; o += WINDOW) {
      const length = Math.min(WINDOW, e.length - o);
      pieces.push({ host: e.offset + o, guest: e.start + o, length });
    }
    dataBytes += e.length;
  }
  if (next !== virtualSize) return undefined;
  pieces.sort((a, b) => a.host - b.host || a.guest - b.guest);
  return { pieces, dataBytes };
}

/** One ranged read of the image file and the pieces it holds. */
export interface Window {
  start: number;
  length: number;
  pieces: Piece[];
}

/** Groups host-sorted pieces into reads of at most WINDOW bytes, bridging gaps up to `gap` (default GAP). */
export function windows(pieces: readonly Piece[], gap = GAP): Window[] {
  const out: Window[] = [];
  let cur: Window | undefined;
  for (const p of pieces) {
    const end = p.host + p.length;
    if (cur && p.host <= cur.start + cur.length + gap && end - cur.start <= WINDOW) {
      cur.length = Math.max(cur.length, end - cur.start);
      cur.pieces.push(p);
      continue;
    }
    cur = { start: p.host, length: p.length, pieces: [p] };
    out.push(cur);
  }
  return out;
}

/** The bytes [from, from + length) of a list of consecutive chunks, as views (no copy). */
export function slice(chunks: readonly Buffer[], from: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  const end = from + length;
  for (const c of chunks) {
    const cEnd = pos + c.length;
    if (cEnd > from && pos < end)
      out.push(c.subarray(Math.max(0, from - pos), Math.min(c.length, end - pos)));
    pos = cEnd;
    if (pos >= end) break;
  }
  return out;
}

export interface CopyOptions {
  /** Reads in flight at once. */
  concurrency?: number;
  /** Bytes between two pieces read through rather than starting a new read (default 1 MiB; 0: only data). */
  gap?: number;
  onBytes?: (n: number) => void;
}

/**
 * Copies the plan: `reader` fetches windows of the image file, `write` puts each piece at its guest offset (in any
 * order). Each of the `concurrency` workers owns one buffer of a window's size and reads every window into it
 * (RangeReader's `into`), writing its pieces before it reads the next, so a copy of any size holds the same memory
 * and leaves the garbage collector nothing per read. Resolves when every piece is written; the first error stops
 * further reads and rejects.
 */
export async function copyExtents(
  plan: ExtentPlan,
  reader: RangeReader,
  write: (chunks: Buffer[], guest: number) => Promise<void>,
  opts: CopyOptions = {},
): Promise<void> {
  const list = windows(plan.pieces, opts.gap);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    const into = Buffer.allocUnsafe(WINDOW + RANGE_SLACK);
    while (!failed && next < list.length) {
      const w = list[next++]!;
      try {
        const chunks = await reader.read(w.start, w.length, into);
        for (const p of w.pieces) {
          await write(slice(chunks, p.host - w.start, p.length), p.guest);
          opts.onBytes?.(p.length);
        }
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 4, list.length));
  const results = await Promise.allSettled(Array.from({ length: n }, worker));
  const bad = results.find((r) => r.status === 'rejected');
  if (bad) throw bad.reason;
}
