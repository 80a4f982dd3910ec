// Wakes the StorageProfiles whose provisioner gains or loses a VolumeSnapshotClass (its snapshotClass and clone
// strategy depend on it). The kind is only served where a CSI snapshotter is installed, so this is an OptionalWatch
// (shared/optional-watch.ts): not an informer the StorageProfile controller waits for; it starts once the kind is
// served and otherwise looks again every few minutes.
import { keyOf, type Clock, type KubeClient, type KubeObject, type Logger } from '../../kube/index.ts';
import { VolumeSnapshotClassResource, type VolumeSnapshotClass } from '../../api/storageprofile.ts';
import { OptionalWatch } from '../shared/optional-watch.ts';

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

export class SnapshotClassWatch extends OptionalWatch {
  constructor(o: SnapshotClassWatchOptions) {
    const wake = (vsc: VolumeSnapshotClass): void => {
      for (const sc of o.classes()) {
        if ((sc as { provisioner?: string }).provisioner === vsc.driver) o.enqueue(keyOf(sc));
      }
    };
    super({
      client: o.client,
      resource: VolumeSnapshotClassResource,
      logger: o.logger,
      onChange: (now, old) => {
        const a = now as unknown as VolumeSnapshotClass;
        const b = old as unknown as VolumeSnapshotClass | undefined;
        wake(a);
        if (b && b.driver !== a.driver) wake(b);
      },
      ...(o.recheckMs !== undefined ? { recheckMs: o.recheckMs } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
    });
  }
}
