import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataVolume } from '../shared/types.ts';
import { pendingForDefaultStorageClass, usesDefaultStorageClass } from './pending.ts';

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

void test('pending counts Pending and phase-less DataVolumes waiting for a default class, nothing else', () => {
  const n = pendingForDefaultStorageClass([
    dv({ source, storage: {} }),
    dv({ source, storage: {} }, ''),
    dv({ source, storage: {} }, 'Pending'),
    dv({ source, storage: {} }, 'ImportInProgress'),
    dv({ source, storage: {} }, 'Succeeded'),
    dv({ source, storage: { storageClassName: 'gold' } }, 'Pending'),
    dv({ source, pvc: {} }, 'WaitForFirstConsumer'),
  ]);
  assert.equal(n, 3);
  assert.equal(pendingForDefaultStorageClass([]), 0);
});
