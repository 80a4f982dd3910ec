/**
 * A small read-only NBD server on a unix socket, so that qemu-img reads a remote image by range (the streaming
 * path: no scratch copy). It replaces nbdkit's curl plugin, which on nbdkit 1.32 serves one request at a time:
 * here every NBD read becomes its own ranged GET through the HTTP source's own undici dispatcher (same auth, CAs,
 * insecure flag, headers, redirects, proxy and idle watchdog), so `qemu-img convert -m 16 -W` gets parallel reads.
 * See docs/adr/0003-nbd-server.md.
 *
 * Protocol subset (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md): fixed newstyle handshake,
 * NBD_OPT_EXPORT_NAME / NBD_OPT_GO / NBD_OPT_INFO / NBD_OPT_LIST / NBD_OPT_ABORT / NBD_OPT_STRUCTURED_REPLY (reads
 * answered by one data or error chunk; no metadata contexts), everything else unsupported; then NBD_CMD_READ,
 * NBD_CMD_FLUSH (no-op) and NBD_CMD_DISC; write-type commands get EPERM.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ImportError } from '../errors.ts';
import {
  IHAVEOPT,
  OPT_REPLY_MAGIC,
  REQUEST_MAGIC,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  OPT_EXPORT_NAME,
  OPT_ABORT,
  OPT_LIST,
  OPT_INFO,
  OPT_GO,
  OPT_STRUCTURED_REPLY,
  REP_ACK,
  REP_SERVER,
  REP_INFO,
  REP_ERR_UNSUP,
  CMD_READ,
  CMD_WRITE,
  CMD_DISC,
  CMD_FLUSH,
  CMD_TRIM,
  CMD_WRITE_ZEROES,
  REPLY_FLAG_DONE,
  REPLY_TYPE_OFFSET_DATA,
  REPLY_TYPE_ERROR,
} from './nbd-protocol.ts';
import { retrying, type RangeReader, type RetryOptions } from './range.ts';

export type { RangeReader } from './range.ts';

export interface NbdServer {
  socket: string;
  /** The reader it serves from, retries included (for other readers of the same image: the extent copy). */
  reader: RangeReader;
  /** The last read that failed after every retry (what to tell the user when qemu-img reports an I/O error). */
  lastError(): ImportError | undefined;
  stop(): Promise<void>;
}

export type NbdServerOptions = RetryOptions;

const TFLAG_HAS_FLAGS = 1;
const TFLAG_READ_ONLY = 2;
const TFLAGS = TFLAG_HAS_FLAGS | TFLAG_READ_ONLY;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
/** Largest read served (qemu's own limit is 32 MiB); bounds memory at 16 requests in flight. */
const MAX_READ = 32 << 20;
/** Bytes an option may carry (names are short); anything longer is a broken client. */
const MAX_OPTION = 64 << 10;

