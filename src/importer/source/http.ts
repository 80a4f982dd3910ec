/**
 * HTTP(S) source. Plain `http://` without a proxy goes over bare sockets (http-socket.ts: a tenth of the CPU);
 * TLS, proxies (HTTP(S)_PROXY/NO_PROXY through EnvHttpProxyAgent) and chunked or content-coded bodies go over undici.
 * Both transports answer one request at a time to this file, which follows redirects and words every error, so
 * the rules below hold for both:
 *
 * - One request for the body per attempt. info() sends the GET for the whole body (`Range: bytes=0-`, so a 206
 *   proves range support) and keeps the answer; open() hands that same answer on. A flaky server (upstream's
 *   cdi-bad-webserver `/flaky/`: 503 except every 4th GET, which redirects to the file) sees one GET per attempt,
 *   as with upstream's importer, and an attempt that gets the good answer uses it.
 * - Redirects are followed by hand (at most `maxRedirects`). Basic auth and the extra headers (`headers` and
 *   `secretHeaders`, upstream's extraHeaders and secretExtraHeaders) are sent to the URL's own origin only: never to
 *   another host, port or scheme, so never from https to http (curl's rule; upstream re-sends basic auth to any
 *   redirect target, we deliberately do not).
 * - Messages that tools match on are upstream's: a source that cannot be reached reads `Unable to connect to http
 *   data source: expected status code 200, got 404. Status: 404 Not Found` (or `…: HTTP request errored: …` for
 *   DNS, refused connections and TLS), our guidance in parentheses after it.
 * - Resumable (docs/adr/0009-resumable-downloads.md): open(offset, validator) asks for `bytes=<offset>-` with
 *   `If-Range: <validator>` (a strong ETag, else Last-Modified); a changed file (200, another validator or size) is
 *   CannotResume, never spliced.
 * - An idle watchdog: the download fails when no byte arrives for `idleTimeoutMs` (upstream: 10 minutes).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { CannotResume, connectError, ErrorKind, ImportError } from '../errors.ts';
import { idleMessage, socketGet, type SocketGetOptions } from './http-socket.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export interface HttpSourceOptions {
  url: string;
  /** Directories whose files are all extra trusted CA certificates (PEM): the cert dir, the proxy CA dir. */
  caDir?: string | string[];
  insecureSkipVerify?: boolean;
  /** `Name: value` lines (IMPORTER_EXTRA_HEADER_n). Sent to the URL's origin only. */
  headers?: string[];
  /** `Name: value` lines from secrets (upstream's secretExtraHeaders, readSecretHeaders()). Same rule; never logged. */
  secretHeaders?: string[];
  user?: string;
  password?: string;
  idleTimeoutMs?: number;
  maxRedirects?: number;
  userAgent?: string;
  /** The source kind upstream's "Unable to connect to <kind> data source" names (default http; gcs over this). */
  kind?: string;
}

const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'];
/** HTTP(S)_PROXY is set: requests go through undici's EnvHttpProxyAgent (which honours NO_PROXY). */
export const proxied = (): boolean => PROXY_VARS.some((v) => process.env[v]);
const REDIRECTS = [301, 302, 303, 307, 308];

/** One answer, from either transport; redirects not followed yet. */
interface Answer {
  status: number;
  statusText: string;
  header(name: string): string | undefined;
  /** For 2xx answers: the body (errors and short bodies are ImportErrors). */
  body?: Readable;
  /** The URL that answered. */
  url: string;
  transport: 'socket' | 'undici';
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
 * Upstream's secretExtraHeaders: every file under `dir` (the controller mounts one secret per subdirectory of
 * /extraheaders) is one `Name: value` line; names starting with a dot (a secret volume's `..data` links) are skipped.
 * A missing directory means none.
 */
export async function readSecretHeaders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw new ImportError(ErrorKind.Invalid, `cannot read the extra headers in ${dir}: ${err.message}`);
  });
  const out: string[] = [];
  // A plain code-unit order: localeCompare would load ICU data (about 10 MiB of RSS) for nothing.
  for (const d of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (d.name.startsWith('.')) continue;
    const p = path.join(dir, d.name);
    const isDir =
      d.isDirectory() || (d.isSymbolicLink() && (await stat(p).catch(() => undefined))?.isDirectory());
    if (isDir) out.push(...(await readSecretHeaders(p)));
    else out.push((await readFile(p, 'utf8')).replace(/\r?\n$/, ''));
  }
  return out;
}

