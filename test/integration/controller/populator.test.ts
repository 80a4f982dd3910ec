// The populators on the real API server (fake kubelet, see harness.ts): a bare PVC whose dataSourceRef names a
// VolumeImportSource (VolumeUploadSource) is filled through `prime-<uid>` by the import (upload) controller, one naming
// a VolumeCloneSource through `tmp-pvc-<uid>` by the clone machinery; the PV is handed to the target by
// kube-controller-manager's PV controller once its claimRef names it, and the filled claim is gone afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../../src/kube/index.ts';
import { deleteIfExists, eventually } from '../kube/cluster.ts';
import { eventsFor, kubelet, staticPv, useControllerSuite } from './harness.ts';
import { uploadPodName } from '../../../src/api/upload.ts';

const A = 'cdi.kubevirt.io/';
let client: KubeClient;
let ns: string;
// the upload and clone paths need the upload CAs: the controller makes them in the suite's namespace
const suite = useControllerSuite(
  'ctl-pop',
  { manager: (n) => ({ cdiNamespace: n, certificates: 'reconcile' }) },
  (s) => ({ client, ns } = s),
);
// a CSI-style class (upstream refuses in-tree provisioners) that nothing provisions: the tests give the prime a PV
const CSI = `cdi-test-populate-${suite.suffix}`;
const CSI_WFFC = `cdi-test-populate-wffc-${suite.suffix}`;
const pvs: string[] = [];
after(async () => {
  for (const pv of pvs) await deleteIfExists(client, Resources.PersistentVolume, pv);
  for (const sc of [CSI, CSI_WFFC]) await deleteIfExists(client, Resources.StorageClass, sc);
});

async function classes(): Promise<void> {
  for (const [name, mode] of [
    [CSI, 'Immediate'],
    [CSI_WFFC, 'WaitForFirstConsumer'],
  ] as const) {
    if (await client.getOrUndefined(Resources.StorageClass, name)) continue;
    await client.create(Resources.StorageClass, {
      metadata: { name, labels: { 'cdi-ts-test': 'controller' } },
      provisioner: 'populate.cdi-test.example.com',
      volumeBindingMode: mode,
    } as KubeObject);
  }
}
const source = (name: string, url: string) =>
  client.create(Resources.VolumeImportSource, {
    metadata: { name, namespace: ns },
    spec: { source: { http: { url } } },
  } as KubeObject);
const target = (
  name: string,
  sc: string,
  src: string,
  annotations: Record<string, string> = {},
  kind = 'VolumeImportSource',
) =>
  client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns, annotations },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: sc,
      resources: { requests: { storage: '1Gi' } },
      dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind, name: src },
    },
  });
/** A static PV for `claim` (standing in for the provisioner). */
async function pvFor(claim: string): Promise<string> {
  const pvName = `cdi-test-${suite.suffix}-${claim}`.slice(0, 63);
  pvs.push(pvName);
  await client.create(Resources.PersistentVolume, staticPv(pvName, CSI, ns, claim));
  return pvName;
}
const boundTarget = (name: string) =>
  eventually(`${name} Bound`, async () => {
    const t = await suite.getPvc(name);
    return t?.status?.phase === 'Bound' ? t : undefined;
  });
const gone = (name: string) =>
  eventually(`${name} deleted`, async () => ((await suite.getPvc(name)) === undefined ? true : undefined));

/** The populator looked at this claim (and decided, e.g. to wait). */
const reconciled = (name: string) =>
  eventually(`import-populator reconciled ${name}`, () =>
    Promise.resolve(
      suite.mgr.reconciles.some((r) => r.controller === 'import-populator' && r.key === `${ns}/${name}`)
        ? true
        : undefined,
    ),
  );

