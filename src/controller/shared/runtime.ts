// A minimal controller runtime for the reconcilers in src/controller: a de-duplicating, rate-limited work queue and
// a list+watch loop that maps object changes to queue keys. Level-triggered: reconcilers re-read the world through
// the API, so an event only says "look again". Kept local until src/kube's informers and queue land.
import { isGone, type Kube, type Resource, type WatchEvent } from './client.ts';

export interface Result {
  requeueAfter?: number;
}
export type Reconcile = (key: string) => Promise<Result | void>;

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const jsonLogger = (component: string): Logger => ({
  info: (msg, fields) =>
    console.log(JSON.stringify({ level: 'info', ts: new Date().toISOString(), component, msg, ...fields })),
  error: (msg, fields) =>
    console.error(
      JSON.stringify({ level: 'error', ts: new Date().toISOString(), component, msg, ...fields }),
    ),
});

export const silentLogger: Logger = { info: () => {}, error: () => {} };

/**
 * Work queue with the client-go guarantees: a key is queued at most once, never processed by two workers at once,
 * re-queued if it changed while being processed, and retried with per-key exponential back-off on failure.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private waiters: (() => void)[] = [];
  private stopped = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(baseDelayMs = 5, maxDelayMs = 60_000) {
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.waiters.shift()?.();
  }

  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  get length(): number {
    return this.queue.length;
  }

  private async next(): Promise<string | undefined> {
    while (!this.stopped) {
      const key = this.queue.shift();
      if (key !== undefined) {
        this.queued.delete(key);
        this.processing.add(key);
        return key;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return undefined;
  }

  private done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /** Runs `workers` loops until stop(); each key goes through `fn` with the queue's guarantees. */
  async run(workers: number, fn: Reconcile, log: Logger): Promise<void> {
    const loop = async (): Promise<void> => {
      for (;;) {
        const key = await this.next();
        if (key === undefined) return;
        try {
          const res = await fn(key);
          this.forget(key);
          if (res?.requeueAfter !== undefined) this.addAfter(key, res.requeueAfter);
        } catch (e) {
          log.error('reconcile failed, will retry', {
            key,
            error: e instanceof Error ? e.message : String(e),
          });
          this.addRateLimited(key);
        } finally {
          this.done(key);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, loop));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const w of this.waiters) w();
    this.waiters = [];
  }
}

export interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/**
 * List, then watch from the list's resourceVersion; on 410 Gone relist; on any other failure back off and retry.
 * Every object seen on a (re)list is reported as ADDED, so nothing that changed while disconnected is missed.
 * A periodic relist (resync) is the staleness watchdog: a silently dead watch cannot hide changes for longer than it.
 */
export async function listWatch<T extends Meta>(
  kube: Kube,
  r: Resource,
  onEvent: (e: WatchEvent<T>) => void,
  signal: AbortSignal,
  log: Logger,
  opts: { labelSelector?: string; resyncMs?: number; onSynced?: () => void } = {},
): Promise<void> {
  let backoff = 200;
  let synced = false;
  while (!signal.aborted) {
    try {
      const l = await kube.list<T>(r, { labelSelector: opts.labelSelector });
      for (const o of l.items) onEvent({ type: 'ADDED', object: o });
      if (!synced) {
        synced = true;
        opts.onSynced?.();
      }
      let rv = l.resourceVersion;
      const deadline = Date.now() + (opts.resyncMs ?? 10 * 60_000);
      backoff = 200;
      while (!signal.aborted && Date.now() < deadline) {
        const timeoutSeconds = Math.max(1, Math.min(300, Math.round((deadline - Date.now()) / 1000)));
        await kube.watch<T>(
          r,
          { labelSelector: opts.labelSelector, resourceVersion: rv, timeoutSeconds },
          (e) => {
            const v = e.object.metadata?.resourceVersion;
            if (v) rv = v;
            if (e.type !== 'BOOKMARK') onEvent(e);
          },
          signal,
        );
      }
    } catch (e) {
      if (signal.aborted) return;
      if (!isGone(e)) {
        log.error('watch failed, retrying', {
          resource: r.plural,
          error: e instanceof Error ? e.message : String(e),
        });
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

export const keyOf = (o: Meta): string =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : (o.metadata?.name ?? '');

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
