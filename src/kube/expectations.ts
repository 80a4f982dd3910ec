// Expectations: "this reconcile key wrote these objects; do not reconcile it again until the cache shows the writes".
// An informer cache lags the API server. A reconciler that acts on a cache that has not seen its own last write (the
// PVC it marked Succeeded, the pod it just deleted) repeats or undoes it: a second importer pod for a finished import.
// kube-controller-manager guards its ReplicaSets with ControllerExpectations (counts of adds and deletes) and, since
// 1.36, with the resourceVersion of its last write (KEP-5647); this is the resourceVersion form, for any object:
//   write:   satisfied once the cached object (or the informer as a whole) is at the written resourceVersion or later
//   present: satisfied once the cache holds the object (a create that met AlreadyExists)
//   gone:    satisfied once the cache no longer holds that uid as a live object (absent, replaced, or terminating)
// Pending expectations expire after ttlMs (5 min, as upstream's), so a cache that never catches up cannot wedge a key.
import { realClock, type Clock } from './clock.ts';
import { silentLogger, type Logger } from './log.ts';
import { compareResourceVersion, isAtLeast } from './resourceversion.ts';
import type { KubeObject, Resource } from './types.ts';

/** What the expectations read: the cache's current view. */
export interface CacheView {
  get(r: Resource, key: string): KubeObject | undefined;
  /** The last resourceVersion the resource's informer applied (an event, a list or a bookmark). */
  lastResourceVersion(r: Resource): string | undefined;
}

type Entry =
  | { kind: 'write'; resource: Resource; key: string; resourceVersion: string }
  | { kind: 'present'; resource: Resource; key: string }
  | { kind: 'gone'; resource: Resource; key: string; uid: string };

interface Pending {
  entries: Entry[];
  waiters: (() => void)[];
  cancelTimer: () => void;
}

export interface ExpectationsOptions {
  clock?: Clock;
  ttlMs?: number;
  logger?: Logger;
}

export const resourceId = (r: Resource): string => `${r.group}/${r.plural}`;

export class Expectations {
  private readonly view: CacheView;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private readonly pending = new Map<string, Pending>();
  /** resource id → owners with an entry on it */
  private readonly byResource = new Map<string, Set<string>>();

  constructor(view: CacheView, opts: ExpectationsOptions = {}) {
    this.view = view;
    this.clock = opts.clock ?? realClock;
    this.ttlMs = opts.ttlMs ?? 5 * 60_000;
    this.log = (opts.logger ?? silentLogger).child({ component: 'expectations' });
  }

  /** The cache must show `written` (what the API server answered to a write) or something later. */
  expectWrite(owner: string, r: Resource, key: string, resourceVersion: string | undefined): void {
    // A version that cannot be ordered (not the built-in API server's) gives no guard beyond deterministic names.
    if (
      resourceVersion === undefined ||
      compareResourceVersion(resourceVersion, resourceVersion) === undefined
    )
      return;
    this.add(owner, { kind: 'write', resource: r, key, resourceVersion });
  }

  expectPresent(owner: string, r: Resource, key: string): void {
    this.add(owner, { kind: 'present', resource: r, key });
  }

  expectGone(owner: string, r: Resource, key: string, uid: string | undefined): void {
    if (!uid) return;
    this.add(owner, { kind: 'gone', resource: r, key, uid });
  }

  /** True when nothing this owner wrote is still missing from the cache (or what was missing expired). */
  satisfied(owner: string): boolean {
    const p = this.pending.get(owner);
    if (!p) return true;
    p.entries = p.entries.filter((e) => !this.met(e));
    if (p.entries.length > 0) return false;
    this.settle(owner, p);
    return true;
  }

  /** Calls fn once the owner's expectations are satisfied or expired (at once if they are). */
  whenSatisfied(owner: string, fn: () => void): void {
    const p = this.pending.get(owner);
    if (!p || this.satisfied(owner)) return fn();
    p.waiters.push(fn);
  }

  /** The cache of a resource moved forward: wake the owners it may have satisfied. */
  observed(r: Resource): void {
    const owners = this.byResource.get(resourceId(r));
    if (!owners) return;
    for (const owner of [...owners]) this.satisfied(owner);
  }

  /** Owners waiting for the cache (for metrics and tests). */
  get size(): number {
    return this.pending.size;
  }

  private add(owner: string, e: Entry): void {
    let p = this.pending.get(owner);
    if (p) p.cancelTimer();
    else this.pending.set(owner, (p = { entries: [], waiters: [], cancelTimer: () => {} }));
    p.entries.push(e);
    const id = resourceId(e.resource);
    let owners = this.byResource.get(id);
    if (!owners) this.byResource.set(id, (owners = new Set()));
    owners.add(owner);
    const pending = p;
    p.cancelTimer = this.clock.setTimer(() => {
      if (this.pending.get(owner) !== pending) return;
      this.log.warn("the cache did not show this key's writes in time; reconciling anyway", {
        owner: owner.replace('\u0000', ' '),
        missing: pending.entries.map((x) => `${x.kind} ${x.resource.plural} ${x.key}`),
      });
      this.settle(owner, pending);
    }, this.ttlMs);
  }

  private settle(owner: string, p: Pending): void {
    p.cancelTimer();
    this.pending.delete(owner);
    for (const owners of this.byResource.values()) owners.delete(owner);
    for (const w of p.waiters.splice(0)) w();
  }

  private met(e: Entry): boolean {
    const obj = this.view.get(e.resource, e.key);
    switch (e.kind) {
      case 'write':
        return (
          isAtLeast(obj?.metadata?.resourceVersion, e.resourceVersion) ||
          isAtLeast(this.view.lastResourceVersion(e.resource), e.resourceVersion)
        );
      case 'present':
        return obj !== undefined;
      case 'gone':
        return (
          obj === undefined || obj.metadata?.uid !== e.uid || obj.metadata?.deletionTimestamp !== undefined
        );
    }
  }
}
