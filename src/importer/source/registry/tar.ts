/**
 * A minimal streaming tar reader for image layers: headers one at a time, each entry's data as chunks, never more
 * than one chunk of the input held. Reads ustar, pax (`path`, `linkpath`, `size`) and GNU long names, and sizes in
 * base-256 (GNU, for entries past 8 GiB). Knows each entry's data offset in the tar stream (for range reads of
 * uncompressed layers).
 *
 * Not tar-stream: its entries are streamx streams, which add a copy and an event hop per chunk, and it cannot say
 * where an entry's data lies in the archive.
 */
import { ErrorKind, ImportError } from '../../errors.ts';

export type TarType = 'file' | 'directory' | 'symlink' | 'link' | 'sparse' | 'other';

export interface TarEntry {
  /** The path as stored, pax/GNU long names applied. */
  name: string;
  type: TarType;
  size: number;
  linkname: string;
  /** Offset of the data in the (decompressed) tar stream. */
  dataOffset: number;
}

const BLOCK = 512;

function invalid(what: string, msg: string): ImportError {
  return new ImportError(ErrorKind.Invalid, `${what} is not a valid tar archive: ${msg}`);
}

export function cstring(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const z = s.indexOf(0);
  return (z >= 0 ? s.subarray(0, z) : s).toString('utf8');
}

export function octal(b: Buffer, start: number, len: number, what: string): number {
  const f = b.subarray(start, start + len);
  if (f[0]! & 0x80) {
    // GNU base-256: big-endian, the high bit of the first byte set.
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    if (!Number.isSafeInteger(v)) throw invalid(what, 'an entry size is too large');
    return v;
  }
  const s = cstring(b, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw invalid(what, `bad number field "${s}"`);
  return parseInt(s, 8);
}

export function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  const stored = cstring(h, 148, 8).trim();
  return /^[0-7]+$/.test(stored) && parseInt(stored, 8) === sum;
}

export function paxRecords(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < buf.length) {
    const sp = buf.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(buf.subarray(i, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || i + len > buf.length) break;
    const rec = buf.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarType> = {
  '0': 'file',
  '\0': 'file',
  '': 'file',
  '7': 'file',
  '5': 'directory',
  '2': 'symlink',
  '1': 'link',
  S: 'sparse',
};

/** Meta entries (pax, GNU long names) bigger than this are refused: a hostile layer could name a 4 GiB "path". */
const MAX_META = 1 << 20;

export class TarReader {
  private readonly it: AsyncIterator<Buffer>;
  private readonly what: string;
  private buf: Buffer = Buffer.alloc(0);
  private eof = false;
  /** Bytes of the stream consumed so far (the start of `buf`). */
  private pos = 0;
  /** Data bytes (and padding) of the current entry not yet consumed. */
  private remaining = 0;
  private padding = 0;
  private ended = false;

  constructor(input: AsyncIterable<Buffer>, what: string) {
    this.it = input[Symbol.asyncIterator]();
    this.what = what;
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.eof) {
      const r = await this.it.next();
      if (r.done) this.eof = true;
      else this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    }
    return this.buf.length >= n;
  }

  private take(n: number): Buffer {
    const b = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.pos += n;
    return b;
  }

  private async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.buf.length === 0 && !(await this.fill(1))) throw invalid(this.what, 'it ends inside an entry');
      const k = Math.min(n, this.buf.length);
      this.take(k);
      n -= k;
    }
  }

  private async readAll(size: number): Promise<Buffer> {
    if (size > MAX_META) throw invalid(this.what, `a metadata entry of ${size} bytes`);
    if (!(await this.fill(size))) throw invalid(this.what, 'it ends inside an entry');
    const b = Buffer.from(this.take(size));
    await this.skip((BLOCK - (size % BLOCK)) % BLOCK);
    return b;
  }

  /** The next entry (the rest of the current one is skipped), or undefined at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    if (this.ended) return undefined;
    await this.skip(this.remaining + this.padding);
    this.remaining = this.padding = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Record<string, string> = {};
    for (;;) {
      if (!(await this.fill(BLOCK))) {
        if (this.buf.length === 0 && longName === undefined) {
          // Some writers omit the two zero blocks; an archive that simply stops between entries is complete.
          this.ended = true;
          return undefined;
        }
        throw invalid(this.what, 'it ends inside a header');
      }
      const h = this.take(BLOCK);
      if (h.every((b) => b === 0)) {
        this.ended = true;
        return undefined;
      }
      if (!checksumOk(h)) throw invalid(this.what, `bad header checksum at offset ${this.pos - BLOCK}`);
      const flag = String.fromCharCode(h[156]!);
      const size = octal(h, 124, 12, this.what);
      if (flag === 'x') {
        pax = { ...pax, ...paxRecords(await this.readAll(size)) };
        continue;
      }
      if (flag === 'g') {
        await this.readAll(size);
        continue;
      }
      if (flag === 'L') {
        longName = cstring(await this.readAll(size), 0, size);
        continue;
      }
      if (flag === 'K') {
        longLink = cstring(await this.readAll(size), 0, size);
        continue;
      }
      const magic = h.subarray(257, 263).toString('latin1');
      const prefix = magic.startsWith('ustar') && magic !== 'ustar ' ? cstring(h, 345, 155) : '';
      const base = cstring(h, 0, 100);
      const name = pax['GNU.sparse.name'] ?? pax.path ?? longName ?? (prefix ? `${prefix}/${base}` : base);
      const realSize = pax.size !== undefined ? Number(pax.size) : size;
      if (!Number.isSafeInteger(realSize) || realSize < 0) throw invalid(this.what, `bad size "${pax.size}"`);
      // PAX-format GNU sparse files (tar --sparse --format=pax) look like regular files holding a sparse map.
      const paxSparse = Object.keys(pax).some((k) => k.startsWith('GNU.sparse.'));
      const type = paxSparse ? 'sparse' : (TYPES[flag] ?? 'other');
      // Links and directories carry no data whatever their size field says (hard links may say a size).
      const dataSize = type === 'file' || type === 'sparse' || type === 'other' ? realSize : 0;
      this.remaining = dataSize;
      this.padding = (BLOCK - (dataSize % BLOCK)) % BLOCK;
      return {
        name,
        type,
        size: dataSize,
        linkname: pax.linkpath ?? longLink ?? cstring(h, 157, 100),
        dataOffset: this.pos,
      };
    }
  }

  /** The current entry's data, as chunks (each valid until the next one is asked for). */
  async *data(): AsyncGenerator<Buffer> {
    while (this.remaining > 0) {
      if (this.buf.length === 0 && !(await this.fill(1))) throw invalid(this.what, 'it ends inside an entry');
      const k = Math.min(this.remaining, this.buf.length);
      this.remaining -= k;
      yield this.take(k);
    }
  }

  /** Reads whatever follows the end of the archive (zero blocks, padding), so the input reaches its end. */
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (!this.eof) {
      const r = await this.it.next();
      if (r.done) this.eof = true;
    }
  }

  /** Stops reading the input. */
  async cancel(): Promise<void> {
    await this.it.return?.();
  }
}
