/**
 * A small, real HTTP(S) file server for tests, benchmarks and the demo (also reused by the cluster harness
 * to serve test images to pods on the node address).
 *
 *   const srv = await startFileServer({ root: dir, host: '127.0.0.1' });
 *   srv.url                       // 'http://127.0.0.1:41234' (no trailing slash); files are at `${srv.url}/<name>`
 *   srv.requests                  // every request seen: method, path, headers, range (for assertions)
 *   await srv.close();
 *
 * Options (all optional except root):
 *   host                 address to listen on (default 127.0.0.1; use the node address for pods)
 *   port                 default 0 (any free port)
 *   tls                  { cert, key } PEM strings: serve HTTPS (see test/support/tls.ts for a throwaway CA)
 *   basicAuth            { user, password }: 401 with WWW-Authenticate unless the request carries them
 *   requireHeaders       { name: value }: 403 unless every header is present with that value
 *   ranges               default true: `Accept-Ranges: bytes` and 206 answers; false: no Accept-Ranges, ranges ignored (200 full body)
 *   head                 default true; false answers HEAD with 405 (like some object stores)
 *   contentLength        default true; false sends the body chunked, with no Content-Length
 *   contentType          default application/octet-stream
 *   redirects            { '/from': '/to' or 'http://other/to' }: 302 to the location (checked before auth, as a CDN would)
 *   throttleBytesPerSec  pace every body to about this rate
 *   linkBytesPerSec      one link for the whole server: all bodies together get about this rate (a realistic
 *                        network for benchmarks: parallel requests share it)
 *   latencyMs            wait this long before answering each request (a round trip)
 *   dropAfterBytes       destroy the socket after this many body bytes of each GET (a connection dropped mid-body)
 *   dropTimes            with dropAfterBytes: drop only the first N GETs, then serve normally (default: always)
 *   onDrop               called just before a connection is cut (a test can change the file in between)
 *   etag                 send a strong ETag (from size and mtime, like nginx); If-Range is honoured either way
 *                        (against the ETag or the Last-Modified date: a mismatch serves the whole file with 200)
 *   valve                a Valve (below): bodies pass only as far as the test has opened it, so "mid-import" is a
 *                        byte count the test chose, not a moment it hoped for (one valve may serve several servers)
 *
 * `srv.requests[i].bytes` counts the body bytes written for each request, `srv.bytesSent()` all of them.
 *
 * Paths are resolved inside root; `..` and absolute paths are refused (404). Only regular files are served.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FileServerOptions {
  root: string;
  host?: string;
  port?: number;
  tls?: { cert: string; key: string };
  basicAuth?: { user: string; password: string };
  requireHeaders?: Record<string, string>;
  ranges?: boolean;
  head?: boolean;
  contentLength?: boolean;
  contentType?: string;
  redirects?: Record<string, string>;
  throttleBytesPerSec?: number;
  linkBytesPerSec?: number;
  latencyMs?: number;
  dropAfterBytes?: number;
  dropTimes?: number;
  onDrop?: () => void;
  etag?: boolean;
  valve?: Valve;
}

export interface RequestRecord {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  /** Body bytes written for this request. */
  bytes: number;
}

export interface FileServer {
  url: string;
  host: string;
  port: number;
  requests: RequestRecord[];
  /** Body bytes written for all requests so far. */
  bytesSent(): number;
  close(): Promise<void>;
}

const BURST_MS = 10;

/** A link of `rate` bytes/s: every byte sent over it takes its slot in time after the bytes sent before. */
class Link {
  readonly rate: number;
  private free = 0;
  constructor(rate: number) {
    this.rate = rate;
  }
  /** When a piece of `n` bytes handed over now has gone through. */
  send(n: number): number {
    this.free = Math.max(this.free, Date.now()) + (n / this.rate) * 1000;
    return this.free;
  }
}

