// A watch of a kind that only some clusters serve (the CSI snapshotter's VolumeSnapshotClasses and VolumeSnapshots):
// an informer for a kind that is not served never syncs, so this one is not among those the controllers wait for. It
// checks whether the kind is served, starts an informer once it is, and otherwise looks again every few minutes (as
// upstream, which backs out of the watch when the kind is missing, but also notices a snapshotter installed later).
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

export interface OptionalWatchOptions<T extends KubeObject> {
  client: KubeClient;
  resource: Resource;
  logger: Logger;
  /** Told about every added, changed (new and old) and deleted object. */
  changed: (obj: T) => void;
  /** Said once while the kind is not served. */
  notServed: string;
  /** How often to look again while the kind is not served. */
  recheckMs?: number;
  clock?: Clock;
}

export class OptionalWatch<T extends KubeObject> {
  private readonly o: OptionalWatchOptions<T>;
  private stopper: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(o: OptionalWatchOptions<T>) {
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
        const informer = new Informer<T>(this.o.client, this.o.resource, { logger: this.o.logger });
        informer
          .onAdd((v) => this.o.changed(v))
          .onUpdate((a, b) => {
            this.o.changed(a);
            this.o.changed(b);
          })
          .onDelete((v) => this.o.changed(v));
        informer.start();
        await new Promise<void>((resolve) =>
          signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await informer.stop();
        return;
      }
      if (!told) {
        this.o.logger.info(this.o.notServed, { recheckMs: this.o.recheckMs ?? 300_000 });
        told = true;
      }
      await sleep(clock, this.o.recheckMs ?? 300_000, signal);
    }
  }
}
