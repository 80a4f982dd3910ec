/**
 * AWS Signature Version 4 for the S3 source's GETs (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html),
 * so that they go on the HTTP source's own transports (a bare socket for plain http, undici for TLS and proxies)
 * instead of through @aws-sdk/client-s3's middleware and stream layers (docs/adr/0031-object-store-sources.md).
 *
 *   canonical request  METHOD \n URI \n QUERY \n header:value\n… \n signed;headers \n payload hash
 *   string to sign     AWS4-HMAC-SHA256 \n x-amz-date \n date/region/service/aws4_request \n sha256(canonical request)
 *   signing key        HMAC chain "AWS4"+secret → date → region → service → "aws4_request"
 *
 * S3's rules, which differ from the generic algorithm: the path is encoded once and not normalized (a key may hold
 * `//` or `.`), and the payload hash is sent in `x-amz-content-sha256` (`UNSIGNED-PAYLOAD` for our bodiless GETs).
 */
import { createHash, createHmac } from 'node:crypto';

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials' token: sent (and signed) as `x-amz-security-token`. */
  sessionToken?: string;
}

export interface SignInput {
  method: string;
  /** The Host header exactly as sent (`host[:port]`, the port only when not the scheme's default). */
  host: string;
  /** The request path, not yet encoded (`/bucket/a key`); `encodePath` gives its canonical form. */
  path: string;
  /** Query parameters, not yet encoded, in any order. */
  query?: [string, string][];
  /** Other headers to sign (and send), any case. `host` and `x-amz-date` are added. */
  headers?: Record<string, string>;
  payloadHash: string;
  credentials: Credentials;
  region: string;
  service: string;
  date: Date;
}

export interface Signed {
  /** Every header to send: the given ones (lower case), host, x-amz-date, the token, authorization. */
  headers: Record<string, string>;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

/** RFC 3986 percent-encoding of everything but the unreserved characters (`A-Za-z0-9-._~`), UTF-8, upper-case hex. */
export function uriEncode(s: string, keepSlash = false): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** The canonical (and sent) form of an S3 path: every segment encoded once, slashes kept, nothing normalized. */
export function encodePath(path: string): string {
  return uriEncode(path, true);
}

/** `20150830T123600Z` */
export function amzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex');

/** The derived key depends only on the secret, the day, the region and the service: one chain per day, not per GET. */
const keys = new Map<string, Buffer>();

function signingKey(secret: string, day: string, region: string, service: string): Buffer {
  const id = `${day}\n${region}\n${service}\n${secret}`;
  let k = keys.get(id);
  if (!k) {
    k = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
    if (keys.size > 16) keys.clear();
    keys.set(id, k);
  }
  return k;
}

/** Header values are trimmed and their inner runs of spaces folded to one (the published rule). */
const canonicalValue = (v: string): string => v.trim().replace(/\s+/g, ' ');

export function sign(i: SignInput): Signed {
  const time = amzDate(i.date);
  const day = time.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(i.headers ?? {})) headers[k.toLowerCase()] = v;
  headers.host = i.host;
  headers['x-amz-date'] = time;
  if (i.credentials.sessionToken) headers['x-amz-security-token'] = i.credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(';');
  const query = (i.query ?? [])
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [
    i.method,
    encodePath(i.path),
    query,
    names.map((n) => `${n}:${canonicalValue(headers[n]!)}\n`).join(''),
    signedHeaders,
    i.payloadHash,
  ].join('\n');
  const scope = `${day}/${i.region}/${i.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', time, scope, sha256(canonicalRequest)].join('\n');
  const signature = createHmac('sha256', signingKey(i.credentials.secretAccessKey, day, i.region, i.service))
    .update(stringToSign)
    .digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${i.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers, canonicalRequest, stringToSign, signature };
}
