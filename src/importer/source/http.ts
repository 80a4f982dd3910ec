/**
 * HTTP(S) source on undici: extra CAs from a directory (every file in it, like upstream's certConfigMap),
 * insecure-skip-verify, extra headers, basic auth, redirects followed by hand so auth and headers are kept
 * (upstream does the same), HTTP(S)_PROXY/NO_PROXY through EnvHttpProxyAgent, and an idle watchdog
 * (the download fails when no byte arrives for `idleTimeoutMs`; upstream: 10 minutes).
 * Plain `http://` answers that need none of that (no proxy, a 200 or 206 with a length) are read on a bare socket
 * instead (http-socket.ts: a tenth of the CPU); every other answer, and every error message, comes from undici.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { ErrorKind, ImportError } from '../errors.ts';
import { idleMessage, socketGet, socketHead, type SocketGetOptions } from './http-socket.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export interface HttpSourceOptions {
  url: string;
  /** Directories whose files are all extra trusted CA certificates (PEM): the cert dir, the proxy CA dir. */
  caDir?: string | string[];
  insecureSkipVerify?: boolean;
  /** `Name: value` lines. */
  headers?: string[];
  user?: string;
  password?: string;
  idleTimeoutMs?: number;
  maxRedirects?: number;
  userAgent?: string;
}

const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'];
/** HTTP(S)_PROXY is set: requests go through undici's EnvHttpProxyAgent (which honours NO_PROXY). */
export const proxied = (): boolean => PROXY_VARS.some((v) => process.env[v]);

/**
 * What the answer to the one-byte ranged GET says about the source, or undefined for answers that need undici's
 * handling (redirects, errors).
 */
function probeInfo(status: number, header: (name: string) => string | undefined): SourceInfo | undefined {
  const ct = header('content-type');
  const typed = (i: SourceInfo): SourceInfo => (ct !== undefined ? { ...i, contentType: ct } : i);
  if (status === 206) {
    const m = /\/(\d+)\s*$/.exec(header('content-range') ?? '');
    return typed({ ranges: true, ...(m ? { size: Number(m[1]) } : {}) });
  }
  if (status === 200) {
    const cl = header('content-length');
    return typed({ ranges: false, ...(cl !== undefined ? { size: Number(cl) } : {}) });
  }
  if (status === 416) return typed({ ranges: false, size: 0 });
  return undefined;
}

export function parseHeader(line: string): [string, string] {
  const i = line.indexOf(':');
  if (i <= 0) throw new ImportError(ErrorKind.Invalid, `invalid header "${line}": use "Name: value"`);
  return [line.slice(0, i).trim(), line.slice(i + 1).trim()];
}

export async function readCaDir(dir: string): Promise<{ pems: string[]; files: string[] }> {
  const names = (
    await readdir(dir, { withFileTypes: true }).catch((err: Error) => {
      throw new ImportError(ErrorKind.Invalid, `cannot read the CA directory ${dir}: ${err.message}`);
    })
  )
    .filter((d) => !d.name.startsWith('.') && (d.isFile() || d.isSymbolicLink()))
    .map((d) => path.join(dir, d.name))
    .sort();
  const pems: string[] = [];
  const files: string[] = [];
  for (const f of names) {
    const text = await readFile(f, 'utf8').catch(() => '');
    if (text.includes('-----BEGIN CERTIFICATE-----')) {
      pems.push(text);
      files.push(f);
    }
  }
  return { pems, files };
}

/**
 * The undici dispatcher of the sources that speak HTTP through undici (http, registry): extra CAs from the
 * directories (besides the system's), TLS 1.2 at least, the idle watchdog, and HTTP(S)_PROXY/NO_PROXY through
 * EnvHttpProxyAgent (CDIConfig's importProxy reaches the pod as those variables).
 */
export async function undiciDispatcher(o: {
  caDirs: string[];
  insecureSkipVerify: boolean;
  idleMs: number;
}): Promise<Dispatcher> {
  const pems: string[] = [];
  for (const d of o.caDirs) pems.push(...(await readCaDir(d)).pems);
  const connect = {
    rejectUnauthorized: !o.insecureSkipVerify,
    minVersion: 'TLSv1.2' as const,
    ...(pems.length > 0 ? { ca: [...rootCertificates, ...pems] } : {}),
  };
  const common = { connect, bodyTimeout: o.idleMs, headersTimeout: o.idleMs };
  // Loaded on first use: plain-HTTP imports without a proxy never need it (http-socket.ts), and it takes ~40 ms.
  const { Agent, EnvHttpProxyAgent } = await import('undici');
  return proxied()
    ? new EnvHttpProxyAgent({ ...common, requestTls: connect, proxyTls: connect })
    : new Agent(common);
}

