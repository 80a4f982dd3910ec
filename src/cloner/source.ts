/**
 * The source side of a host-assisted clone: a Filesystem volume (its tree, without `lost+found`) or a block device,
 * as a clone stream (src/clonestream/format.ts). Nothing is sent for holes or zero blocks:
 * - a sparse file's data extents come from `qemu-img map -f raw` (SEEK_DATA/SEEK_HOLE under the hood: a 10 GiB file
 *   with 1 GiB of data is 1 GiB of reads), a file without holes is read whole;
 * - a block device has no hole map, so it is read whole (reads of a thin device's unwritten space are cheap);
 * - what is read is sent in 64 KiB segments aligned to the file's offsets, and segments of zeros are left out.
 * Reading runs one buffer ahead of the sending, so the disk and the network work at the same time.
 */
import type { Stats } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  dataFrameHeader,
  DISK_IMAGE,
  EntryType,
  Frame,
  MAGIC,
  metaFrame,
  StreamKind,
  type Entry,
  type StreamHeader,
} from '../clonestream/format.ts';
import { ErrorKind, ImportError } from '../importer/errors.ts';
import { map } from '../importer/image/qemu.ts';
import { DEFAULT_LIMITS, type Limits } from '../importer/image/run.ts';
import { deviceSize } from '../importer/sink/raw.ts';

/**
 * Where the stream goes: the chunks are written together (one write), and the promise resolves once they have been
 * handed to the kernel, so the caller may reuse their memory (the read buffers are recycled).
 */
export type Output = (...chunks: Buffer[]) => Promise<void>;

export interface SendOptions {
  /** Bytes read so far (data, for progress), called as reading goes. */
  onRead?: (bytes: number) => void;
  /** The total the progress counts towards, once known. */
  onTotal?: (bytes: number) => void;
  log?: (line: string) => void;
  limits?: Limits;
}

export interface SendResult {
  entries: number;
  /** Data bytes sent (zeros and holes excluded). */
  dataBytes: number;
  /** Bytes read from the source. */
  readBytes: number;
  /** Logical bytes of the files (holes included). */
  totalBytes: number;
}

const SEG = 64 * 1024;
const READ = 4 << 20;
const ZERO = Buffer.alloc(SEG);
/** Files smaller than this are read whole rather than mapped (a qemu-img run costs more than the read). */
const MAP_MIN = 1 << 20;

interface Planned {
  entry: Entry;
  /** Absolute path of files to read. */
  abs?: string;
  /** Bytes the source will read for it (progress). */
  read: number;
}

/** Sends the Filesystem volume mounted at `root`. */
export async function sendFilesystem(root: string, out: Output, o: SendOptions = {}): Promise<SendResult> {
  const plan = await planTree(root, o.log ?? (() => {}));
  const header: StreamHeader = {
    kind: StreamKind.Filesystem,
    total: plan.reduce((n, p) => n + (p.entry.size ?? 0), 0),
    data: plan.reduce((n, p) => n + p.read, 0),
  };
  o.onTotal?.(header.data);
  return sendPlanned(header, plan, out, o);
}

/** Sends the block device (or a file standing in for one) at `device` as one entry, `disk.img`. */
export async function sendBlock(device: string, out: Output, o: SendOptions = {}): Promise<SendResult> {
  const size = await deviceSize(device);
  const header: StreamHeader = { kind: StreamKind.Block, total: size, data: size };
  o.onTotal?.(size);
  const entry: Entry = { path: DISK_IMAGE, type: EntryType.File, mode: 0o660, mtimeMs: Date.now(), size };
  return sendPlanned(header, [{ entry, abs: device, read: size }], out, { ...o, wholeFiles: true });
}

async function sendPlanned(
  header: StreamHeader,
  plan: Planned[],
  out: Output,
  o: SendOptions & { wholeFiles?: boolean },
): Promise<SendResult> {
  await out(Buffer.concat([MAGIC, metaFrame(Frame.Header, header)]));
  const r: SendResult = { entries: 0, dataBytes: 0, readBytes: 0, totalBytes: header.total };
  for (const p of plan) {
    await out(metaFrame(Frame.Entry, p.entry));
    r.entries++;
    if (p.abs === undefined || !p.entry.size) continue;
    const fh = await open(p.abs, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new ImportError(ErrorKind.Internal, `cannot open ${p.abs} on the source: ${e.code ?? e.message}`);
    });
    try {
      const extents = o.wholeFiles
        ? [{ start: 0, length: p.entry.size }]
        : await dataExtents(fh, p.abs, p.entry.size, o.limits ?? DEFAULT_LIMITS);
      const s = await sendExtents(fh, p.abs, extents, out, o.onRead);
      r.dataBytes += s.sent;
      r.readBytes += s.read;
    } finally {
      await fh.close();
    }
  }
  await out(metaFrame(Frame.Trailer, { entries: r.entries, dataBytes: r.dataBytes }));
  return r;
}

