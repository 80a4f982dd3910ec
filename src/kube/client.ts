// A small typed REST client. client-node gives us the KubeConfig (loading, TLS, tokens, exec plugins) and
// the undici dispatcher for the cluster's TLS settings; the requests themselves are plain fetch calls so that the
// Content-Type of every patch, the subresource, and the handling of error Status bodies are explicit.
import { readFileSync } from 'node:fs';
import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { fetch, type Dispatcher } from 'undici';
import { ApiError, parseStatus, type Status } from './errors.ts';
import { apiVersionOf, type KubeObject, type ObjectList, type Resource } from './types.ts';

export const ContentType = {
  Json: 'application/json',
  MergePatch: 'application/merge-patch+json',
  JsonPatch: 'application/json-patch+json',
  StrategicMergePatch: 'application/strategic-merge-patch+json',
  Apply: 'application/apply-patch+yaml',
} as const;

type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  signal?: AbortSignal;
}

export interface WriteOptions {
  namespace?: string;
  dryRun?: boolean;
  fieldManager?: string;
  signal?: AbortSignal;
}

export interface PatchOptions extends WriteOptions {
  /** "status" to write through the status subresource. */
  subresource?: string;
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  /** The server ends the watch after this many seconds (it picks a random 30-60 min otherwise). */
  timeoutSeconds?: number;
  allowWatchBookmarks?: boolean;
  signal?: AbortSignal;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Loads a kubeconfig file, with a one-line error when it is missing or unusable. */
export function loadKubeConfig(path: string): KubeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(
      `kubeconfig ${path} cannot be read: bring the cluster up (npm run cluster:up) or pass another --kubeconfig`,
    );
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
  } catch (e) {
    throw new Error(`kubeconfig ${path} is not valid: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${path} has no current cluster`);
  return kc;
}

