// Golden images end to end on the full cluster: the deployed cdi-controller, real importer pods, CSI hostpath volumes,
// the cluster registry (pushed to from the host at localhost:5000, read by pods at 10.99.0.1:5000) and a verifier pod
// that checks the md5 of what landed on the volume.
//   - a bare PVC whose dataSourceRef names a VolumeImportSource is filled (Immediate and WaitForFirstConsumer, the
//     verifier being the consumer) and its prime-<uid> claim is gone afterwards; the operator's populator-validate
//     webhook refuses a VolumeImportSource with two sources and a spec edit;
//   - a DataImportCron's CronJob runs the poller in CDI's namespace (as cdi-cronjob), which finds the tag's digest;
//     the cron imports it; a new push under the same tag gives a second import, the DataSource switches to it and
//     importsToKeep: 1 deletes the first;
//   - with the class's StorageProfile set to `dataImportCronSourceFormat: snapshot`, each import becomes a VolumeSnapshot
//     (its DataVolume and PVC deleted once it is ready), the DataSource names it, a DataVolume with sourceRef is
//     restored from it, importsToKeep: 1 deletes the older snapshot, and back on `pvc` the snapshot gives way to a PVC.
// A DataVolume with sourceRef in another namespace (and one refused without clone permission) is in clone.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../src/kube/index.ts';
import type {
  DataImportCron,
  DataSource,
  DataVolume,
  StorageProfile,
  VolumeSnapshot,
} from '../../src/controller/shared/types.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { pushContainerDisk } from '../support/oci.ts';
import { clusterClient, createNamespace, eventually, kubectl } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  deployCdi,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  waitForDataVolume,
  type Fixtures,
  addInsecureRegistries,
} from './harness.ts';

const WFFC_CLASS = `${STORAGE_CLASS}-wffc`;
let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let fx: Fixtures;
let http: FileServer;
let undeploy: () => Promise<void> = async () => {};
let restoreConfig: () => Promise<void> = async () => {};
const repo = `golden-e2e-${randomBytes(3).toString('hex')}`;
const REGISTRY_FROM_PODS = `${NODE_IP}:5000`;

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undeploy = await deployCdi(client);
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-golden'));
  fx = await makeFixtures();
  http = await startFileServer({ root: fx.dir, host: NODE_IP });
  // the cluster registry speaks plain HTTP: the poller and the importer are told so, as an administrator would
  restoreConfig = await addInsecureRegistries(client, [REGISTRY_FROM_PODS]);
});

after(async () => {
  await http?.close();
  await fx?.cleanup();
  await cleanupNs();
  await restoreConfig();
  await undeploy();
});

const populated = (name: string, sc: string, vis: string) =>
  client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: sc,
      resources: { requests: { storage: '64Mi' } },
      dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind: 'VolumeImportSource', name: vis },
    },
  });

void test('a bare PVC with dataSourceRef to a VolumeImportSource is filled; its prime claim is gone afterwards', async () => {
  await client.create(Resources.VolumeImportSource, {
    metadata: { name: 'qcow2-http', namespace: ns },
    spec: { source: { http: { url: `${http.url}/${fx.files.qcow2}` } } },
  } as KubeObject);
  const pvc = await populated('populated', STORAGE_CLASS, 'qcow2-http');
  const bound = await eventually(
    'the target Bound',
    async () => {
      const p = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'populated', ns);
      return p.status?.phase === 'Bound' ? p : undefined;
    },
    180_000,
    1000,
  );
  assert.equal(bound.metadata?.annotations?.['cdi.kubevirt.io/storage.populator.progress'], '100.0%');
  assert.equal(await md5OnVolume(client, ns, 'populated', { bytes: fx.rawSize }), fx.rawMd5);
  await eventually('prime gone', async () =>
    (await client.getOrUndefined(Resources.PersistentVolumeClaim, `prime-${pvc.metadata?.uid ?? ''}`, ns))
      ? undefined
      : true,
  );
});