void test('a bare PVC with dataSourceRef to a VolumeImportSource is filled through prime-<uid>, which is gone afterwards', async () => {
  await classes();
  await source('golden-http', 'http://images.example.test/fedora.qcow2');
  const pvc = await target('vm-root', CSI, 'golden-http');
  const primeName = `prime-${pvc.metadata?.uid ?? ''}`;
  const prime = await eventually(primeName, () => suite.getPvc(primeName));
  const a = prime.metadata?.annotations ?? {};
  assert.equal(a[`${A}storage.import.endpoint`], 'http://images.example.test/fedora.qcow2');
  assert.equal(a[`${A}storage.import.source`], 'http');
  assert.equal(a[`${A}storage.populator.kind`], 'VolumeImportSource');
  assert.equal(a[`${A}storage.contentType`], 'kubevirt');
  assert.equal(prime.spec?.storageClassName, CSI);
  assert.equal(prime.spec?.resources?.requests?.['storage'], '1Gi');
  assert.equal((prime.spec as { dataSourceRef?: unknown }).dataSourceRef, undefined);
  const owner = prime.metadata?.ownerReferences?.[0];
  assert.deepEqual(
    [owner?.kind, owner?.name, owner?.uid, owner?.controller],
    ['PersistentVolumeClaim', 'vm-root', pvc.metadata?.uid, true],
  );
  await eventually('CreatedPVCPrimeSuccessfully on the target', async () =>
    (await eventsFor(client, ns, 'PersistentVolumeClaim', 'vm-root')).find(
      (e) => e.reason === 'CreatedPVCPrimeSuccessfully',
    ),
  );

  // the prime binds (a static PV stands in for the provisioner) and the import controller imports into it
  const pvName = `cdi-test-${suite.suffix}-${primeName}`.slice(0, 63);
  pvs.push(pvName);
  await client.create(Resources.PersistentVolume, staticPv(pvName, CSI, ns, primeName));
  const pod = `importer-${primeName}`;
  await eventually(pod, () => suite.getPod(pod));
  await kubelet.setStatus(client, ns, pod, kubelet.terminated(0, '{"message":"Import Complete"}'));

  // the PV goes to the target, the target binds to it and keeps the import's state; the prime is deleted
  const done = await eventually('target Bound', async () => {
    const t = await suite.getPvc('vm-root');
    return t?.status?.phase === 'Bound' ? t : undefined;
  });
  assert.equal(done.spec?.volumeName, pvName);
  const ta = done.metadata?.annotations ?? {};
  assert.equal(ta[`${A}storage.pod.phase`], 'Succeeded');
  assert.equal(ta[`${A}storage.populator.progress`], '100.0%');
  assert.equal(ta[`${A}storage.populator.pvcPrime`], primeName);
  await eventually('the prime deleted', async () =>
    (await suite.getPvc(primeName)) === undefined ? true : undefined,
  );
  const pv = await client.get<KubeObject & { spec: { claimRef?: { name?: string; uid?: string } } }>(
    Resources.PersistentVolume,
    pvName,
  );
  assert.deepEqual([pv.spec.claimRef?.name, pv.spec.claimRef?.uid], ['vm-root', pvc.metadata?.uid]);
  // the target's own ImportSucceeded, beside the prime's copied one (`[prime-<uid>] : ...`, upstream CopyEvents)
  const succeeded = await eventually('ImportSucceeded on the target, its own and the copy', async () => {
    const e = (await eventsFor(client, ns, 'PersistentVolumeClaim', 'vm-root')).filter(
      (x) => x.reason === 'ImportSucceeded',
    );
    return e.length >= 2 ? e : undefined;
  });
  assert.deepEqual(succeeded.map((e) => e.message).sort(), [
    'Successfully imported into PVC vm-root',
    `[${primeName}] : Import Successful`,
  ]);
});

void test('WaitForFirstConsumer: the prime waits for the node the scheduler chose, and takes it over', async () => {
  await classes();
  await source('golden-wffc', 'http://images.example.test/wffc.img');
  const pvc = await target('vm-wffc', CSI_WFFC, 'golden-wffc');
  const primeName = `prime-${pvc.metadata?.uid ?? ''}`;
  // a consumer pod would make the scheduler annotate the claim; until then nothing starts
  await reconciled('vm-wffc');
  assert.equal(await suite.getPvc(primeName), undefined, 'no prime before a node is chosen');
  await client.mergePatch(
    Resources.PersistentVolumeClaim,
    'vm-wffc',
    { metadata: { annotations: { 'volume.kubernetes.io/selected-node': 'node-a' } } },
    { namespace: ns },
  );
  const prime = await eventually(primeName, () => suite.getPvc(primeName));
  assert.equal(prime.metadata?.annotations?.['volume.kubernetes.io/selected-node'], 'node-a');
});

