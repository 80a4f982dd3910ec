// The upload and clone volume populators end to end on the full cluster (the import populator is in golden.test.ts):
// the deployed cdi-controller (upload and clone populators, upload and clone controllers), cdi-uploadproxy reached at
// its Service's cluster IP, upload server and cloner pods from the local registry, CSI hostpath volumes and
// snapshots, and a verifier pod that checks the md5 on each volume.
//   - a bare PVC naming a VolumeUploadSource: `cdi upload pvc <target> --no-create` uploads naming the TARGET, the
//     proxy sends it to prime-<uid>'s server; the target gets the volume (md5) and prime-<uid> is gone;
//   - bare PVCs naming a VolumeCloneSource of that PVC: one on the e2e class (its profile's strategy: a snapshot) and
//     one on a class whose profile says copy (host-assisted); each gets the bytes (md5) and tmp-pvc-<uid> is gone;
//   - targets deleted right after their tmp-snapshot-<uid> appears (as kubectl deletes, and in the foreground) leave
//     no snapshot, VolumeSnapshotContent, tmp-pvc or PV behind (the populator's finalizer waits for the storage's
//     answer before it deletes the snapshot: kubernetes-csi/external-snapshotter#1258);
//   - a VolumeImportSource's running import shows its progress on the target: the file server's valve holds the
//     body at half, so the target must say something strictly between 0% and 100% before it says 100.0%.
// Holds the cluster lock: `flock /work/cluster-tests.lock node --test test/e2e/populators.test.ts`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Service,
} from '../../src/kube/index.ts';
import { clusterClient, createNamespace, eventually, kubeconfigPath } from '../integration/kube/cluster.ts';
import { deleteIfExists } from '../integration/upload/support.ts';
import { startFileServer, Valve } from '../support/fileserver.ts';
import { runCdi } from '../support/upload.ts';
import { cloneLeftovers, VolumeSnapshot } from './leftovers.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  deployCdi,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  type Fixtures,
} from './harness.ts';

const A = 'cdi.kubevirt.io/';
const COPY_CLASS = `cdi-e2e-popcopy-${randomBytes(2).toString('hex')}`;
let client: KubeClient;
let ns: string;
let fx: Fixtures;
let proxyUrl: string;
const undo: (() => Promise<void>)[] = [];

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undo.push(await deployCdi(client));
  let cleanupNs: () => Promise<void>;
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-populators'));
  undo.push(cleanupNs);
  fx = await makeFixtures();
  undo.push(() => fx.cleanup());
  const svc = await client.get<Service>(Resources.Service, 'cdi-uploadproxy', 'cdi');
  proxyUrl = `https://${svc.spec?.clusterIP ?? ''}`;
  // the e2e class's provisioner, with a profile that asks for host-assisted copies
  const base = await client.get<KubeObject & { provisioner?: string }>(Resources.StorageClass, STORAGE_CLASS);
  await client.create(Resources.StorageClass, {
    metadata: {
      name: COPY_CLASS,
      annotations: {
        [`${A}clone-strategy`]: 'copy',
        [`${A}claim-property-sets`]: (base.metadata?.annotations ?? {})[`${A}claim-property-sets`] ?? '',
      },
    },
    provisioner: base.provisioner,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
  } as KubeObject);
  undo.push(() => deleteIfExists(client, Resources.StorageClass, COPY_CLASS));
});

after(async () => {
  for (const u of undo.reverse()) await u();
});

const populated = (name: string, sc: string, kind: string, source: string) =>
  client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: sc,
      resources: { requests: { storage: '64Mi' } },
      dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind, name: source },
    },
  });
const getPvc = (name: string) =>
  client.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns);
const bound = (name: string) =>
  eventually(
    `${name} Bound`,
    async () => {
      const p = await getPvc(name);
      return p?.status?.phase === 'Bound' ? p : undefined;
    },
    240_000,
    1000,
  );
