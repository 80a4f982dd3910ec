// List+watch into a cache keyed "namespace/name". Relists on 410 Gone (an HTTP answer or an ERROR event),
// reconnects with capped exponential back-off and jitter, and restarts a watch that has been silent for
// longer than staleAfterMs (a half-open TCP connection otherwise stalls it forever). Watches ask for
// bookmarks and a server-side timeout, so a healthy watch is never silent for long.
// Every object is transformed (managedFields dropped, plus whatever the caller trims) and frozen before it enters the
// cache: readers share it and must not change it. Indexes (name → values of an object) answer "which objects have
// value v" without a scan.
import { Backoff } from './backoff.ts';
import { onAbort, realClock, sleep, type Clock } from './clock.ts';
import type { KubeClient } from './client.ts';
import { ApiError, isGone } from './errors.ts';
import { deepFreeze, withoutManagedFields } from './freeze.ts';
import { errorMessage, silentLogger, type Logger } from './log.ts';
import { keyOf, type KubeObject, type Resource } from './types.ts';

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Server-side watch timeout; each watch ends after it and is resumed from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /** Restart a watch that delivered nothing (not even a bookmark) for this long. */
  staleAfterMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  clock?: Clock;
  logger?: Logger;
  /**
   * Trims an object before it is cached (it gets a fresh parsed object it may change). managedFields are always
   * dropped and the result is always frozen.
   */
  transform?: (obj: KubeObject) => KubeObject;
}

/** The values an object has for an index (e.g. its namespace, its owner's uid, the claims a pod mounts). */
export type IndexFunc<T> = (obj: T) => readonly string[];

export interface InformerHealth {
  healthy: boolean;
  /** Why not, in a sentence. */
  reason?: string;
}

export type AddHandler<T> = (obj: T) => void;
export type UpdateHandler<T> = (oldObj: T, newObj: T) => void;
export type DeleteHandler<T> = (obj: T) => void;

export interface InformerStats {
  lists: number;
  watches: number;
  relistsAfterGone: number;
  staleRestarts: number;
  errors: number;
}

/** The index every cache has: objects by namespace ("" for cluster-scoped ones). */
export const NamespaceIndex = 'namespace';

export class Informer<T extends KubeObject> {
  readonly resource: Resource;
  private readonly client: KubeClient;
  private readonly opts: InformerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly cache = new Map<string, T>();
  private readonly addHandlers: AddHandler<T>[] = [];
  private readonly updateHandlers: UpdateHandler<T>[] = [];
  private readonly deleteHandlers: DeleteHandler<T>[] = [];
  private readonly progressHandlers: ((key: string | undefined) => void)[] = [];
  private readonly indexFuncs = new Map<string, IndexFunc<T>>();
  /** index name → value → keys */
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  /** key → index name → the values it was filed under */
  private readonly indexed = new Map<string, Map<string, readonly string[]>>();
  private startedAt: number | undefined;
  private failingSince: number | undefined;
  private lastError = '';
  private resourceVersion: string | undefined;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private stopController: AbortController | undefined;
  private loop: Promise<void> | undefined;
  readonly stats: InformerStats = { lists: 0, watches: 0, relistsAfterGone: 0, staleRestarts: 0, errors: 0 };

  constructor(client: KubeClient, resource: Resource, opts: InformerOptions = {}) {
    this.client = client;
    this.resource = resource;
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.log = (opts.logger ?? silentLogger).child({ informer: resource.plural });
    if (resource.namespaced) this.addIndex(NamespaceIndex, (o) => [o.metadata?.namespace ?? '']);
  }

  onAdd(h: AddHandler<T>): this {
    this.addHandlers.push(h);
    return this;
  }

  onUpdate(h: UpdateHandler<T>): this {
    this.updateHandlers.push(h);
    return this;
  }

  onDelete(h: DeleteHandler<T>): this {
    this.deleteHandlers.push(h);
    return this;
  }

  /**
   * Called after every event the informer applied (key of the object), and after a relist or a bookmark (undefined):
   * the moments its view moved forward.
   */
  onProgress(h: (key: string | undefined) => void): this {
    this.progressHandlers.push(h);
    return this;
  }