void test('a claim of an in-tree class, or naming a missing VolumeImportSource, gets no prime; the class is named in a warning', async () => {
  await source('golden-intree', 'http://images.example.test/x.img');
  await target('vm-intree', suite.sc, 'golden-intree');
  const ev = await eventually('ErrCreatingPVCPrime', async () =>
    (await eventsFor(client, ns, 'PersistentVolumeClaim', 'vm-intree')).find(
      (e) => e.reason === 'ErrCreatingPVCPrime',
    ),
  );
  assert.equal(ev.type, 'Warning');
  assert.equal(
    ev.message,
    `can't use populator for PVC ${ns}/vm-intree with in-tree storage class kubernetes.io/no-provisioner`,
  );

  await classes();
  const later = await target('vm-later', CSI, 'not-yet');
  const primeName = `prime-${later.metadata?.uid ?? ''}`;
  await reconciled('vm-later');
  assert.equal(await suite.getPvc(primeName), undefined);
  // the source's creation wakes the claim
  await source('not-yet', 'http://images.example.test/later.img');
  await eventually(primeName, () => suite.getPvc(primeName));
});

void test('VolumeUploadSource: prime-<uid> is an upload target, the target mirrors its readiness and gets its volume once the upload Succeeded', async () => {
  await classes();
  await client.create(Resources.VolumeUploadSource, {
    metadata: { name: 'upload-src', namespace: ns },
    spec: { contentType: 'archive' },
  } as KubeObject);
  const pvc = await target('vm-upload', CSI, 'upload-src', {}, 'VolumeUploadSource');
  const primeName = `prime-${pvc.metadata?.uid ?? ''}`;
  const prime = await eventually(primeName, () => suite.getPvc(primeName));
  const a = prime.metadata?.annotations ?? {};
  assert.equal(a[`${A}storage.upload.target`], '');
  assert.equal(a[`${A}storage.contentType`], 'archive');
  assert.equal(a[`${A}storage.populator.kind`], 'VolumeUploadSource');
  assert.equal(a[`${A}storage.preallocation.requested`], 'false');
  assert.equal(prime.metadata?.ownerReferences?.[0]?.uid, pvc.metadata?.uid);

  // the upload controller serves the prime; the proxy finds it through the target's pvcPrime annotation
  const pvName = await pvFor(primeName);
  const pod = uploadPodName(primeName);
  await eventually(pod, () => suite.getPod(pod));
  await kubelet.setStatus(client, ns, pod, kubelet.running('127.0.0.1'));
  const waiting = await eventually('the target mirrors the prime', async () => {
    const t = await suite.getPvc('vm-upload');
    const ta = t?.metadata?.annotations ?? {};
    return ta[`${A}storage.pod.ready`] === 'true' ? ta : undefined;
  });
  assert.equal(waiting[`${A}storage.populator.pvcPrime`], primeName);
  assert.equal(waiting[`${A}storage.pod.phase`], 'Running');

  await kubelet.setStatus(client, ns, pod, kubelet.terminated(0, ''));
  const done = await boundTarget('vm-upload');
  assert.equal(done.spec?.volumeName, pvName);
  const ta = done.metadata?.annotations ?? {};
  assert.equal(ta[`${A}storage.pod.phase`], 'Succeeded');
  assert.equal(ta[`${A}storage.populator.progress`], '100.0%');
  assert.equal(
    ta[`${A}storage.populator.pvcPrime`],
    undefined,
    'dropped once the upload is done, as upstream',
  );
  await gone(primeName);
  const ev = await eventually('UploadSucceeded on the target', async () =>
    (await eventsFor(client, ns, 'PersistentVolumeClaim', 'vm-upload')).find(
      (e) => e.reason === 'UploadSucceeded',
    ),
  );
  assert.equal(ev.message, 'Successfully uploaded into vm-upload');
});

/** A bound claim of the CSI class to clone from. */
async function cloneSource(name: string): Promise<void> {
  await client.create(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: CSI,
      resources: { requests: { storage: '1Gi' } },
    },
  });
  await pvFor(name);
  await eventually(`${name} Bound`, async () =>
    (await suite.getPvc(name))?.status?.phase === 'Bound' ? true : undefined,
  );
}
const vcs = (name: string, pvc: string) =>
  client.create(Resources.VolumeCloneSource, {
    metadata: { name, namespace: ns },
    spec: { source: { kind: 'PersistentVolumeClaim', name: pvc } },
  } as KubeObject);
