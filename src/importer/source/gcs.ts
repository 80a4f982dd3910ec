/**
 * GCS source: the JSON API's media download (`/storage/v1/b/<bucket>/o/<object>?alt=media`) over our HTTP source,
 * so GCS gets everything HTTP has: ranged reads (qcow2 by extent copy, no scratch), a broken body continued by range
 * (open(offset, validator): `Range` with `If-Range: <ETag>`, docs/adr/0009-resumable-downloads.md), the plain-HTTP
 * socket path, CAs, proxies, the idle watchdog, and upstream's "Unable to connect to gcs data source: …" for an
 * object it cannot reach. URLs, as upstream (pkg/importer/gcs-datasource.go):
 *   gs://bucket/object                            storage.googleapis.com, or STORAGE_EMULATOR_HOST when set (the
 *                                                 variable Google's own clients use to point at an emulator)
 *   http(s)://host/bucket/object                  that host's JSON API (storage.cloud.google.com: googleapis.com)
 * Credentials: anonymous, or the key file GOOGLE_APPLICATION_CREDENTIALS names (the Secret's credentials.json,
 * mounted at /google): a service-account key (a JWT signed with its key, exchanged at its token_uri) or an
 * authorized-user refresh token. Why not @google-cloud/storage: docs/adr/0031-object-store-sources.md.
 */
import { createSign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { describe, ErrorKind, ImportError } from '../errors.ts';
import { HttpSource, readCaDir } from './http.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export interface GcsSourceOptions {
  url: string;
  /** A Google credentials JSON file (service_account or authorized_user); anonymous without it. */
  credentialsFile?: string;
  caDirs?: string[];
  insecureSkipVerify?: boolean;
  env?: Record<string, string | undefined>;
}

const READ_SCOPE = 'https://www.googleapis.com/auth/devstorage.read_only';

export function gcsMediaUrl(url: string, env: Record<string, string | undefined> = process.env): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImportError(ErrorKind.Invalid, `invalid GCS URL "${url}"`);
  }
  const bad = (why: string): ImportError =>
    new ImportError(
      ErrorKind.Invalid,
      `invalid GCS URL "${url}": ${why} (use gs://bucket/object or https://storage.googleapis.com/bucket/object)`,
    );
  const path = decodeURIComponent(u.pathname).replace(/^\/+/, '');
  let base: string;
  let bucket: string;
  let object: string;
  if (u.protocol === 'gs:') {
    const emu = env.STORAGE_EMULATOR_HOST;
    base = emu
      ? emu.includes('://')
        ? emu.replace(/\/+$/, '')
        : `http://${emu}`
      : 'https://storage.googleapis.com';
    bucket = u.hostname;
    object = path;
  } else if (u.protocol === 'http:' || u.protocol === 'https:') {
    if (/^(download\/)?storage\/v1\/b\/[^/]+\/o\/./.test(path)) return u.toString(); // already a JSON API URL
    const host = u.host === 'storage.cloud.google.com' ? 'storage.googleapis.com' : u.host;
    base = `${u.protocol}//${host}`;
    const slash = path.indexOf('/');
    bucket = slash > 0 ? path.slice(0, slash) : path;
    object = slash > 0 ? path.slice(slash + 1) : '';
  } else throw bad(`unsupported scheme "${u.protocol}"`);
  if (!bucket) throw bad('no bucket');
  if (!object) throw bad('no object name');
  return `${base}/storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(object)}?alt=media`;
}

interface CredentialsFile {
  type?: string;
  client_email?: string;
  private_key?: string;
  private_key_id?: string;
  token_uri?: string;
  client_id?: string;
  client_secret?: string;
  refresh_token?: string;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** The OAuth request body for a credentials file (a signed JWT for service accounts, RFC 7523). */
export function tokenRequest(c: CredentialsFile, now = Date.now()): { uri: string; form: URLSearchParams } {
  if (c.type === 'service_account') {
    if (!c.client_email || !c.private_key)
      throw new ImportError(
        ErrorKind.Invalid,
        'the GCS service-account key has no client_email or private_key',
      );
    const uri = c.token_uri ?? 'https://oauth2.googleapis.com/token';
    const iat = Math.floor(now / 1000);
    const header = { alg: 'RS256', typ: 'JWT', ...(c.private_key_id ? { kid: c.private_key_id } : {}) };
    const claims = { iss: c.client_email, scope: READ_SCOPE, aud: uri, iat, exp: iat + 3600 };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    let sig: Buffer;
    try {
      sig = createSign('RSA-SHA256').update(input).sign(c.private_key);
    } catch (err) {
      throw new ImportError(
        ErrorKind.Invalid,
        `the GCS service-account private_key cannot sign: ${describe(err)}`,
      );
    }
    const form = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: `${input}.${b64url(sig)}`,
    });
    return { uri, form };
  }
  if (c.type === 'authorized_user') {
    if (!c.client_id || !c.client_secret || !c.refresh_token)
      throw new ImportError(
        ErrorKind.Invalid,
        'the GCS authorized_user credentials lack client_id, client_secret or refresh_token',
      );
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      client_id: c.client_id,
      client_secret: c.client_secret,
      refresh_token: c.refresh_token,
    });
    return { uri: c.token_uri ?? 'https://oauth2.googleapis.com/token', form };
  }
  throw new ImportError(
    ErrorKind.Invalid,
    `the GCS credentials file has type "${c.type ?? ''}": use a service_account key (or authorized_user credentials)`,
  );
}

