// When a temporary clone snapshot may be deleted. Shared by the DataVolume clone controller (tmp-snapshot-<dv uid>,
// held by the DataVolume's cdi.kubevirt.io/cloneTemporaries finalizer) and the clone populator
// (tmp-snapshot-<pvc uid>, held by the target's cdi.kubevirt.io/clonePopulator finalizer): the owner that is being
// deleted waits for the storage's answer before it deletes the snapshot.
import type { VolumeSnapshot, VolumeSnapshotContent } from '../shared/types.ts';

/** The csi-snapshotter sidecar's mark on a VolumeSnapshotContent while its CreateSnapshot call is outstanding. */
export const AnnSnapshotBeingCreated = 'snapshot.storage.kubernetes.io/volumesnapshot-being-created';
/** How often a deleted owner looks again at a snapshot being cut (the content's annotation wakes nothing). */
export const SnapshotCutPollMs = 1000;
/** How long a deleted owner waits for its snapshot to be cut before deleting it anyway. */
export const SnapshotCutWaitMs = 120_000;

/**
 * Whether the temporary snapshot of an owner deleted at `deletedAt` is still being cut, so that deleting it now
 * would leave it stuck: a VolumeSnapshotContent deleted while the csi-snapshotter sidecar waits for CreateSnapshot is
 * not deleted until the sidecar's next resync (15 minutes by default; kubernetes-csi/external-snapshotter#1258, up to
 * v8.7), and meanwhile the snapshot, and with it its namespace, stays Terminating with
 * snapshot.storage.kubernetes.io/volumesnapshot-bound-protection. True while the snapshot has no content yet, or its
 * content is not cut yet or still carries the sidecar's mark; never once SnapshotCutWaitMs have passed since the
 * deletion (a CreateSnapshot that hangs must not keep the owner for ever), nor for a snapshot or content that failed
 * or is going.
 */
export function snapshotCutPending(
  deletedAt: string | undefined,
  snap: VolumeSnapshot | undefined,
  content: VolumeSnapshotContent | undefined,
  now: Date,
): boolean {
  const deleted = Date.parse(deletedAt ?? '');
  if (Number.isFinite(deleted) && now.getTime() - deleted > SnapshotCutWaitMs) return false;
  if (!snap || snap.metadata.deletionTimestamp || snap.status?.error) return false;
  if (!snap.status?.boundVolumeSnapshotContentName) return true; // the snapshot controller is making the content
  if (!content || content.status?.error) return false;
  // not cut yet (the sidecar may be about to call CreateSnapshot), or cut and the sidecar's mark not yet taken off
  return (
    content.status?.readyToUse !== true ||
    content.metadata.annotations?.[AnnSnapshotBeingCreated] !== undefined
  );
}
