// The controllers against the real API server (control-plane profile): the PVCs, pods, annotations, events and
// DataVolume status they produce through a whole import, driven by a fake kubelet (see harness.ts).
import https from 'node:https';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Pod,
} from '../../../src/kube/index.ts';
import type { CDIConfig, DataVolume, StorageProfile } from '../../../src/controller/shared/types.ts';
import { eventually } from '../kube/cluster.ts';
import { createMetricsReaders, serviceAccountToken } from '../../support/metrics-auth.ts';
import {
  NO_NODE,
  schedulerRefused,
  eventsFor,
  freePort,
  kubelet,
  spawnController,
  useControllerSuite,
  type ControllerSuite,
  type RunningManager,
} from './harness.ts';

const A = 'cdi.kubevirt.io/';
let client: KubeClient;
let ns: string;
let mgr: RunningManager;
let metrics: ControllerSuite['metrics'];
let SC: string;
let WFFC: string;
const suite = useControllerSuite('ctl', {}, (s) => {
  ({ client, ns, mgr, metrics, sc: SC, wffc: WFFC } = s);
});

const getDv = (name: string): Promise<DataVolume | undefined> => suite.getDv(name);
const getPvc = (name: string): Promise<PersistentVolumeClaim | undefined> => suite.getPvc(name);
const getPod = (name: string): Promise<Pod | undefined> => suite.getPod(name);
const cond = (dv: DataVolume | undefined, type: string) =>
  dv?.status?.conditions?.find((c) => c.type === type);
const pvFor = (claim: string, storageClassName?: string): Promise<void> =>
  suite.pvFor(claim, storageClassName);
const createDv = (
  name: string,
  spec: Partial<DataVolume['spec']> = {},
  annotations: Record<string, string> = {},
): Promise<DataVolume> => suite.createDv(name, spec, annotations);
const waitPhase = (name: string, phase: string): Promise<DataVolume> => suite.waitPhase(name, phase);

/** Waits until `ms` of reconciles have passed with the assertion still holding (the controllers poll every 2 s). */
async function stillAfter(ms: number, check: () => Promise<void>): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  await check();
}

void test('the config controller creates CDIConfig config and resolves its status', async () => {
  const config = await eventually('CDIConfig status for our class', async () => {
    const c = await client.getOrUndefined<CDIConfig & KubeObject>(Resources.CDIConfig, 'config');
    return c?.status?.filesystemOverhead?.storageClass?.[SC] ? c : undefined;
  });
  assert.equal(config.status?.filesystemOverhead?.global, '0.06');
  assert.equal(config.status?.filesystemOverhead?.storageClass?.[SC], '0.06');
  assert.deepEqual(config.status?.defaultPodResourceRequirements, {
    limits: { cpu: '750m', memory: '600M' },
    requests: { cpu: '100m', memory: '60M' },
  });
});

void test('the storage profile controller makes one profile per class; spec.claimPropertySets reach its status', async () => {
  const p = await eventually('StorageProfile for our class', () =>
    client.getOrUndefined<StorageProfile & KubeObject>(Resources.StorageProfile, SC),
  );
  assert.equal(
    (
      await eventually(
        'profile status',
        async () =>
          (await client.getOrUndefined<StorageProfile & KubeObject>(Resources.StorageProfile, SC))?.status,
      )
    )?.provisioner,
    'kubernetes.io/no-provisioner',
  );
  assert.ok(p);
  const withSets = await eventually('claimPropertySets in status', async () => {
    const sp = await client.getOrUndefined<StorageProfile & KubeObject>(Resources.StorageProfile, SC);
    return sp?.status?.claimPropertySets?.length ? sp : undefined;
  });
  assert.deepEqual(withSets.status?.claimPropertySets, [
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
  ]);
  assert.equal(withSets.status?.conditions?.find((c) => c.type === 'Recognized')?.status, 'False');
  await eventually(
    'WFFC profile filled',
    async () =>
      (await client.getOrUndefined<StorageProfile & KubeObject>(Resources.StorageProfile, WFFC))?.status
        ?.claimPropertySets?.length,
  );
});

