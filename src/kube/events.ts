// core/v1 Events, as `kubectl describe` shows them, recorded the way client-go's recorder records them:
// - asynchronously: record() only queues (bounded; beyond maxQueued new events are dropped, as client-go's
//   broadcaster drops), one sender writes them in order, so a slow API server never slows a reconcile;
// - through a spam filter: a token bucket per (source, involved object), burst 25 and one token per 5 minutes
//   (client-go's EventSourceObjectSpamFilter), so one object cannot flood the events of a namespace;
// - aggregated: a repeat of the same (object, type, reason, message) bumps count and lastTimestamp on the existing
//   Event instead of creating a new one (client-go's EventLogger).
import { realClock, type Clock } from './clock.ts';
import type { KubeClient } from './client.ts';
import { isNotFound } from './errors.ts';
import { errorMessage, silentLogger, type Logger } from './log.ts';
import { TokenBucket } from './ratelimit.ts';
import { kubeTime, Resources, type Event, type KubeObject } from './types.ts';

export const EventType = { Normal: 'Normal', Warning: 'Warning' } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export interface EventRecorderOptions {
  /** source.component and reportingComponent, e.g. "cdi-controller". */
  component: string;
  /** reportingInstance, e.g. the pod name. */
  instance?: string;
  clock?: Clock;
  logger?: Logger;
  /** How many distinct events (and objects, for the spam filter) to remember. */
  cacheSize?: number;
  /** Spam filter per (source, involved object): bucket size and refill per second (client-go: 25 and 1/300). */
  spamBurst?: number;
  spamQps?: number;
  /** Events waiting to be written; more are dropped (client-go: 1000). */
  maxQueued?: number;
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
}

interface Queued {
  obj: KubeObject;
  type: EventType;
  reason: string;
  message: string;
  at: number;
}

export interface EventRecorderStats {
  written: number;
  /** Refused by the spam filter. */
  filtered: number;
  /** Dropped because the queue was full. */
  dropped: number;
  failed: number;
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly opts: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly seen = new Map<string, Seen>();
  private readonly spam = new Map<string, TokenBucket>();
  private readonly queue: Queued[] = [];
  private sending: Promise<void> | undefined;
  private seq = Math.floor(Math.random() * 1000);
  readonly stats: EventRecorderStats = { written: 0, filtered: 0, dropped: 0, failed: 0 };

  constructor(client: KubeClient, opts: EventRecorderOptions) {
    this.client = client;
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.log = (opts.logger ?? silentLogger).child({ component: 'events' });
  }

  /**
   * Queues an event about `obj` (which needs apiVersion, kind, name and uid) and returns at once. Never throws: an
   * event is best effort and must not fail or slow a reconcile; failures are logged.
   */
  record(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const meta = obj.metadata ?? {};
    const spamKey = [this.opts.component, obj.apiVersion, obj.kind, meta.namespace, meta.name, meta.uid].join(
      '\u0000',
    );
    let bucket = this.spam.get(spamKey);
    if (!bucket) {
      bucket = new TokenBucket({
        qps: this.opts.spamQps ?? 1 / 300,
        burst: this.opts.spamBurst ?? 25,
        clock: this.clock,
      });
      this.remember(this.spam, spamKey, bucket);
    }
    if (!bucket.tryTake()) {
      this.stats.filtered++;
      this.log.debug('event dropped by the spam filter', { reason, object: meta.name });
      return Promise.resolve();
    }
    if (this.queue.length >= (this.opts.maxQueued ?? 1000)) {
      this.stats.dropped++;
      this.log.warn('event queue full, event dropped', { reason, object: meta.name });
      return Promise.resolve();
    }
    // a snapshot: the caller's object may be a cached one that changes (or is frozen) after this returns
    const snapshot: KubeObject = {
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      metadata: {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
    };
    this.queue.push({ obj: snapshot, type, reason, message, at: this.clock.now() });
    this.sending ??= this.drain().finally(() => (this.sending = undefined));
    return Promise.resolve();
  }

  /** Resolves once every queued event has been written (or has failed). */
  async flush(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private async drain(): Promise<void> {
    for (let q = this.queue.shift(); q; q = this.queue.shift()) {
      try {
        await this.emit(q);
        this.stats.written++;
      } catch (e) {
        this.stats.failed++;
        this.log.warn('could not record event', {
          reason: q.reason,
          object: q.obj.metadata?.name,
          error: errorMessage(e),
        });
      }
    }
  }

  normal(obj: KubeObject, reason: string, message: string): Promise<void> {
    return this.record(obj, EventType.Normal, reason, message);
  }

  warning(obj: KubeObject, reason: string, message: string): Promise<void> {
    return this.record(obj, EventType.Warning, reason, message);
  }

  private async emit(q: Queued): Promise<void> {
    const { obj, type, reason, message } = q;
    const meta = obj.metadata ?? {};
    if (!obj.kind || !meta.name) {
      throw new Error('the object has no kind or name (kubectl describe could not find the event)');
    }
    // Events about cluster-scoped objects go to "default", as client-go does.
    const namespace = meta.namespace || 'default';
    const now = kubeTime(new Date(q.at));
    const aggKey = [meta.uid, obj.kind, namespace, meta.name, type, reason, message].join('\u0000');
    const prior = this.seen.get(aggKey);
    if (prior) {
      try {
        await this.client.mergePatch<Event>(
          Resources.Event,
          prior.name,
          { count: prior.count + 1, lastTimestamp: now },
          { namespace: prior.namespace },
        );
        prior.count++;
        this.remember(this.seen, aggKey, prior);
        return;
      } catch (e) {
        if (!isNotFound(e)) throw e;
        this.seen.delete(aggKey); // expired (events have a TTL): create a fresh one
      }
    }
    // client-go's <name>.<hex nanoseconds>; a sequence number in the sub-millisecond digits keeps two events of one
    // millisecond apart and in order (a float would lose those digits: the value is above 2^53)
    this.seq = (this.seq + 1) % 1_000_000;
    const name = `${meta.name ?? 'unknown'}.${(BigInt(q.at) * 1_000_000n + BigInt(this.seq)).toString(16)}`;
    const event: Event = {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.opts.component },
      reportingComponent: this.opts.component,
      reportingInstance: this.opts.instance ?? this.opts.component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.client.create<Event>(Resources.Event, event, { namespace });
    this.remember(this.seen, aggKey, { name, namespace, count: 1 });
  }

  /** Least recently used first out. */
  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    const max = this.opts.cacheSize ?? 4096;
    while (map.size > max) map.delete(map.keys().next().value!);
  }
}
