import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataVolume } from '../shared/types.ts';
import { PendingDataVolumes, usesDefaultStorageClass, waitsForDefaultStorageClass } from './pending.ts';

const dv = (spec: DataVolume['spec'], phase?: string): DataVolume => ({
  apiVersion: 'cdi.kubevirt.io/v1beta1',
  kind: 'DataVolume',
  metadata: { name: 'd', namespace: 'ns' },
  spec,
  ...(phase !== undefined ? { status: { phase } } : {}),
});
const source = { http: { url: 'http://example.com/disk.img' } };

void test('a DataVolume uses the default class when neither spec.pvc nor spec.storage names one', () => {
  assert.equal(usesDefaultStorageClass(dv({ source, storage: {} })), true);
  assert.equal(usesDefaultStorageClass(dv({ source, pvc: { accessModes: ['ReadWriteOnce'] } })), true);
  assert.equal(usesDefaultStorageClass(dv({ source, storage: { storageClassName: 'gold' } })), false);
  // an empty name is a choice (the claim gets no class), as upstream's pointer check
  assert.equal(usesDefaultStorageClass(dv({ source, storage: { storageClassName: '' } })), false);
  // spec.pvc wins when both are there, as upstream
  assert.equal(usesDefaultStorageClass(dv({ source, pvc: {}, storage: { storageClassName: 'gold' } })), true);
});

void test('waiting: Pending or no phase yet, and no class of its own', () => {
  const waits = (d: DataVolume): boolean => waitsForDefaultStorageClass(d);
  assert.equal(waits(dv({ source, storage: {} })), true);
  assert.equal(waits(dv({ source, storage: {} }, '')), true);
  assert.equal(waits(dv({ source, storage: {} }, 'Pending')), true);
  assert.equal(waits(dv({ source, storage: {} }, 'ImportInProgress')), false);
  assert.equal(waits(dv({ source, storage: {} }, 'Succeeded')), false);
  assert.equal(waits(dv({ source, pvc: {} }, 'WaitForFirstConsumer')), false);
  assert.equal(waits(dv({ source, storage: { storageClassName: 'gold' } }, 'Pending')), false);
});

void test('the pending set follows events: added, moved on, deleted', () => {
  const p = new PendingDataVolumes();
  assert.equal(p.set('ns/a', dv({ source, storage: {} }, 'Pending')), 1);
  assert.equal(p.set('ns/b', dv({ source, storage: {} })), 2);
  assert.equal(p.set('ns/c', dv({ source, storage: { storageClassName: 'gold' } }, 'Pending')), 2);
  // a default class appeared and a itself moved on
  assert.equal(p.set('ns/a', dv({ source, storage: {} }, 'ImportScheduled')), 1);
  assert.equal(
    p.set('ns/b', dv({ source, storage: {} }, 'Pending')),
    1,
    'an update of a waiting one is counted once',
  );
  assert.equal(p.delete('ns/b'), 0);
  assert.equal(p.delete('ns/zzz'), 0);
  assert.equal(p.size, 0);
});