void test('a DataVolume imports: PVC, importer pod, phases, conditions, progress, events, cleanup', async () => {
  await pvFor('dv-life');
  const dv = await createDv('dv-life', {
    source: {
      http: {
        url: 'https://images.example.test/disk.qcow2',
        secretRef: 'creds',
        certConfigMap: 'ca',
        extraHeaders: ['X-Trace: 1'],
        checksum: 'sha256:0123',
      },
    },
  });

  // The PVC: same name, owned by the DV, the storage API completed from the profile, overhead added.
  const pvc = await eventually('PVC dv-life', () => getPvc('dv-life'));
  assert.deepEqual(pvc.metadata?.ownerReferences, [
    {
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'DataVolume',
      name: 'dv-life',
      uid: dv.metadata.uid ?? '',
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  assert.deepEqual(pvc.spec?.accessModes, ['ReadWriteOnce']);
  assert.equal(pvc.spec?.volumeMode, 'Filesystem');
  assert.equal(pvc.spec?.storageClassName, SC);
  assert.equal(pvc.spec?.resources?.requests?.['storage'], '1138166334'); // ceil(1Gi × 1.06)
  const a = pvc.metadata?.annotations ?? {};
  assert.equal(a[`${A}storage.import.endpoint`], 'https://images.example.test/disk.qcow2');
  assert.equal(a[`${A}storage.import.source`], 'http');
  assert.equal(a[`${A}storage.import.secretName`], 'creds');
  assert.equal(a[`${A}storage.import.certConfigMap`], 'ca');
  assert.equal(a[`${A}storage.import.extraHeaders.0`], 'X-Trace: 1');
  assert.equal(a[`${A}storage.import.checksum`], 'sha256:0123');
  assert.equal(a[`${A}storage.contentType`], 'kubevirt');
  assert.equal(a[`${A}storage.preallocation.requested`], 'false');
  assert.equal(a[`${A}createdForDataVolume`], dv.metadata.uid);
  assert.equal((await getDv('dv-life'))?.metadata.annotations?.[`${A}storage.usePopulator`], 'false');

  // Bound by the PV controller, then the importer pod.
  const pod = await eventually('importer-dv-life', () => getPod('importer-dv-life'));
  const spec = pod.spec!;
  const c = spec.containers[0]!;
  const env = Object.fromEntries(
    (c.env ?? []).map((e) => [
      e.name,
      e.value ?? `${e.valueFrom?.secretKeyRef?.name}/${e.valueFrom?.secretKeyRef?.key}`,
    ]),
  );
  assert.equal(env['IMPORTER_SOURCE'], 'http');
  assert.equal(env['IMPORTER_ENDPOINT'], 'https://images.example.test/disk.qcow2');
  assert.equal(env['IMPORTER_CONTENTTYPE'], 'kubevirt');
  assert.equal(env['IMPORTER_IMAGE_SIZE'], '1138166334');
  assert.equal(env['OWNER_UID'], dv.metadata.uid);
  assert.equal(env['FILESYSTEM_OVERHEAD'], '0.06');
  assert.equal(env['IMPORTER_CHECKSUM'], 'sha256:0123');
  assert.equal(env['IMPORTER_EXTRA_HEADER_0'], 'X-Trace: 1');
  assert.equal(env['IMPORTER_CERT_DIR'], '/certs');
  assert.equal(env['IMPORTER_ACCESS_KEY_ID'], 'creds/accessKeyId');
  assert.equal(env['IMPORTER_SECRET_KEY'], 'creds/secretKey');
  assert.equal(c.image, 'localhost:5000/cdi-importer:integration');
  assert.equal(spec.restartPolicy, 'OnFailure');
  assert.equal(c.terminationMessagePolicy, 'FallbackToLogsOnError');
  assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
  assert.equal(c.securityContext?.runAsNonRoot, true);
  assert.equal(c.securityContext?.runAsUser, 107);
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  assert.equal(spec.securityContext?.fsGroup, 107);
  assert.deepEqual(
    c.volumeMounts?.filter((m) => !m.name.startsWith('kube-api-access')),
    [
      { name: 'cdi-data-vol', mountPath: '/data' },
      { name: 'cdi-cert-vol', mountPath: '/certs' },
    ],
  );
  assert.deepEqual(spec.nodeSelector, NO_NODE);
  assert.equal(pod.metadata?.labels?.['app'], 'containerized-data-importer');
  assert.equal(pod.metadata?.labels?.['cdi.kubevirt.io'], 'importer');
  assert.equal(pod.metadata?.annotations?.[`${A}storage.createdByController`], 'yes');
  assert.deepEqual(
    pod.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
    [['PersistentVolumeClaim', 'dv-life', pvc.metadata?.uid, true]],
  );
  assert.deepEqual(c.resources, {
    limits: { cpu: '750m', memory: '600M' },
    requests: { cpu: '100m', memory: '60M' },
  });

  await waitPhase('dv-life', 'ImportScheduled');

  // kubelet starts the container; the importer reports progress on its metrics endpoint
  metrics.set(dv.metadata.uid ?? '', 45.678);
  await kubelet.setStatus(client, ns, 'importer-dv-life', kubelet.running(metrics.ip));
  const running = await eventually('progress 45.68%', async () => {
    const d = await getDv('dv-life');
    return d?.status?.progress === '45.68%' && d.status.phase === 'ImportInProgress' ? d : undefined;
  });
  assert.equal(running.status?.phase, 'ImportInProgress');
  assert.equal(cond(running, 'Running')?.status, 'True');
  assert.equal(cond(running, 'Running')?.reason, 'Pod is running');
  assert.equal(cond(running, 'Ready')?.status, 'False');
  assert.equal(cond(running, 'Ready')?.reason, 'TransferRunning');
  assert.equal(cond(running, 'Bound')?.status, 'True');
  assert.equal(cond(running, 'Bound')?.message, 'PVC dv-life Bound');
  for (const x of running.status?.conditions ?? []) {
    assert.match(x.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(x.lastHeartbeatTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }

  // the container exits 0 with the importer's JSON termination message: done
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-life',
    kubelet.terminated(0, '{"message":"Import Complete"}'),
  );
  const done = await waitPhase('dv-life', 'Succeeded');
  // Watch-driven: the pod's termination reached the DataVolume through events alone; nothing polled.
  assert.deepEqual(
    mgr.reconciles.filter((r) => r.key === `${ns}/dv-life` && r.outcome.result === 'requeue_after'),
    [],
    'no reconcile of this import asked to be polled',
  );
  assert.equal(done.status?.progress, '100.0%');
  assert.equal(cond(done, 'Ready')?.status, 'True');
  assert.equal(cond(done, 'Running')?.status, 'False');
  assert.equal(cond(done, 'Running')?.reason, 'Completed');
  assert.equal(cond(done, 'Running')?.message, 'Import Complete');
  assert.equal(done.status?.claimName, 'dv-life');
  await eventually(
    'importer pod deleted after success',
    async () => (await getPod('importer-dv-life')) === undefined,
  );
  const pvcDone = await getPvc('dv-life');
  assert.equal(pvcDone?.metadata?.annotations?.[`${A}storage.pod.phase`], 'Succeeded');

  const dvEvents = await eventually('DV events', async () => {
    const ev = await eventsFor(client, ns, 'DataVolume', 'dv-life');
    return ev.some((e) => e.reason === 'ImportSucceeded') ? ev : undefined;
  });
  const reasons = dvEvents.map((e) => e.reason);
  for (const r of ['Pending', 'Bound', 'ImportInProgress', 'ImportSucceeded'])
    assert.ok(reasons.includes(r), `DV event ${r} in ${reasons.join(',')}`);
  assert.equal(
    dvEvents.find((e) => e.reason === 'ImportSucceeded')?.message,
    'Successfully imported into PVC dv-life',
  );
  const pvcEvents = await eventsFor(client, ns, 'PersistentVolumeClaim', 'dv-life');
  assert.ok(pvcEvents.some((e) => e.reason === 'ImportSucceeded' && e.message === 'Import Successful'));

  // kubectl get dv shows the upstream columns
});

void test('a retryable failure keeps the import in progress with restartCount rising', async () => {
  await pvFor('dv-retry');
  await createDv('dv-retry');
  await eventually('importer-dv-retry', () => getPod('importer-dv-retry'));
  await kubelet.setStatus(client, ns, 'importer-dv-retry', kubelet.running(metrics.ip));
  await waitPhase('dv-retry', 'ImportInProgress');
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-retry',
    kubelet.crashLooping(2, 'Unable to connect to http data source: expected status code 200, got 404'),
  );
  const dv = await eventually('restartCount 2', async () => {
    const d = await getDv('dv-retry');
    return d?.status?.restartCount === 2 ? d : undefined;
  });
  assert.equal(dv.status?.phase, 'ImportInProgress');
  assert.equal(cond(dv, 'Running')?.status, 'False');
  assert.equal(cond(dv, 'Running')?.reason, 'Error');
  assert.match(cond(dv, 'Running')?.message ?? '', /got 404/);
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-retry',
    kubelet.crashLooping(5, 'Unable to connect to http data source: expected status code 200, got 404'),
  );
  const later = await eventually('restartCount 5', async () => {
    const d = await getDv('dv-retry');
    return d?.status?.restartCount === 5 ? d : undefined;
  });
  assert.notEqual(later.status?.phase, 'Failed');
  assert.ok(await getPod('importer-dv-retry'), 'the pod stays for kubelet to retry');
  const ev = await eventually('warning event with the failure', async () => {
    const l = await eventsFor(client, ns, 'DataVolume', 'dv-retry');
    return l.find((e) => e.type === 'Warning' && /got 404/.test(e.message ?? ''));
  });
  assert.equal(ev.reason, 'Error');
});

void test('a checksum mismatch is fatal: Failed with reason ChecksumError, and no new importer pod', async () => {
  await pvFor('dv-sum');
  await createDv('dv-sum', {
    source: { http: { url: 'http://images.example.test/x.img', checksum: 'sha256:00' } },
  });
  await eventually('importer-dv-sum', () => getPod('importer-dv-sum'));
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-sum',
    kubelet.terminated(0, '{"message":"checksum mismatch: expected sha256:00, got sha256:5f70bf18"}'),
  );
  const dv = await waitPhase('dv-sum', 'Failed');
  assert.equal(cond(dv, 'Running')?.reason, 'ChecksumError');
  assert.match(cond(dv, 'Running')?.message ?? '', /checksum mismatch/);
  assert.equal(cond(dv, 'Ready')?.status, 'False');
  const pvc = await getPvc('dv-sum');
  assert.equal(pvc?.metadata?.annotations?.[`${A}storage.import.fatalError`], 'true');
  await eventually('importer pod deleted', async () => (await getPod('importer-dv-sum')) === undefined);
  await stillAfter(5000, async () =>
    assert.equal(await getPod('importer-dv-sum'), undefined, 'no retry after a fatal error'),
  );
  const ev = await eventsFor(client, ns, 'PersistentVolumeClaim', 'dv-sum');
  assert.ok(ev.some((e) => e.reason === 'ErrImportFailed' && /checksum mismatch/.test(e.message ?? '')));
  assert.ok((await eventsFor(client, ns, 'DataVolume', 'dv-sum')).some((e) => e.reason === 'ImportFailed'));
});

void test('scratch space: the importer asks, the pod is recreated with <pvc>-scratch mounted at /scratch', async () => {
  await pvFor('dv-scratch');
  await createDv('dv-scratch');
  const first = await eventually('importer-dv-scratch', () => getPod('importer-dv-scratch'));
  assert.equal(
    first.spec?.volumes?.some((v) => v.name === 'cdi-scratch-vol'),
    false,
  );
  await kubelet.setStatus(client, ns, 'importer-dv-scratch', kubelet.running(metrics.ip));
  await waitPhase('dv-scratch', 'ImportInProgress');
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-scratch',
    kubelet.terminated(0, '{"scratchSpaceRequired":true}'),
  );
  const second = await eventually('importer pod recreated with scratch', async () => {
    const p = await getPod('importer-dv-scratch');
    return p && p.metadata?.uid !== first.metadata?.uid ? p : undefined;
  });
  assert.deepEqual(second.spec?.volumes?.find((v) => v.name === 'cdi-scratch-vol')?.persistentVolumeClaim, {
    claimName: 'dv-scratch-scratch',
  });
  assert.ok(
    second.spec?.containers[0]?.volumeMounts?.some(
      (m) => m.name === 'cdi-scratch-vol' && m.mountPath === '/scratch',
    ),
  );
  const scratch = await eventually('scratch PVC', () => getPvc('dv-scratch-scratch'));
  assert.deepEqual(scratch.spec?.accessModes, ['ReadWriteOnce']);
  assert.equal(scratch.spec?.volumeMode, 'Filesystem');
  assert.equal(scratch.spec?.storageClassName, SC);
  // usable size of the target (roundDown(ceil(1138166334 / 1.06), 1MiB) = 1Gi) plus the scratch class's overhead
  assert.equal(scratch.spec?.resources?.requests?.['storage'], '1138753536');
  assert.deepEqual(
    scratch.metadata?.ownerReferences?.map((o) => [o.kind, o.uid]),
    [['Pod', second.metadata?.uid]],
  );
  const dvMid = await getDv('dv-scratch');
  assert.notEqual(dvMid?.status?.phase, 'Succeeded');
  await eventually(
    'requiresScratch handled',
    async () =>
      (await getPvc('dv-scratch'))?.metadata?.annotations?.[`${A}storage.import.requiresScratch`] === 'false',
  );

  // kube-scheduler's PVC cache race: the pod was tried while its new scratch PVC was unbound in the scheduler's cache,
  // and parked although the claim is bound by now. The controller asks the scheduler again with an update of the
  // scratch PVC.
  await pvFor('dv-scratch-scratch');
  await eventually('scratch PVC bound', async () => (await getPvc('dv-scratch-scratch'))?.spec?.volumeName);
  await schedulerRefused(
    client,
    ns,
    'importer-dv-scratch',
    '0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.',
    10_000,
  );
  await eventually(
    'a scheduling retry asked on the bound scratch PVC',
    async () =>
      (await getPvc('dv-scratch-scratch'))?.metadata?.annotations?.[`${A}storage.scheduling.retryRequested`],
  );
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-scratch',
    kubelet.terminated(0, '{"message":"Import Complete"}'),
  );
  await waitPhase('dv-scratch', 'Succeeded');
  await eventually(
    'pod and scratch gone (scratch owned by the pod)',
    async () =>
      (await getPod('importer-dv-scratch')) === undefined &&
      (await getPvc('dv-scratch-scratch')) === undefined,
    90_000,
  );
});

