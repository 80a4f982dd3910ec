// Event recorder: writes core/v1 Events the way client-go's recorder does (one Event per occurrence, with
// involvedObject, source.component and first/last timestamps), so `kubectl describe` shows them.
import { randomBytes } from 'node:crypto';
import { Res, type Kube } from './client.ts';
import type { Logger } from './runtime.ts';

export interface Involved {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface Recorder {
  event(obj: Involved, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export class ApiRecorder implements Recorder {
  private readonly kube: Kube;
  private readonly component: string;
  private readonly log: Logger;
  constructor(kube: Kube, component: string, log: Logger) {
    this.kube = kube;
    this.component = component;
    this.log = log;
  }

  async event(obj: Involved, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString();
    const name = `${obj.metadata?.name ?? 'unknown'}.${Date.now().toString(16)}${randomBytes(3).toString('hex')}`;
    const namespace = obj.metadata?.namespace || 'default';
    try {
      await this.kube.create(Res.event, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata?.name,
          namespace: obj.metadata?.namespace,
          uid: obj.metadata?.uid,
          resourceVersion: obj.metadata?.resourceVersion,
        },
        reason,
        message,
        type,
        source: { component: this.component },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: this.component,
      });
    } catch (e) {
      // An event is a courtesy to the user; failing to write one must not fail the reconcile.
      this.log.error('could not record event', { reason, error: e instanceof Error ? e.message : String(e) });
    }
  }
}
