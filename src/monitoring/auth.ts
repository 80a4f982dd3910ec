// Who may read /metrics, decided by the API server as controller-runtime's filters.WithAuthenticationAndAuthorization
// (what upstream's cdi-controller serves its metrics behind) and kube-rbac-proxy do: the bearer token is checked with a
// TokenReview, the user it names must be allowed `get` on the non-resource URL /metrics by a SubjectAccessReview
// (RBAC: a ClusterRole with nonResourceURLs ["/metrics"], verbs ["get"], as upstream's cdi-metrics-reader).
// Answers are cached as controller-runtime caches them (token reviews 1 minute, allowed 5 minutes, denied 30
// seconds), so a Prometheus scraping every few seconds costs the API server a request a minute, not one a scrape.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { HttpMethod } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/index.ts';

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** The two questions put to the API server; KubeReviews asks them, tests may count them. */
export interface Reviews {
  /** The user a token belongs to; undefined when the API server does not accept the token. */
  tokenReview(token: string): Promise<ReviewedUser | undefined>;
  /** Whether `user` may do `verb` on the non-resource URL `path`. */
  accessReview(user: ReviewedUser, verb: string, path: string): Promise<Decision>;
}

interface TokenReviewStatus {
  status?: { authenticated?: boolean; user?: ReviewedUser; error?: string };
}
interface SubjectAccessReviewStatus {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

export class KubeReviews implements Reviews {
  readonly #kube: KubeClient;

  constructor(kube: KubeClient) {
    this.#kube = kube;
  }

  async tokenReview(token: string): Promise<ReviewedUser | undefined> {
    const r = await this.#kube.request<TokenReviewStatus>(
      HttpMethod.POST,
      '/apis/authentication.k8s.io/v1/tokenreviews',
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } },
    );
    return r.status?.authenticated === true && r.status.user?.username ? r.status.user : undefined;
  }

  async accessReview(user: ReviewedUser, verb: string, path: string): Promise<Decision> {
    const r = await this.#kube.request<SubjectAccessReviewStatus>(
      HttpMethod.POST,
      '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      {
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: user.username,
            ...(user.uid ? { uid: user.uid } : {}),
            groups: user.groups ?? [],
            ...(user.extra ? { extra: user.extra } : {}),
            nonResourceAttributes: { path, verb },
          },
        },
      },
    );
    return {
      allowed: r.status?.allowed === true && r.status.denied !== true,
      reason: r.status?.reason ?? r.status?.evaluationError ?? '',
    };
  }
}

/** The bearer token of a request (RFC 6750 `Authorization: Bearer <token>`); undefined without one. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const h = headers.authorization;
  if (!h) return undefined;
  const m = /^bearer\s+(\S+)\s*$/i.exec(h.trim());
  return m?.[1];
}

/** The outcome of a request's authentication and authorization, with the status code to answer. */
export type Verdict =
  { ok: true; user: string } | { ok: false; status: 401 | 403 | 500; message: string; cause?: unknown };

export interface AuthCacheOptions {
  /** token review answers, both ways (controller-runtime: 1m) */
  tokenTtlMs?: number;
  /** allowed access reviews (5m) */
  allowTtlMs?: number;
  /** denied access reviews (30s) */
  denyTtlMs?: number;
  /** entries per cache; the oldest goes first (a flood of made-up tokens cannot grow memory without bound) */
  maxEntries?: number;
  now?: () => number;
}

class TtlCache<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(max: number, now: () => number) {
    this.#max = max;
    this.#now = now;
  }

  get(key: string): { value: V } | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return { value: e.value };
  }

  set(key: string, value: V, ttlMs: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expires: this.#now() + ttlMs });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
}

/**
 * Authenticates and authorizes requests with the API server's reviews, cached. Failures to reach the API server are
 * not cached (the next scrape asks again) and answer 500, as controller-runtime does.
 */
export class DelegatedAuth {
  readonly #reviews: Reviews;
  readonly #tokens: TtlCache<ReviewedUser | undefined>;
  readonly #access: TtlCache<Decision>;
  readonly #tokenTtl: number;
  readonly #allowTtl: number;
  readonly #denyTtl: number;

  constructor(reviews: Reviews, o: AuthCacheOptions = {}) {
    const now = o.now ?? Date.now;
    const max = o.maxEntries ?? 1024;
    this.#reviews = reviews;
    this.#tokens = new TtlCache(max, now);
    this.#access = new TtlCache(max, now);
    this.#tokenTtl = o.tokenTtlMs ?? 60_000;
    this.#allowTtl = o.allowTtlMs ?? 5 * 60_000;
    this.#denyTtl = o.denyTtlMs ?? 30_000;
  }

  async #user(token: string): Promise<ReviewedUser | undefined> {
    // the token itself is never kept: its hash is the key
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.#tokens.get(key);
    if (hit) return hit.value;
    const user = await this.#reviews.tokenReview(token);
    this.#tokens.set(key, user, this.#tokenTtl);
    return user;
  }

  async #decide(user: ReviewedUser, verb: string, path: string): Promise<Decision> {
    const key = JSON.stringify([
      user.username,
      user.uid ?? '',
      user.groups ?? [],
      user.extra ?? {},
      verb,
      path,
    ]);
    const hit = this.#access.get(key);
    if (hit) return hit.value;
    const d = await this.#reviews.accessReview(user, verb, path);
    this.#access.set(key, d, d.allowed ? this.#allowTtl : this.#denyTtl);
    return d;
  }

  /** May the bearer of `headers` do `method` on `path`? */
  async check(headers: IncomingHttpHeaders, method: string, path: string): Promise<Verdict> {
    const token = bearerToken(headers);
    if (!token) return { ok: false, status: 401, message: 'Unauthorized' };
    let user: ReviewedUser | undefined;
    try {
      user = await this.#user(token);
    } catch (cause) {
      return { ok: false, status: 500, message: 'Authentication failed', cause };
    }
    if (!user) return { ok: false, status: 401, message: 'Unauthorized' };
    let d: Decision;
    try {
      d = await this.#decide(user, method.toLowerCase(), path);
    } catch (cause) {
      return { ok: false, status: 500, message: `Authorization for user ${user.username} failed`, cause };
    }
    if (!d.allowed) {
      return {
        ok: false,
        status: 403,
        message: `Authorization denied for user ${user.username}`,
        ...(d.reason ? { cause: d.reason } : {}),
      };
    }
    return { ok: true, user: user.username };
  }
}