void test('restarting the controller mid-import: no duplicate pod, nothing lost', async () => {
  await pvFor('dv-restart');
  await createDv('dv-restart');
  const pod = await eventually('importer-dv-restart', () => getPod('importer-dv-restart'));
  await kubelet.setStatus(client, ns, 'importer-dv-restart', kubelet.running(metrics.ip, 1));
  await eventually('restartCount 1', async () => (await getDv('dv-restart'))?.status?.restartCount === 1);
  await mgr.stop();
  mgr.start();
  // a fresh controller relists everything and reconciles the same objects again
  await kubelet.setStatus(client, ns, 'importer-dv-restart', kubelet.running(metrics.ip, 1));
  await stillAfter(4000, async () => {
    const pods = await client.list<Pod>(Resources.Pod, {
      namespace: ns,
      labelSelector: 'app=containerized-data-importer',
    });
    const mine = pods.items.filter((p) => p.metadata?.ownerReferences?.some((o) => o.name === 'dv-restart'));
    assert.deepEqual(
      mine.map((p) => p.metadata?.uid),
      [pod.metadata?.uid],
    );
  });
  const dv = await getDv('dv-restart');
  assert.equal(dv?.status?.phase, 'ImportInProgress');
  assert.equal(dv?.status?.restartCount, 1);
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-restart',
    kubelet.terminated(0, '{"message":"Import Complete"}', 1),
  );
  const done = await waitPhase('dv-restart', 'Succeeded');
  assert.equal(done.status?.restartCount, 1);
});