/**
 * The undici dispatcher of the sources that speak HTTP through undici (http, registry, the imageio API client):
 * extra CAs from the directories (besides the system's), TLS 1.2 at least, the idle watchdog, and
 * HTTP(S)_PROXY/NO_PROXY through EnvHttpProxyAgent (CDIConfig's importProxy reaches the pod as those variables).
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
      // The body's own error says the same thing ("ended after …"): do not repeat it.
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

/** Validator for If-Range: a strong ETag, else Last-Modified (RFC 9110 §13.1.5: a weak ETag cannot be used). */
function validatorOf(header: (name: string) => string | undefined): string | undefined {
  const etag = header('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return header('last-modified');
}

/** `bytes S-E/T` → its numbers (T undefined for `*`). */
function contentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/.exec(v ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), ...(m[3] !== '*' ? { total: Number(m[3]) } : {}) };
}

/** What an answer to `Range: bytes=0-` says about the source. */
function infoFrom(a: Answer): SourceInfo {
  const ct = a.header('content-type');
  const validator = validatorOf((k) => a.header(k));
  const extra = { ...(ct !== undefined ? { contentType: ct } : {}), ...(validator ? { validator } : {}) };
  if (a.status === 206) {
    const total = contentRange(a.header('content-range'))?.total;
    return { ranges: true, ...(total !== undefined ? { size: total } : {}), ...extra };
  }
  if (a.status === 416) return { ranges: false, size: 0, ...extra };
  const cl = a.header('content-length');
  // A 200 to a ranged GET: the server did not use the range here; its Accept-Ranges says whether it can (upstream's
  // test), and readRange() says clearly if it cannot after all.
  const ranges = (a.header('accept-ranges') ?? '').toLowerCase() === 'bytes';
  return { ranges, ...(cl !== undefined && /^\d+$/.test(cl) ? { size: Number(cl) } : {}), ...extra };
}

export class HttpSource implements ImportSource {
  readonly description: string;
  readonly resumable = true;
  private readonly o: HttpSourceOptions;
  /** The origin credentials and extra headers may go to. */
  private readonly origin: string;
  /** The URL without credentials. */
  private readonly startUrl: string;
  private dispatcher: Dispatcher | undefined;
  /** Where the last redirect chain ended (ranged reads go there). */
  private finalUrl: string;
  private cached: SourceInfo | undefined;
  /** The answer info() got, kept for open(): one request for the body per attempt. */
  private held: Answer | undefined;
  /** Set once the source has answered a request for the body (errors before that are connection errors). */
  private connected = false;
  /** The other origin a redirect led to, if any (for the hint of a 401/403). */
  private elsewhere: string | undefined;
  /** The body open() returned last (closed by close(), whoever else still holds it). */
  private opened: Readable | undefined;
  /** How the last open() reads the body: a bare socket (plain HTTP, http-socket.ts) or undici. */
  transport: 'socket' | 'undici' | undefined;
  /** Requests sent (every hop of every redirect chain, every ranged read): for tests and logs. */
  requests = 0;

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
    this.origin = u.origin;
    u.username = '';
    u.password = '';
    this.startUrl = u.toString();
    this.finalUrl = this.startUrl;
    this.description = this.startUrl;
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

  private idleMs(): number {
    return this.o.idleTimeoutMs ?? 10 * 60 * 1000;
  }

  /** The headers for a request to `url`: credentials and extra headers only to the URL's own origin. */
  private headersFor(url: string, extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': this.o.userAgent ?? 'cdi-ts-importer' };
    if (new URL(url).origin === this.origin) {
      for (const line of [...(this.o.headers ?? []), ...(this.o.secretHeaders ?? [])]) {
        const [k, v] = parseHeader(line);
        h[k.toLowerCase()] = v;
      }
      const u = new URL(this.o.url);
      const user = this.o.user ?? (u.username ? decodeURIComponent(u.username) : undefined);
      const password = this.o.password ?? (u.password ? decodeURIComponent(u.password) : '');
      if (user !== undefined)
        h.authorization = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
    }
    return { ...h, ...extra };
  }

