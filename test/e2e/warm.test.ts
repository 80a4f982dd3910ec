// imageio DataVolumes end to end on the full cluster, full and warm (multi-stage): the oVirt engine + imageio
// STAND-IN (test/support/ovirt.ts; neither can run here) listens on the node address with a test CA, and serves a
// qcow2 chain made with qemu-img: a base, two snapshot layers, the active layer. The deployed controller starts one
// importer pod per checkpoint; the volume's bytes after the final one equal the chain flattened by qemu-img.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../src/kube/index.ts';
import type { DataVolume, DataVolumeSource } from '../../src/controller/shared/types.ts';
import { makeOvirtChain, startOvirtStandin, type OvirtStandin } from '../support/ovirt.ts';
import { makeTestPki } from '../support/tls.ts';
import { clusterClient, createNamespace, eventually } from '../integration/kube/cluster.ts';
import { NODE_IP, STORAGE_CLASS, deployCdi, md5OnVolume, requireFullCluster } from './harness.ts';

const A = 'cdi.kubevirt.io/';
const MiB = 1 << 20;
const SIZE = 32 * MiB;
const DISK = '4a1e3b52-0d0c-4b39-9a4b-0c3a6ad1e2e0';
const L = [
  '11111111-0000-4000-8000-0000000000e1',
  '22222222-0000-4000-8000-0000000000e2',
  '33333333-0000-4000-8000-0000000000e3',
  '44444444-0000-4000-8000-0000000000e4',
];

let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let undeploy: () => Promise<void> = async () => {};
let dir: string;
let ovirt: OvirtStandin;
/** md5 of the disk as of each layer (the chain up to it, flattened by qemu-img) */
const want: string[] = [];

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undeploy = await deployCdi(client);
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-warm'));
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-e2e-warm-'));
  const chain = await makeOvirtChain(dir, {
    diskId: DISK,
    storageDomain: '9e1c2f0a-5d55-4c8e-8a3e-0000000e2esd',
    layerIds: L,
    size: SIZE,
  });
  want.push(...chain.want);
  const pki = await makeTestPki(path.join(dir, 'pki'), { ips: [NODE_IP], hostnames: [] });
  await mkdir(path.join(dir, 'standin'));
  ovirt = await startOvirtStandin({ dir: path.join(dir, 'standin'), tls: pki, host: NODE_IP });
  ovirt.disks.set(DISK, chain.disk);
  await client.create(Resources.Secret, {
    metadata: { name: 'engine', namespace: ns },
    stringData: { accessKeyId: ovirt.user, secretKey: ovirt.password },
  } as KubeObject);
  await client.create(Resources.ConfigMap, {
    metadata: { name: 'engine-ca', namespace: ns },
    data: { 'ca.pem': pki.caCert },
  } as KubeObject);
});

after(async () => {
  await cleanupNs();
  await ovirt?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await undeploy();
});

const getDv = (name: string): Promise<DataVolume | undefined> =>
  client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, name, ns);

const imageio = (): DataVolumeSource => ({
  imageio: { url: ovirt.url, secretRef: 'engine', certConfigMap: 'engine-ca', diskId: DISK },
});

async function phase(name: string, want: string): Promise<DataVolume> {
  return eventually(
    `DataVolume ${name} ${want}`,
    async () => {
      const d = await getDv(name);
      if (d?.status?.phase === 'Failed') throw new Error(`${name} Failed: ${JSON.stringify(d.status)}`);
      return d?.status?.phase === want ? d : undefined;
    },
    300_000,
    1000,
  );
}

/** Every transfer the importers opened was finalized (the stand-in records the phases). */
function assertTransfersFinished(): void {
  for (const t of ovirt.transfers)
    assert.equal(t.phase, 'finished_success', `transfer ${t.id} of layer ${t.layer} left ${t.phase}`);
}

void test('imageio: a full import through an image transfer reaches Succeeded and the bytes match', async () => {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'full', namespace: ns },
    spec: {
      source: imageio(),
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
    },
  });
  await phase('full', 'Succeeded');
  assert.equal(await md5OnVolume(client, ns, 'full', { bytes: SIZE }), want[3]);
  assertTransfersFinished();
});

/** The first n checkpoints of the chain (each snapshot after the one before), as a migration tool adds them. */
async function setCheckpoints(n: number, finalCheckpoint: boolean): Promise<void> {
  const checkpoints = L.slice(0, n).map((current, i) => ({ previous: i > 0 ? L[i - 1]! : '', current }));
  await client.mergePatch(
    Resources.DataVolume,
    'warm',
    { spec: { checkpoints, finalCheckpoint } },
    { namespace: ns },
  );
}

void test('imageio warm import: Paused after each checkpoint, the next added to the spec, Succeeded after the final one', async () => {
  const before = ovirt.transfers.length;
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'warm', namespace: ns },
    spec: {
      source: imageio(),
      checkpoints: [{ previous: '', current: L[0]! }],
      finalCheckpoint: false,
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
    },
  });
  // the base snapshot is in; the DataVolume waits for the next checkpoint, as a migration tool would add it
  await phase('warm', 'Paused');
  assert.equal(await md5OnVolume(client, ns, 'warm', { bytes: SIZE }), want[0]);
  await setCheckpoints(2, false);
  // the DataVolume controller marks a checkpoint copied once its pod Succeeded
  await eventually(
    'second checkpoint copied',
    async () =>
      `${A}storage.checkpoint.copied.${L[1]}` in
      ((await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'warm', ns)).metadata
        ?.annotations ?? {}),
    300_000,
    1000,
  );
  await phase('warm', 'Paused');
  assert.equal(await md5OnVolume(client, ns, 'warm', { bytes: SIZE }), want[1]);
  await setCheckpoints(3, true);
  const dv = await phase('warm', 'Succeeded');
  assert.equal(dv.status?.progress, '100.0%');
  assert.equal(await md5OnVolume(client, ns, 'warm', { bytes: SIZE }), want[2]);
  const transfers = ovirt.transfers.slice(before);
  assert.deepEqual(
    transfers.map((t) => [t.layer, t.shallow]),
    [
      [L[0], false],
      [L[1], true],
      [L[2], true],
    ],
  );
  assertTransfersFinished();
  const a =
    (await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'warm', ns)).metadata
      ?.annotations ?? {};
  assert.equal(a[`${A}storage.checkpoint.done`], 'true');
  assert.equal(a[`${A}storage.checkpoint.current`], undefined);
});
