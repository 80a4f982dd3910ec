// Wakes the StorageProfiles whose provisioner gains or loses a VolumeSnapshotClass (its snapshotClass and clone
// strategy depend on it). The kind is only served where a CSI snapshotter is installed, and an informer for a kind
// that is not served never syncs; so this watch is not one the StorageProfile controller waits for: it checks
// whether the kind is served, starts an informer once it is, and otherwise looks again every few minutes (as
// upstream, which backs out of the watch when the kind is missing, but also notices a snapshotter installed later).
import {
  Informer,
  isNotFound,
  keyOf,
  realClock,
  sleep,
  type Clock,
  type KubeClient,
  type KubeObject,
  type Logger,
} from '../../kube/index.ts';
import { VolumeSnapshotClassResource, type VolumeSnapshotClass } from '../../api/storageprofile.ts';

export interface SnapshotClassWatchOptions {
  client: KubeClient;
  logger: Logger;
  /** The StorageClasses (a shared informer's cache): their names are the StorageProfile keys. */
  classes: () => readonly KubeObject[];
  /** Enqueues a StorageProfile key. */
  enqueue: (key: string) => void;
  /** How often to look again while the kind is not served. */
  recheckMs?: number;
  clock?: Clock;
}

export class SnapshotClassWatch {
  private readonly o: SnapshotClassWatchOptions;
  private stopper: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(o: SnapshotClassWatchOptions) {
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

  private wake(vsc: VolumeSnapshotClass): void {
    for (const sc of this.o.classes()) {
      if ((sc as { provisioner?: string }).provisioner === vsc.driver) this.o.enqueue(keyOf(sc));
    }
  }

  private async served(): Promise<boolean> {
    try {
      await this.o.client.list(VolumeSnapshotClassResource, { limit: 1 });
      return true;
    } catch (e) {
      if (!isNotFound(e))
        this.o.logger.warn('cannot tell whether VolumeSnapshotClasses are served', { error: String(e) });
      return false;
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const clock = this.o.clock ?? realClock;
    let told = false;
    while (!signal.aborted) {
      if (await this.served()) {
        const informer = new Informer<VolumeSnapshotClass & KubeObject>(
          this.o.client,
          VolumeSnapshotClassResource,
          {
            logger: this.o.logger,
          },
        );
        informer
          .onAdd((v) => this.wake(v))
          .onUpdate((a, b) => {
            this.wake(a);
            if (b.driver !== a.driver) this.wake(b);
          })
          .onDelete((v) => this.wake(v));
        informer.start();
        await new Promise<void>((resolve) =>
          signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await informer.stop();
        return;
      }
      if (!told) {
        this.o.logger.info('VolumeSnapshotClasses are not served (no CSI snapshotter): clone strategy copy', {
          recheckMs: this.o.recheckMs ?? 300_000,
        });
        told = true;
      }
      await sleep(clock, this.o.recheckMs ?? 300_000, signal);
    }
  }
}
