// The informer cache of a process: one informer per resource, shared by every controller, with indexes, and the
// expectations that keep a reconciler from acting on a cache that has not seen its own writes (expectations.ts).
// Reads are answered from memory; writes never go through here (they go to the API server, see
// src/controller/shared/client.ts). An informer started with a selector only knows the objects it selects: a miss
// in such a cache is not proof of absence, so callers give a cached resource either no selector or one that covers
// everything they read.
import type { KubeClient } from './client.ts';
import { realClock, type Clock } from './clock.ts';
import { Expectations, resourceId } from './expectations.ts';
import { Informer, NamespaceIndex, type IndexFunc, type InformerOptions } from './informer.ts';
import { silentLogger, type Logger } from './log.ts';
import { matchesLabels, parseLabelSelector } from './selector.ts';
import type { KubeObject, Resource } from './types.ts';

export type CachedInformerOptions = Pick<InformerOptions, 'labelSelector' | 'fieldSelector' | 'transform'>;

export interface CacheListOptions {
  namespace?: string;
  labelSelector?: string;
  /** Objects with this value in this index (see addIndex). */
  index?: { name: string; value: string };
}

export interface CacheOptions {
  clock?: Clock;
  logger?: Logger;
  /** For every informer: watch timeout, staleness, back-off. */
  informerDefaults?: Omit<InformerOptions, keyof CachedInformerOptions | 'clock' | 'logger'>;
  /** How long an expectation waits for the cache before the key is reconciled anyway. */
  expectationTtlMs?: number;
}

export class Cache {
  readonly expectations: Expectations;
  private readonly client: KubeClient;
  private readonly opts: CacheOptions;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly scopes = new Map<string, string>();
  private started = false;

  constructor(client: KubeClient, opts: CacheOptions = {}) {
    this.client = client;
    this.opts = opts;
    this.expectations = new Expectations(
      {
        get: (r, key) => this.informers.get(resourceId(r))?.get(key),
        lastResourceVersion: (r) => this.informers.get(resourceId(r))?.lastResourceVersion,
      },
      {
        clock: opts.clock ?? realClock,
        logger: opts.logger ?? silentLogger,
        ...(opts.expectationTtlMs !== undefined ? { ttlMs: opts.expectationTtlMs } : {}),
      },
    );
  }

  /** The informer of a resource, created on first use (later calls must not ask for another scope). */
  informer<T extends KubeObject>(r: Resource, o: CachedInformerOptions = {}): Informer<T> {
    const id = resourceId(r);
    const scope = `${o.labelSelector ?? ''}|${o.fieldSelector ?? ''}`;
    let inf = this.informers.get(id);
    if (inf) {
      if (this.scopes.get(id) !== scope)
        throw new Error(`the cache already watches ${r.plural} with another selector`);
      return inf as unknown as Informer<T>;
    }
    inf = new Informer<KubeObject>(this.client, r, {
      ...this.opts.informerDefaults,
      ...o,
      clock: this.opts.clock ?? realClock,
      logger: this.opts.logger ?? silentLogger,
    });
    this.scopes.set(id, scope);
    inf.onProgress(() => this.expectations.observed(r));
    this.informers.set(id, inf);
    if (this.started) inf.start();
    return inf as unknown as Informer<T>;
  }

  /** The informer already registered for a resource, whatever its scope. */
  informerOf<T extends KubeObject>(r: Resource): Informer<T> {
    return this.must(r) as unknown as Informer<T>;
  }

  /** True when reads of this resource are answered from the cache. */
  has(r: Resource): boolean {
    return this.informers.has(resourceId(r));
  }

  addIndex<T extends KubeObject>(r: Resource, name: string, fn: IndexFunc<T>): void {
    this.must(r).addIndex(name, fn as IndexFunc<KubeObject>);
  }

  /** The function of an index, for readers that filter an API list the way the cache would answer. */
  indexFunc(r: Resource, name: string): IndexFunc<KubeObject> {
    const fn = name === NamespaceIndex ? undefined : this.must(r).indexFunc(name);
    if (!fn) throw new Error(`the cache has no index ${name} for ${r.plural}`);
    return fn;
  }

  get<T extends KubeObject>(r: Resource, name: string, namespace?: string): T | undefined {
    return this.must(r).getByName(name, r.namespaced ? namespace : undefined) as T | undefined;
  }

  list<T extends KubeObject>(r: Resource, o: CacheListOptions = {}): T[] {
    const inf = this.must(r);
    let items: KubeObject[];
    if (o.index) {
      items = inf.byIndex(o.index.name, o.index.value);
      if (o.namespace !== undefined) items = items.filter((x) => x.metadata?.namespace === o.namespace);
    } else if (o.namespace !== undefined && r.namespaced) items = inf.byIndex(NamespaceIndex, o.namespace);
    else items = inf.list();
    if (o.labelSelector) {
      const reqs = parseLabelSelector(o.labelSelector);
      items = items.filter((x) => matchesLabels(x.metadata?.labels, reqs));
    }
    return items as T[];
  }

  start(): void {
    this.started = true;
    for (const inf of this.informers.values()) inf.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  waitForSync(): Promise<void> {
    return Promise.all([...this.informers.values()].map((i) => i.waitForSync())).then(() => undefined);
  }

  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced);
  }

  /** The reasons the cache is unhealthy (empty when it is healthy); see Informer.health. */
  problems(now: number, withinMs: number): string[] {
    const out: string[] = [];
    for (const inf of this.informers.values()) {
      const h = inf.health(now, withinMs);
      if (!h.healthy && h.reason) out.push(h.reason);
    }
    return out;
  }

  /** Objects per resource (memory accounting). */
  sizes(): Record<string, number> {
    return Object.fromEntries([...this.informers.values()].map((i) => [i.resource.plural, i.size]));
  }

  private must(r: Resource): Informer<KubeObject> {
    const inf = this.informers.get(resourceId(r));
    if (!inf) throw new Error(`the cache does not watch ${r.plural}`);
    return inf;
  }
}
