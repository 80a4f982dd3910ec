/**
 * A small NBD client on a unix socket: what the vddk source needs from nbdkit (upstream uses libnbd for the same):
 * the fixed newstyle handshake with structured replies and the `base:allocation` metadata context, then reads
 * (NBD_CMD_READ) and block status (NBD_CMD_BLOCK_STATUS), pipelined, answers matched by cookie.
 * Protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md.
 */
import net from 'node:net';
import { ErrorKind, ImportError } from '../errors.ts';
import {
  NBDMAGIC,
  IHAVEOPT,
  OPT_REPLY_MAGIC,
  REQUEST_MAGIC,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  OPT_GO,
  OPT_STRUCTURED_REPLY,
  OPT_SET_META_CONTEXT,
  REP_ACK,
  REP_INFO,
  REP_META_CONTEXT,
  INFO_EXPORT,
  CMD_READ,
  CMD_DISC,
  CMD_BLOCK_STATUS,
  REPLY_FLAG_DONE,
  REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA,
  REPLY_TYPE_OFFSET_HOLE,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_ERROR,
  REPLY_TYPE_ERROR_OFFSET,
} from './nbd-protocol.ts';

export { STATE_HOLE, STATE_ZERO } from './nbd-protocol.ts';

/** Largest answer chunk accepted (nbdkit sends at most 64 MiB per read). */
const MAX_CHUNK = 64 << 20;

export interface BlockStatus {
  offset: number;
  length: number;
  flags: number;
}

interface Pending {
  kind: 'read' | 'status';
  offset: number;
  length: number;
  data?: Buffer;
  status: BlockStatus[];
  error?: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Buffered reads of exact byte counts from a socket. */
class Reader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;

  constructor(sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      this.pump();
    });
    const end = (err?: Error): void => {
      this.failed ??= err ?? new Error('the NBD server closed the connection');
      this.waiting?.reject(this.failed);
      this.waiting = undefined;
    };
    sock.on('error', end);
    sock.on('close', () => end());
  }

  private pump(): void {
    const w = this.waiting;
    if (!w || this.have < w.n) return;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = all.length > w.n ? [all.subarray(w.n)] : [];
    this.have -= w.n;
    this.waiting = undefined;
    w.resolve(all.subarray(0, w.n));
  }

  read(n: number): Promise<Buffer> {
    if (n === 0) return Promise.resolve(Buffer.alloc(0));
    if (this.failed && this.have < n) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      this.pump();
    });
  }
}

export class NbdClient {
  readonly size: number;
  private readonly sock: net.Socket;
  private readonly reader: Reader;
  private readonly pending = new Map<bigint, Pending>();
  private cookie = 1n;
  private dead: Error | undefined;
  private readonly metaId: number | undefined;

  private constructor(sock: net.Socket, reader: Reader, size: number, metaId: number | undefined) {
    this.sock = sock;
    this.reader = reader;
    this.size = size;
    this.metaId = metaId;
    void this.loop();
  }

