// One informer per (resource, namespace, selectors), shared by every controller of a process.
import type { KubeClient } from './client.ts';
import { Informer, type InformerOptions } from './informer.ts';
import type { KubeObject, Resource } from './types.ts';

export type InformerScope = Pick<InformerOptions, 'namespace' | 'labelSelector' | 'fieldSelector'>;

export class InformerFactory {
  private readonly client: KubeClient;
  private readonly defaults: Omit<InformerOptions, keyof InformerScope>;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private started = false;

  constructor(client: KubeClient, defaults: Omit<InformerOptions, keyof InformerScope> = {}) {
    this.client = client;
    this.defaults = defaults;
  }

  /** The shared informer for this resource and scope; started at once if the factory already runs. */
  informer<T extends KubeObject>(resource: Resource, scope: InformerScope = {}): Informer<T> {
    const key = [
      resource.group,
      resource.version,
      resource.plural,
      scope.namespace,
      scope.labelSelector,
      scope.fieldSelector,
    ].join('|');
    let inf = this.informers.get(key);
    if (!inf) {
      inf = new Informer<KubeObject>(this.client, resource, { ...this.defaults, ...scope });
      this.informers.set(key, inf);
      if (this.started) inf.start();
    }
    return inf as unknown as Informer<T>;
  }

  start(): void {
    this.started = true;
    for (const inf of this.informers.values()) inf.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.waitForSync()));
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}