void test("cdi-apiserver's populator-validate refuses a VolumeImportSource with two sources, and a spec edit, in upstream's words", async () => {
  await assert.rejects(
    client.create(Resources.VolumeImportSource, {
      metadata: { name: 'two-sources', namespace: ns },
      spec: { source: { http: { url: `${http.url}/${fx.files.qcow2}` }, blank: {} } },
    } as KubeObject),
    /populator-validate\.cdi\.kubevirt\.io.*Multiple VolumeImport sources/s,
  );
  await client.create(Resources.VolumeImportSource, {
    metadata: { name: 'fixed', namespace: ns },
    spec: { source: { blank: {} } },
  } as KubeObject);
  await assert.rejects(
    client.mergePatch(
      Resources.VolumeImportSource,
      'fixed',
      { spec: { source: { blank: null, http: { url: `${http.url}/${fx.files.qcow2}` } } } },
      { namespace: ns },
    ),
    /Cannot update VolumeImportSource Spec/,
  );
});

void test('WaitForFirstConsumer: the consumer pod makes the scheduler pick a node, the prime follows it, the consumer reads the image', async () => {
  await client.create(Resources.VolumeImportSource, {
    metadata: { name: 'xz-http', namespace: ns },
    spec: { source: { http: { url: `${http.url}/${fx.files.rawXz}` } } },
  } as KubeObject);
  const pvc = await populated('populated-wffc', WFFC_CLASS, 'xz-http');
  // md5OnVolume's pod is the first consumer
  assert.equal(await md5OnVolume(client, ns, 'populated-wffc', { bytes: fx.rawSize }), fx.rawMd5);
  const p = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'populated-wffc', ns);
  assert.ok(p.metadata?.annotations?.['volume.kubernetes.io/selected-node'], 'the scheduler chose a node');
  await eventually('prime gone', async () =>
    (await client.getOrUndefined(Resources.PersistentVolumeClaim, `prime-${pvc.metadata?.uid ?? ''}`, ns))
      ? undefined
      : true,
  );
});

const push = (file: string, to = repo): Promise<string> => pushContainerDisk(join(fx.dir, file), to);

/** What an administrator does to poll now instead of waiting for the schedule: a Job from the cron's CronJob. */
async function pollNow(cron: string): Promise<void> {
  const cronJob = (
    await kubectl(
      '-n',
      'cdi',
      'get',
      'cronjobs',
      '-l',
      `cdi.kubevirt.io/dataImportCron=${cron},cdi.kubevirt.io/dataImportCronNs=${ns}`,
      '-o',
      'name',
    )
  ).stdout.trim();
  assert.ok(cronJob, `the CronJob of ${cron} in CDI namespace`);
  await kubectl(
    '-n',
    'cdi',
    'create',
    'job',
    `poll-now-${randomBytes(2).toString('hex')}`,
    `--from=${cronJob}`,
  );
}

const getCron = () => client.get<DataImportCron & KubeObject>(Resources.DataImportCron, 'fedora', ns);
const desiredDigest = async () =>
  (await getCron()).metadata.annotations?.['cdi.kubevirt.io/storage.import.sourceDesiredDigest'];