  /** One request, redirects not followed: on a bare socket when it can (plain HTTP, no proxy), else undici. */
  private async once(
    url: string,
    extra: Record<string, string>,
    range?: SocketGetOptions['range'],
  ): Promise<Answer> {
    const headers = this.headersFor(url, extra);
    this.requests++;
    if (!proxied()) {
      const o: SocketGetOptions = {
        url,
        headers,
        description: this.description,
        idleTimeoutMs: this.idleMs(),
        ...(range ? { range } : {}),
      };
      const a = await socketGet(o);
      if (a) {
        return {
          status: a.status,
          statusText: a.statusText,
          header: (k) => a.headers.get(k),
          ...(a.body ? { body: a.body } : {}),
          url,
          transport: 'socket',
        };
      }
    }
    const dispatcher = await this.agent();
    const { request } = await import('undici');
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers, dispatcher });
    } catch (err) {
      throw this.networkError(err, url);
    }
    const header = (k: string): string | undefined => {
      const v = res.headers[k];
      return typeof v === 'string' ? v : undefined;
    };
    const ok = res.statusCode >= 200 && res.statusCode <= 299;
    if (!ok) await res.body.dump().catch(() => undefined);
    return {
      status: res.statusCode,
      statusText: STATUS_CODES[res.statusCode] ?? '',
      header,
      ...(ok ? { body: this.guard(res.body, header('content-length'), url) } : {}),
      url,
      transport: 'undici',
    };
  }

  /** GET `from` (default: the URL the last chain ended at), following redirects; the answer that is not one. */
  private async fetch(
    extra: Record<string, string>,
    o: { from?: string; range?: SocketGetOptions['range'] } = {},
  ): Promise<Answer> {
    let url = o.from ?? this.finalUrl;
    const max = this.o.maxRedirects ?? 10;
    for (let hop = 0; ; hop++) {
      const a = await this.once(url, extra, o.range);
      if (!REDIRECTS.includes(a.status)) {
        this.finalUrl = url;
        return a;
      }
      a.body?.destroy();
      const loc = a.header('location');
      if (loc === undefined)
        throw new ImportError(ErrorKind.Transfer, `HTTP ${a.status} from ${url} without a Location`);
      if (hop >= max)
        throw new ImportError(
          ErrorKind.Transfer,
          `too many redirects (more than ${max}) from ${this.description}`,
        );
      url = new URL(loc, url).toString();
      const origin = new URL(url).origin;
      if (origin !== this.origin) this.elsewhere = origin;
    }
  }

  private networkError(err: unknown, url: string): ImportError {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code ?? '';
    const msg = e.cause?.message ?? e.message ?? String(err);
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(msg)) {
      return new ImportError(
        ErrorKind.Transfer,
        `HTTP request errored: TLS verification of ${new URL(url).host} failed (${msg}): add its CA with --ca-dir (IMPORTER_CERT_DIR) or use --insecure-skip-verify`,
        { cause: err },
      );
    }
    if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new ImportError(ErrorKind.Transfer, idleMessage(this.description, this.idleMs()), {
        cause: err,
      });
    }
    const hint =
      code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? ' (the host name does not resolve: check the URL)'
        : code === 'ECONNREFUSED'
          ? ' (nothing accepts connections there: check the URL and that the server runs)'
          : '';
    return new ImportError(
      ErrorKind.Transfer,
      `HTTP request errored: Get "${url}": ${msg.includes(code) ? '' : `${code} `}${msg}${hint}`.replace(
        /: {2,}/,
        ': ',
      ),
      { cause: err },
    );
  }

  /** Upstream's wording for an unexpected status, our hint after it. */
  private statusText(a: Answer, expected = 200): string {
    const auth = a.status === 401 || a.status === 403;
    const hint = auth
      ? `check the user name, password and headers${this.elsewhere ? `; they are sent to ${this.origin} only, not to ${this.elsewhere} where it redirected` : ''}`
      : a.status === 404
        ? 'check the URL'
        : '';
    return (
      `expected status code ${expected}, got ${a.status}. Status: ${a.status} ${a.statusText}`.trimEnd() +
      ` (${a.url}${hint ? `: ${hint}` : ''})`
    );
  }

  /** Errors before the source ever answered are upstream's "Unable to connect to http data source: …". */
  private asConnect(err: unknown): unknown {
    if (this.connected || !(err instanceof ImportError) || err.kind !== ErrorKind.Transfer) return err;
    return connectError(this.o.kind ?? 'http', err.message, err);
  }

  /** The answer for the whole body (`Range: bytes=0-`), from the start URL. */
  private async whole(): Promise<Answer> {
    try {
      const a = await this.fetch({ range: 'bytes=0-' }, { from: this.startUrl });
      const cr = contentRange(a.header('content-range'));
      if (a.status === 416) {
        a.body?.destroy();
        return { ...a, body: Readable.from([]) };
      }
      if ((a.status !== 200 && a.status !== 206) || !a.body || (a.status === 206 && cr?.start !== 0)) {
        a.body?.destroy();
        throw new ImportError(ErrorKind.Transfer, this.statusText(a));
      }
      this.connected = true;
      this.cached = infoFrom(a);
      return a;
    } catch (err) {
      throw this.asConnect(err);
    }
  }

  async info(): Promise<SourceInfo> {
    if (this.cached) return this.cached;
    this.held = await this.whole();
    return this.cached!;
  }

  /**
   * The body from byte 0 (the answer info() kept, else a new request), or from `offset` of the content `validator`
   * names: `Range: bytes=<offset>-` with `If-Range: <validator>`, so a server whose file changed answers with the
   * whole new file, which is refused (CannotResume) rather than spliced onto the old one's first bytes.
   */
  async open(offset = 0, validator?: string): Promise<Readable> {
    const a = offset === 0 ? (this.held ?? (await this.whole())) : await this.rest(offset, validator);
    this.held = undefined;
    this.transport = a.transport;
    this.opened = a.body ?? Readable.from([]);
    return this.opened;
  }

  /** The answer for the bytes from `offset` (open(offset, validator)). */
  private async rest(offset: number, validator: string | undefined): Promise<Answer> {
    this.held?.body?.destroy();
    this.held = undefined;
    const extra = { range: `bytes=${offset}-`, ...(validator ? { 'if-range': validator } : {}) };
    let a: Answer;
    try {
      // A run that continues an earlier one starts where the URL points; a break in this run, where it led.
      a = await this.fetch(extra, { from: this.connected ? this.finalUrl : this.startUrl });
    } catch (err) {
      throw this.asConnect(err);
    }
    const now = validatorOf((k) => a.header(k));
    const cr = contentRange(a.header('content-range'));
    const known = this.cached?.size;
    const refuse = (why: string): never => {
      a.body?.destroy();
      throw new CannotResume(`${this.description} cannot continue from byte ${offset}: ${why}`);
    };
    if (a.status === 200) {
      refuse(
        validator && now && now !== validator
          ? `it changed (${validator} is now ${now})`
          : 'it sent the whole file instead of the rest (no byte ranges)',
      );
    }
    if (a.status === 416) refuse('it has no such byte any more (416)');
    if (a.status !== 206 || !a.body) {
      a.body?.destroy();
      const err = new ImportError(
        ErrorKind.Transfer,
        `continuing at byte ${offset}: ${this.statusText(a, 206)}`,
      );
      throw this.asConnect(err);
    }
    if (cr?.start !== offset) refuse(`it answered ${a.header('content-range') ?? 'no Content-Range'}`);
    if (validator && now && now !== validator) refuse(`it changed (${validator} is now ${now})`);
    if (known !== undefined && cr?.total !== undefined && cr.total !== known)
      refuse(`its size changed from ${known} to ${cr.total} bytes`);
    this.connected = true;
    if (!this.cached) {
      const ct = a.header('content-type');
      const v = now ?? validator;
      this.cached = {
        ranges: true,
        ...(cr?.total !== undefined ? { size: cr.total } : {}),
        ...(ct !== undefined ? { contentType: ct } : {}),
        ...(v ? { validator: v } : {}),
      };
    }
    return a;
  }

  /**
   * `length` bytes at `offset`, by one ranged GET on the URL the body request ended at (redirects are still
   * followed). The streaming path (image/nbd-server.ts, the extent copy) calls this for every read, in parallel,
   * with the same CAs, TLS settings, proxy, idle watchdog and origin rule as the body.
   */
  async readRange(offset: number, length: number, into?: Buffer): Promise<Buffer[]> {
    const want = `bytes=${offset}-${offset + length - 1}`;
    const a = await this.fetch({ range: want }, { range: { offset, length, ...(into ? { into } : {}) } });
    const cr = contentRange(a.header('content-range'));
    if (a.status !== 206 || !a.body || cr?.start !== offset || cr.end !== offset + length - 1) {
      a.body?.destroy();
      if (a.status === 200)
        throw new ImportError(ErrorKind.Transfer, `${this.description} stopped answering byte ranges`);
      throw new ImportError(ErrorKind.Transfer, `range ${want}: ${this.statusText(a, 206)}`);
    }
    return collectRange(a.body, this.description, want, length);
  }

  /** An undici body whose resets, idle timeouts and short ends are one-line ImportErrors. */
  private guard(body: Readable, length: string | undefined, url: string): Readable {
    const expected = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    return guardBody(body, this.description, expected, (err) =>
      (err as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT' ? this.networkError(err, url) : undefined,
    );
  }

  async close(): Promise<void> {
    this.held?.body?.destroy();
    this.held = undefined;
    this.opened?.destroy();
    this.opened = undefined;
    await this.dispatcher?.destroy().catch(() => undefined);
    this.dispatcher = undefined;
  }
}
