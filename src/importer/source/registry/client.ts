/**
 * A small OCI distribution (Docker registry v2) client on undici: manifests and blobs of one repository, with
 * bearer-token and basic auth, extra CAs, insecure registries (TLS not verified, plain HTTP allowed), redirects
 * (blobs often live behind a CDN: credentials are dropped when a redirect leaves the registry's origin).
 */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ErrorKind, ImportError } from '../../errors.ts';
import type { RetryPolicy } from '../../request.ts';
import { undiciDispatcher } from '../http.ts';
import { resumableBody } from '../resumable.ts';
import { MANIFEST_ACCEPT, type BlobStore, type Descriptor } from './image.ts';
import { apiHost, type DockerReference } from './reference.ts';

export interface RegistryClientOptions {
  user?: string;
  password?: string;
  /** Directories whose files are all extra trusted CA certificates (PEM). */
  caDirs?: string[];
  /** Upstream's insecure registry: TLS is not verified, and plain HTTP is used when the registry does not speak TLS. */
  insecure?: boolean;
  idleTimeoutMs?: number;
  userAgent?: string;
  /** A broken blob read is continued `resumes` times in a row without progress (default 5), `delayMs` apart (1000). */
  retry?: Pick<RetryPolicy, 'resumes' | 'delayMs'>;
  /** Where a continued blob read is logged (the importer log). */
  log?: (line: string) => void;
}

/** Upstream's text (common.ImagePullFailureText): the controller marks the DataVolume ImagePullFailed on it. */
export const IMAGE_PULL_FAILED = 'failed to pull image';

function pullFailed(msg: string, cause?: unknown): ImportError {
  return new ImportError(ErrorKind.Transfer, `${IMAGE_PULL_FAILED}: ${msg}`, { cause });
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

/** The registry's own error text: `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`. */
function registryErrors(text: string): string {
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    const e = (j.errors ?? []).map((x) => [x.code, x.message].filter(Boolean).join(': ')).join('; ');
    if (e) return e;
  } catch {
    // not JSON
  }
  return '';
}

export class RegistryClient implements BlobStore {
  readonly description: string;
  private readonly ref: DockerReference;
  private readonly o: RegistryClientOptions;
  private readonly host: string;
  private scheme: 'https' | 'http' = 'https';
  private dispatcher: Dispatcher | undefined;
  private authorization: string | undefined;

  constructor(ref: DockerReference, o: RegistryClientOptions = {}) {
    this.ref = ref;
    this.o = o;
    this.host = apiHost(ref.registry);
    this.description = ref.text;
  }

  private async agent(): Promise<Dispatcher> {
    this.dispatcher ??= await undiciDispatcher({
      caDirs: this.o.caDirs ?? [],
      insecureSkipVerify: this.o.insecure ?? false,
      idleMs: this.o.idleTimeoutMs ?? 10 * 60 * 1000,
    });
    return this.dispatcher;
  }

  private headers(extra: Record<string, string>, sameOrigin: boolean): Record<string, string> {
    return {
      'user-agent': this.o.userAgent ?? 'cdi-ts-importer',
      ...extra,
      ...(sameOrigin && this.authorization ? { authorization: this.authorization } : {}),
    };
  }

