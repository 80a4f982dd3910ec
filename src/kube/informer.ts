// List+watch into a cache keyed "namespace/name". Relists on 410 Gone (an HTTP answer or an ERROR event),
// reconnects with capped exponential back-off and jitter, and restarts a watch that has been silent for
// longer than staleAfterMs (a half-open TCP connection otherwise stalls it forever). Watches ask for
// bookmarks and a server-side timeout, so a healthy watch is never silent for long.
import { Backoff } from './backoff.ts';
import { onAbort, realClock, sleep, type Clock } from './clock.ts';
import type { KubeClient } from './client.ts';
import { ApiError, isGone } from './errors.ts';
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

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  getByName(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
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
    const seen = new Set<string>();
    for (const obj of list.items) {
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
        this.handle(ev.type, ev.object);
      }
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

  private handle(type: string, obj: T): void {
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
        this.upsert(keyOf(obj), obj);
        break;
      case 'DELETED': {
        const key = keyOf(obj);
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
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
  }

  private upsert(key: string, obj: T): void {
    const old = this.cache.get(key);
    if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion && old !== undefined) return;
    this.cache.set(key, obj);
    if (old === undefined) this.fire(this.addHandlers, obj);
    else for (const h of this.updateHandlers) this.safely(() => h(old, obj));
  }

  private remove(key: string, obj: T): void {
    const old = this.cache.get(key);
    if (old === undefined) return;
    this.cache.delete(key);
    this.fire(this.deleteHandlers, obj);
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
