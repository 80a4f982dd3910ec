// A checksum for an imageio source, end to end on the full cluster: the disk is read by its data extents, so no
// digest of it is ever computed, and the importer refuses the request for good (termination message `fatalReason`,
// exit 0) instead of failing and being restarted over and over. The DataVolume (and a bare annotated PVC, the older
// API) fails at once with the reason and what to do; the engine (the oVirt + imageio stand-in of test/support/ovirt.ts
// on the node address) is never asked for a transfer. vddk takes the same path in the importer (the pod refuses it
// before vCenter or nbdkit is asked anything: test/importer/vddk.test.ts, against the vCenter simulator); on the
// cluster a vddk importer needs the VDDK init image, which nobody may ship.
// Holds the cluster lock: `flock -o /work/cluster-tests.lock bash -c 'bash hack/images/build.sh && node --test
// test/e2e/disk-source-checksum.test.ts'`.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { DataVolume } from '../../src/controller/shared/types.ts';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../src/kube/index.ts';
import { makeOvirtChain, startOvirtStandin, type OvirtStandin } from '../support/ovirt.ts';
import { makeTestPki } from '../support/tls.ts';
import { clusterClient, createNamespace, eventually } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  deployCdi,
  requireFullCluster,
  watchImporterPods,
  type ImporterPodWatch,
} from './harness.ts';

const A = 'cdi.kubevirt.io/';
const SIZE = 32 << 20;
const DISK = '4a1e3b52-0d0c-4b39-9a4b-0c3a6ad1c5e0';
const L = ['11111111-0000-4000-8000-0000000000c1', '22222222-0000-4000-8000-0000000000c2'];
const MESSAGE =
  /^Unable to process data: a checksum \(cdi\.kubevirt\.io\/storage\.import\.checksum\) cannot be verified when importing from imageio: its disk is read by its data extents, never every byte in one stream, so no digest of the whole disk is ever computed\. Remove the annotation and create the DataVolume \(or PVC\) again$/;

let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let undeploy: () => Promise<void> = async () => {};
let dir: string;
let ovirt: OvirtStandin;
let pods: ImporterPodWatch | undefined;
let checksum: string;

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undeploy = await deployCdi(client);
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-disksum'));
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-e2e-disksum-'));
  const chain = await makeOvirtChain(dir, {
    diskId: DISK,
    storageDomain: '9e1c2f0a-5d55-4c8e-8a3e-0000000c5esd',
    layerIds: L,
    size: SIZE,
  });
  // the right digest of the disk: refused all the same, since it could not be checked
  checksum = `md5:${chain.want.at(-1)}`;
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
  pods = await watchImporterPods(client, ns);
});

after(async () => {
  await pods?.stop();
  await cleanupNs();
  await ovirt?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await undeploy();
});

const getPvc = (name: string): Promise<PersistentVolumeClaim> =>
  client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns);

async function events(name: string): Promise<{ type?: string; reason?: string; message?: string }[]> {
  const l = await client.list<KubeObject & { type?: string; reason?: string; message?: string }>(
    Resources.Event,
    { namespace: ns, fieldSelector: `involvedObject.name=${name}` },
  );
  return l.items;
}

/** The claim's import failed for good: fatal, the reason and message, one importer pod ever, gone, never restarted. */
async function assertRefused(pvcName: string): Promise<void> {
  const a = (await getPvc(pvcName)).metadata?.annotations ?? {};
  assert.equal(a[`${A}storage.import.fatalError`], 'true');
  assert.equal(a[`${A}storage.pod.phase`], 'Failed');
  assert.equal(a[`${A}storage.condition.running`], 'false');
  assert.equal(a[`${A}storage.condition.running.reason`], 'ChecksumUnsupported');
  assert.match(a[`${A}storage.condition.running.message`] ?? '', MESSAGE);
  assert.equal(a[`${A}storage.pod.restarts`], '0');
  const ev = (await events(pvcName)).filter((e) => e.reason === 'ErrImportFailed');
  assert.ok(ev.length > 0, 'an ErrImportFailed event on the claim');
  assert.ok(
    ev.every((e) => e.type === 'Warning' && MESSAGE.test(e.message ?? '')),
    JSON.stringify(ev),
  );
  // the pod is deleted after the fatal error and not made again (a few seconds more to be sure of it)
  await eventually(
    `the importer pod of ${pvcName} gone`,
    async () => !(await client.getOrUndefined(Resources.Pod, `importer-${pvcName}`, ns)),
    60_000,
    500,
  );
  await new Promise((r) => setTimeout(r, 5000));
  assert.equal(await client.getOrUndefined(Resources.Pod, `importer-${pvcName}`, ns), undefined);
  assert.equal(pods?.seen.get(pvcName)?.size, 1, 'one importer pod, never replaced');
  assert.equal(ovirt.transfers.length, 0, 'the engine was never asked for an image transfer');
  assert.equal(ovirt.liveTokens(), 0);
}

void test('a DataVolume from imageio with a checksum annotation fails at once, with the reason and what to do', async () => {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'with-sum', namespace: ns, annotations: { [`${A}storage.import.checksum`]: checksum } },
    spec: {
      source: { imageio: { url: ovirt.url, secretRef: 'engine', certConfigMap: 'engine-ca', diskId: DISK } },
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
    },
  });
  const dv = await eventually(
    'DataVolume with-sum Failed',
    async () => {
      const d = await client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, 'with-sum', ns);
      if (d?.status?.phase === 'Succeeded')
        throw new Error('with-sum Succeeded: the checksum was not refused');
      return d?.status?.phase === 'Failed' ? d : undefined;
    },
    180_000,
    1000,
  );
  const running = dv.status?.conditions?.find((c) => c.type === 'Running');
  assert.equal(running?.status, 'False');
  assert.equal(running?.reason, 'ChecksumUnsupported');
  assert.match(running?.message ?? '', MESSAGE);
  assert.equal(dv.status?.restartCount ?? 0, 0);
  await assertRefused('with-sum');
  // still Failed, still no restarts, once the controller has looked again
  const again = await client.get<DataVolume & KubeObject>(Resources.DataVolume, 'with-sum', ns);
  assert.equal(again.status?.phase, 'Failed');
  assert.equal(again.status?.restartCount ?? 0, 0);
});

void test('a PVC annotated for an imageio import with a checksum (the older API) fails the same way', async () => {
  await client.create(Resources.PersistentVolumeClaim, {
    metadata: {
      name: 'legacy-sum',
      namespace: ns,
      annotations: {
        [`${A}storage.import.endpoint`]: ovirt.url,
        [`${A}storage.import.source`]: 'imageio',
        [`${A}storage.import.diskId`]: DISK,
        [`${A}storage.import.secretName`]: 'engine',
        [`${A}storage.import.certConfigMap`]: 'engine-ca',
        [`${A}storage.import.checksum`]: checksum,
      },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: STORAGE_CLASS,
      resources: { requests: { storage: '64Mi' } },
    },
  } as KubeObject);
  await eventually(
    'legacy-sum fatalError',
    async () =>
      (await getPvc('legacy-sum')).metadata?.annotations?.[`${A}storage.import.fatalError`] === 'true',
    180_000,
    1000,
  );
  await assertRefused('legacy-sum');
});