/** The events on a claim that were copied from `from` (`[<from>] : <message>`, upstream CopyEvents). */
async function mirroredFrom(name: string, from: string): Promise<{ reason?: string; message?: string }[]> {
  const l = await client.list<KubeObject & { reason?: string; message?: string }>(Resources.Event, {
    namespace: ns,
    fieldSelector: `involvedObject.kind=PersistentVolumeClaim,involvedObject.name=${name}`,
  });
  return l.items.filter((e) => e.message?.startsWith(`[${from}] : `));
}
/** The external-provisioner's ProvisioningSucceeded of `from` is on the target too. */
async function assertProvisioningMirrored(name: string, from: string): Promise<void> {
  const m = await mirroredFrom(name, from);
  assert.ok(
    m.some(
      (e) => e.reason === 'ProvisioningSucceeded' && /Successfully provisioned volume/.test(e.message ?? ''),
    ),
    `events of ${from} on ${name}: ${JSON.stringify(m)}`,
  );
}
const gone = (name: string) =>
  eventually(`${name} deleted`, async () => ((await getPvc(name)) ? undefined : true), 120_000, 1000);

void test('VolumeUploadSource: `cdi upload pvc <target> --no-create` fills the target through prime-<uid>, which is gone afterwards', async () => {
  await client.create(Resources.VolumeUploadSource, {
    metadata: { name: 'upload-src', namespace: ns },
    spec: { contentType: 'kubevirt' },
  } as KubeObject);
  const pvc = await populated('uploaded', STORAGE_CLASS, 'VolumeUploadSource', 'upload-src');
  const prime = `prime-${pvc.metadata?.uid ?? ''}`;
  const r = await runCdi(
    kubeconfigPath,
    'upload',
    'pvc',
    'uploaded',
    '-n',
    ns,
    '--no-create',
    '--insecure',
    '--no-progress',
    '--wait-secs',
    '180',
    '--uploadproxy-url',
    proxyUrl,
    '--image-path',
    path.join(fx.dir, fx.files.qcow2),
  );
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const done = await bound('uploaded');
  const a = done.metadata?.annotations ?? {};
  assert.equal(a[`${A}storage.pod.phase`], 'Succeeded');
  assert.equal(a[`${A}storage.populator.progress`], '100.0%');
  assert.equal(a[`${A}storage.upload.target`], undefined, 'the target itself is no upload target');
  await gone(prime);
  await assertProvisioningMirrored('uploaded', prime);
  assert.equal(await md5OnVolume(client, ns, 'uploaded', { bytes: fx.rawSize }), fx.rawMd5);
});

void test('VolumeCloneSource: a snapshot clone on the e2e class and a host-assisted copy are filled; tmp-pvc-<uid> is gone afterwards', async () => {
  await bound('uploaded'); // the previous test's target is the source
  await client.create(Resources.VolumeCloneSource, {
    metadata: { name: 'clone-src', namespace: ns },
    spec: { source: { kind: 'PersistentVolumeClaim', name: 'uploaded' } },
  } as KubeObject);
  const smart = await populated('cloned', STORAGE_CLASS, 'VolumeCloneSource', 'clone-src');
  const copy = await populated('copied', COPY_CLASS, 'VolumeCloneSource', 'clone-src');
  for (const [pvc, strategy] of [
    [smart, undefined],
    [copy, 'copy'],
  ] as const) {
    const name = pvc.metadata?.name ?? '';
    const done = await eventually(
      `${name} clonePhase Succeeded`,
      async () => {
        const p = await getPvc(name);
        if (p?.metadata?.annotations?.[`${A}clonePhase`] === 'Error')
          throw new Error(`${name}: ${p.metadata.annotations[`${A}cloneError`]}`);
        return p?.metadata?.annotations?.[`${A}clonePhase`] === 'Succeeded' ? p : undefined;
      },
      300_000,
      1000,
    );
    assert.equal(done.status?.phase, 'Bound');
    if (strategy) assert.equal(done.metadata?.annotations?.[`${A}cloneType`], strategy);
    assert.equal(done.metadata?.annotations?.[`${A}storage.populator.progress`], '100.0%');
    await gone(`tmp-pvc-${pvc.metadata?.uid ?? ''}`);
    await assertProvisioningMirrored(name, `tmp-pvc-${pvc.metadata?.uid ?? ''}`);
    assert.equal(await md5OnVolume(client, ns, name, { bytes: fx.rawSize }), fx.rawMd5, name);
  }
});