void test('deleting a DataVolume removes its PVC and importer pod through owner references', async () => {
  await pvFor('dv-del');
  await createDv('dv-del');
  await eventually('importer-dv-del', () => getPod('importer-dv-del'));
  await client.delete(Resources.DataVolume, 'dv-del', { namespace: ns });
  await eventually(
    'PVC and pod gone',
    async () => (await getPvc('dv-del')) === undefined && (await getPod('importer-dv-del')) === undefined,
    90_000,
  );
});

void test('a bare PVC annotated by hand (the older API) imports too', async () => {
  await pvFor('golden');
  const pvc = await client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: {
      name: 'golden',
      namespace: ns,
      annotations: {
        [`${A}storage.import.endpoint`]: 'http://images.example.test/golden.img',
        [`${A}storage.import.secretName`]: 'endpoint-secret',
      },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: SC,
      resources: { requests: { storage: '2Gi' } },
    },
  });
  const pod = await eventually('importer-golden', () => getPod('importer-golden'));
  const env = Object.fromEntries(
    (pod.spec?.containers[0]?.env ?? []).map((e) => [
      e.name,
      e.value ?? `${e.valueFrom?.secretKeyRef?.name}/${e.valueFrom?.secretKeyRef?.key}`,
    ]),
  );
  assert.equal(env['IMPORTER_SOURCE'], 'http');
  assert.equal(env['IMPORTER_ENDPOINT'], 'http://images.example.test/golden.img');
  assert.equal(env['IMPORTER_ACCESS_KEY_ID'], 'endpoint-secret/accessKeyId');
  assert.equal(env['OWNER_UID'], pvc.metadata?.uid);
  assert.equal(env['IMPORTER_IMAGE_SIZE'], '2Gi');
  await kubelet.setStatus(client, ns, 'importer-golden', kubelet.running(metrics.ip));
  await eventually(
    'PVC shows Running',
    async () => (await getPvc('golden'))?.metadata?.annotations?.[`${A}storage.pod.phase`] === 'Running',
  );
  await kubelet.setStatus(
    client,
    ns,
    'importer-golden',
    kubelet.terminated(0, '{"message":"Import Complete"}'),
  );
  const done = await eventually('PVC shows Succeeded', async () => {
    const p = await getPvc('golden');
    return p?.metadata?.annotations?.[`${A}storage.pod.phase`] === 'Succeeded' ? p : undefined;
  });
  assert.equal(done.metadata?.annotations?.[`${A}storage.condition.running.message`], 'Import Complete');
  await eventually('importer pod deleted', async () => (await getPod('importer-golden')) === undefined);
  assert.ok(
    (await eventsFor(client, ns, 'PersistentVolumeClaim', 'golden')).some(
      (e) => e.reason === 'ImportSucceeded',
    ),
  );
});

