// The reconcile loop: informers feed keys into one rate-limited queue; workers call reconcile(key).
// reconcile is level-triggered: it reads the world (from informer caches) and converges one step. A key whose last
// reconcile wrote something the cache does not show yet waits for it (expectations.ts) instead of acting on the
// stale copy; the cache catching up (or the expectation expiring) queues it again.
import { onAbort, realClock, type Clock } from './clock.ts';
import type { Expectations } from './expectations.ts';
import type { Informer } from './informer.ts';
import { errorMessage, silentLogger, type Logger } from './log.ts';
import type { RuntimeMetrics } from './metrics.ts';
import { keyOf, type KubeObject } from './types.ts';
import { WorkQueue, type WorkQueueOptions } from './workqueue.ts';

export interface ReconcileResult {
  /** Reconcile this key again after this many milliseconds (polling, e.g. progress). */
  requeueAfterMs?: number;
}

export type Reconciler = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

export interface ControllerOptions {
  name: string;
  reconcile: Reconciler;
  workers?: number;
  /** Re-enqueue every key of the watched informers this often (0: never). */
  resyncMs?: number;
  queue?: WorkQueueOptions;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  /** Writes recorded under expectationOwner(name, key) hold the key back until the cache shows them. */
  expectations?: Expectations;
  /** Told about every reconcile (tracing, tests). */
  onReconciled?: (key: string, outcome: ReconcileOutcome) => void;
}

export interface ReconcileOutcome {
  result: 'success' | 'requeue_after' | 'error' | 'deferred';
  requeueAfterMs?: number;
  error?: unknown;
}

/** The owner under which a reconcile of `key` by controller `name` records its writes. */
export function expectationOwner(controller: string, key: string): string {
  return `${controller}\u0000${key}`;
}

/** Maps an object (and, for an update, its previous state) to the keys it should wake: itself by default. */
export type KeyMapper<T> = (obj: T, old?: T) => string | readonly string[] | undefined;

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly opts: ControllerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly informers: Informer<KubeObject>[] = [];
  private readonly resyncInformers: Informer<KubeObject>[] = [];
  /** Keys waiting for the cache to show their writes (each waits once, however often it is queued). */
  private readonly deferred = new Set<string>();

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.clock = opts.clock ?? realClock;
    this.log = (opts.logger ?? silentLogger).child({ controller: opts.name });
    this.queue = new WorkQueue({ clock: this.clock, ...opts.queue });
  }

  /**
   * Enqueues keys for adds, updates and deletes seen by the informer. Without a mapper the object's own
   * key is used, and the informer's keys are resynced periodically.
   */
  watch<T extends KubeObject>(informer: Informer<T>, mapper?: KeyMapper<T>): this {
    const enqueue = (obj: T, old?: T): void => {
      const keys = mapper ? mapper(obj, old) : keyOf(obj);
      if (keys === undefined) return;
      for (const k of typeof keys === 'string' ? [keys] : keys) {
        this.opts.metrics?.queueAdds.inc({ name: this.name });
        this.queue.add(k);
      }
    };
    informer.onAdd((obj) => enqueue(obj));
    informer.onUpdate((old, obj) => enqueue(obj, old));
    informer.onDelete((obj) => enqueue(obj));
    this.informers.push(informer as unknown as Informer<KubeObject>);
    if (!mapper) this.resyncInformers.push(informer as unknown as Informer<KubeObject>);
    return this;
  }

  enqueue(key: string, afterMs = 0): void {
    this.queue.addAfter(key, afterMs);
  }

  /**
   * Waits for the watched informers to sync (they must be started by the caller, as they may be shared),
   * then runs the workers until the signal aborts; then drains: in-flight reconciles finish.
   */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.race([
      Promise.all(this.informers.map((i) => i.waitForSync())),
      new Promise<void>((r) => onAbort(signal, r)),
    ]);
    if (signal.aborted) return;
    this.log.info('caches synced, starting workers', { workers: this.opts.workers ?? 1 });
    let cancelResync = (): void => {};
    const resync = (): void => {
      for (const inf of this.resyncInformers) for (const k of inf.keys()) this.queue.add(k);
      cancelResync = this.clock.setTimer(resync, this.opts.resyncMs ?? 0);
    };
    if ((this.opts.resyncMs ?? 0) > 0) cancelResync = this.clock.setTimer(resync, this.opts.resyncMs ?? 0);
    const stopped = new Promise<void>((r) => onAbort(signal, r));
    const workers = Array.from({ length: this.opts.workers ?? 1 }, () => this.worker(signal));
    await stopped;
    cancelResync();
    await this.queue.shutDown();
    await Promise.all(workers);
    this.log.info('stopped');
  }

  private async worker(signal: AbortSignal): Promise<void> {
    const m = this.opts.metrics;
    const labels = { controller: this.name };
    for (;;) {
      m?.queueDepth.set({ name: this.name }, this.queue.length);
      const key = await this.queue.get();
      if (key === undefined) return;
      m?.queueDepth.set({ name: this.name }, this.queue.length);
      const exp = this.opts.expectations;
      const owner = expectationOwner(this.name, key);
      if (exp && !exp.satisfied(owner)) {
        // Not now: the cache is behind this key's own writes. It comes back when the cache catches up.
        if (!this.deferred.has(key)) {
          this.deferred.add(key);
          exp.whenSatisfied(owner, () => {
            this.deferred.delete(key);
            this.queue.add(key);
          });
        }
        m?.reconcileTotal.inc({ ...labels, result: 'deferred' });
        this.opts.onReconciled?.(key, { result: 'deferred' });
        this.queue.done(key);
        continue;
      }
      m?.activeWorkers.inc(labels);
      const started = this.clock.now();
      try {
        const result = await this.opts.reconcile(key, signal);
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        const outcome: ReconcileOutcome =
          result?.requeueAfterMs !== undefined
            ? { result: 'requeue_after', requeueAfterMs: result.requeueAfterMs }
            : { result: 'success' };
        m?.reconcileTotal.inc({ ...labels, result: outcome.result });
        this.opts.onReconciled?.(key, outcome);
      } catch (e) {
        const retries = this.queue.numRequeues(key);
        this.log.warn('reconcile failed, will retry', { key, error: errorMessage(e), retries });
        this.queue.addRateLimited(key);
        m?.reconcileTotal.inc({ ...labels, result: 'error' });
        m?.reconcileErrors.inc(labels);
        m?.queueRetries.inc({ name: this.name });
        this.opts.onReconciled?.(key, { result: 'error', error: e });
      } finally {
        m?.reconcileTime.observe(labels, (this.clock.now() - started) / 1000);
        m?.activeWorkers.dec(labels);
        this.queue.done(key);
      }
    }
  }
}
