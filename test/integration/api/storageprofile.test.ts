// The StorageProfile controller (run in this process by the manager) against the real API server: the clone
// strategy follows the VolumeSnapshotClasses of a class's provisioner as they come and go, the capability table
// fills known provisioners, the claim-property-sets StorageClass annotation fills unknown ones, and invalid
// settings end in a Valid=False condition and a Warning event that say what to fix.
//
// The control-plane profile has no CSI snapshotter: then this file installs a VolumeSnapshotClass CRD of its own
// (the kind's schema as far as CDI reads it) and removes it afterwards; on the full profile it uses the real one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Resources, type KubeClient, type KubeObject } from '../../../src/kube/index.ts';
import { VolumeSnapshotClassResource } from '../../../src/api/storageprofile.ts';
import type { StorageProfile } from '../../../src/controller/shared/types.ts';
import { clusterClient, deleteIfExists, eventually, installCrds } from '../kube/cluster.ts';
import { RunningManager, eventsFor, pauseDeployedController } from '../controller/harness.ts';

const suffix = randomBytes(3).toString('hex');
const driver = `snap.cdi-ts.test/${suffix}`;
const otherDriver = `nosnap.cdi-ts.test/${suffix}`;
const name = (what: string): string => `cdi-test-sp-${what}-${suffix}`;
const classes: string[] = [];
const snapshotClasses: string[] = [];
const vscCrd = 'volumesnapshotclasses.snapshot.storage.k8s.io';
let client: KubeClient;
let mgr: RunningManager;
let removeCrd = false;
let resume: () => Promise<void> = async () => {};

async function ensureSnapshotClassCrd(): Promise<void> {
  if (await client.getOrUndefined(Resources.CustomResourceDefinition, vscCrd)) return;
  removeCrd = true;
  await client.create(Resources.CustomResourceDefinition, {
    metadata: { name: vscCrd, labels: { 'cdi-ts-test': 'storageprofile' } },
    spec: {
      group: 'snapshot.storage.k8s.io',
      names: {
        kind: 'VolumeSnapshotClass',
        listKind: 'VolumeSnapshotClassList',
        plural: 'volumesnapshotclasses',
        singular: 'volumesnapshotclass',
      },
      scope: 'Cluster',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['deletionPolicy', 'driver'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                driver: { type: 'string' },
                deletionPolicy: { type: 'string', enum: ['Delete', 'Retain'] },
                parameters: { type: 'object', additionalProperties: { type: 'string' } },
              },
            },
          },
        },
      ],
    },
  } as KubeObject);
  await eventually('the VolumeSnapshotClass CRD to be served', async () => {
    await client.list(VolumeSnapshotClassResource, { limit: 1 });
    return true;
  });
}

async function storageClass(
  what: string,
  provisioner: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const n = name(what);
  classes.push(n);
  await client.create(Resources.StorageClass, {
    metadata: { name: n, labels: { 'cdi-ts-test': 'storageprofile' } },
    provisioner,
    ...extra,
  } as KubeObject);
  return n;
}

async function snapshotClass(what: string, forDriver: string): Promise<string> {
  const n = name(what);
  snapshotClasses.push(n);
  await client.create(VolumeSnapshotClassResource, {
    metadata: { name: n, labels: { 'cdi-ts-test': 'storageprofile' } },
    driver: forDriver,
    deletionPolicy: 'Delete',
  } as KubeObject);
  return n;
}

type Profile = StorageProfile & KubeObject;
const status = (p: Profile | undefined) => p?.status;
const cond = (p: Profile | undefined, type: string) => p?.status?.conditions?.find((c) => c.type === type);

/** Waits until the class's profile satisfies `ok`, and returns it. */
function profileWhere(sc: string, what: string, ok: (p: Profile) => boolean): Promise<Profile> {
  return eventually(`StorageProfile ${sc}: ${what}`, async () => {
    const p = await client.getOrUndefined<Profile>(Resources.StorageProfile, sc);
    return p && ok(p) ? p : undefined;
  });
}

before(async () => {
  client = clusterClient();
  await installCrds(client);
  await ensureSnapshotClassCrd();
  resume = await pauseDeployedController(client);
  mgr = new RunningManager(client);
  mgr.start();
});

