// DataVolume imports end to end on the full cluster: the deployed cdi-controller, real importer pods pulled from
// the local registry, CSI hostpath volumes (Filesystem and Block), an HTTP(S) server on the node address, and a
// verifier pod that checks the md5 of what landed on the volume.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../src/kube/index.ts';
import type { DataVolume, DataVolumeSource } from '../../src/controller/shared/types.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeTestPki } from '../support/tls.ts';
import { clusterClient, createNamespace, eventually, kubectl } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  createDataVolume,
  deployCdi,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  waitForDataVolume,
  type Fixtures,
} from './harness.ts';

const A = 'cdi.kubevirt.io/';
let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let fx: Fixtures;
let http: FileServer;
let authed: FileServer;
let tls: FileServer;
let caPem: string;
let undeploy: () => Promise<void> = async () => {};

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undeploy = await deployCdi(client);
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e'));
  fx = await makeFixtures();
  http = await startFileServer({ root: fx.dir, host: NODE_IP });
  authed = await startFileServer({
    root: fx.dir,
    host: NODE_IP,
    basicAuth: { user: 'alice', password: 's3cret' },
  });
  const pki = await makeTestPki(`${fx.dir}/pki`, { ips: [NODE_IP], hostnames: [] });
  caPem = pki.caCert;
  tls = await startFileServer({ root: fx.dir, host: NODE_IP, tls: { cert: pki.cert, key: pki.key } });
});

after(async () => {
  await cleanupNs();
  await http?.close();
  await authed?.close();
  await tls?.close();
  await fx?.cleanup();
  await undeploy();
});

const getDv = (name: string): Promise<DataVolume | undefined> =>
  client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, name, ns);

const importDv = (
  name: string,
  source: DataVolumeSource,
  opts: { size?: string; volumeMode?: string; contentType?: 'kubevirt' | 'archive' } = {},
): Promise<void> => createDataVolume(client, ns, name, source, opts);

const waitDv = (name: string, phase: string): Promise<DataVolume> =>
  waitForDataVolume(client, ns, name, phase);

const formats = [
  ['qcow2', () => fx.files.qcow2],
  ['vmdk', () => fx.files.vmdk],
  ['vhdx', () => fx.files.vhdx],
  ['raw-xz', () => fx.files.rawXz],
  ['raw-gz', () => fx.files.rawGz],
  ['iso', () => fx.files.iso],
] as const;

for (const [fmt, file] of formats) {
  void test(`${fmt} over HTTP into a Filesystem volume: Succeeded, 100.0%, and the bytes match`, async () => {
    const name = `fs-${fmt}`;
    await importDv(name, { http: { url: `${http.url}/${file()}` } });
    const dv = await waitDv(name, 'Succeeded');
    assert.equal(dv.status?.progress, '100.0%');
    assert.equal(dv.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const want = fmt === 'iso' ? fx.isoMd5 : fx.rawMd5;
    assert.equal(await md5OnVolume(client, ns, name, { bytes: fx.rawSize }), want);
    // kubectl get dv shows the upstream columns
    const out = await kubectl('-n', ns, 'get', 'dv', name);
    assert.match(out.stdout, /NAME\s+PHASE\s+PROGRESS\s+RESTARTS\s+AGE/);
    assert.match(out.stdout, new RegExp(`${name}\\s+Succeeded\\s+100\\.0%\\s+0`));
  });
}

void test('qcow2 into a Block volume', async () => {
  await importDv('block-qcow2', { http: { url: `${http.url}/${fx.files.qcow2}` } }, { volumeMode: 'Block' });
  await waitDv('block-qcow2', 'Succeeded');
  const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'block-qcow2', ns);
  assert.equal(pvc.spec?.volumeMode, 'Block');
  assert.equal(await md5OnVolume(client, ns, 'block-qcow2', { block: true, bytes: fx.rawSize }), fx.rawMd5);
});

void test('archive content is unpacked onto the volume', async () => {
  await importDv('archive', { http: { url: `${http.url}/${fx.files.archive}` } }, { contentType: 'archive' });
  await waitDv('archive', 'Succeeded');
  assert.equal(await md5OnVolume(client, ns, 'archive', { file: 'payload.bin' }), fx.archiveFileMd5);
});