/**
 * The body as a stream whose errors (resets, idle timeouts) are one-line ImportErrors, and whose short end (fewer
 * bytes than `expected`) is an error too. `explain` may give its own error for a body error.
 */
export function guardBody(
  body: Readable,
  description: string,
  expected: number | undefined,
  explain: (err: Error) => ImportError | undefined = () => undefined,
): Readable {
  let got = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _e, cb) {
      got += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      if (expected !== undefined && got < expected)
        cb(
          new ImportError(
            ErrorKind.Transfer,
            `the connection to ${description} ended after ${got} of ${expected} bytes`,
          ),
        );
      else cb();
    },
  });
  body.on('error', (err) => {
    guard.destroy(
      explain(err) ??
        new ImportError(
          ErrorKind.Transfer,
          `the connection to ${description} broke after ${got}${expected !== undefined ? ` of ${expected}` : ''} bytes: ${err.message}`,
          { cause: err },
        ),
    );
  });
  guard.on('close', () => body.destroy());
  return Readable.prototype.pipe.call(body, guard) as Transform;
}

/** Every byte of a range's body, or an error that says how far it got (shared by the sources that read by range). */
export async function collectRange(
  body: Readable,
  description: string,
  want: string,
  length: number,
): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of body as AsyncIterable<Buffer>) {
      chunks.push(c);
      got += c.length;
    }
  } catch (err) {
    throw new ImportError(
      ErrorKind.Transfer,
      // The socket path's own error says the same thing ("ended after …"): do not repeat it.
      `the connection to ${description} broke after ${got} of ${length} bytes of range ${want}${err instanceof ImportError ? '' : `: ${(err as Error).message}`}`,
      { cause: err },
    );
  }
  if (got !== length)
    throw new ImportError(
      ErrorKind.Transfer,
      `range ${want} of ${description} returned ${got} bytes instead of ${length}`,
    );
  return chunks;
}

export class HttpSource implements ImportSource {
  readonly description: string;
  private readonly o: HttpSourceOptions;
  private dispatcher: Dispatcher | undefined;
  private finalUrl: string;
  private cached: SourceInfo | undefined;
  /** How the last open() reads the body: a bare socket (plain HTTP, http-socket.ts) or undici. */
  transport: 'socket' | 'undici' | undefined;
  private direct: Readable | undefined;

