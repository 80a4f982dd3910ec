import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../shared/types.ts';
import { AnnSnapshotBeingCreated, snapshotCutPending, SnapshotCutWaitMs } from './snapshotcut.ts';

const now = new Date('2026-12-03T12:00:00Z');
/** The deletion time of the snapshot's owner (a DataVolume, a clone populator's target PVC). */
const deletedAt = (msAgo: number): string => new Date(now.getTime() - msAgo).toISOString();
const bound = { boundVolumeSnapshotContentName: 'snapcontent-1' };
const snap = (status: VolumeSnapshot['status'], deleting = false): VolumeSnapshot => ({
  metadata: {
    name: 'tmp-snapshot-u1',
    namespace: 'golden',
    ...(deleting ? { deletionTimestamp: now.toISOString() } : {}),
  },
  ...(status ? { status } : {}),
});
/** `marked`: the sidecar's being-created annotation is on it (its CreateSnapshot call is outstanding). */
const content = (marked: boolean, status?: VolumeSnapshotContent['status']): VolumeSnapshotContent => ({
  metadata: {
    name: 'snapcontent-1',
    ...(marked ? { annotations: { [AnnSnapshotBeingCreated]: 'yes' } } : {}),
  },
  ...(status ? { status } : {}),
});
const pending = (s: VolumeSnapshot | undefined, c?: VolumeSnapshotContent, deletedMsAgo = 1000): boolean =>
  snapshotCutPending(deletedAt(deletedMsAgo), s, c, now);

void test('a deleted owner waits while its snapshot is still being cut', () => {
  assert.equal(pending(snap(undefined)), true, 'no status yet');
  assert.equal(pending(snap({ readyToUse: false })), true, 'no content yet');
  assert.equal(pending(snap({ ...bound, readyToUse: false }), content(false)), true, 'content not cut yet');
  assert.equal(
    pending(snap({ ...bound, readyToUse: false }), content(true)),
    true,
    'CreateSnapshot outstanding',
  );
  // cut and ready, but the sidecar has not taken its mark off yet: deleting now would still meet the bug
  assert.equal(pending(snap({ ...bound, readyToUse: true }), content(true, { readyToUse: true })), true);
});

void test('it deletes at once when the snapshot is cut, failed, gone or going, and after the wait limit', () => {
  assert.equal(pending(snap({ ...bound, readyToUse: true }), content(false, { readyToUse: true })), false);
  assert.equal(pending(snap({ ...bound }), content(false, { error: { message: 'no space' } })), false);
  assert.equal(pending(snap({ ...bound }), undefined), false, 'the content is gone');
  assert.equal(pending(snap({ error: { message: 'no snapshot class' } })), false);
  assert.equal(pending(undefined), false);
  assert.equal(pending(snap(undefined, true)), false, 'already being deleted');
  assert.equal(pending(snap(undefined), undefined, SnapshotCutWaitMs + 1), false);
  assert.equal(pending(snap({ ...bound }), content(true), SnapshotCutWaitMs + 1), false);
});
