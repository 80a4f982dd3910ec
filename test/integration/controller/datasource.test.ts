// The DataSource controller on the real API server: Ready and status.source for PVC, DataVolume, snapshot and
// DataSource sources, upstream's reasons for every refusal, and the labels a ready source passes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resources, type KubeClient, type KubeObject } from '../../../src/kube/index.ts';
import type { DataSource } from '../../../src/controller/shared/types.ts';
import { createNamespace, eventually } from '../kube/cluster.ts';
import { kubelet, useControllerSuite } from './harness.ts';

let client: KubeClient;
let ns: string;
const suite = useControllerSuite('ctl-ds', {}, (s) => ({ client, ns } = s));

const getDs = (name: string, namespace = ns) =>
  client.getOrUndefined<DataSource & KubeObject>(Resources.DataSource, name, namespace);
const createDs = (name: string, source: DataSource['spec']['source'], namespace = ns) =>
  client.create<DataSource & KubeObject>(Resources.DataSource, {
    metadata: { name, namespace },
    spec: { source },
  });
const ready = (ds: DataSource | undefined) => ds?.status?.conditions?.find((c) => c.type === 'Ready');
/** Waits for the Ready condition to have this status and reason. */
const waitReady = (name: string, status: string, reason: string, namespace = ns) =>
  eventually(`DataSource ${name} Ready=${status} (${reason})`, async () => {
    const ds = await getDs(name, namespace);
    const c = ready(ds);
    return c?.status === status && c.reason === reason ? ds : undefined;
  });
const createPvc = (name: string, labels: Record<string, string> = {}) =>
  client.create(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns, labels },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: suite.sc,
      resources: { requests: { storage: '1Gi' } },
    },
  } as KubeObject);

void test('a PVC source: NotFound until the PVC exists, then Ready with status.source and the kubevirt.io labels', async () => {
  await createDs('golden', { pvc: { name: 'fedora', namespace: ns } });
  const missing = await waitReady('golden', 'False', 'NotFound');
  assert.equal(ready(missing)?.message, 'PVC not found');
  assert.deepEqual(missing?.status?.source, {});

  await createPvc('fedora', {
    'instancetype.kubevirt.io/default-instancetype': 'u1.medium',
    'unrelated.example.com/x': 'y',
  });
  const ok = await waitReady('golden', 'True', 'Ready');
  assert.equal(ready(ok)?.message, 'DataSource is ready to be consumed');
  assert.deepEqual(ok?.status?.source, { pvc: { name: 'fedora', namespace: ns } });
  assert.equal(ok?.metadata?.labels?.['instancetype.kubevirt.io/default-instancetype'], 'u1.medium');
  assert.equal(ok?.metadata?.labels?.['unrelated.example.com/x'], undefined, 'only *.kubevirt.io labels');

  // pointed elsewhere: not ready, and status.source is cleared
  await client.mergePatch(
    Resources.DataSource,
    'golden',
    { spec: { source: { pvc: { name: 'gone', namespace: ns } } } },
    { namespace: ns },
  );
  const moved = await waitReady('golden', 'False', 'NotFound');
  assert.deepEqual(moved?.status?.source, {});
  assert.notEqual(ready(moved)?.lastTransitionTime, undefined);
});

void test('a DataVolume source is ready only once the DataVolume Succeeded', async () => {
  await suite.pvFor('img');
  await suite.createDv('img');
  await createDs('from-dv', { pvc: { name: 'img', namespace: ns } });
  const waiting = await eventually('Ready False with the DataVolume phase', async () => {
    const c = ready(await getDs('from-dv'));
    return c?.status === 'False' && /^Import DataVolume phase /.test(c.message ?? '') ? c : undefined;
  });
  assert.equal(waiting.message, `Import DataVolume phase ${waiting.reason}`);
  assert.notEqual(waiting.reason, 'Succeeded');

  await eventually('importer-img', () => suite.getPod('importer-img'));
  await kubelet.setStatus(client, ns, 'importer-img', kubelet.terminated(0, '{"message":"Import Complete"}'));
  await suite.waitPhase('img', 'Succeeded');
  const ok = await waitReady('from-dv', 'True', 'Ready');
  assert.deepEqual(ok?.status?.source, { pvc: { name: 'img', namespace: ns } });
});