void test('a DataImportCron keeps the DataSource on the newest digest of a tag, and keeps importsToKeep imports', async () => {
  const d1 = await push(fx.files.qcow2);
  await client.create(Resources.DataImportCron, {
    metadata: { name: 'fedora', namespace: ns },
    spec: {
      schedule: '0 3 * * *',
      managedDataSource: 'fedora',
      importsToKeep: 1,
      template: {
        spec: {
          source: { registry: { url: `docker://${REGISTRY_FROM_PODS}/${repo}:latest` } },
          storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
        },
      },
    },
  } as KubeObject);
  // the initial Job of the CronJob in CDI's namespace runs the poller in the cluster
  await eventually(
    'the poller found the first digest',
    async () => ((await desiredDigest()) === d1 ? true : undefined),
    180_000,
    1000,
  );
  const first = `fedora-${d1.slice(7, 19)}`;
  const dv1 = await eventually(
    `DataVolume ${first}`,
    () => client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, first, ns),
    60_000,
    500,
  );
  assert.equal(dv1.spec.source?.registry?.url, `docker://${REGISTRY_FROM_PODS}/${repo}@${d1}`);
  assert.equal(dv1.metadata.labels?.['cdi.kubevirt.io/dataImportCron'], 'fedora');

  await waitForDataVolume(client, ns, first, 'Succeeded');
  await eventually(
    'DataSource → first, Ready',
    async () => {
      const ds = await client.get<DataSource & KubeObject>(Resources.DataSource, 'fedora', ns);
      return ds.spec.source.pvc?.name === first && ds.status?.conditions?.[0]?.status === 'True'
        ? ds
        : undefined;
    },
    60_000,
    500,
  );
  assert.equal(await md5OnVolume(client, ns, first, { bytes: fx.rawSize }), fx.rawMd5);

  // a new image under the same tag; the administrator runs the poll now instead of waiting for 03:00
  const d2 = await push('disk.raw');
  assert.notEqual(d2, d1);
  await pollNow('fedora');
  await eventually(
    'the poller found the second digest',
    async () => ((await desiredDigest()) === d2 ? true : undefined),
    180_000,
    1000,
  );
  const second = `fedora-${d2.slice(7, 19)}`;
  await eventually(
    'DataSource → second',
    async () => {
      const ds = await client.get<DataSource & KubeObject>(Resources.DataSource, 'fedora', ns);
      return ds.spec.source.pvc?.name === second ? ds : undefined;
    },
    300_000,
    1000,
  );
  await eventually(
    'the first import deleted (importsToKeep: 1)',
    async () => ((await client.getOrUndefined(Resources.DataVolume, first, ns)) ? undefined : true),
    120_000,
    1000,
  );
  assert.equal(await md5OnVolume(client, ns, second, { bytes: fx.rawSize }), fx.rawMd5);
  const cron = await getCron();
  assert.equal(cron.status?.conditions?.find((c) => c.type === 'UpToDate')?.status, 'True');
});