export function resourcePath(r: Resource, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced) {
    if (namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
    else if (name) throw new Error(`${r.kind} ${name} is namespaced: a namespace is required`);
  }
  p += `/${r.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  private readonly server: string;
  private readonly requestTimeoutMs: number;
  /**
   * client-node 2.0.1 builds a new undici Agent (a new connection pool) every time it authenticates a request, so
   * using each request's own dispatcher opened one TLS connection per request and left it open. The first one is
   * kept and reused: TLS settings come from the kubeconfig and do not change; headers (tokens) are still
   * refreshed on every request.
   */
  private dispatcher: Dispatcher | undefined | null = null;
  /**
   * Sees every request sent (watches included) with its HTTP status, or 'error' when no answer came: the process's
   * own count of what it asks of the API server (client-go's rest_client_requests_total).
   */
  onResponse: ((method: string, code: string) => void) | undefined;

  /** requestTimeoutMs bounds every request except watches, so a hung connection cannot stall a reconcile. */
  constructor(kubeConfig: KubeConfig, opts: { requestTimeoutMs?: number } = {}) {
    this.kubeConfig = kubeConfig;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
  }

  static fromFile(path: string): KubeClient {
    return new KubeClient(loadKubeConfig(path));
  }

  /** Sends one request; returns the parsed JSON body, or throws ApiError for a non-2xx answer. */
  async request<T>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<T> {
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      res = await this.send(method, path, { ...opts, signal });
      text = await res.text();
    } catch (e) {
      if (timeout.aborted && !opts.signal?.aborted) {
        throw new Error(
          `${method} ${path}: no answer from the API server within ${this.requestTimeoutMs} ms`,
          { cause: e },
        );
      }
      throw e;
    }
    if (res.status < 200 || res.status > 299)
      throw new ApiError(method, path, res.status, parseStatus(text), text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  private async send(method: HttpMethod, path: string, opts: RequestOptions) {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const ctx = new RequestContext(url.toString(), method);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    const headers = ctx.getHeaders() as Record<string, string>;
    headers.Accept = 'application/json';
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = opts.contentType ?? ContentType.Json;
      body = JSON.stringify(opts.body);
    }
    if (this.dispatcher === null) this.dispatcher = ctx.getDispatcher();
    const dispatcher = this.dispatcher;
    const answer = fetch(url, {
      method,
      headers,
      body,
      signal: opts.signal ?? null,
      ...(dispatcher ? { dispatcher } : {}),
    });
    const observe = this.onResponse;
    if (!observe) return answer;
    return answer.then(
      (res) => {
        observe(method, String(res.status));
        return res;
      },
      (e: unknown) => {
        observe(method, 'error');
        throw e;
      },
    );
  }

  get<T extends KubeObject>(r: Resource, name: string, namespace?: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>(HttpMethod.GET, resourcePath(r, namespace, name), { signal });
  }

  /** Like get, but undefined when the object does not exist. */
  async getOrUndefined<T extends KubeObject>(
    r: Resource,
    name: string,
    namespace?: string,
    signal?: AbortSignal,
  ): Promise<T | undefined> {
    try {
      return await this.get<T>(r, name, namespace, signal);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  /**
   * Lists one page. Items of core lists come without apiVersion/kind; they are filled in, so that an
   * item can be used as an owner or an event's involvedObject as is.
   */
  async list<T extends KubeObject>(r: Resource, opts: ListOptions = {}): Promise<ObjectList<T>> {
    const { namespace, signal, ...query } = opts;
    const list = await this.request<ObjectList<T>>(HttpMethod.GET, resourcePath(r, namespace), {
      query,
      signal,
    });
    for (const item of list.items) {
      item.apiVersion ??= apiVersionOf(r);
      item.kind ??= r.kind;
    }
    return list;
  }

  /** Lists every page (limit/continue). */
  async listAll<T extends KubeObject>(r: Resource, opts: ListOptions = {}): Promise<ObjectList<T>> {
    const items: T[] = [];
    let page = await this.list<T>(r, { limit: 500, ...opts });
    items.push(...page.items);
    while (page.metadata.continue) {
      page = await this.list<T>(r, { limit: 500, ...opts, continue: page.metadata.continue });
      items.push(...page.items);
    }
    return { ...page, items };
  }

  create<T extends KubeObject>(r: Resource, obj: T, opts: WriteOptions = {}): Promise<T> {
    const namespace = opts.namespace ?? obj.metadata?.namespace;
    const body = { apiVersion: apiVersionOf(r), kind: r.kind, ...obj };
    return this.request<T>(HttpMethod.POST, resourcePath(r, namespace), {
      body,
      query: writeQuery(opts),
      signal: opts.signal,
    });
  }

  /**
   * Creates the object, or returns the one that already exists under that name (AlreadyExists is
   * success: deterministic child names make a repeated create after a restart or a stale cache harmless).
   */
  async createOrGet<T extends KubeObject>(
    r: Resource,
    obj: T,
    opts: WriteOptions = {},
  ): Promise<{ object: T; created: boolean }> {
    try {
      return { object: await this.create<T>(r, obj, opts), created: true };
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 409 && e.reason === 'AlreadyExists')) throw e;
      const name = obj.metadata?.name;
      if (!name) throw e;
      return {
        object: await this.get<T>(r, name, opts.namespace ?? obj.metadata?.namespace, opts.signal),
        created: false,
      };
    }
  }

  /** PUT: carries metadata.resourceVersion, so a concurrent change gives a 409 Conflict. */
  replace<T extends KubeObject>(r: Resource, obj: T, opts: PatchOptions = {}): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`cannot replace a ${r.kind} without metadata.name`);
    const namespace = opts.namespace ?? obj.metadata?.namespace;
    const body = { apiVersion: apiVersionOf(r), kind: r.kind, ...obj };
    return this.request<T>(HttpMethod.PUT, resourcePath(r, namespace, name, opts.subresource), {
      body,
      query: writeQuery(opts),
      signal: opts.signal,
    });
  }

  /** JSON merge patch (RFC 7386): works for custom resources, unlike strategic merge patch. */
  mergePatch<T extends KubeObject>(
    r: Resource,
    name: string,
    patch: unknown,
    opts: PatchOptions = {},
  ): Promise<T> {
    return this.patch<T>(r, name, patch, ContentType.MergePatch, opts);
  }

  /** JSON patch (RFC 6902), e.g. a `test` of resourceVersion followed by `replace` operations. */
  jsonPatch<T extends KubeObject>(
    r: Resource,
    name: string,
    ops: unknown[],
    opts: PatchOptions = {},
  ): Promise<T> {
    return this.patch<T>(r, name, ops, ContentType.JsonPatch, opts);
  }

  /** Server-side apply: `obj` is the full intent of `fieldManager`; force takes over conflicting fields. */
  apply<T extends KubeObject>(
    r: Resource,
    obj: T,
    opts: PatchOptions & { fieldManager: string; force?: boolean },
  ): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`cannot apply a ${r.kind} without metadata.name`);
    const body = { apiVersion: apiVersionOf(r), kind: r.kind, ...obj };
    return this.request<T>(
      HttpMethod.PATCH,
      resourcePath(r, opts.namespace ?? obj.metadata?.namespace, name, opts.subresource),
      {
        body,
        contentType: ContentType.Apply,
        query: { ...writeQuery(opts), force: opts.force ?? undefined },
        signal: opts.signal,
      },
    );
  }

  private patch<T>(
    r: Resource,
    name: string,
    body: unknown,
    contentType: string,
    opts: PatchOptions,
  ): Promise<T> {
    return this.request<T>(HttpMethod.PATCH, resourcePath(r, opts.namespace, name, opts.subresource), {
      body,
      contentType,
      query: writeQuery(opts),
      signal: opts.signal,
    });
  }

  /** Deletes; false when it was already gone. */
  async delete(
    r: Resource,
    name: string,
    opts: {
      namespace?: string;
      propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
      gracePeriodSeconds?: number;
      /** Precondition: delete only this incarnation (a 409 Conflict if the name now holds another object). */
      uid?: string;
      signal?: AbortSignal;
    } = {},
  ): Promise<boolean> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts.uid) body.preconditions = { uid: opts.uid };
    try {
      await this.request<Status>(HttpMethod.DELETE, resourcePath(r, opts.namespace, name), {
        body,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return false;
      throw e;
    }
  }

  /**
   * One watch request, as an async iterator of events. It ends when the server closes the stream
   * (timeoutSeconds) or the signal aborts; a non-200 answer throws ApiError (410 Gone included).
   */
  async *watch<T>(r: Resource, opts: WatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    const { namespace, signal, ...rest } = opts;
    const path = resourcePath(r, namespace);
    const res = await this.send(HttpMethod.GET, path, { query: { ...rest, watch: true }, signal });
    if (res.status !== 200) {
      const text = await res.text();
      throw new ApiError('WATCH', path, res.status, parseStatus(text), text);
    }
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line !== '') yield JSON.parse(line) as WatchEvent<T>;
        }
      }
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
  }
}

function writeQuery(opts: WriteOptions): Query {
  return { dryRun: opts.dryRun ? 'All' : undefined, fieldManager: opts.fieldManager };
}