const clonePhase = (name: string, phase: string) =>
  eventually(`${name} clonePhase ${phase}`, async () => {
    const t = await suite.getPvc(name);
    return t?.metadata?.annotations?.[`${A}clonePhase`] === phase ? t : undefined;
  });

void test('VolumeCloneSource, host-assisted: tmp-pvc-<uid> is cloned by the clone controller, its volume goes to the target, tmp-pvc is deleted', async () => {
  await classes();
  await cloneSource('golden-src');
  await vcs('clone-src', 'golden-src');
  const pvc = await target('vm-clone', CSI, 'clone-src', {}, 'VolumeCloneSource');
  const tmpName = `tmp-pvc-${pvc.metadata?.uid ?? ''}`;
  // no snapshot class for this class's driver: its profile says copy
  const chosen = await clonePhase('vm-clone', 'HostClone');
  assert.equal(chosen.metadata?.annotations?.[`${A}cloneType`], 'copy');
  const tmp = await eventually(tmpName, () => suite.getPvc(tmpName));
  assert.equal(tmp.metadata?.annotations?.['k8s.io/CloneRequest'], `${ns}/golden-src`);
  assert.equal(tmp.metadata?.ownerReferences?.[0]?.uid, pvc.metadata?.uid);
  const pvName = await pvFor(tmpName);

  // the host-assisted clone: the target side's upload server, then the source pod; the server takes the stream
  const server = uploadPodName(tmpName);
  await eventually(server, () => suite.getPod(server));
  await kubelet.setStatus(client, ns, server, kubelet.running('127.0.0.1'));
  const running = await client.get<KubeObject & { status: { conditions?: unknown[] } }>(
    Resources.Pod,
    server,
    ns,
  );
  await client.replace(
    Resources.Pod,
    {
      ...running,
      status: {
        ...running.status,
        conditions: [...(running.status.conditions ?? []), { type: 'Ready', status: 'True' }],
      },
    },
    { subresource: 'status' },
  );
  const sourcePod = `${tmp.metadata?.uid ?? ''}-source-pod`;
  await eventually(sourcePod, () => suite.getPod(sourcePod));
  await kubelet.setStatus(client, ns, server, kubelet.terminated(0, ''));

  const done = await clonePhase('vm-clone', 'Succeeded');
  assert.equal(done.status?.phase, 'Bound');
  assert.equal(done.spec?.volumeName, pvName);
  assert.equal(done.metadata?.annotations?.[`${A}storage.populator.progress`], '100.0%');
  assert.equal(done.metadata?.annotations?.['k8s.io/CloneOf'], 'true');
  await gone(tmpName);
});

void test('VolumeCloneSource, csi-clone (the profile says so): tmp-pvc-<uid> has the source as its dataSource; its volume goes to the target', async () => {
  await classes();
  await client.mergePatch(Resources.StorageProfile, CSI, { spec: { cloneStrategy: 'csi-clone' } });
  await eventually('profile csi-clone', async () =>
    (await client.get<KubeObject & { status?: { cloneStrategy?: string } }>(Resources.StorageProfile, CSI))
      .status?.cloneStrategy === 'csi-clone'
      ? true
      : undefined,
  );
  await cloneSource('golden-csi');
  await vcs('clone-csi', 'golden-csi');
  const pvc = await target('vm-csi', CSI, 'clone-csi', {}, 'VolumeCloneSource');
  const tmpName = `tmp-pvc-${pvc.metadata?.uid ?? ''}`;
  await clonePhase('vm-csi', 'CSIClone');
  const tmp = await eventually(tmpName, () => suite.getPvc(tmpName));
  assert.deepEqual(tmp.spec?.dataSource, { apiGroup: '', kind: 'PersistentVolumeClaim', name: 'golden-csi' });
  // the CSI driver would provision tmp-pvc as a copy; a static PV stands in
  const pvName = await pvFor(tmpName);
  const done = await clonePhase('vm-csi', 'Succeeded');
  assert.equal(done.spec?.volumeName, pvName);
  assert.equal(done.metadata?.annotations?.[`${A}cloneType`], 'csi-clone');
  await gone(tmpName);
});
