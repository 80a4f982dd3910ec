import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeProfileStatus } from './controller.ts';
import type { ClaimPropertySet } from '../shared/types.ts';

void test('the local CSI hostpath driver gets RWO Filesystem and RWO Block, Recognized', () => {
  const s = computeProfileStatus(
    { metadata: { name: 'csi-hostpath' }, provisioner: 'hostpath.csi.k8s.io' },
    { metadata: { name: 'csi-hostpath' } },
    'T',
  );
  assert.deepEqual(s.claimPropertySets, [
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
  ]);
  assert.equal(s.storageClass, 'csi-hostpath');
  assert.equal(s.provisioner, 'hostpath.csi.k8s.io');
  assert.equal(s.cloneStrategy, 'copy');
  assert.deepEqual(s.conditions, [
    {
      type: 'Recognized',
      status: 'True',
      reason: 'RecognizedProvisioner',
      message: 'Provisioner is recognized',
      lastTransitionTime: 'T',
      lastHeartbeatTime: 'T',
    },
  ]);
});

void test('unknown provisioners get nothing unless the user fills spec.claimPropertySets; bad sets are refused', () => {
  const sc = { metadata: { name: 'x' }, provisioner: 'example.com/unknown' };
  const bare = computeProfileStatus(sc, { metadata: { name: 'x' } }, 'T');
  assert.deepEqual(bare.claimPropertySets, []);
  assert.equal(bare.conditions?.[0]?.status, 'False');
  const user = computeProfileStatus(
    sc,
    {
      metadata: { name: 'x' },
      spec: { claimPropertySets: [{ accessModes: ['ReadWriteMany'], volumeMode: 'Block' }] },
    },
    'T',
  );
  assert.deepEqual(user.claimPropertySets, [{ accessModes: ['ReadWriteMany'], volumeMode: 'Block' }]);
  assert.throws(
    () =>
      computeProfileStatus(
        sc,
        // the CRD requires volumeMode, but an empty or missing value still reaches the controller as a bad set
        {
          metadata: { name: 'x' },
          spec: { claimPropertySets: [{ accessModes: [] }] as unknown as ClaimPropertySet[] },
        },
        'T',
      ),
    /both volumeMode and accessModes/,
  );
});