class Throttle extends Transform {
  private readonly link: Link;
  constructor(link: Link) {
    super();
    this.link = link;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const pieces: Buffer[] = [];
    const step = Math.max(1024, Math.floor(this.link.rate / 20));
    for (let o = 0; o < chunk.length; o += step) pieces.push(chunk.subarray(o, o + step));
    const next = (): void => {
      const piece = pieces.shift();
      if (!piece) return cb();
      // Timers are coarse (about 1 ms): a piece goes out as soon as the link is less than BURST_MS ahead of now, so
      // small chunks are not held back a timer tick each and the link stays busy at its rate.
      const wait = this.link.send(piece.length) - Date.now() - BURST_MS;
      const go = (): void => {
        this.push(piece);
        next();
      };
      if (wait <= 0) go();
      else setTimeout(go, wait);
    };
    next();
  }
}

/** Stops the body after `limit` bytes and destroys the connection: a server that dies mid-body. */
class Dropper extends Transform {
  private left: number;
  private readonly onDrop: () => void;
  constructor(limit: number, onDrop: () => void) {
    super();
    this.left = limit;
    this.onDrop = onDrop;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (chunk.length < this.left) {
      this.left -= chunk.length;
      return cb(null, chunk);
    }
    this.push(chunk.subarray(0, this.left));
    this.left = 0;
    // Never call cb again: the body stalls (it must not end cleanly), and after a moment for the pushed bytes to
    // reach the socket, the connection is cut.
    setTimeout(this.onDrop, 20);
  }
}

/**
 * A gate on the body bytes of one or more servers, counted together: bytes pass until `limit` have passed in all,
 * then the bodies stall (the connections stay open) until the test opens it further.
 *
 *   const valve = new Valve(1 << 20);          // the first MiB, then hold
 *   await valve.reached(1 << 20);              // the client is mid-body now
 *   valve.open();                              // the rest (or open(n): up to n bytes in all)
 */
export class Valve {
  private limit: number;
  private count = 0;
  private blocked: (() => void)[] = [];
  private watchers: { at: number; done: () => void }[] = [];
  constructor(limit = Infinity) {
    this.limit = limit;
  }
  /** Bytes that have passed, over all bodies. */
  get passed(): number {
    return this.count;
  }
  /** Lets bodies pass until `limit` bytes have passed in all (default: everything). */
  open(limit = Infinity): void {
    this.limit = limit;
    for (const w of this.blocked.splice(0)) w();
  }
  /** Resolves once `n` bytes have passed. */
  reached(n: number): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise((done) => this.watchers.push({ at: n, done }));
  }
  /** A stream stage for one body. */
  stage(): Transform {
    return new ValveStage(this);
  }
  /** Takes up to `want` bytes if the valve is open; otherwise waits for `open` and answers 0. */
  take(want: number, wake: () => void): number {
    const room = this.limit - this.count;
    if (room <= 0) {
      this.blocked.push(wake);
      return 0;
    }
    const n = Math.min(want, room);
    this.count += n;
    this.notify();
    return n;
  }
  private notify(): void {
    const ready = this.watchers.filter((w) => this.count >= w.at);
    this.watchers = this.watchers.filter((w) => this.count < w.at);
    for (const w of ready) w.done();
  }
}

class ValveStage extends Transform {
  private readonly valve: Valve;
  constructor(valve: Valve) {
    super();
    this.valve = valve;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const step = (rest: Buffer): void => {
      if (rest.length === 0) return cb();
      const n = this.valve.take(rest.length, () => step(rest));
      if (n === 0) return;
      this.push(rest.subarray(0, n));
      step(rest.subarray(n));
    };
    step(chunk);
  }
}

function parseRange(h: string | undefined, size: number): { start: number; end: number } | 'bad' | undefined {
  if (!h) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m) return undefined; // multi-range and other forms: serve the whole body
  const [, a = '', b = ''] = m;
  let start: number;
  let end: number;
  if (a === '') {
    if (b === '') return 'bad';
    start = Math.max(0, size - Number(b));
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || start > end) return 'bad';
  return { start, end };
}

