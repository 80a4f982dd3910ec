import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClaimPropertySet, StorageClass, StorageProfile, VolumeSnapshotClass } from '../shared/types.ts';
import { isIncomplete, storageProfileInfo, type ProfileMetricsWorld } from './metrics.ts';

const sc = (annotations: Record<string, string> = {}): StorageClass => ({
  metadata: { name: 'gold', annotations },
  provisioner: 'csi.example.com',
});
const rwo: ClaimPropertySet = { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' };
const rwx: ClaimPropertySet = { accessModes: ['ReadWriteMany'], volumeMode: 'Block' };
const profile = (status: NonNullable<StorageProfile['status']>): StorageProfile => ({
  metadata: { name: 'gold' },
  status: { storageClass: 'gold', provisioner: 'csi.example.com', ...status },
});
const vsc = (driver: string): VolumeSnapshotClass => ({ metadata: { name: `snap-${driver}` }, driver });
const world = (over: Partial<ProfileMetricsWorld> = {}): ProfileMetricsWorld => ({
  snapshotClasses: [],
  csiDriverExists: () => false,
  singleNode: false,
  ...over,
});

void test('incomplete: no claim property sets, or one without access modes or volume mode', () => {
  assert.equal(isIncomplete(undefined), true);
  assert.equal(isIncomplete([]), true);
  assert.equal(isIncomplete([{ accessModes: [], volumeMode: 'Block' }]), true);
  assert.equal(isIncomplete([rwo, { accessModes: ['ReadWriteOnce'] } as ClaimPropertySet]), true);
  assert.equal(isIncomplete([rwo, rwx]), false);
});

void test('a snapshot-capable RWX class is complete and not degraded; the default annotations are read from the class', () => {
  const i = storageProfileInfo(
    profile({ claimPropertySets: [rwx, rwo], cloneStrategy: 'snapshot' }),
    sc({ 'storageclass.kubernetes.io/is-default-class': 'true' }),
    world({ snapshotClasses: [vsc('other.example.com'), vsc('csi.example.com')] }),
  );
  assert.deepEqual(i, {
    storageClass: 'gold',
    provisioner: 'csi.example.com',
    complete: true,
    isDefault: true,
    virtDefault: false,
    rwx: true,
    smartClone: true,
    degraded: false,
  });
});

void test('smart clone: copy never; snapshot needs a snapshot class for the driver; csi-clone needs the CSIDriver', () => {
  const smart = (
    cloneStrategy: 'copy' | 'snapshot' | 'csi-clone',
    w: Partial<ProfileMetricsWorld>,
  ): boolean | undefined =>
    storageProfileInfo(profile({ claimPropertySets: [rwx], cloneStrategy }), sc(), world(w))?.smartClone;
  const withSnap = { snapshotClasses: [vsc('csi.example.com')] };
  assert.equal(smart('copy', { ...withSnap, csiDriverExists: () => true }), false);
  assert.equal(smart('snapshot', withSnap), true);
  assert.equal(smart('snapshot', { snapshotClasses: [vsc('other.example.com')] }), false);
  assert.equal(smart('csi-clone', { csiDriverExists: (n) => n === 'csi.example.com' }), true);
  assert.equal(smart('csi-clone', withSnap), false);
});

void test('degraded: no RWX (except on a single-node cluster) or no smart clone', () => {
  const degraded = (sets: ClaimPropertySet[], w: Partial<ProfileMetricsWorld>): boolean | undefined =>
    storageProfileInfo(profile({ claimPropertySets: sets, cloneStrategy: 'snapshot' }), sc(), world(w))
      ?.degraded;
  const snap = { snapshotClasses: [vsc('csi.example.com')] };
  assert.equal(degraded([rwo], snap), true);
  assert.equal(degraded([rwo], { ...snap, singleNode: true }), false);
  assert.equal(degraded([rwx], {}), true);
  assert.equal(degraded([rwx], { singleNode: true }), true);
});

void test('an unsupported provisioner is not reported incomplete; a profile without status yet has no series', () => {
  const none: StorageProfile = {
    metadata: { name: 'local' },
    status: { storageClass: 'local', provisioner: 'kubernetes.io/no-provisioner', claimPropertySets: [] },
  };
  assert.equal(storageProfileInfo(none, sc(), world())?.complete, true);
  const bucket = profile({ provisioner: 'openshift-storage.noobaa.io/obc', claimPropertySets: [] });
  assert.equal(storageProfileInfo(bucket, sc(), world())?.complete, true);
  assert.equal(storageProfileInfo(profile({ claimPropertySets: [] }), sc(), world())?.complete, false);
  assert.equal(storageProfileInfo({ metadata: { name: 'gold' } }, sc(), world()), undefined);
  assert.equal(
    storageProfileInfo({ metadata: { name: 'gold' }, status: { storageClass: 'gold' } }, sc(), world()),
    undefined,
  );
});

void test('the virtualization default is its own label', () => {
  const i = storageProfileInfo(
    profile({ claimPropertySets: [rwx] }),
    sc({
      'storageclass.kubevirt.io/is-default-virt-class': 'true',
      'storageclass.kubernetes.io/is-default-class': 'false',
    }),
    world(),
  );
  assert.equal(i?.virtDefault, true);
  assert.equal(i?.isDefault, false);
});