void test('VolumeCloneSource: targets deleted right after their tmp-snapshot appears leave no snapshot, content, tmp-pvc or PV', async () => {
  await bound('uploaded');
  await client.create(Resources.VolumeCloneSource, {
    metadata: { name: 'clone-src-del', namespace: ns },
    spec: { source: { kind: 'PersistentVolumeClaim', name: 'uploaded' } },
  } as KubeObject);
  // the default (background) deletion, and a foreground one, which deletes what the target owns before the target
  for (const [name, propagationPolicy] of [
    ['del-bg', undefined],
    ['del-fg', 'Foreground'],
  ] as const) {
    const pvc = await populated(name, STORAGE_CLASS, 'VolumeCloneSource', 'clone-src-del');
    const uid = pvc.metadata?.uid ?? '';
    await eventually(
      `tmp-snapshot-${uid} of ${name}`,
      async () =>
        (await client.getOrUndefined(VolumeSnapshot, `tmp-snapshot-${uid}`, ns)) ? true : undefined,
      120_000,
      100,
    );
    await client.delete(Resources.PersistentVolumeClaim, name, {
      namespace: ns,
      ...(propagationPolicy ? { propagationPolicy } : {}),
    });
    // at most the populator's 2-minute wait for the cut, then the deletions
    await eventually(`${name} deleted`, async () => ((await getPvc(name)) ? undefined : true), 180_000, 1000);
    await eventually(
      `nothing of ${name} left`,
      async () => {
        const left = await cloneLeftovers(client, {
          uid,
          srcNs: ns,
          targetNs: ns,
          targetName: name,
          storage: true,
        });
        if (left.length > 0) throw new Error(`left: ${left.join(', ')}`);
        return true;
      },
      120_000,
      1000,
    );
  }
});

void test("VolumeImportSource: the running import's progress is on the target (strictly between 0% and 100%) before 100.0%", async () => {
  // the valve lets half the body through and holds the rest: the import cannot end before the test opens it
  const size = (await stat(path.join(fx.dir, fx.files.rawGz))).size;
  const half = Math.floor(size / 2);
  const valve = new Valve(half);
  const srv = await startFileServer({ root: fx.dir, host: NODE_IP, valve });
  undo.push(() => srv.close());
  await client.create(Resources.VolumeImportSource, {
    metadata: { name: 'gz-held', namespace: ns },
    spec: { source: { http: { url: `${srv.url}/${fx.files.rawGz}` } } },
  } as KubeObject);
  await populated('imported', STORAGE_CLASS, 'VolumeImportSource', 'gz-held');
  const running = await eventually(
    'a running progress on the target',
    async () => {
      const p = (await getPvc('imported'))?.metadata?.annotations?.[`${A}storage.populator.progress`];
      const m = /^(\d{1,3}\.\d{2})%$/.exec(p ?? '');
      return m && Number(m[1]) > 0 ? p : undefined;
    },
    240_000,
    500,
  );
  assert.ok(Number.parseFloat(running) < 100, `running progress ${running}`);
  // the Pending target's Bound condition is its prime's newest event (upstream UpdatePVCBoundConditionFromEvents)
  const pending = await getPvc('imported');
  const pa = pending?.metadata?.annotations ?? {};
  assert.equal(pa[`${A}storage.condition.bound`], 'false');
  assert.equal(pa[`${A}storage.condition.bound.reason`], 'Pending');
  const primeEvents = await client.list<KubeObject & { message?: string }>(Resources.Event, {
    namespace: ns,
    fieldSelector: `involvedObject.name=prime-${pending?.metadata?.uid ?? ''}`,
  });
  assert.ok(
    primeEvents.items.some((e) => e.message === pa[`${A}storage.condition.bound.message`]),
    `bound message ${pa[`${A}storage.condition.bound.message`]} among the prime's: ${JSON.stringify(primeEvents.items.map((e) => e.message))}`,
  );
  valve.open();
  const done = await bound('imported');
  assert.equal(done.metadata?.annotations?.[`${A}storage.populator.progress`], '100.0%');
  await assertProvisioningMirrored('imported', `prime-${done.metadata?.uid ?? ''}`);
  // once Bound, the Bound condition the prime's events gave the Pending target is gone
  assert.equal(done.metadata?.annotations?.[`${A}storage.condition.bound`], undefined);
  assert.equal(await md5OnVolume(client, ns, 'imported', { bytes: fx.rawSize }), fx.rawMd5);
});
