/**
 * S3 source on @aws-sdk/client-s3 with path-style addressing, as upstream (pkg/importer/s3-datasource.go):
 *   s3://bucket/key                          AWS itself; the region from AWS_REGION, else us-east-1
 *   http(s)://endpoint[:port]/bucket/key     any S3-compatible store; the region from an `s3.<region>.amazonaws.com`
 *                                            host, else us-east-1 (upstream takes the host's first label, which
 *                                            names no region for anything but AWS)
 * Credentials are the Secret's accessKeyId/secretKey (unsigned requests without them); extra CAs from the cert dir.
 * Objects are read by range too, so qcow2 and friends go by the same extent copy as over HTTP (no scratch), and a
 * body that breaks is continued from where it broke: open(offset, validator) asks for `bytes=<offset>-` with
 * `If-Match: <ETag>`, so a changed object (412, another ETag or size) is CannotResume, never spliced
 * (docs/adr/0009-resumable-downloads.md).
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { S3Client } from '@aws-sdk/client-s3';
import { CannotResume, ErrorKind, ImportError } from '../errors.ts';
import { collectRange, guardBody, proxied, readCaDir } from './http.ts';
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
    return { region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1', bucket: u.hostname, key: path };
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

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: { code?: string; message?: string };
}

export class S3Source implements ImportSource {
  readonly description: string;
  readonly resumable = true;
  private readonly o: S3SourceOptions;
  private readonly loc: S3Location;
  private client: S3Client | undefined;
  private cached: SourceInfo | undefined;
  private body: Readable | undefined;

  constructor(o: S3SourceOptions) {
    this.o = o;
    this.loc = parseS3Url(o.url);
    this.description = this.loc.endpoint
      ? `${this.loc.endpoint}/${this.loc.bucket}/${this.loc.key}`
      : `s3://${this.loc.bucket}/${this.loc.key}`;
  }

  private async s3(): Promise<S3Client> {
    if (this.client) return this.client;
    const pems: string[] = [];
    for (const d of this.o.caDirs ?? []) pems.push(...(await readCaDir(d)).pems);
    const { S3Client } = await import('@aws-sdk/client-s3');
    const anonymous = !this.o.accessKeyId;
    this.client = new S3Client({
      region: this.loc.region,
      ...(this.loc.endpoint ? { endpoint: this.loc.endpoint } : {}),
      forcePathStyle: true,
      credentials: { accessKeyId: this.o.accessKeyId ?? '', secretAccessKey: this.o.secretKey ?? '' },
      // No credentials: public objects, unsigned requests.
      ...(anonymous ? { signer: { sign: (r) => Promise.resolve(r) } } : {}),
      // Whole-object response checksums would be computed in JS on every byte; the import checks its own.
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      // HTTP(S)_PROXY/NO_PROXY (CDIConfig importProxy) through Node's own agent proxy support, as upstream's Go
      // client honours them.
      requestHandler: {
        httpsAgent: new HttpsAgent({
          ...(proxied() ? { proxyEnv: process.env } : {}),
          keepAlive: true,
          maxSockets: 8,
          rejectUnauthorized: !this.o.insecureSkipVerify,
          minVersion: 'TLSv1.2',
          ...(pems.length > 0 ? { ca: [...rootCertificates, ...pems] } : {}),
        }),
        httpAgent: new HttpAgent({
          keepAlive: true,
          maxSockets: 8,
          ...(proxied() ? { proxyEnv: process.env } : {}),
        }),
        requestTimeout: this.o.idleTimeoutMs ?? 10 * 60 * 1000,
      },
    });
    return this.client;
  }

  private error(err: unknown, action: string): ImportError {
    if (err instanceof ImportError) return err;
    const e = err as SdkError;
    const status = e.$metadata?.httpStatusCode;
    const name = e.name === 'Unknown' || e.name === 'UnknownError' ? '' : (e.name ?? '');
    const where = `${this.description}`;
    const code = e.cause?.code ?? e.code ?? '';
    const msg = e.cause?.message ?? e.message ?? String(err);
    // versitygw answers an unknown access key with 404 XAdminUserNotFound: a credentials problem all the same.
    const badKey = /InvalidAccessKeyId|UserNotFound|SignatureDoesNotMatch/.test(name);
    if (!badKey && (status === 404 || /NoSuchKey|NoSuchBucket|NotFound/.test(name))) {
      return new ImportError(
        ErrorKind.Transfer,
        `${action} ${where}: not found (HTTP 404${name && name !== 'NotFound' ? ` ${name}` : ''}): check the bucket and the object key`,
        { cause: err },
      );
    }
    if (
      badKey ||
      status === 401 ||
      status === 403 ||
      /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Forbidden/.test(name)
    ) {
      return new ImportError(
        ErrorKind.Transfer,
        `${action} ${where}: access denied (HTTP ${status ?? 403}${name && name !== 'Forbidden' ? ` ${name}` : ''}): ${this.o.accessKeyId ? "check the access key ID and secret key (the Secret's accessKeyId and secretKey; cdi: --user, --password-file)" : 'the object is not public: give credentials with a secretRef (accessKeyId, secretKey; cdi: --user, --password-file)'}`,
        { cause: err },
      );
    }
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(msg)) {
      return new ImportError(
        ErrorKind.Transfer,
        `TLS verification of ${this.loc.endpoint ?? 'S3'} failed (${msg}): add its CA with certConfigMap (cdi: --ca-dir)`,
        { cause: err },
      );
    }
    return new ImportError(
      ErrorKind.Transfer,
      `${action} ${where}: ${status ? `HTTP ${status} ` : ''}${code ? `${code} ` : ''}${name && !msg.includes(name) ? `${name}: ` : ''}${msg}`,
      { cause: err },
    );
  }

  /**
   * One ranged GET of the first byte tells the size, and unlike HEAD its errors have a body: the S3 error code
   * (InvalidAccessKeyId, NoSuchKey, NoSuchBucket) that the message can name.
   */
  async info(): Promise<SourceInfo> {
    if (this.cached) return this.cached;
    try {
      const r = await this.get('bytes=0-0');
      r.body.destroy();
      const total = /\/(\d+)$/.exec(r.contentRange ?? '');
      this.cached = {
        ranges: true,
        ...(total ? { size: Number(total[1]) } : r.length !== undefined ? { size: r.length } : {}),
        ...(r.contentType ? { contentType: r.contentType } : {}),
        // S3 ETags are strong (an MD5, or a multipart upload's digest of digests): they name this object version.
        ...(r.etag ? { validator: r.etag } : {}),
      };
    } catch (err) {
      if (
        (err as ImportError).cause &&
        /InvalidRange/.test(((err as ImportError).cause as SdkError).name ?? '')
      )
        this.cached = { ranges: true, size: 0 };
      else throw err;
    }
    return this.cached;
  }

  private async get(
    range?: string,
    ifMatch?: string,
  ): Promise<{
    body: Readable;
    length?: number;
    contentRange?: string;
    contentType?: string;
    etag?: string;
  }> {
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    const client = await this.s3();
    try {
      const r = await client.send(
        new GetObjectCommand({
          Bucket: this.loc.bucket,
          Key: this.loc.key,
          ...(range ? { Range: range } : {}),
          ...(ifMatch ? { IfMatch: ifMatch } : {}),
        }),
      );
      if (!(r.Body instanceof Readable)) throw new Error('the S3 client returned no body stream');
      return {
        body: r.Body,
        ...(r.ContentLength !== undefined ? { length: r.ContentLength } : {}),
        ...(r.ContentRange ? { contentRange: r.ContentRange } : {}),
        ...(r.ContentType ? { contentType: r.ContentType } : {}),
        ...(r.ETag ? { etag: r.ETag } : {}),
      };
    } catch (err) {
      const e = err as SdkError;
      if (ifMatch && (e.$metadata?.httpStatusCode === 412 || e.name === 'PreconditionFailed'))
        throw new CannotResume(`${this.description} changed (its ETag is no longer ${ifMatch})`);
      throw this.error(err, 'cannot read');
    }
  }

  /**
   * The object from byte 0, or the bytes from `offset` of the version `validator` (its ETag) names: a changed
   * object is CannotResume, and the data path starts again from byte 0.
   */
  async open(offset = 0, validator?: string): Promise<Readable> {
    this.body?.destroy();
    if (offset === 0) {
      const r = await this.get();
      this.body = r.body;
      // What this answer says is what info() says from now on (the object may have been replaced since).
      this.cached = {
        ranges: true,
        ...(r.length !== undefined ? { size: r.length } : {}),
        ...(r.contentType ? { contentType: r.contentType } : {}),
        ...(r.etag ? { validator: r.etag } : {}),
      };
      return guardBody(r.body, this.description, r.length);
    }
    const r = await this.get(`bytes=${offset}-`, validator);
    this.body = r.body;
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(r.contentRange ?? '');
    const known = this.cached?.size;
    const why =
      !m || Number(m[1]) !== offset
        ? `it answered ${r.contentRange ?? 'no Content-Range'}`
        : validator && r.etag && r.etag !== validator
          ? `it changed (${validator} is now ${r.etag})`
          : known !== undefined && m[3] !== '*' && Number(m[3]) !== known
            ? `its size changed from ${known} to ${m[3]} bytes`
            : undefined;
    if (why) {
      r.body.destroy();
      throw new CannotResume(`${this.description} cannot continue from byte ${offset}: ${why}`);
    }
    if (!this.cached && m) {
      const v = r.etag ?? validator;
      this.cached = {
        ranges: true,
        ...(m[3] !== '*' ? { size: Number(m[3]) } : {}),
        ...(r.contentType ? { contentType: r.contentType } : {}),
        ...(v ? { validator: v } : {}),
      };
    }
    return guardBody(r.body, this.description, r.length);
  }

  async readRange(offset: number, length: number): Promise<Buffer[]> {
    const want = `bytes=${offset}-${offset + length - 1}`;
    const { body } = await this.get(want);
    return collectRange(body, this.description, want, length);
  }

  close(): Promise<void> {
    this.body?.destroy();
    this.client?.destroy();
    this.client = undefined;
    return Promise.resolve();
  }
}