export async function startNbdServer(reader: RangeReader, opts: NbdServerOptions = {}): Promise<NbdServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cdi-nbd-'));
  const socket = path.join(dir, 'nbd.sock');
  const ranged = retrying(reader, opts);
  const readWithRetry = (offset: number, length: number): Promise<Buffer[]> => ranged.read(offset, length);
  const conns = new Set<net.Socket>();

  const server = net.createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => undefined);
    serve(sock, reader.size, readWithRetry);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    socket,
    reader: ranged,
    lastError: () => ranged.lastError(),
    stop: async () => {
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function serve(
  sock: net.Socket,
  size: number,
  read: (offset: number, length: number) => Promise<Buffer[]>,
): void {
  let buf: Buffer = Buffer.alloc(0);
  let state: 'clientFlags' | 'options' | 'transmission' | 'closed' = 'clientFlags';
  let noZeroes = false;
  // Structured replies carry the length of the data: qemu 7.2 reads a simple reply into its whole 512-byte-rounded
  // buffer, so without them a read of the unaligned tail of an export would never complete.
  let structured = false;
  let discarding = 0; // payload bytes of a refused write still to skip
  let inflight = 0;
  let disconnecting = false;

  const hello = Buffer.alloc(18);
  hello.write('NBDMAGIC', 0, 'latin1');
  IHAVEOPT.copy(hello, 8);
  hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  sock.write(hello);

  const optReply = (opt: number, type: number, data: Buffer = Buffer.alloc(0)): void => {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(type, 12);
    h.writeUInt32BE(data.length, 16);
    sock.write(data.length ? Buffer.concat([h, data]) : h);
  };
  const exportInfo = (): Buffer => {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(0, 0); // NBD_INFO_EXPORT
    b.writeBigUInt64BE(BigInt(size), 2);
    b.writeUInt16BE(TFLAGS, 10);
    return b;
  };
  const blockSizeInfo = (): Buffer => {
    const b = Buffer.alloc(14);
    b.writeUInt16BE(3, 0); // NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum
    b.writeUInt32BE(1, 2);
    b.writeUInt32BE(4096, 6);
    b.writeUInt32BE(MAX_READ, 10);
    return b;
  };
  const reply = (cookie: Buffer, error: number, data?: Buffer[], offset = 0): void => {
    if (state === 'closed' || sock.destroyed) return;
    if (structured && (data !== undefined || error !== 0)) {
      // A read: one NBD_REPLY_TYPE_OFFSET_DATA chunk, or one NBD_REPLY_TYPE_ERROR chunk.
      const len = (data ?? []).reduce((n, d) => n + d.length, 0);
      const h = Buffer.alloc(20 + (data ? 8 : 6));
      h.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
      h.writeUInt16BE(REPLY_FLAG_DONE, 4);
      h.writeUInt16BE(data ? REPLY_TYPE_OFFSET_DATA : REPLY_TYPE_ERROR, 6);
      cookie.copy(h, 8);
      if (data) {
        h.writeUInt32BE(8 + len, 16);
        h.writeBigUInt64BE(BigInt(offset), 20);
      } else {
        h.writeUInt32BE(6, 16);
        h.writeUInt32BE(error, 20);
        h.writeUInt16BE(0, 24); // no message
      }
      sock.cork();
      sock.write(h);
      for (const d of data ?? []) sock.write(d);
      sock.uncork();
      return;
    }
    const h = Buffer.alloc(16);
    h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    cookie.copy(h, 8);
    sock.cork();
    sock.write(h);
    for (const d of data ?? []) sock.write(d);
    sock.uncork();
  };
  const close = (): void => {
    state = 'closed';
    sock.end();
  };

  const step = (): boolean => {
    if (state === 'clientFlags') {
      if (buf.length < 4) return false;
      const flags = buf.readUInt32BE(0);
      buf = buf.subarray(4);
      if ((flags & FLAG_FIXED_NEWSTYLE) === 0) {
        sock.destroy();
        state = 'closed';
        return false;
      }
      noZeroes = (flags & FLAG_NO_ZEROES) !== 0;
      state = 'options';
      return true;
    }
    if (state === 'options') {
      if (buf.length < 16) return false;
      if (!buf.subarray(0, 8).equals(IHAVEOPT)) {
        sock.destroy();
        state = 'closed';
        return false;
      }
      const opt = buf.readUInt32BE(8);
      const len = buf.readUInt32BE(12);
      if (len > MAX_OPTION) {
        sock.destroy();
        state = 'closed';
        return false;
      }
      if (buf.length < 16 + len) return false;
      buf = buf.subarray(16 + len);
      if (opt === OPT_EXPORT_NAME) {
        const b = Buffer.alloc(noZeroes ? 10 : 134);
        b.writeBigUInt64BE(BigInt(size), 0);
        b.writeUInt16BE(TFLAGS, 8);
        sock.write(b);
        state = 'transmission';
      } else if (opt === OPT_GO || opt === OPT_INFO) {
        // Block sizes down to 1 byte: without them qemu assumes 512-byte sectors and waits forever for the
        // rounded-up rest of a read at the end of an export whose size is not a multiple of 512.
        optReply(opt, REP_INFO, blockSizeInfo());
        optReply(opt, REP_INFO, exportInfo());
        optReply(opt, REP_ACK);
        if (opt === OPT_GO) state = 'transmission';
      } else if (opt === OPT_STRUCTURED_REPLY) {
        structured = true;
        optReply(opt, REP_ACK);
      } else if (opt === OPT_LIST) {
        optReply(opt, REP_SERVER, Buffer.alloc(4)); // one export, named ""
        optReply(opt, REP_ACK);
      } else if (opt === OPT_ABORT) {
        optReply(opt, REP_ACK);
        close();
        return false;
      } else {
        optReply(opt, REP_ERR_UNSUP);
      }
      return true;
    }
    if (state === 'transmission') {
      if (discarding > 0) {
        const n = Math.min(discarding, buf.length);
        discarding -= n;
        buf = buf.subarray(n);
        return buf.length > 0;
      }
      if (buf.length < 28) return false;
      if (buf.readUInt32BE(0) !== REQUEST_MAGIC) {
        sock.destroy();
        state = 'closed';
        return false;
      }
      const type = buf.readUInt16BE(6);
      const cookie = Buffer.from(buf.subarray(8, 16));
      const offset = Number(buf.readBigUInt64BE(16));
      const length = buf.readUInt32BE(24);
      buf = buf.subarray(28);
      if (type === CMD_READ) {
        if (length === 0 || length > MAX_READ || offset + length > size) {
          reply(cookie, EINVAL);
          return true;
        }
        inflight++;
        read(offset, length)
          .then(
            (data) => reply(cookie, 0, data, offset),
            () => reply(cookie, EIO),
          )
          .finally(() => {
            inflight--;
            if (disconnecting && inflight === 0) close();
          });
      } else if (type === CMD_DISC) {
        disconnecting = true;
        if (inflight === 0) close();
        return false;
      } else {
        if (type === CMD_WRITE) discarding = length;
        // Flush of a read-only export is a no-op; write, trim and write-zeroes are refused.
        reply(
          cookie,
          type === CMD_FLUSH
            ? 0
            : type === CMD_WRITE || type === CMD_TRIM || type === CMD_WRITE_ZEROES
              ? EPERM
              : EINVAL,
        );
      }
      return true;
    }
    return false;
  };

  sock.on('data', (d: Buffer) => {
    if (state === 'closed' || disconnecting) return;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (step()) {
      /* keep parsing */
    }
  });
}