void test('a DataSource pointing to a DataSource resolves one level, in its own namespace only', async () => {
  await createPvc('base');
  await createDs('base', { pvc: { name: 'base', namespace: ns } });
  await createDs('alias', { dataSource: { name: 'base', namespace: ns } });
  const alias = await waitReady('alias', 'True', 'Ready');
  assert.deepEqual(
    alias?.status?.source,
    { pvc: { name: 'base', namespace: ns } },
    'the resolved source, not the reference',
  );

  await createDs('alias2', { dataSource: { name: 'alias', namespace: ns } });
  const deep = await waitReady('alias2', 'False', 'MaxReferenceDepthReached');
  assert.equal(ready(deep)?.message, 'DataSource reference chain exceeds maximum depth of 1');

  await createDs('me', { dataSource: { name: 'me', namespace: ns } });
  assert.equal(
    ready(await waitReady('me', 'False', 'SelfReference'))?.message,
    'DataSource cannot self-reference',
  );

  await createDs('nobody', { dataSource: { name: 'nobody-here', namespace: ns } });
  assert.equal(
    ready(await waitReady('nobody', 'False', 'NotFound'))?.message,
    'datasources.cdi.kubevirt.io "nobody-here" not found',
  );

  const other = await createNamespace(client, 'ctl-ds-other');
  try {
    await createDs('far', { dataSource: { name: 'base', namespace: ns } }, other.name);
    const far = await waitReady('far', 'False', 'CrossNamespaceReference', other.name);
    assert.equal(ready(far)?.message, 'DataSource cannot reference a DataSource in another namespace');
  } finally {
    await other.cleanup();
  }

  // the target changes: the alias follows
  await client.mergePatch(
    Resources.DataSource,
    'base',
    { spec: { source: { pvc: { name: 'missing', namespace: ns } } } },
    { namespace: ns },
  );
  await waitReady('alias', 'False', 'NotFound');
});

void test('a snapshot source: NotFound, then SnapshotNotReady while the snapshot is not readyToUse; no source: NoSource', async () => {
  await createDs('snap', { snapshot: { name: 'golden-snap', namespace: ns } });
  assert.equal(ready(await waitReady('snap', 'False', 'NotFound'))?.message, 'Snapshot not found');
  await client.create(Resources.VolumeSnapshot, {
    metadata: { name: 'golden-snap', namespace: ns },
    spec: { source: { persistentVolumeClaimName: 'no-such-claim' } },
  } as KubeObject);
  // the snapshot's creation wakes the DataSource (a watch beside the cache)
  const notReady = await waitReady('snap', 'False', 'SnapshotNotReady');
  assert.equal(ready(notReady)?.message, 'Snapshot phase is not ready');

  await createDs('empty', {});
  assert.equal(ready(await waitReady('empty', 'False', 'NoSource'))?.message, 'No source PVC set');
});

void test('a DataVolume with sourceRef waits for its DataSource, then clones what it points to', async () => {
  const cond = async (name: string, type: string) =>
    (await suite.getDv(name))?.status?.conditions?.find((c) => c.type === type);
  await suite.createDv('vm-disk', { source: undefined, sourceRef: { kind: 'DataSource', name: 'later' } });
  const missing = await eventually('Bound False: DataSourceNotFound', async () => {
    const c = await cond('vm-disk', 'Bound');
    return c?.reason === 'DataSourceNotFound' ? c : undefined;
  });
  assert.equal(missing.status, 'False');
  assert.equal(
    missing.message,
    `DataSource ${ns}/later not found: create it, or point spec.sourceRef at an existing DataSource`,
  );
  assert.equal((await suite.getDv('vm-disk'))?.status?.phase, 'Pending');
  assert.equal(await suite.getPvc('vm-disk'), undefined, 'no PVC before the source is known');

  // the DataSource appears without a source (a DataImportCron's first import still running): it wakes the DataVolume
  await createDs('later', {});
  const empty = await eventually('Bound: DataSourceNotReady', async () => {
    const c = await cond('vm-disk', 'Bound');
    return c?.reason === 'DataSourceNotReady' ? c : undefined;
  });
  assert.equal(empty.message, "Empty source field in 'later'. DataSource may not be ready yet");

  // it gets a PVC: the DataVolume is now a clone of that PVC, taken up by the clone reconciler (it picks a strategy,
  // or says why the clone waits), and no longer waits for its DataSource
  await client.mergePatch(
    Resources.DataSource,
    'later',
    { spec: { source: { pvc: { name: 'fedora', namespace: ns } } } },
    { namespace: ns },
  );
  const cloning = await eventually('the clone reconciler takes the DataVolume up', async () => {
    const dv = await suite.getDv('vm-disk');
    const c = await cond('vm-disk', 'Bound');
    const strategy = dv?.metadata?.annotations?.['cdi.kubevirt.io/cloneType'];
    return strategy || c?.reason?.startsWith('Clone') ? { strategy, reason: c?.reason } : undefined;
  });
  assert.notEqual(cloning.reason, 'DataSourceNotReady');
  assert.notEqual(cloning.reason, 'UnsupportedSource');

  await suite.createDv('bad-ref', {
    source: undefined,
    sourceRef: { kind: 'PersistentVolumeClaim', name: 'x' },
  });
  const bad = await eventually('ErrInvalidDataVolume', async () => {
    const c = await cond('bad-ref', 'Bound');
    return c?.reason === 'ErrInvalidDataVolume' ? c : undefined;
  });
  assert.equal(
    bad.message,
    'Unsupported sourceRef kind PersistentVolumeClaim, currently only DataSource is supported',
  );
});
