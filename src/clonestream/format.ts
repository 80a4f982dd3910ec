/**
 * The host-assisted clone stream (docs/adr/0041-clone-stream.md): what the source pod (src/cloner) sends the target's
 * upload server (src/uploadserver/clone.ts) in the body of `POST /v1beta1/upload` with `x-cdi-content-type:
 * filesystem-clone | blockdevice-clone`. Only our two pods speak it, so it is ours (upstream sends a tar, or the raw
 * device, through snappy framing): an extent-framed stream in which holes and zero blocks are simply absent, so a
 * sparse 10 GiB disk holding 1 GiB of data moves about 1 GiB.
 *
 *   stream  = MAGIC header entry* trailer
 *   header  = 'H' u32:len JSON{kind, entries?, total, data}     kind "filesystem" | "block"
 *   entry   = 'E' u32:len JSON{path, type, mode, mtimeMs, size?, target?} data*
 *   data    = 'D' u64:offset u32:len bytes                      inside the last file entry; never overlapping
 *   trailer = 'T' u32:len JSON{entries, dataBytes}              what was sent: the receiver checks its counts
 * Integers are big-endian. A block source is one file entry, `disk.img`, the size of the device. Whatever a file
 * entry's data frames do not cover reads as zeros. TLS (mutual, per clone) carries it: no checksum of its own.
 */

export const MAGIC = Buffer.from('CDICLN01', 'latin1');

export const Frame = { Header: 0x48, Entry: 0x45, Data: 0x44, Trailer: 0x54 } as const;

/** Largest JSON part of a header, entry or trailer frame (a path is at most 4096 bytes). */
export const MAX_META = 64 << 10;
/** Largest data frame payload. */
export const MAX_DATA = 16 << 20;

export const StreamKind = { Filesystem: 'filesystem', Block: 'block' } as const;
export type StreamKind = (typeof StreamKind)[keyof typeof StreamKind];

export interface StreamHeader {
  kind: StreamKind;
  /** Sum of the file sizes (the logical bytes the target will hold). */
  total: number;
  /** Bytes of data the source expects to send (before zero blocks are dropped), for progress. */
  data: number;
}

export const EntryType = { File: 'file', Dir: 'dir', Symlink: 'symlink' } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  /** Relative to the volume's root, '/'-separated, no '.' or '..' components. */
  path: string;
  type: EntryType;
  /** Permission bits (0o7777 at most). */
  mode: number;
  mtimeMs: number;
  /** Files: the length, holes included. */
  size?: number;
  /** Symlinks: the link text, as it is. */
  target?: string;
}

export interface Trailer {
  entries: number;
  dataBytes: number;
}

/** The disk image of a Filesystem volume, and the one entry a block source sends. */
export const DISK_IMAGE = 'disk.img';

/** A frame header and JSON payload as one buffer. */
export function metaFrame(type: number, value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value));
  if (json.length > MAX_META) throw new Error(`a clone stream record of ${json.length} bytes is too large`);
  const b = Buffer.allocUnsafe(5 + json.length);
  b[0] = type;
  b.writeUInt32BE(json.length, 1);
  json.copy(b, 5);
  return b;
}

/** The 13 bytes that precede `length` bytes of data at `offset`. */
export function dataFrameHeader(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(13);
  b[0] = Frame.Data;
  b.writeBigUInt64BE(BigInt(offset), 1);
  b.writeUInt32BE(length, 9);
  return b;
}

/** Thrown for a stream that does not follow the format (the message says where). */
export class StreamFormatError extends Error {
  override name = 'StreamFormatError';
}

