// core/v1 Events, as `kubectl describe` shows them. A repeat of the same (object, type, reason, message)
// bumps count and lastTimestamp on the existing Event instead of creating a new one, as client-go's
// EventCorrelator does.
import { realClock, type Clock } from './clock.ts';
import type { KubeClient } from './client.ts';
import { isNotFound } from './errors.ts';
import { errorMessage, silentLogger, type Logger } from './log.ts';
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
  /** How many distinct events to remember for aggregation. */
  cacheSize?: number;
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly opts: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly seen = new Map<string, Seen>();

  constructor(client: KubeClient, opts: EventRecorderOptions) {
    this.client = client;
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.log = (opts.logger ?? silentLogger).child({ component: 'events' });
  }

  /**
   * Records an event about `obj` (which needs apiVersion, kind, name and uid). Never throws: an event is
   * best effort and must not fail a reconcile; failures are logged.
   */
  async record(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    try {
      await this.emit(obj, type, reason, message);
    } catch (e) {
      this.log.warn('could not record event', { reason, object: obj.metadata?.name, error: errorMessage(e) });
    }
  }

  normal(obj: KubeObject, reason: string, message: string): Promise<void> {
    return this.record(obj, EventType.Normal, reason, message);
  }

  warning(obj: KubeObject, reason: string, message: string): Promise<void> {
    return this.record(obj, EventType.Warning, reason, message);
  }

  private async emit(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const meta = obj.metadata ?? {};
    if (!obj.kind || !meta.name) {
      throw new Error('the object has no kind or name (kubectl describe could not find the event)');
    }
    // Events about cluster-scoped objects go to "default", as client-go does.
    const namespace = meta.namespace || 'default';
    const now = kubeTime(new Date(this.clock.now()));
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
        this.touch(aggKey, prior);
        return;
      } catch (e) {
        if (!isNotFound(e)) throw e;
        this.seen.delete(aggKey); // expired (events have a TTL): create a fresh one
      }
    }
    const name = `${meta.name ?? 'unknown'}.${(this.clock.now() * 1_000_000 + Math.floor(Math.random() * 1_000_000)).toString(16)}`;
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
    this.touch(aggKey, { name, namespace, count: 1 });
  }

  private touch(key: string, value: Seen): void {
    this.seen.delete(key);
    this.seen.set(key, value);
    const max = this.opts.cacheSize ?? 4096;
    while (this.seen.size > max) this.seen.delete(this.seen.keys().next().value!);
  }
}
