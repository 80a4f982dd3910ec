/**
 * S3 source, path-style addressing as upstream (pkg/importer/s3-datasource.go):
 *   s3://bucket/key                          AWS itself, or the store AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL)
 *                                            names (the AWS SDKs' variables; cdi-controller hands them to the pod,
 *                                            ADR 0045); the region from AWS_REGION, else us-east-1
 *   http(s)://endpoint[:port]/bucket/key     any S3-compatible store; the region from an `s3.<region>.amazonaws.com`
 *                                            host, else us-east-1 (upstream takes the host's first label, which
 *                                            names no region for anything but AWS)
 * Credentials are the Secret's accessKeyId/secretKey (unsigned requests without them); extra CAs from the cert dir.
 *
 * Every request is a GET we sign ourselves (sigv4.ts, `x-amz-content-sha256: UNSIGNED-PAYLOAD`) and send on the HTTP
 * source's transports: plain http on a bare socket that reads into slabs (http-socket.ts), TLS and proxies
 * (HTTP(S)_PROXY/NO_PROXY) through undici. @aws-sdk/client-s3 cost about eight times curl's CPU for the same bytes
 * under the pod's CPU limit (docs/adr/0031-object-store-sources.md "Measured").
 *
 * Objects are read by range too, so qcow2 and friends go by the same extent copy as over HTTP (no scratch), and a
 * body that breaks is continued from where it broke: open(offset, validator) asks for `bytes=<offset>-` with
 * `If-Match: <ETag>`, so a changed object (412, another ETag or size) is CannotResume, never spliced
 * (docs/adr/0009-resumable-downloads.md). A request that fails before its answer (a refused connection, a 5xx,
 * S3's 503 SlowDown) is tried 3 times in all, as the SDK did.
 */
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { CannotResume, ErrorKind, ImportError } from '../errors.ts';
import { socketGet, type SocketGetOptions } from './http-socket.ts';
import { collectRange, guardBody, proxied, undiciDispatcher } from './http.ts';
import { sign, encodePath, UNSIGNED_PAYLOAD } from './sigv4.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export interface S3SourceOptions {
  url: string;
  accessKeyId?: string;
  secretKey?: string;
  caDirs?: string[];
  insecureSkipVerify?: boolean;
  idleTimeoutMs?: number;
}

export interface S3Location {
  endpoint?: string;
  region: string;
  bucket: string;
  key: string;
}

export function parseS3Url(url: string, env: Record<string, string | undefined> = process.env): S3Location {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImportError(ErrorKind.Invalid, `invalid S3 URL "${url}"`);
  }
  const bad = (why: string): ImportError =>
    new ImportError(
      ErrorKind.Invalid,
      `invalid S3 URL "${url}": ${why} (use s3://bucket/key or http(s)://endpoint/bucket/key)`,
    );
  const path = decodeURIComponent(u.pathname).replace(/^\/+/, '');
  if (u.protocol === 's3:') {
    if (!u.hostname) throw bad('no bucket');
    if (!path) throw bad('no object key');
    const endpoint = (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL)?.replace(/\/+$/, '');
    return {
      ...(endpoint ? { endpoint } : {}),
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      bucket: u.hostname,
      key: path,
    };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(`unsupported scheme "${u.protocol}"`);
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1) throw bad('no bucket and key in the path');
  const m = /(?:^|\.)s3[.-]([a-z0-9-]+)\.amazonaws\.com$/.exec(u.hostname);
  return {
    endpoint: `${u.protocol}//${u.host}`,
    region: m && m[1] !== 'external-1' ? m[1]! : 'us-east-1',
    bucket: path.slice(0, slash),
    key: path.slice(slash + 1),
  };
}

/** One answer, from either transport. */
interface Answer {
  status: number;
  header(name: string): string | undefined;
  /** For 2xx answers: the body. */
  body?: Readable;
  /** For errors: S3's error code (`NoSuchKey`) and message, from the XML body. */
  code?: string;
  message?: string;
}

const ATTEMPTS = 3;
const RETRY_STATUS = new Set([500, 502, 503, 504]);
/** Error bodies are small XML documents; one larger than this is not S3's. */
const ERROR_BODY = 64 << 10;

