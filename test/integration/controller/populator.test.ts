// The import populator on the real API server (fake kubelet, see harness.ts): a bare PVC whose dataSourceRef names a
// VolumeImportSource is filled through `prime-<uid>` by the import controller, the PV is handed to the target by
// kube-controller-manager's PV controller once its claimRef names it, and the prime is gone afterwards.
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

const A = 'cdi.kubevirt.io/';
let client: KubeClient;
let ns: string;
const suite = useControllerSuite('ctl-pop', {}, (s) => ({ client, ns } = s));
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
const target = (name: string, sc: string, src: string, annotations: Record<string, string> = {}) =>
  client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns, annotations },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: sc,
      resources: { requests: { storage: '1Gi' } },
      dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind: 'VolumeImportSource', name: src },
    },
  });

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
  const ev = await eventually('ImportSucceeded on the target', async () =>
    (await eventsFor(client, ns, 'PersistentVolumeClaim', 'vm-root')).find(
      (e) => e.reason === 'ImportSucceeded',
    ),
  );
  assert.equal(ev.message, 'Successfully imported into PVC vm-root');
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