void test('sourceFormat snapshot: each import becomes a ready VolumeSnapshot the DataSource names, a sourceRef DataVolume is restored from it, old snapshots are collected, back on pvc the snapshot goes', async () => {
  // only this test's cron follows the profile: the pvc cron of the test before would follow it too
  await client.delete(Resources.DataImportCron, 'fedora', { namespace: ns }).catch(() => undefined);
  const snapRepo = `${repo}-snap`;
  const getSnap = (name: string) =>
    client.getOrUndefined<VolumeSnapshot & KubeObject>(Resources.VolumeSnapshot, name, ns);
  const getDs = () => client.get<DataSource & KubeObject>(Resources.DataSource, 'centos', ns);
  const getCentos = () => client.get<DataImportCron & KubeObject>(Resources.DataImportCron, 'centos', ns);
  const ready = (ds: DataSource) => ds.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const gone = async (name: string) =>
    !(await client.getOrUndefined(Resources.DataVolume, name, ns)) &&
    !(await client.getOrUndefined(Resources.PersistentVolumeClaim, name, ns));
  const setFormat = (format: string | null) =>
    client.mergePatch(Resources.StorageProfile, STORAGE_CLASS, {
      spec: { dataImportCronSourceFormat: format },
    });
  const profileFormat = async () =>
    (await client.get<StorageProfile & KubeObject>(Resources.StorageProfile, STORAGE_CLASS)).status
      ?.dataImportCronSourceFormat;
  const had =
    (await client.get<StorageProfile & KubeObject>(Resources.StorageProfile, STORAGE_CLASS)).spec
      ?.dataImportCronSourceFormat ?? null;
  /** A DataVolume from the DataSource, as a VM's would be; the bytes it got. */
  const fromGolden = async (name: string): Promise<string> => {
    await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
      metadata: { name, namespace: ns },
      spec: {
        sourceRef: { kind: 'DataSource', name: 'centos' },
        storage: {
          storageClassName: STORAGE_CLASS,
          volumeMode: 'Filesystem',
          resources: { requests: { storage: '64Mi' } },
        },
      },
    });
    await waitForDataVolume(client, ns, name, 'Succeeded');
    return md5OnVolume(client, ns, name, { bytes: fx.rawSize });
  };

  // the administrator keeps this class's golden images as snapshots
  await setFormat('snapshot');
  try {
    await eventually(
      'the profile says snapshot',
      async () => (await profileFormat()) === 'snapshot',
      60_000,
      500,
    );
    const d1 = await push(fx.files.qcow2, snapRepo);
    await client.create(Resources.DataImportCron, {
      metadata: { name: 'centos', namespace: ns },
      spec: {
        schedule: '0 3 * * *',
        managedDataSource: 'centos',
        importsToKeep: 1,
        template: {
          spec: {
            source: { registry: { url: `docker://${REGISTRY_FROM_PODS}/${snapRepo}:latest` } },
            storage: {
              storageClassName: STORAGE_CLASS,
              volumeMode: 'Filesystem',
              resources: { requests: { storage: '64Mi' } },
            },
          },
        },
      },
    } as KubeObject);
    const first = `centos-${d1.slice(7, 19)}`;
    await eventually(
      `DataSource → snapshot ${first}, Ready`,
      async () => {
        const ds = await getDs();
        return ds.spec.source.snapshot?.name === first && ready(ds) ? ds : undefined;
      },
      300_000,
      1000,
    );
    const snap1 = await getSnap(first);
    assert.equal(snap1?.status?.readyToUse, true);
    assert.equal(snap1.metadata.labels?.['cdi.kubevirt.io/dataImportCron'], 'centos');
    assert.equal(
      snap1.metadata.annotations?.['cdi.kubevirt.io/storage.import.sourceVolumeMode'],
      'Filesystem',
    );
    assert.equal(snap1.spec?.source?.persistentVolumeClaimName, first);
    await eventually(
      'the cron up to date, in the snapshot format',
      async () => {
        const c = await getCentos();
        const upToDate = c.status?.conditions?.find((x) => x.type === 'UpToDate')?.status === 'True';
        return c.status?.sourceFormat === 'snapshot' && upToDate ? c : undefined;
      },
      60_000,
      500,
    );
    await eventually(`the import DataVolume and PVC ${first} deleted`, () => gone(first), 120_000, 1000);
    assert.equal(await fromGolden('from-snapshot-1'), fx.rawMd5);

    // a new image under the same tag: a second snapshot, the DataSource follows, the first snapshot goes
    const d2 = await push('disk.raw', snapRepo);
    assert.notEqual(d2, d1);
    await pollNow('centos');
    const second = `centos-${d2.slice(7, 19)}`;
    await eventually(
      `DataSource → snapshot ${second}, Ready`,
      async () => {
        const ds = await getDs();
        return ds.spec.source.snapshot?.name === second && ready(ds) ? ds : undefined;
      },
      300_000,
      1000,
    );
    await eventually(
      `the first snapshot ${first} deleted (importsToKeep: 1)`,
      async () => !(await getSnap(first)),
      120_000,
      1000,
    );
    await eventually(`the import DataVolume and PVC ${second} deleted`, () => gone(second), 120_000, 1000);
    assert.equal(await fromGolden('from-snapshot-2'), fx.rawMd5);

    // back on pvc: the snapshot gives way to a PVC import of the same digest
    await setFormat('pvc');
    await eventually('the profile says pvc', async () => (await profileFormat()) === 'pvc', 60_000, 500);
    await eventually(
      `DataSource → PVC ${second}, Ready`,
      async () => {
        const ds = await getDs();
        return ds.spec.source.pvc?.name === second && ready(ds) ? ds : undefined;
      },
      300_000,
      1000,
    );
    assert.equal(await getSnap(second), undefined, 'the snapshot of the pvc-format import is gone');
    assert.equal(await md5OnVolume(client, ns, second, { bytes: fx.rawSize }), fx.rawMd5);
    assert.equal((await getCentos()).status?.sourceFormat, 'pvc');
  } finally {
    await setFormat(had);
  }
});