void test('WaitForFirstConsumer: no importer pod and phase WaitForFirstConsumer, unless immediate binding is requested', async () => {
  await createDv('dv-wffc', {
    storage: { storageClassName: WFFC, resources: { requests: { storage: '1Gi' } } },
  });
  await waitPhase('dv-wffc', 'WaitForFirstConsumer');
  assert.equal((await getPvc('dv-wffc'))?.status?.phase, 'Pending');
  await stillAfter(4000, async () => assert.equal(await getPod('importer-dv-wffc'), undefined));

  await createDv(
    'dv-now',
    { storage: { storageClassName: WFFC, resources: { requests: { storage: '1Gi' } } } },
    { [`${A}storage.bind.immediate.requested`]: 'true' },
  );
  const pod = await eventually('importer-dv-now despite WFFC', () => getPod('importer-dv-now'));
  assert.ok(pod);
  assert.equal(
    (await getPvc('dv-now'))?.metadata?.annotations?.[`${A}storage.bind.immediate.requested`],
    'true',
  );
});

void test('an invalid DataVolume gets a clear ErrClaimNotValid event and no PVC', async () => {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'dv-bad', namespace: ns },
    spec: { source: { http: { url: 'http://x/y' } }, storage: { storageClassName: SC } },
  });
  const ev = await eventually('ErrClaimNotValid', async () =>
    (await eventsFor(client, ns, 'DataVolume', 'dv-bad')).find(
      (e) => e.reason === 'ErrClaimNotValid' && e.type === 'Warning',
    ),
  );
  assert.match(ev.message ?? '', /missing storage size/);
  assert.equal(await getPvc('dv-bad'), undefined);
  const dv = await getDv('dv-bad');
  assert.equal(cond(dv, 'Bound')?.reason, 'ErrClaimNotValid');
});