  constructor(o: HttpSourceOptions) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new ImportError(ErrorKind.Invalid, `invalid URL "${o.url}"`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new ImportError(
        ErrorKind.Invalid,
        `unsupported URL scheme "${u.protocol}" in ${o.url}: use http:// or https://`,
      );
    }
    this.o = o;
    this.finalUrl = u.toString();
    u.username = '';
    u.password = '';
    this.description = u.toString();
  }

  private async agent(): Promise<Dispatcher> {
    if (this.dispatcher) return this.dispatcher;
    const dirs =
      this.o.caDir === undefined ? [] : Array.isArray(this.o.caDir) ? this.o.caDir : [this.o.caDir];
    this.dispatcher = await undiciDispatcher({
      caDirs: dirs,
      insecureSkipVerify: this.o.insecureSkipVerify ?? false,
      idleMs: this.idleMs(),
    });
    return this.dispatcher;
  }

  /** A request on a bare socket (http-socket.ts), or undefined with a proxy configured (undici does those). */
  private bare(url: string, extra: Record<string, string> = {}): SocketGetOptions | undefined {
    if (proxied()) return undefined;
    return { url, headers: this.headers(extra), description: this.description, idleTimeoutMs: this.idleMs() };
  }

  private idleMs(): number {
    return this.o.idleTimeoutMs ?? 10 * 60 * 1000;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': this.o.userAgent ?? 'cdi-ts-importer', ...extra };
    for (const line of this.o.headers ?? []) {
      const [k, v] = parseHeader(line);
      h[k.toLowerCase()] = v;
    }
    const url = new URL(this.o.url);
    const user = this.o.user ?? (url.username ? decodeURIComponent(url.username) : undefined);
    const password = this.o.password ?? (url.password ? decodeURIComponent(url.password) : '');
    if (user !== undefined)
      h.authorization = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
    return h;
  }

  /** GET (following redirects, keeping auth and headers on every hop). */
  private async get(range?: string, from?: string): Promise<Dispatcher.ResponseData> {
    const dispatcher = await this.agent();
    const { request } = await import('undici');
    let url = from ?? this.plainUrl(this.o.url);
    const max = this.o.maxRedirects ?? 10;
    for (let hop = 0; ; hop++) {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: 'GET',
          headers: this.headers(range ? { range } : {}),
          dispatcher,
        });
      } catch (err) {
        throw this.networkError(err, url);
      }
      if ([301, 302, 303, 307, 308].includes(res.statusCode)) {
        const loc = res.headers.location;
        await res.body.dump();
        if (typeof loc !== 'string')
          throw new ImportError(ErrorKind.Transfer, `HTTP ${res.statusCode} from ${url} without a Location`);
        if (hop >= max)
          throw new ImportError(
            ErrorKind.Transfer,
            `too many redirects (more than ${max}) from ${this.description}`,
          );
        url = new URL(loc, url).toString();
        continue;
      }
      this.finalUrl = url;
      return res;
    }
  }

  private plainUrl(u: string): string {
    const x = new URL(u);
    x.username = '';
    x.password = '';
    return x.toString();
  }

  private networkError(err: unknown, url: string): ImportError {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code ?? '';
    const msg = e.cause?.message ?? e.message ?? String(err);
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(msg)) {
      return new ImportError(
        ErrorKind.Transfer,
        `TLS verification of ${new URL(url).host} failed (${msg}): add its CA with --ca-dir (IMPORTER_CERT_DIR) or use --insecure-skip-verify`,
        { cause: err },
      );
    }
    if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new ImportError(ErrorKind.Transfer, idleMessage(this.description, this.idleMs()), {
        cause: err,
      });
    }
    return new ImportError(
      ErrorKind.Transfer,
      `cannot reach ${this.description}: ${code ? `${code} ` : ''}${msg}`,
      { cause: err },
    );
  }

  private statusError(status: number): ImportError {
    const hint =
      status === 401 || status === 403
        ? ': check the user name, password and headers'
        : status === 404
          ? ': check the URL'
          : '';
    return new ImportError(ErrorKind.Transfer, `HTTP ${status} from ${this.description}${hint}`);
  }

  async info(): Promise<SourceInfo> {
    if (this.cached) return this.cached;
    const url = this.plainUrl(this.o.url);
    const bare = this.bare(url, { range: 'bytes=0-0' });
    const h = bare && (await socketHead(bare));
    const quick = h && probeInfo(h.status, (k) => h.headers.get(k));
    if (quick) {
      this.finalUrl = url;
      this.cached = quick;
      return quick;
    }
    // One ranged GET tells size and range support, and works where HEAD is refused (some object stores).
    const res = await this.get('bytes=0-0');
    const info = probeInfo(res.statusCode, (k) => {
      const v = res.headers[k];
      return typeof v === 'string' ? v : undefined;
    });
    if (res.statusCode === 200) res.body.on('error', () => undefined).destroy();
    else await res.body.dump();
    if (!info) throw this.statusError(res.statusCode);
    this.cached = info;
    return info;
  }

  /**
   * `length` bytes at `offset`, by one ranged GET on the URL the probe ended at (redirects are still followed,
   * keeping auth and headers). The streaming path (image/nbd-server.ts) calls this for every NBD read, in parallel,
   * through the same dispatcher: same CAs, TLS settings, proxy and idle watchdog as the whole-body download.
   */
  async readRange(offset: number, length: number): Promise<Buffer[]> {
    const want = `bytes=${offset}-${offset + length - 1}`;
    const bare = this.bare(this.finalUrl);
    const direct = bare && (await socketGet({ ...bare, range: { offset, length } }));
    if (direct) return collectRange(direct, this.description, want, length);
    const res = await this.get(want, this.finalUrl);
    if (res.statusCode !== 206) {
      await res.body.dump().catch(() => undefined);
      if (res.statusCode === 200)
        throw new ImportError(ErrorKind.Transfer, `${this.description} stopped answering byte ranges`);
      throw this.statusError(res.statusCode);
    }
    return collectRange(res.body, this.description, want, length);
  }

  async open(): Promise<Readable> {
    const bare = this.bare(this.finalUrl);
    const direct = bare && (await socketGet(bare));
    if (direct) {
      this.transport = 'socket';
      this.direct = direct;
      return direct;
    }
    this.transport = 'undici';
    const res = await this.get();
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw this.statusError(res.statusCode);
    }
    const expected =
      res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
    return guardBody(res.body, this.description, expected, (err) =>
      (err as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT'
        ? this.networkError(err, this.finalUrl)
        : undefined,
    );
  }

  async close(): Promise<void> {
    this.direct?.destroy();
    this.direct = undefined;
    await this.dispatcher?.destroy().catch(() => undefined);
    this.dispatcher = undefined;
  }
}