void test('pullMethod node: the controller pulls the tag on a node (pod poller-<cron>-<uid8>, no CronJob), reads the digest from its imageID and imports it by node pull', async () => {
  const nodeRepo = `${repo}-node`;
  const d1 = await push(fx.files.qcow2, nodeRepo);
  // the kubelet pulls from the node's own view of the registry, as a node-pull DataVolume does
  const url = `docker://localhost:5000/${nodeRepo}:latest`;
  const cron = await client.create<KubeObject>(Resources.DataImportCron, {
    metadata: { name: 'nodepull', namespace: ns },
    spec: {
      schedule: '0 3 * * *',
      managedDataSource: 'nodepull',
      template: {
        spec: {
          source: { registry: { url, pullMethod: 'node' } },
          storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
        },
      },
    },
  } as KubeObject);
  try {
    const polled = await eventually(
      'the controller found the digest',
      async () => {
        const c = await client.get<DataImportCron & KubeObject>(Resources.DataImportCron, 'nodepull', ns);
        return c.metadata.annotations?.['cdi.kubevirt.io/storage.import.sourceDesiredDigest'] === d1
          ? c
          : undefined;
      },
      180_000,
      1000,
    );
    const anns = polled.metadata.annotations ?? {};
    assert.ok(anns['cdi.kubevirt.io/storage.import.lastCronTime'], 'lastCronTime');
    const nextCron = Date.parse(anns['cdi.kubevirt.io/storage.import.nextCronTime'] ?? '');
    assert.ok(nextCron > Date.now(), 'the next poll is the next 03:00');
    assert.equal(new Date(nextCron).getUTCHours(), 3);
    const cronJobs = await kubectl(
      '-n',
      'cdi',
      'get',
      'cronjobs',
      '-l',
      `cdi.kubevirt.io/dataImportCron=nodepull,cdi.kubevirt.io/dataImportCronNs=${ns}`,
      '-o',
      'name',
    );
    assert.equal(cronJobs.stdout.trim(), '', 'a controller-polled source has no CronJob');
    const podName = `poller-nodepull-${(cron.metadata?.uid ?? '').slice(0, 8)}`;
    await eventually(
      `the poller pod ${podName} deleted once it named the digest`,
      async () => ((await client.getOrUndefined(Resources.Pod, podName, ns)) ? undefined : true),
      60_000,
      500,
    );

    const first = `nodepull-${d1.slice(7, 19)}`;
    const dv = await eventually(
      `DataVolume ${first}`,
      () => client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, first, ns),
      60_000,
      500,
    );
    assert.equal(dv.spec.source?.registry?.url, `docker://localhost:5000/${nodeRepo}@${d1}`);
    assert.equal(dv.spec.source?.registry?.pullMethod, 'node');
    await waitForDataVolume(client, ns, first, 'Succeeded');
    await eventually(
      'DataSource nodepull → the import, Ready',
      async () => {
        const ds = await client.get<DataSource & KubeObject>(Resources.DataSource, 'nodepull', ns);
        return ds.spec.source.pvc?.name === first && ds.status?.conditions?.[0]?.status === 'True'
          ? ds
          : undefined;
      },
      60_000,
      500,
    );
    assert.equal(await md5OnVolume(client, ns, first, { bytes: fx.rawSize }), fx.rawMd5);
    const done = await client.get<DataImportCron & KubeObject>(Resources.DataImportCron, 'nodepull', ns);
    assert.equal(done.status?.conditions?.find((c) => c.type === 'UpToDate')?.status, 'True');
  } finally {
    // the snapshot-format test changes the class's profile: no other cron may follow it
    await client.delete(Resources.DataImportCron, 'nodepull', { namespace: ns }).catch(() => undefined);
  }
});