/** The tree under `root` in the order it is sent: a directory before what it holds, names sorted. */
async function planTree(root: string, log: (line: string) => void): Promise<Planned[]> {
  const out: Planned[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      if (rel === '' && name === 'lost+found') continue;
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, relPath);
      const st = await lstat(abs);
      const base = { path: relPath, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
      if (st.isDirectory()) {
        out.push({ entry: { ...base, type: EntryType.Dir }, read: 0 });
        await walk(relPath);
      } else if (st.isFile()) {
        out.push({ entry: { ...base, type: EntryType.File, size: st.size }, abs, read: expectedRead(st) });
      } else if (st.isSymbolicLink()) {
        out.push({ entry: { ...base, type: EntryType.Symlink, target: await readlink(abs) }, read: 0 });
      } else {
        log(`skipping ${relPath}: not a regular file, directory or symbolic link`);
      }
    }
  };
  await walk('');
  return out;
}

/** What reading a file costs: its allocated bytes when it has holes (only those are read), else its size. */
function expectedRead(st: Stats): number {
  const allocated = st.blocks * 512;
  return st.size >= MAP_MIN && allocated < st.size ? allocated : st.size;
}

interface Extent {
  start: number;
  length: number;
}

/** The ranges of a file that hold data (holes left out), from qemu-img's map when the file has holes. */
async function dataExtents(fh: FileHandle, abs: string, size: number, limits: Limits): Promise<Extent[]> {
  const st = await fh.stat();
  if (size < MAP_MIN || st.blocks * 512 >= size) return [{ start: 0, length: size }];
  const list: Extent[] = [];
  await map('raw', { file: abs }, limits, (e) => {
    if (e.zero || !e.data) return;
    const last = list.at(-1);
    if (last && last.start + last.length === e.start) last.length += e.length;
    else list.push({ start: e.start, length: e.length });
  });
  // the map covers what the file was when it ran; a file is never sent past the size announced for it
  return list
    .map((x) => ({ start: x.start, length: Math.min(x.length, size - x.start) }))
    .filter((x) => x.length > 0);
}

/** Reads the extents one buffer ahead and sends their non-zero 64 KiB segments. */
async function sendExtents(
  fh: FileHandle,
  abs: string,
  extents: Extent[],
  out: Output,
  onRead?: (bytes: number) => void,
): Promise<{ sent: number; read: number }> {
  const reads: Extent[] = [];
  for (const x of extents) {
    for (let at = x.start; at < x.start + x.length;) {
      // read boundaries on READ multiples keep the segments aligned to the file's offsets
      const end = Math.min(x.start + x.length, (Math.floor(at / READ) + 1) * READ);
      reads.push({ start: at, length: end - at });
      at = end;
    }
  }
  // two buffers, recycled: the one being sent and the one being read ahead (out() resolves once a chunk is
  // written, so a buffer is free again when its sending is done)
  const size = Math.min(READ, Math.max(0, ...reads.map((x) => x.length)));
  const pool = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  let turn = 0;
  const read = async (x: Extent): Promise<Buffer> => {
    const buf = pool[turn++ % 2]!.subarray(0, x.length);
    let got = 0;
    while (got < x.length) {
      const { bytesRead } = await fh.read(buf, got, x.length - got, x.start + got);
      if (bytesRead === 0) {
        throw new ImportError(
          ErrorKind.Internal,
          `${abs} ended at ${x.start + got} while reading it (it shrank during the clone?)`,
        );
      }
      got += bytesRead;
    }
    return buf;
  };
  let sent = 0;
  let total = 0;
  let next = reads.length > 0 ? read(reads[0]!) : undefined;
  next?.catch(() => undefined);
  for (let i = 0; i < reads.length; i++) {
    const x = reads[i]!;
    const buf = await next!;
    next = i + 1 < reads.length ? read(reads[i + 1]!) : undefined;
    next?.catch(() => undefined);
    total += buf.length;
    onRead?.(buf.length);
    sent += await sendNonZero(buf, x.start, out);
  }
  return { sent, read: total };
}

/** Sends the non-zero runs of `buf` (which holds the file's bytes at `base`) as data frames. */
async function sendNonZero(buf: Buffer, base: number, out: Output): Promise<number> {
  let sent = 0;
  let runStart = -1;
  const flush = async (end: number): Promise<void> => {
    if (runStart < 0) return;
    const payload = buf.subarray(runStart, end);
    await out(dataFrameHeader(base + runStart, payload.length), payload);
    sent += payload.length;
    runStart = -1;
  };
  for (let i = 0; i < buf.length;) {
    const end = Math.min(buf.length, i + (SEG - ((base + i) % SEG)));
    const seg = buf.subarray(i, end);
    const zero = seg.equals(seg.length === SEG ? ZERO : ZERO.subarray(0, seg.length));
    if (zero) await flush(i);
    else if (runStart < 0) runStart = i;
    i = end;
  }
  await flush(buf.length);
  return sent;
}