void test('basic auth from a Secret', async () => {
  await client.create(Resources.Secret, {
    metadata: { name: 'creds', namespace: ns },
    stringData: { accessKeyId: 'alice', secretKey: 's3cret' },
  } as KubeObject);
  await importDv('auth', { http: { url: `${authed.url}/${fx.files.qcow2}`, secretRef: 'creds' } });
  await waitDv('auth', 'Succeeded');
  assert.equal(await md5OnVolume(client, ns, 'auth', { bytes: fx.rawSize }), fx.rawMd5);
  assert.ok(
    authed.requests.some(
      (r) => r.headers['authorization'] === `Basic ${Buffer.from('alice:s3cret').toString('base64')}`,
    ),
  );
});

void test('a custom CA from a ConfigMap', async () => {
  await client.create(Resources.ConfigMap, {
    metadata: { name: 'ca', namespace: ns },
    data: { 'ca.pem': caPem },
  } as KubeObject);
  await importDv('tls', { http: { url: `${tls.url}/${fx.files.qcow2}`, certConfigMap: 'ca' } });
  await waitDv('tls', 'Succeeded');
  assert.equal(await md5OnVolume(client, ns, 'tls', { bytes: fx.rawSize }), fx.rawMd5);
});

void test('a checksum mismatch fails the DataVolume with reason ChecksumError', async () => {
  await importDv('badsum', {
    http: { url: `${http.url}/${fx.files.qcow2}`, checksum: `sha256:${'0'.repeat(64)}` },
  });
  const dv = await waitDv('badsum', 'Failed');
  const running = dv.status?.conditions?.find((c) => c.type === 'Running');
  assert.equal(running?.reason, 'ChecksumError');
  assert.match(running?.message ?? '', /checksum mismatch/);
});

void test('an image larger than the volume says so and keeps retrying', async () => {
  await importDv('toobig', { http: { url: `${http.url}/${fx.files.tooBig}` } }, { size: '64Mi' });
  const dv = await eventually(
    'too-small condition',
    async () => {
      const d = await getDv('toobig');
      return d?.status?.conditions?.find(
        (c) => c.type === 'Running' && /too small|larger than/i.test(c.message ?? ''),
      )
        ? d
        : undefined;
    },
    300_000,
    1000,
  );
  assert.notEqual(dv.status?.phase, 'Failed');
  assert.notEqual(dv.status?.phase, 'Succeeded');
});

void test('a missing URL keeps retrying with restartCount > 0', async () => {
  await importDv('missing', { http: { url: `${http.url}/no-such-image.qcow2` } });
  const dv = await eventually(
    'restartCount > 0',
    async () => {
      const d = await getDv('missing');
      return (d?.status?.restartCount ?? 0) > 0 ? d : undefined;
    },
    300_000,
    1000,
  );
  assert.notEqual(dv.status?.phase, 'Failed');
  assert.notEqual(dv.status?.phase, 'Succeeded');
});

void test('deleting a DataVolume removes its importer pod and PVC', async () => {
  await eventually('importer-missing exists', () =>
    client.getOrUndefined(Resources.Pod, 'importer-missing', ns),
  );
  await client.delete(Resources.DataVolume, 'missing', { namespace: ns });
  await eventually(
    'pod and PVC gone',
    async () =>
      (await client.getOrUndefined(Resources.Pod, 'importer-missing', ns)) === undefined &&
      (await client.getOrUndefined(Resources.PersistentVolumeClaim, 'missing', ns)) === undefined,
    180_000,
    1000,
  );
});

void test('the annotated-PVC API imports too', async () => {
  await client.create(Resources.PersistentVolumeClaim, {
    metadata: {
      name: 'golden',
      namespace: ns,
      annotations: { [`${A}storage.import.endpoint`]: `${http.url}/${fx.files.qcow2}` },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: STORAGE_CLASS,
      resources: { requests: { storage: '64Mi' } },
    },
  } as KubeObject);
  await eventually(
    'PVC golden imported',
    async () =>
      (await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'golden', ns)).metadata
        ?.annotations?.[`${A}storage.pod.phase`] === 'Succeeded',
    300_000,
    1000,
  );
  assert.equal(await md5OnVolume(client, ns, 'golden', { bytes: fx.rawSize }), fx.rawMd5);
});