void test('OOMKilled: the importer is recreated with CACHE_MODE=TRYNONE', async () => {
  await pvFor('dv-oom');
  await createDv('dv-oom');
  const first = await eventually('importer-dv-oom', () => getPod('importer-dv-oom'));
  const env0 = first.spec?.containers[0]?.env?.find((e) => e.name === 'CACHE_MODE');
  assert.equal(env0?.value ?? '', '');
  await kubelet.setStatus(client, ns, 'importer-dv-oom', kubelet.oomKilled(1));
  const second = await eventually('a new pod with CACHE_MODE=TRYNONE', async () => {
    const p = await getPod('importer-dv-oom');
    return p && p.metadata?.uid !== first.metadata?.uid ? p : undefined;
  });
  assert.equal(second.spec?.containers[0]?.env?.find((e) => e.name === 'CACHE_MODE')?.value, 'TRYNONE');
  await eventually(
    'requiresDirectIo acknowledged',
    async () =>
      (await getPvc('dv-oom'))?.metadata?.annotations?.[`${A}storage.import.requiresDirectIo`] === 'false',
  );
});

void test('a target PVC in use by another pod: ImportTargetInUse, and the import starts once it is free', async () => {
  await pvFor('busy');
  await client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: { name: 'busy', namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: SC,
      resources: { requests: { storage: '1Gi' } },
    },
  });
  await client.create(Resources.Pod, {
    metadata: { name: 'holder', namespace: ns },
    spec: {
      nodeSelector: NO_NODE,
      containers: [{ name: 'c', image: 'localhost:5000/busybox:any' }],
      volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'busy' } }],
    },
  } as KubeObject);
  await eventually('busy bound', async () => (await getPvc('busy'))?.status?.phase === 'Bound');
  await client.mergePatch(
    Resources.PersistentVolumeClaim,
    'busy',
    { metadata: { annotations: { [`${A}storage.import.endpoint`]: 'http://images.example.test/b.img' } } },
    { namespace: ns },
  );
  const ev = await eventually('ImportTargetInUse', async () =>
    (await eventsFor(client, ns, 'PersistentVolumeClaim', 'busy')).find(
      (e) => e.reason === 'ImportTargetInUse',
    ),
  );
  assert.equal(ev.message, `pod ${ns}/holder using PersistentVolumeClaim busy`);
  assert.equal(await getPod('importer-busy'), undefined);
  await client.delete(Resources.Pod, 'holder', { namespace: ns, gracePeriodSeconds: 0 });
  await eventually('importer-busy once the claim is free', () => getPod('importer-busy'));
});

