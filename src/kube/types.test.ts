import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V1MicroTime } from '@kubernetes/client-node';
import {
  controllerOf,
  controllerRef,
  isControlledBy,
  keyOf,
  kubeTime,
  microTime,
  splitKey,
} from './types.ts';
import { resourcePath } from './client.ts';
import { Resources } from './types.ts';

void test('microTime has six fractional digits, like client-node V1MicroTime', () => {
  const d = new Date('2026-03-04T05:06:07.891Z');
  assert.equal(microTime(d), '2026-03-04T05:06:07.891000Z');
  assert.equal(microTime(d), new V1MicroTime(d.getTime()).toISOString());
  assert.equal(kubeTime(d), '2026-03-04T05:06:07Z');
});

void test('keys are namespace/name, or name when cluster-scoped', () => {
  assert.equal(keyOf({ metadata: { namespace: 'a', name: 'b' } }), 'a/b');
  assert.equal(keyOf({ metadata: { name: 'local' } }), 'local');
  assert.deepEqual(splitKey('a/b'), { namespace: 'a', name: 'b' });
  assert.deepEqual(splitKey('local'), { namespace: undefined, name: 'local' });
});

void test('resource paths for core, grouped, cluster-scoped kinds and subresources', () => {
  assert.equal(resourcePath(Resources.Pod, 'ns', 'p'), '/api/v1/namespaces/ns/pods/p');
  assert.equal(resourcePath(Resources.Pod), '/api/v1/pods');
  assert.equal(
    resourcePath(Resources.DataVolume, 'ns', 'dv', 'status'),
    '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/dv/status',
  );
  assert.equal(
    resourcePath(Resources.StorageProfile, undefined, 'local'),
    '/apis/cdi.kubevirt.io/v1beta1/storageprofiles/local',
  );
  assert.throws(
    () => resourcePath(Resources.Pod, undefined, 'p'),
    /Pod p is namespaced: a namespace is required/,
  );
});

void test('controllerRef makes a blocking controller reference; controllerOf and isControlledBy read it back', () => {
  const dv = { metadata: { name: 'dv', namespace: 'ns', uid: 'u-1' } };
  const ref = controllerRef(dv, Resources.DataVolume);
  assert.deepEqual(ref, {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    name: 'dv',
    uid: 'u-1',
    controller: true,
    blockOwnerDeletion: true,
  });
  const pvc = {
    metadata: { name: 'dv', ownerReferences: [{ ...ref, controller: false, uid: 'other' }, ref] },
  };
  assert.equal(controllerOf(pvc)?.uid, 'u-1');
  assert.ok(isControlledBy(pvc, dv));
  assert.ok(!isControlledBy(pvc, { metadata: { uid: 'other' } }));
  assert.throws(
    () => controllerRef({ metadata: { name: 'x' } }, Resources.DataVolume),
    /has no name or uid yet/,
  );
});