  private networkError(err: unknown, url: string): ImportError {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code ?? '';
    // OpenSSL's messages carry its source location: keep the reason ("wrong version number").
    const raw = e.cause?.message ?? e.message ?? String(err);
    const msg = (/SSL routines:[^:]*:([^:]+):/.exec(raw)?.[1] ?? raw).split('\n')[0]!.trim();
    if (/WRONG_VERSION_NUMBER|packet length too long|wrong version/i.test(`${code} ${msg}`)) {
      return pullFailed(
        `${this.host} does not answer TLS (${msg}); if it is a plain-HTTP registry, list it in the CDIConfig's insecureRegistries (cdi: --insecure-skip-verify)`,
        err,
      );
    }
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(msg)) {
      return pullFailed(
        `TLS verification of ${this.host} failed (${msg}): add its CA with certConfigMap (cdi: --ca-dir), or list it in the CDIConfig's insecureRegistries (cdi: --insecure-skip-verify)`,
        err,
      );
    }
    if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
      return pullFailed(
        `no data from ${new URL(url).host} for ${(this.o.idleTimeoutMs ?? 600000) / 1000}s; giving up`,
        err,
      );
    }
    return pullFailed(`cannot reach ${new URL(url).host}: ${code ? `${code} ` : ''}${msg}`, err);
  }

  /** One GET under /v2/<repository>/, with auth negotiated on the first 401, and redirects followed. */
  private async get(path: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const dispatcher = await this.agent();
    const { request } = await import('undici');
    let authTried = false;
    for (;;) {
      const origin = `${this.scheme}://${this.host}`;
      let url = `${origin}/v2/${this.ref.repository}/${path}`;
      let res: Dispatcher.ResponseData | undefined;
      for (let hop = 0; ; hop++) {
        const same = new URL(url).origin === origin;
        try {
          res = await request(url, { method: 'GET', headers: this.headers(headers, same), dispatcher });
        } catch (err) {
          if (this.o.insecure && this.scheme === 'https' && hop === 0) {
            // An insecure registry may speak plain HTTP (containers/image falls back the same way).
            this.scheme = 'http';
            break;
          }
          throw this.networkError(err, url);
        }
        if ([301, 302, 303, 307, 308].includes(res.statusCode) && typeof res.headers.location === 'string') {
          await res.body.dump();
          if (hop >= 10) throw pullFailed(`too many redirects from ${this.host}`);
          url = new URL(res.headers.location, url).toString();
          res = undefined;
          continue;
        }
        break;
      }
      if (!res) continue;
      if (res.statusCode === 401 && !authTried) {
        authTried = true;
        const h = res.headers['www-authenticate'];
        await res.body.dump();
        await this.authenticate(typeof h === 'string' ? h : Array.isArray(h) ? h[0]! : '');
        continue;
      }
      return res;
    }
  }

  private credentialsHint(): string {
    return this.o.user !== undefined
      ? "check the user name and password (the Secret's accessKeyId and secretKey; cdi: --user, --password-file)"
      : 'it needs credentials: a secretRef with accessKeyId and secretKey (cdi: --user, --password-file)';
  }

  private async authenticate(header: string): Promise<void> {
    const c = parseChallenge(header);
    const basic =
      this.o.user !== undefined
        ? 'Basic ' + Buffer.from(`${this.o.user}:${this.o.password ?? ''}`).toString('base64')
        : undefined;
    if (!c || c.scheme === 'basic') {
      if (!basic) throw pullFailed(`${this.host} refused the request (HTTP 401): ${this.credentialsHint()}`);
      this.authorization = basic;
      return;
    }
    if (c.scheme !== 'bearer' || !c.params.realm) {
      throw pullFailed(`${this.host} asks for an authentication scheme cdi does not know: ${header}`);
    }
    const realm = new URL(c.params.realm);
    if (c.params.service) realm.searchParams.set('service', c.params.service);
    realm.searchParams.set('scope', c.params.scope ?? `repository:${this.ref.repository}:pull`);
    if (this.o.user !== undefined) realm.searchParams.set('account', this.o.user);
    const { request } = await import('undici');
    let res: Dispatcher.ResponseData;
    try {
      res = await request(realm, {
        method: 'GET',
        headers: {
          'user-agent': this.o.userAgent ?? 'cdi-ts-importer',
          ...(basic ? { authorization: basic } : {}),
        },
        dispatcher: await this.agent(),
      });
    } catch (err) {
      throw this.networkError(err, realm.toString());
    }
    const text = (await res.body.text()).slice(0, 1 << 20);
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw pullFailed(
        `the token server ${realm.host} refused the credentials for ${this.ref.repository} (HTTP ${res.statusCode}): ${this.credentialsHint()}`,
      );
    }
    let token: string | undefined;
    try {
      const j = JSON.parse(text) as { token?: string; access_token?: string };
      token = j.token ?? j.access_token;
    } catch {
      // below
    }
    if (res.statusCode !== 200 || !token) {
      throw pullFailed(`the token server ${realm.host} answered HTTP ${res.statusCode} without a token`);
    }
    this.authorization = `Bearer ${token}`;
  }

  private async failure(res: Dispatcher.ResponseData, what: string): Promise<ImportError> {
    const text = (await res.body.text().catch(() => '')).slice(0, 4096);
    const detail = registryErrors(text);
    const s = res.statusCode;
    const why =
      s === 401 || s === 403
        ? `access denied (HTTP ${s}${detail ? ` ${detail}` : ''}): ${this.credentialsHint()}`
        : s === 404
          ? `not found (HTTP 404${detail ? ` ${detail}` : ''}): check the repository, tag or digest`
          : `HTTP ${s}${detail ? ` ${detail}` : ''}`;
    return pullFailed(`${what}: ${why}`);
  }

  async manifest(digest?: string): Promise<{ body: Buffer; mediaType?: string; digest?: string }> {
    const ref = digest ?? this.ref.digest ?? this.ref.tag ?? 'latest';
    const what = `reading manifest ${ref} of ${this.description}`;
    const res = await this.get(`manifests/${ref}`, { accept: MANIFEST_ACCEPT });
    if (res.statusCode !== 200) throw await this.failure(res, what);
    const ct = res.headers['content-type'];
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > 4 << 20) {
        res.body.destroy();
        throw new ImportError(ErrorKind.Invalid, `${what}: the manifest is larger than 4 MiB; refused`);
      }
      chunks.push(c);
    }
    const dcd = res.headers['docker-content-digest'];
    // A digest reference is verified by the caller; a tag's answer is checked against the digest the registry names.
    const named =
      digest ??
      this.ref.digest ??
      (typeof dcd === 'string' && /^sha256:[a-f0-9]{64}$/.test(dcd) ? dcd : undefined);
    return {
      body: Buffer.concat(chunks),
      ...(typeof ct === 'string' ? { mediaType: ct } : {}),
      ...(named ? { digest: named } : {}),
    };
  }

  /**
   * A blob's bytes. A read that breaks is continued with `Range: bytes=<n>-` (source/resumable.ts): a blob is named by
   * its digest, so the rest is the same content, and the digest check above this stream (image.ts VerifiedBlob)
   * still covers every byte, the continued ones included; a registry that answers the range with the whole blob has
   * its first bytes skipped.
   */
  async blob(d: Descriptor): Promise<Readable> {
    const what = `blob ${d.digest} of ${this.description}`;
    return resumableBody(
      { description: what, open: (offset = 0) => this.blobFrom(d, offset) },
      await this.blobFrom(d, 0),
      {
        policy: 'continue',
        why: 'a blob is named by its digest',
        validator: d.digest,
        resumes: this.o.retry?.resumes ?? 5,
        delayMs: this.o.retry?.delayMs ?? 1000,
        log: this.o.log ?? (() => undefined),
      },
    );
  }

  /** The blob's bytes from `offset`, one request. */
  private async blobFrom(d: Descriptor, offset: number): Promise<Readable> {
    const res = await this.get(`blobs/${d.digest}`, offset > 0 ? { range: `bytes=${offset}-` } : {});
    const partial = offset > 0 && res.statusCode === 206;
    if (res.statusCode !== 200 && !partial)
      throw await this.failure(res, `reading blob ${d.digest} of ${this.description}`);
    const range = String(res.headers['content-range'] ?? 'none');
    if (partial && !range.startsWith(`bytes ${offset}-`)) {
      await res.body.dump();
      throw pullFailed(
        `${this.host} answered range ${range} when blob ${d.digest} was asked from byte ${offset}`,
      );
    }
    const start = partial ? offset : 0;
    const body = res.body as unknown as Readable;
    const host = this.host;
    // undici's body errors (resets, idle timeouts) become one-line messages; bytes before `offset` are skipped.
    const wrap = async function* (): AsyncGenerator<Buffer> {
      let pos = start;
      try {
        for await (const c of body as AsyncIterable<Buffer>) {
          const from = Math.max(0, offset - pos);
          pos += c.length;
          if (from < c.length) yield from > 0 ? c.subarray(from) : c;
        }
      } catch (err) {
        throw pullFailed(
          `the connection to ${host} broke after ${pos} of ${d.size} bytes of blob ${d.digest}: ${(err as Error).message}`,
          err,
        );
      }
    };
    const out = Readable.from(wrap(), { objectMode: false, highWaterMark: 1 << 20 });
    out.on('close', () => body.destroy());
    return out;
  }

  async close(): Promise<void> {
    await this.dispatcher?.destroy().catch(() => undefined);
    this.dispatcher = undefined;
  }
}
