/**
 * HTTPS requests to the management APIs the disk sources talk to (the oVirt engine and its imageio daemons; vCenter
 * or ESXi), on undici: the HTTP source's dispatcher (the CA directories' certificates trusted besides the system's,
 * TLS 1.2 at least, optionally no verification, HTTP(S)_PROXY/NO_PROXY), or, with a SHA-1 thumbprint (vSphere's
 * way), a direct connection whose certificate must match it; answers read into memory with a bound, and errors a
 * user can act on (untrusted certificate, refused connection, time-out).
 */
import { rootCertificates } from 'node:tls';
import type { buildConnector, Dispatcher } from 'undici';
import { ErrorKind, ImportError } from '../errors.ts';
import { readCaDir, undiciDispatcher } from './http.ts';

export interface ApiClientOptions {
  /** Directories whose files are trusted CA certificates (PEM). */
  caDir: string[];
  insecureSkipVerify: boolean;
  /** SHA-1 fingerprint of the server certificate ("AA:BB:…"): when set, the certificate must match it. */
  thumbprint?: string;
  /** Who answers, for messages: "the oVirt engine", "vCenter". */
  what: string;
  /** What to do about an untrusted certificate, for messages. */
  tlsHint: string;
  userAgent?: string;
  /** No byte for this long ends a request (default 10 minutes, like upstream's idle watchdog). */
  idleTimeoutMs?: number;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text(): string;
}

/** Answers of the control APIs are small; a bigger one is a broken or hostile server. */
const MAX_ANSWER = 32 << 20;

export function normalizeThumbprint(t: string): string {
  return t.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
}

export class ApiClient {
  private readonly o: ApiClientOptions;
  private dispatcher: Dispatcher | undefined;

  constructor(o: ApiClientOptions) {
    this.o = o;
  }

  private async agent(): Promise<Dispatcher> {
    if (this.dispatcher) return this.dispatcher;
    const idle = this.o.idleTimeoutMs ?? 10 * 60 * 1000;
    if (!this.o.thumbprint) {
      // the HTTP source's dispatcher: same CAs, TLS floor and HTTP(S)_PROXY/NO_PROXY handling
      this.dispatcher = await undiciDispatcher({
        caDirs: this.o.caDir,
        insecureSkipVerify: this.o.insecureSkipVerify,
        idleMs: idle,
      });
      return this.dispatcher;
    }
    const pems: string[] = [];
    for (const d of this.o.caDir) pems.push(...(await readCaDir(d)).pems);
    const { Agent, buildConnector: build } = await import('undici');
    const pin = normalizeThumbprint(this.o.thumbprint);
    const base = build({
      // A pinned certificate is checked by its thumbprint below (vSphere hosts are commonly self-signed).
      rejectUnauthorized: !this.o.insecureSkipVerify && pems.length > 0,
      minVersion: 'TLSv1.2',
      // a resumed TLS session shows no peer certificate: a pinned one must be seen on every connection
      maxCachedSessions: 0,
      ...(pems.length > 0 ? { ca: [...rootCertificates, ...pems] } : {}),
    });
    const connect: buildConnector.connector = (opts, cb) =>
      base(opts, (err, socket) => {
        if (err || !socket) {
          cb(err ?? new Error('no socket'), null);
          return;
        }
        if (!('getPeerCertificate' in socket)) {
          cb(null, socket);
          return;
        }
        const fp = normalizeThumbprint(socket.getPeerCertificate().fingerprint);
        if (fp !== pin) {
          socket.destroy();
          cb(
            Object.assign(
              new Error(
                `the certificate's SHA-1 thumbprint is ${fp.replace(/(..)(?=.)/g, '$1:')}, not ${this.o.thumbprint}`,
              ),
              { code: 'ERR_TLS_THUMBPRINT_MISMATCH' },
            ),
            null,
          );
          return;
        }
        cb(null, socket);
      });
    // pinned connections go straight to the server (a proxy would present its own certificate)
    this.dispatcher = new Agent({ connect, bodyTimeout: idle, headersTimeout: idle });
    return this.dispatcher;
  }

  /** One request; the whole answer in memory (bounded). Network and TLS failures are ImportErrors. */
  async request(
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: string | Buffer; max?: number } = {},
  ): Promise<ApiResponse> {
    const { request } = await import('undici');
    const dispatcher = await this.agent();
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        dispatcher,
        method: init.method ?? 'GET',
        headers: { 'user-agent': this.o.userAgent ?? 'cdi-ts-importer', ...init.headers },
        ...(init.body !== undefined ? { body: init.body } : {}),
      });
    } catch (err) {
      throw this.networkError(err, url);
    }
    const max = init.max ?? MAX_ANSWER;
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res.body as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > max) {
          res.body.destroy();
          throw new ImportError(
            ErrorKind.Transfer,
            `${this.o.what} answered ${url} with more than ${max} bytes`,
          );
        }
        chunks.push(c);
      }
    } catch (err) {
      if (err instanceof ImportError) throw err;
      throw this.networkError(err, url);
    }
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    return { status: res.statusCode, headers: res.headers, body, text: () => body.toString('utf8') };
  }

  networkError(err: unknown, url: string): ImportError {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code ?? '';
    const msg = e.cause?.message ?? e.message ?? String(err);
    const host = new URL(url).host;
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(msg)) {
      return new ImportError(
        ErrorKind.Transfer,
        `the TLS certificate of ${this.o.what} at ${host} is not trusted (${msg}): ${this.o.tlsHint}`,
        { cause: err },
      );
    }
    if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new ImportError(
        ErrorKind.Transfer,
        `${this.o.what} at ${host} sent nothing for too long; giving up`,
        {
          cause: err,
        },
      );
    }
    if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'UND_ERR_ABORTED') {
      return new ImportError(ErrorKind.Transfer, `${this.o.what} at ${host} closed the connection (${msg})`, {
        cause: err,
      });
    }
    return new ImportError(
      ErrorKind.Transfer,
      `cannot reach ${this.o.what} at ${host}: ${code ? `${code} ` : ''}${msg}`,
      {
        cause: err,
      },
    );
  }

  async close(): Promise<void> {
    await this.dispatcher?.close().catch(() => undefined);
    this.dispatcher = undefined;
  }
}
