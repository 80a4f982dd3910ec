/**
 * Plain-HTTP requests on a bare socket: one GET per socket (`connection: close`). When the answer to a body request
 * is a plain `200` or `206` with a Content-Length (no chunking, no content coding), the socket reads (`onread`)
 * straight into 1 MiB slabs whose regions are handed on as views: no copy and a few large allocations, where undici's
 * body stream allocates a 64 KiB buffer per read and parses every byte. Receiving 512 MiB this way costs a tenth of
 * the CPU, which on 2 cores is time given back to the decompressor or qemu-img (docs/adr/0005-extent-copy.md).
 *
 * Every other status (redirects, errors) is answered here too, as a head without a body, so the caller (http.ts)
 * follows redirects and words errors the same way for both transports and a server sees one request per attempt.
 * `undefined` (the caller then asks undici) only for what this module does not do: TLS, a socket that cannot
 * connect, and a 2xx body that is chunked or content-coded (then undici asks again: the one case of two requests).
 */
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../errors.ts';
import { RANGE_SLACK } from './source.ts';

/**
 * Memory the socket reads into, one region after the other; handed on as views (no copy). A slab lives as long as
 * any of its views, and every stage downstream holds a few: 1 MiB slabs keep that pinned memory small (measured:
 * about 12 MiB less live memory than 4 MiB slabs on a raw.xz import).
 */
const SLAB = 1 << 20;
/** Largest single read. */
const READ = 256 << 10;
/** The head of an answer must fit here; with READ it is the room a range's `into` buffer has (RANGE_SLACK). */
const MAX_HEADER = RANGE_SLACK - READ;

export interface SocketGetOptions {
  url: string;
  headers: Record<string, string>;
  /** For messages: the URL without credentials. */
  description: string;
  idleTimeoutMs: number;
  /**
   * Ask for exactly these bytes (`range` header added): then only a `206` for exactly them comes with a body, read
   * into one allocation (`into`, when it is large enough: the caller's reused memory); any other answer is a head
   * without a body.
   */
  range?: { offset: number; length: number; into?: Buffer };
  /**
   * Read the body of an error answer (not 2xx, not a redirect) too, when it has a Content-Length of at most
   * ERROR_BODY bytes: an object store names the error there (S3's `<Code>NoSuchKey</Code>`).
   */
  errorBody?: boolean;
  /**
   * The body is the stored bytes whatever its Content-Encoding says: for an object store that header is the object's
   * metadata (S3 serves an object put with `aws-chunked` or `gzip` verbatim), not a coding applied on the wire.
   */
  verbatim?: boolean;
}

/** An answer read on the socket: the head, and for a plain 2xx a body. */
export interface SocketAnswer extends ResponseHead {
  body?: Readable;
  /** With `errorBody`: the error answer's body (latin1), when it came whole. */
  errorText?: string;
}

/** The largest error body `errorBody` reads. */
const ERROR_BODY = 64 << 10;

/** What the user hears when a server sends nothing for `ms` (both HTTP paths). */
export function idleMessage(description: string, ms: number): string {
  const secs = ms < 10_000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));
  return `no data from ${description} for ${secs}s; giving up`;
}

function idleError(o: SocketGetOptions): ImportError {
  return new ImportError(ErrorKind.Transfer, idleMessage(o.description, o.idleTimeoutMs));
}

/** Where to connect and what to send for `GET url` with `headers`; undefined when this module does not do it. */
function plainRequest(
  url: string,
  headers: Record<string, string>,
): { host: string; port: number; request: string } | undefined {
  const u = new URL(url);
  if (u.protocol !== 'http:') return undefined;
  const lines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `host: ${u.host}`];
  for (const [k, v] of Object.entries(headers)) {
    if (/[\r\n]/.test(k + v)) return undefined; // never inject; undici refuses these itself
    lines.push(`${k}: ${v}`);
  }
  lines.push('connection: close', '', '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 80),
    request: lines.join('\r\n'),
  };
}

export interface ResponseHead {
  status: number;
  /** The reason phrase of the status line (`Not Found`), or the standard one when the server sent none. */
  statusText: string;
  headers: Map<string, string>;
  /** Bytes of the head, up to and including the blank line. */
  length: number;
}

/** The status line and headers at the start of `buf`, or undefined while they are incomplete. */
function parseHead(buf: Buffer): ResponseHead | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const text = buf.subarray(0, end).toString('latin1').split('\r\n');
  const line = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(text[0] ?? '');
  const status = Number(line?.[1] ?? 0);
  const statusText = line?.[2]?.trim() || (STATUS_CODES[status] ?? '');
  const headers = new Map<string, string>();
  for (const line of text.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { status, statusText, headers, length: end + 4 };
}

/**
 * `GET url` on a bare socket: the answer's head, with the body as a stream when it is a plain 200/206 with a length
 * (with `range`: a 206 for exactly those bytes); undefined when undici must do it (see the top of this file).
 */