  /** Connects and negotiates (structured replies, base:allocation, the default export). */
  static async connect(socketPath: string, exportName = ''): Promise<NbdClient> {
    const sock = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const r = new Reader(sock);
    const fail = (why: string): never => {
      sock.destroy();
      throw new ImportError(ErrorKind.Transfer, `NBD handshake with ${socketPath} failed: ${why}`);
    };
    try {
      const hello = await r.read(18);
      if (!hello.subarray(0, 8).equals(NBDMAGIC) || !hello.subarray(8, 16).equals(IHAVEOPT))
        fail('not a newstyle NBD server');
      const hflags = hello.readUInt16BE(16);
      if (!(hflags & FLAG_FIXED_NEWSTYLE)) fail('the server does not speak fixed newstyle');
      const cflags = Buffer.alloc(4);
      cflags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | (hflags & FLAG_NO_ZEROES));
      sock.write(cflags);

      const option = async (opt: number, data: Buffer): Promise<{ type: number; data: Buffer }[]> => {
        const h = Buffer.alloc(16);
        IHAVEOPT.copy(h, 0);
        h.writeUInt32BE(opt, 8);
        h.writeUInt32BE(data.length, 12);
        sock.write(Buffer.concat([h, data]));
        const replies: { type: number; data: Buffer }[] = [];
        for (;;) {
          const rh = await r.read(20);
          if (rh.readBigUInt64BE(0) !== OPT_REPLY_MAGIC || rh.readUInt32BE(8) !== opt)
            fail('bad option reply');
          const type = rh.readUInt32BE(12);
          const len = rh.readUInt32BE(16);
          if (len > 1 << 20) fail('option reply too long');
          const body = await r.read(len);
          if (type & 0x80000000) {
            const msg = body.toString('utf8');
            return [{ type, data: Buffer.from(msg) }];
          }
          replies.push({ type, data: body });
          if (type === REP_ACK) return replies;
        }
      };
      const name = Buffer.from(exportName, 'utf8');
      const nameField = Buffer.alloc(4 + name.length);
      nameField.writeUInt32BE(name.length);
      name.copy(nameField, 4);

      const sr = await option(OPT_STRUCTURED_REPLY, Buffer.alloc(0));
      if (sr.at(-1)?.type !== REP_ACK) fail('the server does not support structured replies');
      const query = Buffer.from('base:allocation');
      const meta = Buffer.alloc(8 + query.length);
      meta.writeUInt32BE(1);
      meta.writeUInt32BE(query.length, 4);
      query.copy(meta, 8);
      let metaId: number | undefined;
      for (const rep of await option(OPT_SET_META_CONTEXT, Buffer.concat([nameField, meta]))) {
        if (rep.type === REP_META_CONTEXT && rep.data.subarray(4).toString() === 'base:allocation')
          metaId = rep.data.readUInt32BE(0);
      }
      let size: number | undefined;
      const go = await option(OPT_GO, Buffer.concat([nameField, Buffer.alloc(2)]));
      for (const rep of go) {
        if (rep.type & 0x80000000)
          fail(`the server refused the export: ${rep.data.toString() || `error ${rep.type & 0x7fffffff}`}`);
        if (rep.type === REP_INFO && rep.data.readUInt16BE(0) === INFO_EXPORT)
          size = Number(rep.data.readBigUInt64BE(2));
      }
      if (size === undefined) fail('the server gave no export size');
      return new NbdClient(sock, r, size!, metaId);
    } catch (err) {
      sock.destroy();
      if (err instanceof ImportError) throw err;
      throw new ImportError(
        ErrorKind.Transfer,
        `NBD handshake with ${socketPath} failed: ${(err as Error).message}`,
      );
    }
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        const magic = (await this.reader.read(4)).readUInt32BE(0);
        if (magic === SIMPLE_REPLY_MAGIC) {
          const h = await this.reader.read(12);
          const p = this.take(h.readBigUInt64BE(4));
          const error = h.readUInt32BE(0);
          if (error) p.error = `error ${error}`;
          else if (p.kind === 'read') p.data = await this.reader.read(p.length);
          this.settle(h.readBigUInt64BE(4), p);
          continue;
        }
        if (magic !== STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
        const h = await this.reader.read(16);
        const flags = h.readUInt16BE(0);
        const type = h.readUInt16BE(2);
        const cookie = h.readBigUInt64BE(4);
        const len = h.readUInt32BE(12);
        if (len > MAX_CHUNK + 16) throw new Error('reply chunk too large');
        const p = this.take(cookie);
        const body = await this.reader.read(len);
        if (type === REPLY_TYPE_OFFSET_DATA) {
          const at = Number(body.readBigUInt64BE(0)) - p.offset;
          if (at < 0 || at + len - 8 > p.length) throw new Error('read reply outside the request');
          p.data ??= Buffer.alloc(p.length);
          body.copy(p.data, at, 8);
        } else if (type === REPLY_TYPE_OFFSET_HOLE) {
          p.data ??= Buffer.alloc(p.length); // zero-filled already
        } else if (type === REPLY_TYPE_BLOCK_STATUS) {
          if (body.readUInt32BE(0) === this.metaId) {
            let off = p.offset;
            for (let i = 4; i + 8 <= body.length; i += 8) {
              const length = body.readUInt32BE(i);
              p.status.push({ offset: off, length, flags: body.readUInt32BE(i + 4) });
              off += length;
            }
          }
        } else if (type === REPLY_TYPE_ERROR || type === REPLY_TYPE_ERROR_OFFSET) {
          const code = body.readUInt32BE(0);
          const mlen = body.readUInt16BE(4);
          p.error = body.subarray(6, 6 + mlen).toString('utf8') || `error ${code}`;
        } else if (type !== REPLY_TYPE_NONE && !(type & 0x8000)) {
          // unknown non-error chunk: ignored, as the protocol asks
        }
        if (flags & REPLY_FLAG_DONE) this.settle(cookie, p);
      }
    } catch (err) {
      this.dead = err instanceof Error ? err : new Error(String(err));
      for (const [, p] of this.pending) p.reject(this.dead);
      this.pending.clear();
    }
  }

  private take(cookie: bigint): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw new Error(`reply for an unknown request ${cookie}`);
    return p;
  }

  private settle(cookie: bigint, p: Pending): void {
    this.pending.delete(cookie);
    if (p.error) p.reject(new Error(p.error));
    else p.resolve();
  }

  private send(
    kind: Pending['kind'],
    type: number,
    flags: number,
    offset: number,
    length: number,
  ): Promise<Pending> {
    if (this.dead) return Promise.reject(this.dead);
    const cookie = this.cookie++;
    return new Promise((resolve, reject) => {
      const p: Pending = { kind, offset, length, status: [], resolve: () => resolve(p), reject };
      this.pending.set(cookie, p);
      const h = Buffer.alloc(28);
      h.writeUInt32BE(REQUEST_MAGIC, 0);
      h.writeUInt16BE(flags, 4);
      h.writeUInt16BE(type, 6);
      h.writeBigUInt64BE(cookie, 8);
      h.writeBigUInt64BE(BigInt(offset), 16);
      h.writeUInt32BE(length, 24);
      this.sock.write(h);
    });
  }

  /** `length` bytes at `offset` (at most 32 MiB). */
  async read(offset: number, length: number): Promise<Buffer> {
    const p = await this.send('read', CMD_READ, 0, offset, length);
    return p.data ?? Buffer.alloc(length);
  }

  /** The allocation of [offset, offset + length): one or more extents from the start (maybe not all of it). */
  async blockStatus(offset: number, length: number): Promise<BlockStatus[]> {
    if (this.metaId === undefined) return [{ offset, length, flags: 0 }];
    const p = await this.send('status', CMD_BLOCK_STATUS, 0, offset, length);
    return p.status;
  }

  close(): Promise<void> {
    if (!this.dead) {
      const h = Buffer.alloc(28);
      h.writeUInt32BE(REQUEST_MAGIC, 0);
      h.writeUInt16BE(CMD_DISC, 6);
      this.sock.end(h);
    }
    this.sock.destroy();
    return Promise.resolve();
  }
}