export type StreamEvent =
  | { kind: 'header'; header: StreamHeader }
  | { kind: 'entry'; entry: Entry }
  | { kind: 'data'; offset: number; chunks: Buffer[]; length: number }
  | { kind: 'trailer'; trailer: Trailer };

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseJson(b: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(b.toString('utf8'));
  } catch {
    throw new StreamFormatError(`the clone stream's ${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new StreamFormatError(`the clone stream's ${what} is not an object`);
  return v as Record<string, unknown>;
}

function parseHeader(o: Record<string, unknown>): StreamHeader {
  if (o.kind !== StreamKind.Filesystem && o.kind !== StreamKind.Block)
    throw new StreamFormatError(
      `the clone stream's kind ${JSON.stringify(o.kind)} is not filesystem or block`,
    );
  if (!isCount(o.total) || !isCount(o.data))
    throw new StreamFormatError('the clone stream header has no valid total/data sizes');
  return { kind: o.kind, total: o.total, data: o.data };
}

function parseEntry(o: Record<string, unknown>): Entry {
  const p = o.path;
  if (typeof p !== 'string' || p === '' || p.length > 4096 || p.includes('\0'))
    throw new StreamFormatError('a clone stream entry has no valid path');
  if (p.startsWith('/') || p.split('/').some((c) => c === '' || c === '.' || c === '..'))
    throw new StreamFormatError(`the clone stream entry "${p}" is not a plain relative path`);
  const type = o.type;
  if (type !== EntryType.File && type !== EntryType.Dir && type !== EntryType.Symlink)
    throw new StreamFormatError(`the clone stream entry "${p}" has an unknown type ${JSON.stringify(type)}`);
  const mode = isCount(o.mode) ? o.mode & 0o7777 : 0o644;
  const mtimeMs = typeof o.mtimeMs === 'number' && Number.isFinite(o.mtimeMs) ? o.mtimeMs : Date.now();
  const e: Entry = { path: p, type, mode, mtimeMs };
  if (type === EntryType.File) {
    if (!isCount(o.size)) throw new StreamFormatError(`the clone stream file "${p}" has no valid size`);
    e.size = o.size;
  }
  if (type === EntryType.Symlink) {
    if (typeof o.target !== 'string' || o.target === '' || o.target.includes('\0'))
      throw new StreamFormatError(`the clone stream symlink "${p}" has no valid target`);
    e.target = o.target;
  }
  return e;
}

function parseTrailer(o: Record<string, unknown>): Trailer {
  if (!isCount(o.entries) || !isCount(o.dataBytes))
    throw new StreamFormatError('the clone stream trailer has no valid counts');
  return { entries: o.entries, dataBytes: o.dataBytes };
}

/**
 * Parses a clone stream as it arrives, synchronously: `push(chunk)` returns the events the chunk completes (data
 * comes as slices of the chunks, no copy; only a record header split across two chunks is copied), `end()` checks
 * that the stream is complete. Checks the structure: the magic, a header first, data only inside a file entry, in
 * ascending non-overlapping order and within the file's size, a trailer whose counts match what came, nothing after
 * it. What the entries mean is the receiver's business.
 */
export class CloneStreamParser {
  /** Bytes of a record header (or the magic, or a JSON record) collected so far. */
  private partial: Buffer[] = [];
  private partialLen = 0;
  /** What the next bytes are, and how many of them make it whole. */
  private want: 'magic' | 'type' | 'dataHeader' | 'len' | 'json' | 'data' | 'done' = 'magic';
  private need = MAGIC.length;
  private recordType = 0;
  private header: StreamHeader | undefined;
  private file: Entry | undefined;
  private fileEnd = 0;
  private entries = 0;
  private dataBytes = 0;
  /** The data record being received: where it goes, what came of it so far. */
  private dataOffset = 0;
  private dataChunks: Buffer[] = [];
  private dataLength = 0;

  push(chunk: Buffer): StreamEvent[] {
    const events: StreamEvent[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.want === 'done') throw new StreamFormatError('the clone stream goes on after its trailer');
      const take = Math.min(this.need, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.need -= take;
      if (this.want === 'data') {
        this.dataChunks.push(piece);
        // a long record is handed on as it arrives, so the writes do not wait for the whole of it
        if (this.need === 0 || this.dataChunks.length >= 64) {
          const length = this.dataChunks.reduce((n, b) => n + b.length, 0);
          events.push({ kind: 'data', offset: this.dataOffset, chunks: this.dataChunks, length });
          this.dataOffset += length;
          this.dataChunks = [];
        }
        if (this.need === 0) this.expect('type', 1);
        continue;
      }
      this.partial.push(piece);
      this.partialLen += take;
      if (this.need > 0) continue;
      const whole =
        this.partial.length === 1 ? this.partial[0]! : Buffer.concat(this.partial, this.partialLen);
      this.partial = [];
      this.partialLen = 0;
      this.complete(whole, events);
    }
    return events;
  }

  /** The input ended: throws unless the trailer has arrived. */
  end(): void {
    if (this.want !== 'done') {
      throw new StreamFormatError(
        this.want === 'magic' && this.partialLen === 0
          ? 'the clone stream is empty'
          : 'the clone stream ended before its trailer (cut off?)',
      );
    }
  }

  private expect(want: CloneStreamParser['want'], need: number): void {
    this.want = want;
    this.need = need;
  }

  private complete(b: Buffer, events: StreamEvent[]): void {
    switch (this.want) {
      case 'magic':
        if (!b.equals(MAGIC))
          throw new StreamFormatError('the body is not a cdi-ts clone stream (wrong magic bytes)');
        return this.expect('type', 1);
      case 'type':
        this.recordType = b[0]!;
        if (this.recordType === Frame.Data) return this.expect('dataHeader', 12);
        if (![Frame.Header, Frame.Entry, Frame.Trailer].includes(this.recordType as 0x48)) {
          throw new StreamFormatError(
            `the clone stream has an unknown record type 0x${this.recordType.toString(16)}`,
          );
        }
        return this.expect('len', 4);
      case 'dataHeader': {
        const offset = Number(b.readBigUInt64BE(0));
        const length = b.readUInt32BE(8);
        const file = this.file;
        if (!file) throw new StreamFormatError('the clone stream has data outside a file entry');
        if (length === 0 || length > MAX_DATA)
          throw new StreamFormatError(`a data record of ${length} bytes in "${file.path}" is not allowed`);
        if (!Number.isSafeInteger(offset) || offset < this.fileEnd || offset + length > file.size!) {
          throw new StreamFormatError(
            `a data record at ${offset} (+${length}) in "${file.path}" is out of order or past its size ${file.size}`,
          );
        }
        this.fileEnd = offset + length;
        this.dataBytes += length;
        this.dataOffset = offset;
        return this.expect('data', length);
      }
      case 'len': {
        const len = b.readUInt32BE(0);
        if (len > MAX_META) throw new StreamFormatError(`a clone stream record of ${len} bytes is too large`);
        return this.expect('json', len);
      }
      case 'json':
        this.record(parseJson(b, 'record'), events);
        return;
      default:
        throw new StreamFormatError('the clone stream parser is confused');
    }
  }

  private record(body: Record<string, unknown>, events: StreamEvent[]): void {
    const type = this.recordType;
    if (type === Frame.Header) {
      if (this.header) throw new StreamFormatError('the clone stream has a second header');
      this.header = parseHeader(body);
      events.push({ kind: 'header', header: this.header });
      return this.expect('type', 1);
    }
    if (!this.header) throw new StreamFormatError('the clone stream does not start with a header');
    if (type === Frame.Entry) {
      const entry = parseEntry(body);
      this.entries++;
      this.file = entry.type === EntryType.File ? entry : undefined;
      this.fileEnd = 0;
      events.push({ kind: 'entry', entry });
      return this.expect('type', 1);
    }
    const trailer = parseTrailer(body);
    if (trailer.entries !== this.entries || trailer.dataBytes !== this.dataBytes) {
      throw new StreamFormatError(
        `the clone stream's trailer counts ${trailer.entries} entries and ${trailer.dataBytes} data bytes, ${this.entries} and ${this.dataBytes} arrived`,
      );
    }
    events.push({ kind: 'trailer', trailer });
    this.expect('done', 0);
  }
}