export async function startFileServer(opts: FileServerOptions): Promise<FileServer> {
  const root = path.resolve(opts.root);
  const host = opts.host ?? '127.0.0.1';
  const ranges = opts.ranges ?? true;
  const link = opts.linkBytesPerSec ? new Link(opts.linkBytesPerSec) : undefined;
  const requests: RequestRecord[] = [];
  let drops = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const rec: RequestRecord = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      status: 0,
      bytes: 0,
    };
    requests.push(rec);
    const send = (status: number, headers: Record<string, string> = {}, body = ''): void => {
      rec.status = status;
      res.writeHead(status, headers);
      res.end(body);
    };
    serve(req, res, rec, send).catch(() => {
      if (!res.headersSent) send(500);
      else res.destroy();
    });
  };

  const serve = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rec: RequestRecord,
    send: (status: number, headers?: Record<string, string>, body?: string) => void,
  ): Promise<void> => {
    if (opts.latencyMs) await sleep(opts.latencyMs);
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const target = opts.redirects?.[urlPath];
    if (target !== undefined) return send(302, { location: target });
    if (opts.basicAuth) {
      const want =
        'Basic ' + Buffer.from(`${opts.basicAuth.user}:${opts.basicAuth.password}`).toString('base64');
      if (req.headers.authorization !== want) return send(401, { 'www-authenticate': 'Basic realm="test"' });
    }
    for (const [k, v] of Object.entries(opts.requireHeaders ?? {})) {
      if (req.headers[k.toLowerCase()] !== v) return send(403, {}, `missing header ${k}\n`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405);
    if (req.method === 'HEAD' && opts.head === false) return send(405);
    const file = path.resolve(root, '.' + path.posix.normalize(urlPath));
    if (file !== root && !file.startsWith(root + path.sep)) return send(404);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return send(404, {}, 'not found\n');
    const size = st.size;
    const headers: Record<string, string> = {
      'content-type': opts.contentType ?? 'application/octet-stream',
      'last-modified': st.mtime.toUTCString(),
    };
    if (opts.etag) headers.etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    if (ranges) headers['accept-ranges'] = 'bytes';
    // If-Range: the range only if the file is still the one the client names (RFC 9110 §13.1.5).
    const ifRange = req.headers['if-range'];
    const rangeStill =
      ifRange === undefined || ifRange === headers.etag || ifRange === headers['last-modified'];
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (ranges && rangeStill) {
      const r = parseRange(req.headers.range, size);
      if (r === 'bad') return send(416, { 'content-range': `bytes */${size}` });
      if (r) {
        ({ start, end } = r);
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${size}`;
      }
    }
    const length = Math.max(0, end - start + 1);
    if (opts.contentLength !== false) headers['content-length'] = String(length);
    rec.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const stages: (NodeJS.ReadableStream | Transform)[] = [createReadStream(file, { start, end })];
    if (opts.dropAfterBytes !== undefined && (opts.dropTimes === undefined || drops < opts.dropTimes)) {
      drops++;
      stages.push(
        new Dropper(opts.dropAfterBytes, () => {
          opts.onDrop?.();
          res.socket?.destroy();
        }),
      );
    }
    if (opts.valve) stages.push(opts.valve.stage());
    if (opts.throttleBytesPerSec) stages.push(new Throttle(new Link(opts.throttleBytesPerSec)));
    if (link) stages.push(new Throttle(link));
    // Counted last: what went to the socket, after any pacing.
    stages.push(
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          rec.bytes += chunk.length;
          cb(null, chunk);
        },
      }),
    );
    const pipe = pipeline as unknown as (...streams: unknown[]) => Promise<void>;
    await pipe(...stages, res).catch(() => res.destroy());
  };

  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler)
    : http.createServer(handler);
  const sockets = new Set<import('node:net').Socket>();
  server.on(opts.tls ? 'secureConnection' : 'connection', (s: import('node:net').Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${urlHost}:${port}`,
    host,
    port,
    requests,
    bytesSent: () => requests.reduce((n, r) => n + r.bytes, 0),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