after(async () => {
  await mgr?.stop();
  for (const sc of classes) {
    await deleteIfExists(client, Resources.StorageClass, sc);
    await deleteIfExists(client, Resources.StorageProfile, sc);
  }
  for (const v of snapshotClasses) await client.delete(VolumeSnapshotClassResource, v);
  if (removeCrd) await deleteIfExists(client, Resources.CustomResourceDefinition, vscCrd);
  await resume();
});

void test('clone strategy: copy without a VolumeSnapshotClass, snapshot with one, and back as classes come and go', async () => {
  const withSnap = await storageClass('with', driver);
  const without = await storageClass('without', otherDriver);
  const vsc = await snapshotClass('vsc', driver);

  const a = await profileWhere(withSnap, 'snapshot', (p) => status(p)?.cloneStrategy === 'snapshot');
  assert.equal(status(a)?.snapshotClass, vsc);
  assert.equal(status(a)?.provisioner, driver);
  assert.equal(status(a)?.dataImportCronSourceFormat, 'pvc');
  assert.equal(cond(a, 'Recognized')?.reason, 'UnrecognizedProvisioner');
  assert.equal(cond(a, 'Valid')?.status, 'True');

  const b = await profileWhere(without, 'computed', (p) => status(p)?.cloneStrategy !== undefined);
  assert.equal(status(b)?.cloneStrategy, 'copy');
  assert.equal(status(b)?.snapshotClass, undefined);

  // the watch on VolumeSnapshotClasses wakes the profiles of their driver
  await client.delete(VolumeSnapshotClassResource, vsc);
  const gone = await profileWhere(
    withSnap,
    'copy after its snapshot class was deleted',
    (p) => status(p)?.cloneStrategy === 'copy',
  );
  assert.equal(status(gone)?.snapshotClass, undefined);
  const late = await snapshotClass('late', otherDriver);
  const now = await profileWhere(
    without,
    'snapshot once a class exists',
    (p) => status(p)?.cloneStrategy === 'snapshot',
  );
  assert.equal(status(now)?.snapshotClass, late);

  // the StorageClass annotation comes before everything but the profile's spec
  await client.mergePatch(Resources.StorageClass, without, {
    metadata: { annotations: { 'cdi.kubevirt.io/clone-strategy': 'csi-clone' } },
  });
  await profileWhere(
    without,
    'csi-clone from the class annotation',
    (p) => status(p)?.cloneStrategy === 'csi-clone',
  );
  await client.mergePatch(Resources.StorageProfile, without, { spec: { cloneStrategy: 'copy' } });
  await profileWhere(without, 'copy from the spec', (p) => status(p)?.cloneStrategy === 'copy');
});

