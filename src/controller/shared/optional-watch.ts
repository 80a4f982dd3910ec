// A watch on a kind that may not be served (VolumeSnapshots exist only where a CSI snapshotter is installed). An
// informer for a kind that is not served never syncs, so this is not one of the cache's informers (the controllers
// would never start): it checks whether the kind is served, starts an informer once it is and hands every change to
// `onChange`, and otherwise looks again every few minutes (upstream backs out of the watch when the kind is missing;
// this also notices a snapshotter installed later). The objects are read through the session's API reads, not here.
import {
  Informer,
  isNotFound,
  realClock,
  sleep,
  type Clock,
  type KubeClient,
  type KubeObject,
  type Logger,
  type Resource,
} from '../../kube/index.ts';

export interface OptionalWatchOptions {
  client: KubeClient;
  resource: Resource;
  logger: Logger;
  onChange: (obj: KubeObject, old?: KubeObject) => void;
  /** How often to look again while the kind is not served. */
  recheckMs?: number;
  clock?: Clock;
}

export class OptionalWatch {
  private readonly o: OptionalWatchOptions;
  private stopper: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(o: OptionalWatchOptions) {
    this.o = o;
  }

  start(): void {
    if (this.loop) return;
    this.stopper = new AbortController();
    this.loop = this.run(this.stopper.signal);
  }

  async stop(): Promise<void> {
    this.stopper?.abort();
    await this.loop;
    this.loop = undefined;
  }

  private async served(): Promise<boolean> {
    try {
      await this.o.client.list(this.o.resource, { limit: 1 });
      return true;
    } catch (e) {
      if (!isNotFound(e))
        this.o.logger.warn(`cannot tell whether ${this.o.resource.plural} are served`, { error: String(e) });
      return false;
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const clock = this.o.clock ?? realClock;
    let told = false;
    while (!signal.aborted) {
      if (await this.served()) {
        const informer = new Informer<KubeObject>(this.o.client, this.o.resource, { logger: this.o.logger });
        informer
          .onAdd((v) => this.o.onChange(v))
          .onUpdate((old, v) => this.o.onChange(v, old))
          .onDelete((v) => this.o.onChange(v));
        informer.start();
        await new Promise<void>((resolve) =>
          signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await informer.stop();
        return;
      }
      if (!told) {
        this.o.logger.info(`${this.o.resource.plural} are not served; looking again later`, {
          recheckMs: this.o.recheckMs ?? 300_000,
        });
        told = true;
      }
      await sleep(clock, this.o.recheckMs ?? 300_000, signal);
    }
  }
}