export class GcsSource implements ImportSource {
  readonly description: string;
  readonly resumable = true;
  private readonly o: GcsSourceOptions;
  private readonly media: string;
  private http: HttpSource | undefined;

  constructor(o: GcsSourceOptions) {
    this.o = o;
    this.media = gcsMediaUrl(o.url, o.env);
    this.description = o.url;
  }

  private async token(file: string): Promise<string> {
    const text = await readFile(file, 'utf8').catch((err: Error) => {
      throw new ImportError(
        ErrorKind.Invalid,
        `cannot read the GCS credentials file ${file}: ${err.message}`,
      );
    });
    let creds: CredentialsFile;
    try {
      creds = JSON.parse(text) as CredentialsFile;
    } catch {
      throw new ImportError(ErrorKind.Invalid, `the GCS credentials file ${file} is not JSON`);
    }
    const { uri, form } = tokenRequest(creds);
    const pems: string[] = [];
    for (const d of this.o.caDirs ?? []) pems.push(...(await readCaDir(d)).pems);
    const { Agent, request } = await import('undici');
    const dispatcher = new Agent({
      connect: {
        rejectUnauthorized: !this.o.insecureSkipVerify,
        ...(pems.length ? { ca: [...rootCertificates, ...pems] } : {}),
      },
    });
    try {
      const res = await request(uri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        dispatcher,
      });
      const body = (await res.body.text()).slice(0, 1 << 16);
      let j: { access_token?: string; error?: string; error_description?: string } = {};
      try {
        j = JSON.parse(body) as typeof j;
      } catch {
        // below
      }
      if (res.statusCode !== 200 || !j.access_token) {
        throw new ImportError(
          ErrorKind.Transfer,
          `the token server ${new URL(uri).host} refused the GCS credentials (HTTP ${res.statusCode}${j.error ? ` ${j.error}` : ''}${j.error_description ? `: ${j.error_description}` : ''}): check the Secret's credentials.json`,
        );
      }
      return j.access_token;
    } catch (err) {
      if (err instanceof ImportError) throw err;
      throw new ImportError(
        ErrorKind.Transfer,
        `cannot reach the token server ${new URL(uri).host}: ${describe(err)}`,
        {
          cause: err,
        },
      );
    } finally {
      await dispatcher.destroy();
    }
  }

  private async source(): Promise<HttpSource> {
    if (this.http) return this.http;
    const file = this.o.credentialsFile;
    const headers = file ? [`Authorization: Bearer ${await this.token(file)}`] : [];
    this.http = new HttpSource({
      url: this.media,
      headers,
      ...(this.o.caDirs ? { caDir: this.o.caDirs } : {}),
      insecureSkipVerify: this.o.insecureSkipVerify ?? false,
      userAgent: 'cdi-ts-importer',
      kind: 'gcs',
    });
    return this.http;
  }

  /**
   * The HTTP source's message with GCS's hint: `… Status: 404 Not Found (gs://bucket/object: check the bucket and
   * object name)` instead of the media URL and HTTP's generic hint.
   */
  private explain(err: unknown): never {
    const status = err instanceof ImportError ? /got (\d{3})\. Status:/.exec(err.message)?.[1] : undefined;
    // Everything else (CannotResume included, which the data path tells apart by its class) as it is.
    if (!(err instanceof ImportError) || !status) throw err;
    const hint =
      status === '401' || status === '403'
        ? this.o.credentialsFile
          ? 'check the service account has read access to the object'
          : 'the object is not public; give a service-account key with a secretRef (credentials.json)'
        : status === '404'
          ? 'check the bucket and object name'
          : undefined;
    const where = ` (${this.description}${hint ? `: ${hint}` : ''})`;
    throw new ImportError(err.kind, err.message.replace(/ \([^()]*\)$/, where), { cause: err });
  }

  async info(): Promise<SourceInfo> {
    return (await this.source()).info().catch((e: unknown) => this.explain(e));
  }

  /** The object from byte 0, or from `offset` of the version its ETag `validator` names (HttpSource's rules). */
  async open(offset?: number, validator?: string): Promise<Readable> {
    return (await this.source()).open(offset, validator).catch((e: unknown) => this.explain(e));
  }

  async readRange(offset: number, length: number, into?: Buffer): Promise<Buffer[]> {
    return (await this.source()).readRange(offset, length, into).catch((e: unknown) => this.explain(e));
  }

  async close(): Promise<void> {
    await this.http?.close();
  }
}