export function socketGet(o: SocketGetOptions): Promise<SocketAnswer | undefined> {
  const r = o.range;
  const want = r ? `bytes=${r.offset}-${r.offset + r.length - 1}` : undefined;
  const req = plainRequest(o.url, want ? { ...o.headers, range: want } : o.headers);
  if (!req) return Promise.resolve(undefined);
  const { host, port } = req;

  return new Promise((resolve, reject) => {
    let settled = false;
    let expected = 0;
    let got = 0;
    // The socket reads straight into `cur` at `fill`; [start, fill) is received but not handed on yet. A piece goes
    // out when the slab is nearly full, or at once when the reader is waiting for data (so the first bytes are not
    // held back). A new slab is taken when the old one cannot hold another read: pieces stay valid views.
    // A range's answer fits one allocation: its head, then exactly `length` bytes.
    const one = r && MAX_HEADER + r.length + READ;
    let cur = one
      ? r.into && r.into.length >= one
        ? r.into
        : Buffer.allocUnsafe(one)
      : Buffer.allocUnsafe(SLAB);
    let start = 0;
    let fill = 0;
    let waiting = false;
    // Returning false from onread stops the handle's reads without marking the stream paused: our own flag.
    let paused = false;
    let out: Readable | undefined;
    /** An error answer whose body (`expected` bytes after the head) is being read (`errorBody`). */
    let errHead: ResponseHead | undefined;

    const giveUp = (): void => {
      sock.destroy();
      if (!settled) {
        settled = true;
        resolve(undefined);
      }
    };
    /** An answer that comes without a body here (a redirect, an error, a range we did not ask for). */
    const headOnly = (head: ResponseHead): void => {
      sock.destroy();
      settled = true;
      resolve(head);
    };
    const fail = (err: ImportError): void => {
      sock.destroy();
      if (out) out.destroy(err);
      else if (!settled) {
        settled = true;
        reject(err);
      }
    };
    const flush = (): boolean => {
      if (fill === start || !out) return true;
      const piece = cur.subarray(start, fill);
      start = fill;
      waiting = false;
      return out.push(piece);
    };
    /** More of an error answer's body arrived: done once it is all there. */
    const errorRest = (): boolean => {
      const h = errHead!;
      if (fill - h.length < expected) return true;
      sock.destroy();
      settled = true;
      resolve({ ...h, errorText: cur.toString('latin1', h.length, h.length + expected) });
      return false;
    };
    /** `n` more body bytes arrived at [fill - n, fill). */
    const body = (n: number): boolean => {
      const extra = Math.max(0, got + n - expected); // a server that sends more than it announced: ignored
      fill -= extra;
      got += n - extra;
      let more = true;
      if (cur.length - fill < READ && got < expected) {
        more = flush();
        cur = Buffer.allocUnsafe(SLAB);
        start = fill = 0;
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
    /** The response head arrives at the start of the first slab. */
    const onHeader = (): boolean => {
      const head = parseHead(cur.subarray(0, fill));
      if (!head) {
        if (fill > MAX_HEADER) giveUp();
        return true;
      }
      const h = head.headers;
      const cl = h.get('content-length');
      if (head.status < 200 || head.status > 299) {
        if (
          o.errorBody &&
          head.status >= 400 &&
          cl !== undefined &&
          /^\d+$/.test(cl) &&
          Number(cl) <= ERROR_BODY &&
          !h.has('transfer-encoding')
        ) {
          errHead = head;
          expected = Number(cl);
          return errorRest();
        }
        headOnly(head);
        return false;
      }
      if (
        r &&
        (head.status !== 206 ||
          (h.get('content-range') ?? '').split('/')[0]?.trim() !== want?.replace('=', ' ') ||
          cl !== String(r.length))
      ) {
        headOnly(head);
        return false;
      }
      if (
        (head.status !== 200 && head.status !== 206) ||
        cl === undefined ||
        !/^\d+$/.test(cl) ||
        h.has('transfer-encoding') ||
        (!o.verbatim && (h.get('content-encoding') ?? 'identity') !== 'identity')
      ) {
        giveUp();
        return false;
      }
      expected = Number(cl);
      out = new Readable({
        highWaterMark: SLAB,
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
      resolve({ ...head, body: out });
      start = head.length;
      if (expected === 0) {
        out.push(null);
        sock.destroy();
        return false;
      }
      return body(fill - start);
    };

    const sock = net.connect({
      host,
      port,
      onread: {
        // Called before every read: the next free region of the slab.
        buffer: () => cur.subarray(fill, fill + READ),
        callback: (n: number) => {
          fill += n;
          return errHead ? errorRest() : out ? body(n) : onHeader();
        },
      },
    });
    sock.setNoDelay(true);
    sock.setTimeout(o.idleTimeoutMs);
    sock.on('timeout', () => fail(idleError(o)));
    sock.on('connect', () => sock.write(req.request));
    sock.on('error', (err) =>
      out
        ? fail(
            new ImportError(
              ErrorKind.Transfer,
              `the connection to ${o.description} broke after ${got} of ${expected} bytes: ${err.message}`,
              { cause: err },
            ),
          )
        : errHead
          ? headOnly(errHead)
          : giveUp(),
    );
    sock.on('close', () => {
      if (errHead && !settled) return headOnly(errHead); // the error's body did not come whole: its head says enough
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