void test('retainAfterCompletion keeps the importer pod after success', async () => {
  await pvFor('dv-keep');
  await createDv('dv-keep', {}, { [`${A}storage.pod.retainAfterCompletion`]: 'true' });
  await eventually('importer-dv-keep', () => getPod('importer-dv-keep'));
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-keep',
    kubelet.terminated(0, '{"message":"Import Complete"}'),
  );
  await waitPhase('dv-keep', 'Succeeded');
  await stillAfter(4000, async () => assert.ok(await getPod('importer-dv-keep'), 'the pod is retained'));
});

void test('the cdi-controller process: leader on a Lease, health, readiness, metrics, reconciles, graceful SIGTERM', async () => {
  await mgr.stop(); // the process under test is now the only controller
  const port = await freePort();
  const metricsPort = await freePort();
  const proc = spawnController(ns, port, 'cdi-controller-under-test', metricsPort);
  const exited = proc.exited;
  // /metrics is HTTPS with delegated authentication: a ServiceAccount token allowed to get /metrics
  const readers = await createMetricsReaders(client, ns);
  const token = await serviceAccountToken(client, ns, readers.reader);
  try {
    const get = async (path: string): Promise<{ status: number; text: string }> => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, text: await res.text() };
    };
    const getMetrics = (): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        https
          .get(
            {
              host: '127.0.0.1',
              port: metricsPort,
              path: '/metrics',
              headers: { authorization: `Bearer ${token}` },
              rejectUnauthorized: false, // the process's own certificate, made at start
            },
            (res) => {
              let text = '';
              res.on('data', (d: Buffer) => (text += d.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
            },
          )
          .on('error', reject);
      });
    await eventually('/healthz', async () => (await get('/healthz')).status === 200);
    const lease = await eventually('the lease held by the process', async () => {
      const l = await client.getOrUndefined<KubeObject & { spec?: { holderIdentity?: string } }>(
        Resources.Lease,
        'cdi-controller-leader-election-helper',
        ns,
      );
      return l?.spec?.holderIdentity === 'cdi-controller-under-test' ? l : undefined;
    });
    assert.ok(lease);
    await eventually('/readyz', async () => (await get('/readyz')).status === 200);
    await pvFor('dv-proc');
    await createDv('dv-proc');
    await eventually('the process creates the importer pod', () => getPod('importer-dv-proc'));
    const m = await getMetrics();
    assert.equal(m.status, 200);
    assert.match(
      m.text,
      /^leader_election_master_status\{name="cdi-controller-leader-election-helper"\} 1$/m,
    );
    assert.match(
      m.text,
      /controller_runtime_reconcile_total\{controller="import-controller",result="success"\} \d+/,
    );
    assert.match(m.text, /^workqueue_depth\{name="datavolume-import-controller"\} \d+$/m);
    assert.match(m.text, /^process_resident_memory_bytes \d+/m);
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, `exit code after SIGTERM; stderr: ${proc.stderr().slice(-500)}`);
    const released = await client.get<KubeObject & { spec?: { holderIdentity?: string } }>(
      Resources.Lease,
      'cdi-controller-leader-election-helper',
      ns,
    );
    assert.ok(!released.spec?.holderIdentity, 'the lease is released on shutdown');
  } finally {
    proc.kill('SIGKILL');
    await readers.cleanup();
  }
});
