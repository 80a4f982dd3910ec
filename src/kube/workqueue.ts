// A rate-limited work queue with client-go semantics: a key is queued at most once, a key being processed
// is not handed to a second worker (it is queued again after done()), failures back off exponentially per
// key, and addAfter delays keep only the earliest time. Retries are limited as client-go's
// DefaultControllerRateLimiter limits them: the larger of the key's own exponential back-off (5 ms … 1000 s) and
// an overall token bucket (10 retries per second, burst 100) shared by every key, so a thousand keys failing at
// once cannot turn into a thousand requests a second.
import { itemBackoffMs } from './backoff.ts';
import { realClock, type Clock } from './clock.ts';
import { TokenBucket } from './ratelimit.ts';

export interface WorkQueueOptions {
  clock?: Clock;
  /** First failure delay (client-go: 5 ms). */
  baseDelayMs?: number;
  /** Largest failure delay (client-go: 1000 s). */
  maxDelayMs?: number;
  /** Overall retry rate (client-go: 10 per second, burst 100). */
  overallQps?: number;
  overallBurst?: number;
}

export class WorkQueue {
  private readonly clock: Clock;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly overall: TokenBucket;
  private queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly waiting = new Map<string, { at: number; cancel: () => void }>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private drained: (() => void)[] = [];

  constructor(opts: WorkQueueOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 1_000_000;
    this.overall = new TokenBucket({
      qps: opts.overallQps ?? 10,
      burst: opts.overallBurst ?? 100,
      clock: this.clock,
    });
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.wake();
  }

  /** Adds the key after ms; an earlier pending time wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const pending = this.waiting.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const cancel = this.clock.setTimer(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { at, cancel });
  }

  /** Re-adds a failed key after max(its exponential back-off, the overall bucket's wait). */
  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, Math.max(itemBackoffMs(n, this.baseDelayMs, this.maxDelayMs), this.overall.reserve()));
  }

  /** Clears the failure count of a key (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private take(key: string): string {
    this.processing.add(key);
    this.dirty.delete(key);
    return key;
  }

  /** Marks the key processed; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.queue.push(key);
      this.wake();
    }
    if (this.processing.size === 0) for (const d of this.drained.splice(0)) d();
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.queue.length > 0) {
      const w = this.waiters.shift()!;
      w(this.take(this.queue.shift()!));
    }
  }

  get length(): number {
    return this.queue.length;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops handing out keys; waiters get undefined. Resolves once no key is being processed. */
  shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const w of this.waiting.values()) w.cancel();
    this.waiting.clear();
    this.queue = [];
    for (const w of this.waiters.splice(0)) w(undefined);
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }
}