/** `<Code>…</Code>` and `<Message>…</Message>` of an S3 error document. */
function errorFields(xml: string | undefined): { code?: string; message?: string } {
  const code = /<Code>([^<]{1,200})<\/Code>/.exec(xml ?? '')?.[1];
  const message = /<Message>([^<]{1,500})<\/Message>/.exec(xml ?? '')?.[1];
  return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
}

export class S3Source implements ImportSource {
  readonly description: string;
  readonly resumable = true;
  private readonly o: S3SourceOptions;
  private readonly loc: S3Location;
  /** The object's URL (path-style, the key encoded as it is signed). */
  private readonly url: URL;
  private dispatcher: Dispatcher | undefined;
  private cached: SourceInfo | undefined;
  private body: Readable | undefined;
  /** Requests sent (every attempt): for tests and logs. */
  requests = 0;
  /** How the last answer came: a bare socket (plain http, http-socket.ts) or undici (TLS, proxies). */
  transport: 'socket' | 'undici' | undefined;

  constructor(o: S3SourceOptions) {
    this.o = o;
    this.loc = parseS3Url(o.url);
    this.description = o.url.startsWith('s3:')
      ? `s3://${this.loc.bucket}/${this.loc.key}`
      : `${this.loc.endpoint}/${this.loc.bucket}/${this.loc.key}`;
    const endpoint = this.loc.endpoint ?? `https://s3.${this.loc.region}.amazonaws.com`;
    this.url = new URL(encodePath(`/${this.loc.bucket}/${this.loc.key}`), endpoint);
  }

  private idleMs(): number {
    return this.o.idleTimeoutMs ?? 10 * 60 * 1000;
  }

  private async agent(): Promise<Dispatcher> {
    this.dispatcher ??= await undiciDispatcher({
      caDirs: this.o.caDirs ?? [],
      insecureSkipVerify: this.o.insecureSkipVerify ?? false,
      idleMs: this.idleMs(),
    });
    return this.dispatcher;
  }

  /** The request's headers, signed when there are credentials (no credentials: public objects, unsigned). */
  private headers(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': 'cdi-ts-importer' };
    if (!this.o.accessKeyId) return { ...h, ...extra };
    const signed = sign({
      method: 'GET',
      host: this.url.host,
      path: `/${this.loc.bucket}/${this.loc.key}`,
      headers: { ...extra, 'x-amz-content-sha256': UNSIGNED_PAYLOAD },
      payloadHash: UNSIGNED_PAYLOAD,
      credentials: { accessKeyId: this.o.accessKeyId, secretAccessKey: this.o.secretKey ?? '' },
      region: this.loc.region,
      service: 's3',
      date: new Date(),
    });
    // Both transports send the Host header from the URL (the same value that was signed).
    delete signed.headers.host;
    return { ...h, ...signed.headers };
  }

  /** One attempt: on a bare socket when it can (plain http, no proxy), else undici. */
  private async once(extra: Record<string, string>, range?: SocketGetOptions['range']): Promise<Answer> {
    const headers = this.headers(extra);
    this.requests++;
    if (!proxied()) {
      const a = await socketGet({
        url: this.url.toString(),
        headers,
        description: this.description,
        idleTimeoutMs: this.idleMs(),
        errorBody: true,
        verbatim: true,
        ...(range ? { range } : {}),
      });
      this.transport = 'socket';
      if (a)
        return {
          status: a.status,
          header: (k) => a.headers.get(k),
          ...(a.body ? { body: a.body } : {}),
          ...errorFields(a.errorText),
        };
    }
    this.transport = 'undici';
    const dispatcher = await this.agent();
    const { request } = await import('undici');
    const res = await request(this.url, { method: 'GET', headers, dispatcher });
    const header = (k: string): string | undefined => {
      const v = res.headers[k];
      return typeof v === 'string' ? v : undefined;
    };
    if (res.statusCode >= 200 && res.statusCode <= 299) {
      const cl = header('content-length');
      const expected = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
      return { status: res.statusCode, header, body: guardBody(res.body, this.description, expected) };
    }
    let xml = '';
    for await (const c of res.body as AsyncIterable<Buffer>) {
      if (xml.length < ERROR_BODY) xml += c.toString('latin1');
    }
    return { status: res.statusCode, header, ...errorFields(xml) };
  }

