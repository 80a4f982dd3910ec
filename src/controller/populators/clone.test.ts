import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../shared/types.ts';
import { AnnSnapshotBeingCreated, SnapshotCutWaitMs } from '../clone/snapshotcut.ts';
import { ClonePopulatorFinalizer, hostCopyRunning, teardown } from './clone.ts';

const now = new Date('2026-12-03T12:00:00Z');
const ago = (ms: number): string => new Date(now.getTime() - ms).toISOString();

/** The clone populator's target, deleted `deletedMsAgo` ago (undefined: not deleted). */
const target = (o: {
  deletedMsAgo?: number;
  finalizer?: boolean;
  annotations?: Record<string, string>;
}): Pvc => ({
  metadata: {
    name: 'cloned',
    namespace: 'ns',
    uid: 't-uid',
    ...(o.deletedMsAgo !== undefined ? { deletionTimestamp: ago(o.deletedMsAgo) } : {}),
    finalizers: o.finalizer === false ? [] : [ClonePopulatorFinalizer],
    annotations: { 'cdi.kubevirt.io/cloneType': 'snapshot', ...o.annotations },
  },
  spec: { dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind: 'VolumeCloneSource', name: 'src' } },
});
const tmp = (annotations: Record<string, string> = {}, deleting = false): Pvc => ({
  metadata: {
    name: 'tmp-pvc-t-uid',
    namespace: 'ns',
    uid: 'tmp-uid',
    annotations,
    ...(deleting ? { deletionTimestamp: now.toISOString() } : {}),
  },
});
const snap = (status?: VolumeSnapshot['status'], deleting = false): VolumeSnapshot => ({
  metadata: {
    name: 'tmp-snapshot-t-uid',
    namespace: 'ns',
    labels: { 'cdi.kubevirt.io/OwnedByUID': 't-uid' },
    ...(deleting ? { deletionTimestamp: now.toISOString() } : {}),
  },
  ...(status ? { status } : {}),
});
const cut = { boundVolumeSnapshotContentName: 'snapcontent-1', readyToUse: true };
const content = (marked: boolean, readyToUse: boolean): VolumeSnapshotContent => ({
  metadata: {
    name: 'snapcontent-1',
    ...(marked ? { annotations: { [AnnSnapshotBeingCreated]: 'yes' } } : {}),
  },
  status: { readyToUse },
});

void test('a clone target deleted while its snapshot is being cut keeps its finalizer until the storage answered', () => {
  const deleted = target({ deletedMsAgo: 1000 });
  assert.deepEqual(teardown(deleted, undefined, snap(), undefined, now), { step: 'waitForCut' });
  assert.deepEqual(
    teardown(
      deleted,
      undefined,
      snap({ boundVolumeSnapshotContentName: 'snapcontent-1' }),
      content(true, false),
      now,
    ),
    { step: 'waitForCut' },
    'CreateSnapshot outstanding',
  );
  assert.deepEqual(teardown(deleted, undefined, snap(cut), content(true, true), now), { step: 'waitForCut' });
  // cut, the sidecar's mark gone: delete it now, and let go
  assert.deepEqual(teardown(deleted, undefined, snap(cut), content(false, true), now), {
    step: 'release',
    deleteSnapshot: true,
    deleteClaim: false,
  });
  // a CreateSnapshot that hangs does not keep the target for ever
  assert.deepEqual(
    teardown(target({ deletedMsAgo: SnapshotCutWaitMs + 1 }), undefined, snap(), undefined, now),
    {
      step: 'release',
      deleteSnapshot: true,
      deleteClaim: false,
    },
  );
});

void test('a deleted clone target deletes what is left of its temporaries, retained or not, then lets go', () => {
  const retained = target({
    deletedMsAgo: 1000,
    annotations: { 'cdi.kubevirt.io/storage.pod.retainAfterCompletion': 'true' },
  });
  assert.deepEqual(teardown(retained, tmp(), snap(cut), content(false, true), now), {
    step: 'release',
    deleteSnapshot: true,
    deleteClaim: true,
  });
  // no snapshot (copy, csi-clone) or one already going; tmp-pvc already going
  assert.deepEqual(teardown(target({ deletedMsAgo: 1000 }), tmp({}, true), snap(cut, true), undefined, now), {
    step: 'release',
    deleteSnapshot: false,
    deleteClaim: false,
  });
  assert.deepEqual(teardown(target({ deletedMsAgo: 1000 }), undefined, undefined, undefined, now), {
    step: 'release',
    deleteSnapshot: false,
    deleteClaim: false,
  });
  // without the finalizer (deleted before a strategy was chosen) there is nothing of ours to hold
  assert.deepEqual(
    teardown(target({ deletedMsAgo: 1000, finalizer: false }), tmp(), snap(), undefined, now),
    {
      step: 'none',
    },
  );
});

void test("the host-assisted copy's progress is followed on tmp-pvc's source pod, labelled with the target's uid", () => {
  const copy = target({
    annotations: { 'cdi.kubevirt.io/cloneType': 'copy', 'cdi.kubevirt.io/clonePhase': 'HostClone' },
  });
  const req = { 'k8s.io/CloneRequest': 'ns/src' };
  assert.deepEqual(hostCopyRunning(copy, tmp({ ...req, 'cdi.kubevirt.io/ownerUID': 't-uid' })), {
    ownerUID: 't-uid',
    pvcName: 'tmp-pvc-t-uid',
  });
  // a tmp-pvc made before it carried ownerUID: the clone controller labelled the metric with tmp-pvc's own uid
  assert.deepEqual(hostCopyRunning(copy, tmp(req)), { ownerUID: 'tmp-uid', pvcName: 'tmp-pvc-t-uid' });
  assert.equal(hostCopyRunning(copy, undefined), undefined, 'no tmp-pvc yet');
  assert.equal(hostCopyRunning(copy, tmp({ ...req, 'k8s.io/CloneOf': 'true' })), undefined, 'copied');
  assert.equal(hostCopyRunning(copy, tmp(req, true)), undefined, 'tmp-pvc going');
  assert.equal(hostCopyRunning(target({}), tmp(req)), undefined, 'a snapshot clone has no copy');
  const deleted = target({ deletedMsAgo: 1, annotations: { 'cdi.kubevirt.io/cloneType': 'copy' } });
  assert.equal(hostCopyRunning(deleted, tmp(req)), undefined, 'the target is going');
});
