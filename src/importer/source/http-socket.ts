/**
 * The whole-body download of a plain-HTTP image on a bare socket: one GET, and when the answer is a plain
 * `200` with a Content-Length (no chunking, no content coding), the body is read with the socket's `onread` into one
 * reused buffer and handed on in 1 MiB chunks. Receiving 512 MiB this way costs about 0.03 s of CPU against 0.3 s
 * through undici's body stream (64 KiB buffers, each its own allocation), which on 2 cores is time stolen from the
 * decompressor (docs/adr/0005-extent-copy.md has the numbers).
 *
 * Anything else (TLS, a proxy, a redirect, an error status, chunked bodies, a socket that cannot connect) answers
 * `undefined` and the caller uses undici, which handles all of it with the same messages as before.
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../errors.ts';

const CHUNK = 1 << 20;
const READ_BUFFER = 256 << 10;
const MAX_HEADER = 64 << 10;

export interface SocketGetOptions {
  url: string;
  headers: Record<string, string>;
  /** For messages: the URL without credentials. */
  description: string;
  idleTimeoutMs: number;
}

/** The body of `GET url` as a stream, or undefined when this response is not a plain 200 with a length. */
export function socketGet(o: SocketGetOptions): Promise<Readable | undefined> {
  const u = new URL(o.url);
  if (u.protocol !== 'http:') return Promise.resolve(undefined);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 80);
  const lines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `host: ${u.host}`];
  for (const [k, v] of Object.entries(o.headers)) {
    if (/[\r\n]/.test(k + v)) return Promise.resolve(undefined); // never inject; undici refuses these itself
    lines.push(`${k}: ${v}`);
  }
  lines.push('connection: close', '', '');

  return new Promise((resolve) => {
    let settled = false;
    let header = Buffer.alloc(0);
    let expected = 0;
    let got = 0;
    // Received bytes are copied into `cur`; [start, fill) is not handed on yet. A piece goes out when `cur` is full,
    // or at once when the reader is waiting for data (so the first bytes are not held back for a whole chunk).
    let cur = Buffer.allocUnsafe(CHUNK);
    let start = 0;
    let fill = 0;
    let waiting = false;
    // Returning false from onread stops the handle's reads without marking the stream paused: our own flag.
    let paused = false;
    let out: Readable | undefined;

    const giveUp = (): void => {
      sock.destroy();
      if (!settled) {
        settled = true;
        resolve(undefined);
      }
    };
    const fail = (err: ImportError): void => {
      sock.destroy();
      if (out) out.destroy(err);
      else giveUp();
    };
    const flush = (): boolean => {
      if (fill === start || !out) return true;
      const piece = cur.subarray(start, fill);
      if (fill === CHUNK) {
        cur = Buffer.allocUnsafe(CHUNK);
        fill = 0;
      }
      start = fill;
      waiting = false;
      return out.push(piece);
    };
    const body = (b: Buffer): boolean => {
      let rest = b.subarray(0, Math.max(0, expected - got));
      got += rest.length;
      let more = true;
      while (rest.length > 0) {
        const k = Math.min(rest.length, CHUNK - fill);
        rest.copy(cur, fill, 0, k);
        fill += k;
        rest = rest.subarray(k);
        if (fill === CHUNK) more = flush() && more;
      }
      if (waiting) more = flush() && more;
      if (got >= expected) {
        flush();
        out?.push(null);
        sock.destroy();
        return false;
      }
      if (!more) {
        paused = true;
        sock.setTimeout(0); // paused by back-pressure: a slow target is not an idle server
      }
      return more;
    };
    const onHeader = (b: Buffer): boolean => {
      header = Buffer.concat([header, b]);
      const end = header.indexOf('\r\n\r\n');
      if (end < 0) {
        if (header.length > MAX_HEADER) giveUp();
        return true;
      }
      const text = header.subarray(0, end).toString('latin1').split('\r\n');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text[0] ?? '')?.[1];
      const h = new Map<string, string>();
      for (const line of text.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) h.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
      const cl = h.get('content-length');
      if (
        status !== '200' ||
        cl === undefined ||
        !/^\d+$/.test(cl) ||
        h.has('transfer-encoding') ||
        (h.get('content-encoding') ?? 'identity') !== 'identity'
      ) {
        giveUp();
        return false;
      }
      expected = Number(cl);
      out = new Readable({
        highWaterMark: 4 * CHUNK,
        read: () => {
          waiting = true;
          if (fill > start) flush();
          if (!paused) return;
          paused = false;
          sock.setTimeout(o.idleTimeoutMs); // the watchdog counts only while we want data
          sock.resume();
        },
        destroy: (err, cb) => {
          sock.destroy();
          cb(err);
        },
      });
      settled = true;
      resolve(out);
      const rest = header.subarray(end + 4);
      header = Buffer.alloc(0);
      if (expected === 0) {
        out.push(null);
        sock.destroy();
        return false;
      }
      return body(rest);
    };

    const sock = net.connect({
      host,
      port,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER),
        callback: (n: number, buf: Uint8Array) => {
          // The buffer is reused by the next read: body() copies what it keeps.
          const b = Buffer.from(buf.buffer, buf.byteOffset, n);
          return out ? body(b) : onHeader(b);
        },
      },
    });
    sock.setNoDelay(true);
    sock.setTimeout(o.idleTimeoutMs);
    sock.on('timeout', () =>
      fail(
        new ImportError(
          ErrorKind.Transfer,
          `no data from ${o.description} for ${Math.round(o.idleTimeoutMs / 1000)}s; giving up`,
        ),
      ),
    );
    sock.on('connect', () => sock.write(lines.join('\r\n')));
    sock.on('error', (err) =>
      out
        ? fail(
            new ImportError(
              ErrorKind.Transfer,
              `the connection to ${o.description} broke after ${got} of ${expected} bytes: ${err.message}`,
              { cause: err },
            ),
          )
        : giveUp(),
    );
    sock.on('close', () => {
      if (!out) return giveUp();
      if (got < expected && !out.destroyed)
        out.destroy(
          new ImportError(
            ErrorKind.Transfer,
            `the connection to ${o.description} ended after ${got} of ${expected} bytes`,
          ),
        );
    });
  });
}
