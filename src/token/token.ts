/**
 * CDI's tokens (upstream pkg/token): a JWT signed PS256 with the RSA key of Secret `cdi-api-signing-key`, carrying
 * `{operation, name, namespace, resource: {group, version, resource}, params?}` next to the registered claims iss,
 * iat, nbf and exp. cdi-apiserver issues upload tokens (issuer `cdi-apiserver`, 5 minutes); cdi-uploadproxy checks
 * them with the public key and 10 s of leeway, as upstream. Clone tokens (later) use the same shapes.
 */
import type { KeyObject } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';

export const UploadTokenIssuer = 'cdi-apiserver';
export const UploadTokenLifetimeMs = 5 * 60_000;
export const UploadTokenLeewayMs = 10_000;

export const Operation = { Upload: 'Upload', Clone: 'Clone' } as const;
export type Operation = (typeof Operation)[keyof typeof Operation];

/** metav1.GroupVersionResource as it is serialized. */
export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface TokenPayload {
  operation: Operation;
  name: string;
  namespace: string;
  resource: GroupVersionResource;
  params?: Record<string, string>;
}

/** Why a token was refused; `message` is safe to show the client. */
export class TokenError extends Error {
  override name = 'TokenError';
}

export class TokenGenerator {
  private readonly issuer: string;
  private readonly key: KeyObject;
  private readonly lifetimeMs: number;
  private readonly now: () => number;
  constructor(issuer: string, privateKey: KeyObject, lifetimeMs: number, now: () => number = Date.now) {
    this.issuer = issuer;
    this.key = privateKey;
    this.lifetimeMs = lifetimeMs;
    this.now = now;
  }

  generate(payload: TokenPayload): Promise<string> {
    const t = Math.floor(this.now() / 1000);
    return new SignJWT({ ...payload })
      .setProtectedHeader({ alg: 'PS256' })
      .setIssuer(this.issuer)
      .setIssuedAt(t)
      .setNotBefore(t)
      .setExpirationTime(t + Math.floor(this.lifetimeMs / 1000))
      .sign(this.key);
  }
}

export class TokenValidator {
  private readonly issuer: string;
  private readonly key: KeyObject;
  private readonly leewayMs: number;
  private readonly now: () => number;
  constructor(issuer: string, publicKey: KeyObject, leewayMs: number, now: () => number = Date.now) {
    this.issuer = issuer;
    this.key = publicKey;
    this.leewayMs = leewayMs;
    this.now = now;
  }

  /** The payload of a valid token; TokenError for a bad signature, issuer, algorithm, or time. */
  async validate(token: string): Promise<TokenPayload> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: this.issuer,
        algorithms: ['PS256'],
        clockTolerance: Math.floor(this.leewayMs / 1000),
        currentDate: new Date(this.now()),
      });
      return parsePayload(payload);
    } catch (e) {
      if (e instanceof TokenError) throw e;
      if (e instanceof errors.JWTExpired) throw new TokenError('the token has expired', { cause: e });
      if (e instanceof errors.JWTClaimValidationFailed) {
        throw new TokenError(`the token's ${e.claim} claim is not valid`, { cause: e });
      }
      if (e instanceof errors.JWSSignatureVerificationFailed) {
        throw new TokenError('the token signature does not verify', { cause: e });
      }
      throw new TokenError('the token is not a valid CDI token', { cause: e });
    }
  }
}

function parsePayload(p: Record<string, unknown>): TokenPayload {
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const r = (typeof p.resource === 'object' && p.resource !== null ? p.resource : {}) as Record<
    string,
    unknown
  >;
  const out: TokenPayload = {
    operation: str(p.operation) as Operation,
    name: str(p.name),
    namespace: str(p.namespace),
    resource: { group: str(r.group), version: str(r.version), resource: str(r.resource) },
  };
  if (typeof p.params === 'object' && p.params !== null) {
    out.params = Object.fromEntries(Object.entries(p.params).map(([k, v]) => [k, str(v)]));
  }
  return out;
}

/** The payload of an upload token for PVC namespace/name. */
export function uploadPayload(namespace: string, name: string): TokenPayload {
  return {
    operation: Operation.Upload,
    name,
    namespace,
    resource: { group: '', version: 'v1', resource: 'persistentvolumeclaims' },
  };
}