void test('known provisioners get the table: claim property sets, advised strategy, minimum size annotation', async () => {
  const rbd = await storageClass('rbd', 'rook-ceph.rbd.csi.ceph.com');
  const p = await profileWhere(rbd, 'Recognized', (x) => cond(x, 'Recognized')?.status === 'True');
  assert.deepEqual(status(p)?.claimPropertySets, [
    { accessModes: ['ReadWriteMany'], volumeMode: 'Block' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
  ]);
  assert.equal(status(p)?.cloneStrategy, 'csi-clone');
  assert.equal(cond(p, 'Recognized')?.reason, 'RecognizedProvisioner');

  const gp3 = await storageClass('gp3', 'ebs.csi.aws.com', { parameters: { type: 'gp3' } });
  const e = await profileWhere(
    gp3,
    'annotated',
    (x) => x.metadata.annotations?.['cdi.kubevirt.io/minimumSupportedPvcSize'] !== undefined,
  );
  assert.equal(e.metadata.annotations?.['cdi.kubevirt.io/minimumSupportedPvcSize'], '1Gi');
  assert.deepEqual(status(e)?.claimPropertySets, [{ accessModes: ['ReadWriteOnce'], volumeMode: 'Block' }]);
});

void test('an unknown provisioner takes its sets from the class annotation; a bad annotation is a condition and an event', async () => {
  const sets = [
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
  ];
  const sc = await storageClass('annotated', otherDriver, {
    metadata: {
      name: name('annotated'),
      annotations: { 'cdi.kubevirt.io/claim-property-sets': JSON.stringify(sets) },
    },
  });
  await profileWhere(
    sc,
    'sets from the annotation',
    (p) => JSON.stringify(status(p)?.claimPropertySets) === JSON.stringify(sets),
  );
  await client.mergePatch(Resources.StorageClass, sc, {
    metadata: { annotations: { 'cdi.kubevirt.io/claim-property-sets': '{oops' } },
  });
  const bad = await profileWhere(sc, 'Valid=False', (p) => cond(p, 'Valid')?.status === 'False');
  assert.equal(cond(bad, 'Valid')?.reason, 'InvalidStorageClassAnnotation');
  assert.match(
    cond(bad, 'Valid')?.message ?? '',
    /annotation cdi\.kubevirt\.io\/claim-property-sets is not a JSON list/,
  );
  const ev = await eventually('the Warning event', async () =>
    (await eventsFor(client, 'default', 'StorageProfile', sc)).find(
      (x) => x.reason === 'InvalidStorageClassAnnotation',
    ),
  );
  assert.equal(ev.type, 'Warning');
});

void test('an invalid claimPropertySet in the spec: Valid=False with an event; the sets in effect stay; fixing it clears it', async () => {
  const sc = await storageClass('spec', 'rbd.csi.ceph.com');
  const first = await profileWhere(
    sc,
    'table sets',
    (p) => (status(p)?.claimPropertySets?.length ?? 0) === 3,
  );
  await client.mergePatch(Resources.StorageProfile, sc, {
    spec: { claimPropertySets: [{ accessModes: [], volumeMode: 'Block' }] },
  });
  const bad = await profileWhere(sc, 'Valid=False', (p) => cond(p, 'Valid')?.status === 'False');
  assert.deepEqual(cond(bad, 'Valid')?.reason, 'InvalidClaimPropertySets');
  assert.equal(
    cond(bad, 'Valid')?.message,
    'spec.claimPropertySets[0]: each ClaimPropertySet must provide both volumeMode and accessModes',
  );
  assert.deepEqual(
    status(bad)?.claimPropertySets,
    status(first)?.claimPropertySets,
    'nothing lost: the sets in effect stay',
  );
  const ev = await eventually('the Warning event', async () =>
    (await eventsFor(client, 'default', 'StorageProfile', sc)).find(
      (x) => x.reason === 'InvalidClaimPropertySets',
    ),
  );
  assert.equal(ev.type, 'Warning');
  assert.match(ev.message ?? '', /each ClaimPropertySet must provide both volumeMode and accessModes/);

  await client.mergePatch(Resources.StorageProfile, sc, {
    spec: { claimPropertySets: [{ accessModes: ['ReadWriteMany'], volumeMode: 'Block' }] },
  });
  const fixed = await profileWhere(sc, 'Valid=True', (p) => cond(p, 'Valid')?.status === 'True');
  assert.deepEqual(status(fixed)?.claimPropertySets, [
    { accessModes: ['ReadWriteMany'], volumeMode: 'Block' },
  ]);
});

void test('spec.snapshotClass naming a class that does not exist: a condition and an event; creating it resolves them', async () => {
  const sc = await storageClass('named', driver);
  const wanted = name('wanted');
  await profileWhere(sc, 'created', () => true);
  await client.mergePatch(Resources.StorageProfile, sc, { spec: { snapshotClass: wanted } });
  const bad = await profileWhere(
    sc,
    'SnapshotClassNotFound',
    (p) => cond(p, 'Valid')?.reason === 'SnapshotClassNotFound',
  );
  assert.equal(status(bad)?.cloneStrategy, 'copy');
  assert.match(
    cond(bad, 'Valid')?.message ?? '',
    new RegExp(`VolumeSnapshotClass "${wanted}" does not exist`),
  );
  await eventually('the Warning event', async () =>
    (await eventsFor(client, 'default', 'StorageProfile', sc)).find(
      (x) => x.reason === 'SnapshotClassNotFound',
    ),
  );
  await snapshotClass('wanted', driver);
  const ok = await profileWhere(
    sc,
    'valid with its snapshot class',
    (p) => cond(p, 'Valid')?.status === 'True',
  );
  assert.equal(status(ok)?.snapshotClass, wanted);
  assert.equal(status(ok)?.cloneStrategy, 'snapshot');
});