  /** A request, tried again when it fails before an answer or with a server error (ATTEMPTS in all). */
  private async send(
    action: string,
    extra: Record<string, string>,
    range?: SocketGetOptions['range'],
  ): Promise<Answer> {
    for (let attempt = 1; ; attempt++) {
      let a: Answer;
      try {
        a = await this.once(extra, range);
      } catch (err) {
        if (attempt >= ATTEMPTS || err instanceof ImportError) throw this.networkError(err, action);
        await sleep(100 * 2 ** attempt);
        continue;
      }
      if (!RETRY_STATUS.has(a.status) || attempt >= ATTEMPTS) return a;
      a.body?.destroy();
      await sleep(100 * 2 ** attempt);
    }
  }

  private networkError(err: unknown, action: string): ImportError {
    if (err instanceof ImportError) return err;
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code ?? '';
    const msg = e.cause?.message ?? e.message ?? String(err);
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(msg)) {
      return new ImportError(
        ErrorKind.Transfer,
        `TLS verification of ${this.loc.endpoint ?? 'S3'} failed (${msg}): add its CA with certConfigMap (cdi: --ca-dir)`,
        { cause: err },
      );
    }
    const hint =
      code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? ' (the host name does not resolve: check the endpoint URL)'
        : code === 'ECONNREFUSED'
          ? ' (nothing accepts connections there: check the endpoint URL and that the server runs)'
          : '';
    return new ImportError(
      ErrorKind.Transfer,
      `${action} ${this.description}: ${code && !msg.includes(code) ? `${code} ` : ''}${msg}${hint}`,
      { cause: err },
    );
  }

  /** What the user hears for an answer that is not the one asked for. */
  private statusError(a: Answer, action: string): ImportError {
    const where = this.description;
    const name = a.code ?? '';
    const status = a.status;
    // versitygw answers an unknown access key with 404 XAdminUserNotFound: a credentials problem all the same.
    const badKey = /InvalidAccessKeyId|UserNotFound|SignatureDoesNotMatch/.test(name);
    if (!badKey && (status === 404 || /NoSuchKey|NoSuchBucket|NotFound/.test(name))) {
      return new ImportError(
        ErrorKind.Transfer,
        `${action} ${where}: not found (HTTP 404${name && name !== 'NotFound' ? ` ${name}` : ''}): check the bucket and the object key`,
      );
    }
    if (badKey || status === 401 || status === 403) {
      return new ImportError(
        ErrorKind.Transfer,
        `${action} ${where}: access denied (HTTP ${status}${name && name !== 'Forbidden' ? ` ${name}` : ''}): ${this.o.accessKeyId ? "check the access key ID and secret key (the Secret's accessKeyId and secretKey; cdi: --user, --password-file)" : 'the object is not public: give credentials with a secretRef (accessKeyId, secretKey; cdi: --user, --password-file)'}`,
      );
    }
    if (status >= 300 && status < 400) {
      const region = a.header('x-amz-bucket-region');
      return new ImportError(
        ErrorKind.Transfer,
        `${action} ${where}: HTTP ${status}${name ? ` ${name}` : ''}: ${region ? `the bucket is in region ${region}: use the endpoint https://s3.${region}.amazonaws.com (or set AWS_REGION)` : 'the bucket is elsewhere: use its own endpoint URL'}`,
      );
    }
    return new ImportError(
      ErrorKind.Transfer,
      `${action} ${where}: HTTP ${status}${name ? ` ${name}` : ''}${a.message ? `: ${a.message}` : ''}`,
    );
  }

  /**
   * One ranged GET of the first byte tells the size, and unlike HEAD its errors have a body: the S3 error code
   * (InvalidAccessKeyId, NoSuchKey, NoSuchBucket) that the message can name.
   */
  async info(): Promise<SourceInfo> {
    if (this.cached) return this.cached;
    const a = await this.send('cannot read', { range: 'bytes=0-0' });
    a.body?.destroy();
    if (a.status === 416 || a.code === 'InvalidRange') {
      this.cached = { ranges: true, size: 0 };
      return this.cached;
    }
    if (a.status !== 200 && a.status !== 206) throw this.statusError(a, 'cannot read');
    const total = /\/(\d+)$/.exec(a.header('content-range') ?? '');
    const cl = a.header('content-length');
    const ct = a.header('content-type');
    const etag = a.header('etag');
    this.cached = {
      ranges: true,
      ...(total
        ? { size: Number(total[1]) }
        : cl !== undefined && a.status === 200
          ? { size: Number(cl) }
          : {}),
      ...(ct ? { contentType: ct } : {}),
      // S3 ETags are strong (an MD5, or a multipart upload's digest of digests): they name this object version.
      ...(etag ? { validator: etag } : {}),
    };
    return this.cached;
  }

  /**
   * The object from byte 0, or the bytes from `offset` of the version `validator` (its ETag) names: a changed
   * object is CannotResume, and the data path starts again from byte 0.
   */
  async open(offset = 0, validator?: string): Promise<Readable> {
    this.body?.destroy();
    this.body = undefined;
    if (offset === 0) {
      const a = await this.send('cannot read', {});
      if (a.status !== 200 || !a.body) {
        a.body?.destroy();
        throw this.statusError(a, 'cannot read');
      }
      this.body = a.body;
      const cl = a.header('content-length');
      const ct = a.header('content-type');
      const etag = a.header('etag');
      // What this answer says is what info() says from now on (the object may have been replaced since).
      this.cached = {
        ranges: true,
        ...(cl !== undefined && /^\d+$/.test(cl) ? { size: Number(cl) } : {}),
        ...(ct ? { contentType: ct } : {}),
        ...(etag ? { validator: etag } : {}),
      };
      return a.body;
    }
    const a = await this.send('cannot read', {
      range: `bytes=${offset}-`,
      ...(validator ? { 'if-match': validator } : {}),
    });
    if (validator && a.status === 412)
      throw new CannotResume(`${this.description} changed (its ETag is no longer ${validator})`);
    if (a.status !== 206 || !a.body) {
      a.body?.destroy();
      if (a.status === 200)
        throw new CannotResume(
          `${this.description} cannot continue from byte ${offset}: it sent the whole object instead of the rest`,
        );
      throw this.statusError(a, 'cannot read');
    }
    const cr = a.header('content-range');
    const etag = a.header('etag');
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr ?? '');
    const known = this.cached?.size;
    const why =
      !m || Number(m[1]) !== offset
        ? `it answered ${cr ?? 'no Content-Range'}`
        : validator && etag && etag !== validator
          ? `it changed (${validator} is now ${etag})`
          : known !== undefined && m[3] !== '*' && Number(m[3]) !== known
            ? `its size changed from ${known} to ${m[3]} bytes`
            : undefined;
    if (why) {
      a.body.destroy();
      throw new CannotResume(`${this.description} cannot continue from byte ${offset}: ${why}`);
    }
    this.body = a.body;
    if (!this.cached && m) {
      const v = etag ?? validator;
      const ct = a.header('content-type');
      this.cached = {
        ranges: true,
        ...(m[3] !== '*' ? { size: Number(m[3]) } : {}),
        ...(ct ? { contentType: ct } : {}),
        ...(v ? { validator: v } : {}),
      };
    }
    return a.body;
  }

  async readRange(offset: number, length: number, into?: Buffer): Promise<Buffer[]> {
    const want = `bytes=${offset}-${offset + length - 1}`;
    const a = await this.send('cannot read', { range: want }, { offset, length, ...(into ? { into } : {}) });
    const cr = /^bytes (\d+)-(\d+)\//.exec(a.header('content-range') ?? '');
    if (
      a.status !== 206 ||
      !a.body ||
      Number(cr?.[1]) !== offset ||
      Number(cr?.[2]) !== offset + length - 1
    ) {
      a.body?.destroy();
      if (a.status === 200 || a.status === 206)
        throw new ImportError(
          ErrorKind.Transfer,
          `range ${want} of ${this.description}: the server answered ${a.header('content-range') ?? 'the whole object'}`,
        );
      throw this.statusError(a, `cannot read range ${want} of`);
    }
    return collectRange(a.body, this.description, want, length);
  }

  async close(): Promise<void> {
    this.body?.destroy();
    this.body = undefined;
    await this.dispatcher?.destroy().catch(() => undefined);
    this.dispatcher = undefined;
  }
}
