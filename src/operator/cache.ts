// The operator's view of what it installed: one label-selected informer per (kind, namespace) it renders into, so
// that a deleted or edited object wakes the reconcile at once (drift is restored in seconds) and deciding whether
// anything needs applying costs no request. Objects are selected by `app.kubernetes.io/managed-by=cdi-operator`:
// removing that label makes an object look deleted to the operator, which puts the label back.
import { Informer, type KubeClient, type KubeObject, type Logger } from '../kube/index.ts';
import { ManagedBy, ManagedByLabel } from '../deploy/common.ts';
import { Kinds, type KindName } from './resources.ts';

export const OwnedSelector = `${ManagedByLabel}=${ManagedBy}`;

export interface Scope {
  kind: KindName;
  /** for namespaced kinds */
  namespace?: string;
}

const scopeKey = (kind: string, namespace?: string): string => `${kind}/${namespace ?? ''}`;

export class OwnedCache {
  private readonly kube: KubeClient;
  private readonly log: Logger;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly listeners: ((obj: KubeObject, kind: KindName) => void)[] = [];
  private started = false;

  constructor(kube: KubeClient, log: Logger) {
    this.kube = kube;
    this.log = log;
  }

  /** Calls `fn` for every add, update and delete seen in any scope. */
  onChange(fn: (obj: KubeObject, kind: KindName) => void): void {
    this.listeners.push(fn);
  }

  /** Adds a scope (idempotent); started at once when the cache runs (kinds that appear later: monitoring). */
  add(scope: Scope): Informer<KubeObject> {
    const res = Kinds[scope.kind];
    const ns = res.namespaced ? scope.namespace : undefined;
    const key = scopeKey(scope.kind, ns);
    const existing = this.informers.get(key);
    if (existing) return existing;
    const inf = new Informer<KubeObject>(this.kube, res, {
      ...(ns ? { namespace: ns } : {}),
      labelSelector: OwnedSelector,
      logger: this.log,
    });
    const notify = (o: KubeObject): void => {
      for (const l of this.listeners) l(o, scope.kind);
    };
    inf.onAdd(notify);
    inf.onUpdate((_old, o) => notify(o));
    inf.onDelete(notify);
    this.informers.set(key, inf);
    if (this.started) inf.start();
    return inf;
  }

  has(scope: Scope): boolean {
    const res = Kinds[scope.kind];
    return this.informers.has(scopeKey(scope.kind, res.namespaced ? scope.namespace : undefined));
  }

  get(kind: string, name: string, namespace?: string): KubeObject | undefined {
    const res = (Kinds as Record<string, { namespaced: boolean }>)[kind];
    const inf = this.informers.get(scopeKey(kind, res?.namespaced ? namespace : undefined));
    return inf?.getByName(name, res?.namespaced ? namespace : undefined);
  }

  /** Whether the cache covers this (kind, namespace): otherwise a missing object is not known to be missing. */
  covers(kind: string, namespace?: string): boolean {
    const res = (Kinds as Record<string, { namespaced: boolean }>)[kind];
    return this.informers.has(scopeKey(kind, res?.namespaced ? namespace : undefined));
  }

  /** Every cached object, with its kind. */
  all(): { kind: KindName; obj: KubeObject }[] {
    const out: { kind: KindName; obj: KubeObject }[] = [];
    for (const [key, inf] of this.informers) {
      const kind = key.slice(0, key.indexOf('/')) as KindName;
      for (const obj of inf.list()) out.push({ kind, obj });
    }
    return out;
  }

  list(): Informer<KubeObject>[] {
    return [...this.informers.values()];
  }

  start(): void {
    this.started = true;
    for (const inf of this.informers.values()) inf.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.waitForSync()));
  }

  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}