void test('a pvc source: the digest is uid:<the PVC uid>, the import is a clone of it, and a replaced PVC is imported again', async () => {
  const source = async (file: string): Promise<string> => {
    await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
      metadata: { name: 'golden-src', namespace: ns },
      spec: {
        source: { http: { url: `${http.url}/${file}` } },
        storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
      },
    });
    await waitForDataVolume(client, ns, 'golden-src', 'Succeeded');
    const p = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'golden-src', ns);
    return p.metadata?.uid ?? '';
  };
  const getCronOf = () => client.get<DataImportCron & KubeObject>(Resources.DataImportCron, 'fromsrc', ns);
  const dsOn = (name: string) =>
    eventually(
      `DataSource fromsrc → ${name}, Ready`,
      async () => {
        const ds = await client.get<DataSource & KubeObject>(Resources.DataSource, 'fromsrc', ns);
        return ds.spec.source.pvc?.name === name && ds.status?.conditions?.[0]?.status === 'True'
          ? ds
          : undefined;
      },
      300_000,
      1000,
    );
  const uid1 = await source(fx.files.qcow2);
  await client.create(Resources.DataImportCron, {
    metadata: { name: 'fromsrc', namespace: ns },
    spec: {
      // every minute, so that the replaced PVC is seen soon
      schedule: '* * * * *',
      managedDataSource: 'fromsrc',
      template: {
        spec: {
          source: { pvc: { namespace: ns, name: 'golden-src' } },
          storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
        },
      },
    },
  } as KubeObject);
  try {
    const first = `fromsrc-${uid1.slice(0, 12)}`;
    await dsOn(first);
    assert.equal(
      (await getCronOf()).metadata.annotations?.['cdi.kubevirt.io/storage.import.sourceDesiredDigest'],
      `uid:${uid1}`,
    );
    const dv1 = await client.get<DataVolume & KubeObject>(Resources.DataVolume, first, ns);
    assert.deepEqual(dv1.spec.source?.pvc, { namespace: ns, name: 'golden-src' });
    assert.equal(await md5OnVolume(client, ns, first, { bytes: fx.rawSize }), fx.rawMd5);

    // the source PVC is replaced (same name, new uid, other bytes): the next poll imports it again
    await client.delete(Resources.DataVolume, 'golden-src', { namespace: ns });
    await eventually(
      'the old source PVC gone',
      async () =>
        (await client.getOrUndefined(Resources.PersistentVolumeClaim, 'golden-src', ns)) ? undefined : true,
      120_000,
      1000,
    );
    const uid2 = await source(fx.files.iso);
    assert.notEqual(uid2, uid1);
    const second = `fromsrc-${uid2.slice(0, 12)}`;
    await dsOn(second);
    assert.equal(await md5OnVolume(client, ns, second, { bytes: fx.rawSize }), fx.isoMd5);
    // the first import is a clone of its own: still there (importsToKeep 3), still the first bytes
    assert.equal(await md5OnVolume(client, ns, first, { bytes: fx.rawSize }), fx.rawMd5);
    const c = await getCronOf();
    assert.equal(c.status?.conditions?.find((x) => x.type === 'UpToDate')?.status, 'True');
    assert.deepEqual(
      c.status?.currentImports?.map((i) => i.Digest),
      [`uid:${uid2}`],
    );
  } finally {
    await client.delete(Resources.DataImportCron, 'fromsrc', { namespace: ns }).catch(() => undefined);
  }
});