  /** Adds an index; objects already cached are filed under it at once. */
  addIndex(name: string, fn: IndexFunc<T>): this {
    if (this.indexFuncs.has(name))
      throw new Error(`informer ${this.resource.plural} already has index ${name}`);
    this.indexFuncs.set(name, fn);
    this.indexes.set(name, new Map());
    for (const [key, obj] of this.cache) this.fileUnder(name, key, obj);
    return this;
  }

  /** The function behind an index (API reads filter a server list with it). */
  indexFunc(name: string): IndexFunc<T> | undefined {
    return this.indexFuncs.get(name);
  }

  /** The cached objects with `value` in index `name`. */
  byIndex(name: string, value: string): T[] {
    const idx = this.indexes.get(name);
    if (!idx) throw new Error(`informer ${this.resource.plural} has no index ${name}`);
    const out: T[] = [];
    for (const key of idx.get(value) ?? []) {
      const o = this.cache.get(key);
      if (o) out.push(o);
    }
    return out;
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  getByName(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined && this.indexes.has(NamespaceIndex))
      return this.byIndex(NamespaceIndex, namespace);
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  get size(): number {
    return this.cache.size;
  }

  /**
   * Unhealthy when the first list has not succeeded within `withinMs` of starting, or list/watch has been failing for
   * longer than that; a watch that ends and is resumed is healthy.
   */
  health(now: number, withinMs: number): InformerHealth {
    if (this.startedAt === undefined) return { healthy: true };
    const since = this.failingSince ?? (this.synced ? undefined : this.startedAt);
    if (since === undefined || now - since < withinMs) return { healthy: true };
    const what = this.synced ? 'list/watch failing' : 'not synced';
    const seconds = Math.round((now - since) / 1000);
    return {
      healthy: false,
      reason: `informer ${this.resource.plural}: ${what} for ${seconds} s${this.lastError ? `: ${this.lastError}` : ''}`,
    };
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  get lastResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  start(): void {
    if (this.loop) return;
    this.startedAt = this.clock.now();
    this.stopController = new AbortController();
    this.loop = this.run(this.stopController.signal);
  }

  async stop(): Promise<void> {
    this.stopController?.abort();
    await this.loop;
    this.loop = undefined;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  /** Resolves after the first complete list has been delivered to the handlers (or on stop). */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.opts.backoff ?? { initialMs: 800, maxMs: 30_000 });
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === undefined) await this.relist(signal);
        const healthy = await this.watchOnce(signal);
        if (healthy) backoff.reset();
      } catch (e) {
        if (signal.aborted) break;
        this.stats.errors++;
        this.failingSince ??= this.clock.now();
        this.lastError = errorMessage(e);
        if (isGone(e)) {
          this.stats.relistsAfterGone++;
          this.log.info('resourceVersion too old, relisting', { resourceVersion: this.resourceVersion });
          this.resourceVersion = undefined;
          continue;
        }
        const delay = backoff.next();
        this.log.warn('list/watch failed, retrying', { error: errorMessage(e), retryInMs: delay });
        await sleep(this.clock, delay, signal);
      }
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const list = await this.client.listAll<T>(this.resource, {
      namespace: this.opts.namespace,
      labelSelector: this.opts.labelSelector,
      fieldSelector: this.opts.fieldSelector,
      signal,
    });
    this.stats.lists++;
    this.succeeded();
    const seen = new Set<string>();
    for (const raw of list.items) {
      const obj = this.prepare(raw);
      const key = keyOf(obj);
      seen.add(key);
      this.upsert(key, obj);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) this.remove(key, old);
    }
    this.resourceVersion = list.metadata.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    this.progressed(undefined);
  }

  private succeeded(): void {
    this.failingSince = undefined;
    this.lastError = '';
  }

  /** One watch connection; true when it ended normally (server timeout), so back-off can reset. */
  private async watchOnce(signal: AbortSignal): Promise<boolean> {
    const conn = new AbortController();
    const unlisten = onAbort(signal, () => conn.abort());
    const staleAfterMs = this.opts.staleAfterMs ?? ((this.opts.watchTimeoutSeconds ?? 300) + 60) * 1000;
    let stale = false;
    let cancelWatchdog = (): void => {};
    const arm = (): void => {
      cancelWatchdog();
      cancelWatchdog = this.clock.setTimer(() => {
        stale = true;
        conn.abort();
      }, staleAfterMs);
    };
    arm();
    this.stats.watches++;
    try {
      let connected = false;
      for await (const ev of this.client.watch<T>(this.resource, {
        namespace: this.opts.namespace,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300,
        signal: conn.signal,
      })) {
        arm();
        if (!connected) {
          connected = true;
          this.succeeded();
        }
        this.handle(ev.type, ev.object);
      }
      if (!stale) this.succeeded(); // a watch the server ended normally (timeoutSeconds) was a healthy one
      if (stale) {
        this.stats.staleRestarts++;
        this.log.warn('watch silent for too long, restarting it', { staleAfterMs });
        return false;
      }
      return true;
    } finally {
      cancelWatchdog();
      unlisten();
    }
  }

  private handle(type: string, raw: T): void {
    let key: string | undefined;
    let obj = raw;
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
        obj = this.prepare(raw);
        key = keyOf(obj);
        this.upsert(key, obj);
        break;
      case 'DELETED': {
        obj = this.prepare(raw);
        key = keyOf(obj);
        this.remove(key, obj);
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const status = obj as { code?: number; reason?: string; message?: string };
        throw new ApiError(
          'WATCH',
          this.resource.plural,
          status.code ?? 500,
          { kind: 'Status', ...status },
          '',
        );
      }
    }
    const rv = raw.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    this.progressed(key);
  }

  /** The cached form of an object: transformed, without managedFields, frozen. */
  private prepare(obj: T): T {
    const t = this.opts.transform ? (this.opts.transform(obj) as T) : obj;
    return deepFreeze(withoutManagedFields(t));
  }

  private progressed(key: string | undefined): void {
    for (const h of this.progressHandlers) this.safely(() => h(key));
  }

  private upsert(key: string, obj: T): void {
    const old = this.cache.get(key);
    if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion && old !== undefined) return;
    this.cache.set(key, obj);
    for (const name of this.indexFuncs.keys()) this.fileUnder(name, key, obj);
    if (old === undefined) this.fire(this.addHandlers, obj);
    else for (const h of this.updateHandlers) this.safely(() => h(old, obj));
  }

  private remove(key: string, obj: T): void {
    const old = this.cache.get(key);
    if (old === undefined) return;
    this.cache.delete(key);
    for (const name of this.indexFuncs.keys()) this.unfile(name, key);
    this.indexed.delete(key);
    this.fire(this.deleteHandlers, obj);
  }

  private fileUnder(name: string, key: string, obj: T): void {
    this.unfile(name, key);
    let values: readonly string[] = [];
    try {
      values = this.indexFuncs.get(name)?.(obj) ?? [];
    } catch (e) {
      this.log.error('index function threw', { index: name, key, error: errorMessage(e) });
    }
    const idx = this.indexes.get(name);
    if (!idx) return;
    for (const v of values) {
      let keys = idx.get(v);
      if (!keys) idx.set(v, (keys = new Set()));
      keys.add(key);
    }
    let perKey = this.indexed.get(key);
    if (!perKey) this.indexed.set(key, (perKey = new Map<string, readonly string[]>()));
    perKey.set(name, values);
  }

  private unfile(name: string, key: string): void {
    const idx = this.indexes.get(name);
    const values = this.indexed.get(key)?.get(name);
    if (!idx || !values) return;
    for (const v of values) {
      const keys = idx.get(v);
      keys?.delete(key);
      if (keys?.size === 0) idx.delete(v);
    }
    this.indexed.get(key)?.delete(name);
  }

  private fire(handlers: ((o: T) => void)[], obj: T): void {
    for (const h of handlers) this.safely(() => h(obj));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.error('informer handler threw', { error: errorMessage(e) });
    }
  }
}
