// Wakes the StorageProfiles whose provisioner gains or loses a VolumeSnapshotClass (its snapshotClass and clone
// strategy depend on it), through an OptionalWatch: the kind is only served where a CSI snapshotter is installed.
import { keyOf, type Clock, type KubeClient, type KubeObject, type Logger } from '../../kube/index.ts';
import { VolumeSnapshotClassResource, type VolumeSnapshotClass } from '../../api/storageprofile.ts';
import { OptionalWatch } from '../shared/optionalwatch.ts';

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

export class SnapshotClassWatch extends OptionalWatch<VolumeSnapshotClass & KubeObject> {
  constructor(o: SnapshotClassWatchOptions) {
    super({
      client: o.client,
      resource: VolumeSnapshotClassResource,
      logger: o.logger,
      notServed: 'VolumeSnapshotClasses are not served (no CSI snapshotter): clone strategy copy',
      changed: (vsc) => {
        for (const sc of o.classes())
          if ((sc as { provisioner?: string }).provisioner === vsc.driver) o.enqueue(keyOf(sc));
      },
      ...(o.recheckMs !== undefined ? { recheckMs: o.recheckMs } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
    });
  }
}
