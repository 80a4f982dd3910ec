// What the controllers say when something is wrong, on the real API server (fake kubelet, see harness.ts): external
// population with and without a CSI driver, refused DataVolume sources, spec edits, a claim that cannot be
// provisioned, CDIConfig settings that cannot be applied, an import that warns, an importer that runs out of memory
// twice, and the trusted proxy CA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resources, type ConfigMap, type KubeClient, type KubeObject } from '../../../src/kube/index.ts';
import type { CDIConfig, DataVolume } from '../../../src/controller/shared/types.ts';
import { Res } from '../../../src/controller/shared/client.ts';
import { eventually } from '../kube/cluster.ts';
import { eventsFor, kubelet, useControllerSuite } from './harness.ts';

const A = 'cdi.kubevirt.io/';
let client: KubeClient;
let ns: string;
const suite = useControllerSuite(
  'ctl-hard',
  { manager: (namespace) => ({ cdiNamespace: namespace }) }, // CDI's namespace: where the proxy CA lives
  (s) => ({ client, ns } = s),
);

const cond = (dv: DataVolume | undefined, type: string) =>
  dv?.status?.conditions?.find((c) => c.type === type);
const warning = async (kind: string, name: string, reason: string, namespace = ns) =>
  eventually(`a ${reason} event on ${kind} ${name}`, async () =>
    (await eventsFor(client, namespace, kind, name)).find((e) => e.type === 'Warning' && e.reason === reason),
  );

async function patchConfig(spec: Record<string, unknown>): Promise<void> {
  await client.mergePatch(Resources.CDIConfig, 'config', { spec });
}

void test('a DataVolume with no source whose claim names a populator is populated by it (external population)', async () => {
  const ref = { apiGroup: 'populator.example.test', kind: 'Sample', name: 'hello' };
  // a class whose provisioner has no CSIDriver: the populator cannot have filled it; bound, the DV says so
  await suite.createDv('dv-ext', {
    source: undefined,
    storage: { storageClassName: suite.sc, dataSourceRef: ref, resources: { requests: { storage: '1Gi' } } },
  });
  const pvc = await eventually('the claim of dv-ext', () => suite.getPvc('dv-ext'));
  assert.deepEqual(pvc.spec?.dataSourceRef, ref);
  assert.equal(pvc.metadata?.annotations?.['cdi.kubevirt.io/externalPopulation'], 'true');
  assert.equal(
    pvc.metadata?.annotations?.['cdi.kubevirt.io/storage.import.source'],
    undefined,
    'not an import',
  );
  await suite.waitPhase('dv-ext', 'Pending');
  await suite.pvFor('dv-ext');
  const ev = await warning('DataVolume', 'dv-ext', 'NoCSIDriverForExternalPopulation');
  assert.equal(ev.message, 'No CSI drivers were found: External population not supported');
  const bound = await suite.waitPhase('dv-ext', 'PVCBound');
  assert.equal(cond(bound, 'Ready')?.status, 'False');
  assert.equal(await suite.getPod('importer-dv-ext'), undefined, 'no importer for a populated claim');

  // a class of a CSI driver: once the populator bound the claim, the DataVolume has Succeeded
  const driver = `csi-${suite.suffix}.cdi-test.example.test`;
  const sc = `ctl-hard-csi-${suite.suffix}`;
  await client.create(Res.csiDriver, {
    metadata: { name: driver, labels: { 'cdi-ts-test': 'controller' } },
    spec: { attachRequired: false },
  } as KubeObject);
  await client.create(Resources.StorageClass, {
    metadata: { name: sc, labels: { 'cdi-ts-test': 'controller' } },
    provisioner: driver,
    volumeBindingMode: 'Immediate',
  } as KubeObject);
  try {
    await suite.createDv('dv-ext-csi', {
      source: undefined,
      storage: undefined,
      pvc: {
        storageClassName: sc,
        accessModes: ['ReadWriteOnce'],
        dataSourceRef: ref,
        resources: { requests: { storage: '1Gi' } },
      },
    });
    await eventually('the claim of dv-ext-csi', () => suite.getPvc('dv-ext-csi'));
    await suite.pvFor('dv-ext-csi', sc);
    const done = await suite.waitPhase('dv-ext-csi', 'Succeeded');
    assert.equal(cond(done, 'Ready')?.status, 'True');
    const ok = await eventually('an ExternalPopulationSucceeded event', async () =>
      (await eventsFor(client, ns, 'DataVolume', 'dv-ext-csi')).find(
        (e) => e.reason === 'ExternalPopulationSucceeded',
      ),
    );
    assert.equal(ok.type, 'Normal');
    assert.equal(ok.message, 'PVC dv-ext-csi successfully populated by hello');
  } finally {
    await client.delete(Resources.StorageClass, sc).catch(() => undefined);
    await client.delete(Res.csiDriver, driver).catch(() => undefined);
  }
});

void test("what upstream's webhook refuses gets its message: two sources, a URL scheme no importer fetches", async () => {
  await suite.createDv('dv-two', { source: { http: { url: 'https://x.example.test/a.img' }, blank: {} } });
  assert.equal(
    (await warning('DataVolume', 'dv-two', 'ErrInvalidDataVolume')).message,
    'Multiple Data volume sources (http, blank): set exactly one',
  );
  await suite.createDv('dv-ftp', { source: { http: { url: 'ftp://files.example.test/disk.img' } } });
  assert.equal(
    (await warning('DataVolume', 'dv-ftp', 'ErrInvalidDataVolume')).message,
    'spec.source Invalid source URL scheme: ftp://files.example.test/disk.img (use http or https)',
  );
  assert.equal(cond(await suite.getDv('dv-ftp'), 'Bound')?.reason, 'ErrInvalidDataVolume');
  assert.equal(await suite.getPvc('dv-two'), undefined);
  assert.equal(await suite.getPvc('dv-ftp'), undefined);
});

void test('a spec edited after its PVC was made keeps the PVC, and the DataVolume says the edit was not applied', async () => {
  await suite.pvFor('dv-edit');
  await suite.createDv('dv-edit', { source: { http: { url: 'https://x.example.test/first.img' } } });
  await eventually('importer-dv-edit', () => suite.getPod('importer-dv-edit'));
  await client.mergePatch(
    Resources.DataVolume,
    'dv-edit',
    { spec: { source: { http: { url: 'https://x.example.test/second.img' } } } },
    { namespace: ns },
  );
  const ev = await warning('DataVolume', 'dv-edit', 'ErrInvalidDataVolume');
  assert.match(ev.message ?? '', /^Cannot update DataVolume Spec: the change was not applied/);
  const dv = await eventually('the Ready condition to say so', async () => {
    const d = await suite.getDv('dv-edit');
    return /^Cannot update DataVolume Spec/.test(cond(d, 'Ready')?.message ?? '') ? d : undefined;
  });
  assert.equal(cond(dv, 'Bound')?.status, 'True', 'the import goes on');
  assert.equal(
    (await suite.getPvc('dv-edit'))?.metadata?.annotations?.[`${A}storage.import.endpoint`],
    'https://x.example.test/first.img',
  );
});

void test("a claim that cannot be provisioned shows the provisioner's reason in the Bound condition", async () => {
  const missing = `no-such-class-${suite.suffix}`;
  await suite.createDv('dv-noclass', {
    storage: {
      storageClassName: missing,
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
    },
  });
  // kube-controller-manager's PV controller says why the claim waits, in an event on the PVC
  const dv = await eventually('the Bound condition with the PV controller event', async () => {
    const d = await suite.getDv('dv-noclass');
    return (cond(d, 'Bound')?.message ?? '').includes(`storageclass.storage.k8s.io "${missing}" not found`)
      ? d
      : undefined;
  });
  assert.equal(
    cond(dv, 'Bound')?.message,
    `target PVC dv-noclass Pending and storageclass.storage.k8s.io "${missing}" not found`,
  );
  assert.equal(cond(dv, 'Bound')?.reason, 'Pending');
  assert.equal(dv.status?.phase, 'Pending');
  const pvc = await suite.getPvc('dv-noclass');
  assert.equal(pvc?.metadata?.annotations?.[`${A}storage.condition.bound.reason`], 'Pending');
});

void test('CDIConfig settings that cannot be applied set Valid=False and a Warning event, and clear when fixed', async () => {
  const missing = `no-such-scratch-${suite.suffix}`;
  await patchConfig({ scratchSpaceStorageClass: missing });
  try {
    const config = await eventually('Valid=False', async () => {
      const c = await client.get<CDIConfig & KubeObject>(Resources.CDIConfig, 'config');
      const v = c.status?.conditions?.find((x) => x.type === 'Valid');
      return v?.status === 'False' && v.message?.includes(missing) ? c : undefined;
    });
    const valid = config.status?.conditions?.find((x) => x.type === 'Valid');
    assert.equal(valid?.reason, 'InvalidConfiguration');
    assert.equal(
      valid?.message,
      `spec.scratchSpaceStorageClass "${missing}" is not a StorageClass: scratch volumes use the target's storage class`,
    );
    assert.equal(config.status?.scratchSpaceStorageClass, '', 'the default is used meanwhile');
    const ev = await eventually('the event on the CDIConfig', async () =>
      (await eventsFor(client, 'default', 'CDIConfig', 'config')).find(
        (e) => e.reason === 'InvalidConfiguration' && e.message?.includes(missing),
      ),
    );
    assert.equal(ev.type, 'Warning');
  } finally {
    await patchConfig({ scratchSpaceStorageClass: null });
  }
  await eventually('Valid=True again', async () => {
    const c = await client.get<CDIConfig & KubeObject>(Resources.CDIConfig, 'config');
    return c.status?.conditions?.find((x) => x.type === 'Valid')?.status === 'True';
  });
});

void test('warnings of a successful import become Warning events on the DataVolume', async () => {
  await suite.pvFor('dv-html');
  await suite.createDv('dv-html');
  await eventually('importer-dv-html', () => suite.getPod('importer-dv-html'));
  const text = "Unexpected content type 'text/html'. Content might not be a KubeVirt image.";
  await kubelet.setStatus(
    client,
    ns,
    'importer-dv-html',
    kubelet.terminated(0, JSON.stringify({ message: 'Import Complete', warnings: [text] })),
  );
  await suite.waitPhase('dv-html', 'Succeeded');
  assert.equal((await warning('DataVolume', 'dv-html', 'ImportWarning')).message, text);
  assert.equal((await warning('PersistentVolumeClaim', 'dv-html', 'ImportWarning')).message, text);
});

void test('an importer killed for memory twice, the second time with direct I/O, fails the DataVolume and names the limit', async () => {
  await suite.pvFor('dv-oom2');
  await suite.createDv('dv-oom2');
  const first = await eventually('importer-dv-oom2', () => suite.getPod('importer-dv-oom2'));
  await kubelet.setStatus(client, ns, 'importer-dv-oom2', kubelet.oomKilled(1));
  const second = await eventually('the pod recreated with CACHE_MODE=TRYNONE', async () => {
    const p = await suite.getPod('importer-dv-oom2');
    return p && p.metadata?.uid !== first.metadata?.uid ? p : undefined;
  });
  assert.equal(second.spec?.containers[0]?.env?.find((e) => e.name === 'CACHE_MODE')?.value, 'TRYNONE');
  await kubelet.setStatus(client, ns, 'importer-dv-oom2', kubelet.oomKilled(1));
  const dv = await suite.waitPhase('dv-oom2', 'Failed');
  assert.equal(cond(dv, 'Running')?.reason, 'OOMKilled');
  assert.equal(
    cond(dv, 'Running')?.message,
    'the importer ran out of memory again with direct I/O (CACHE_MODE=TRYNONE): raise its memory limit (now 600M) in CDIConfig spec.podResourceRequirements.limits.memory and recreate the DataVolume',
  );
  await eventually(
    'the pod deleted, and no third one',
    async () => (await suite.getPod('importer-dv-oom2')) === undefined,
  );
  assert.equal(
    (await suite.getPvc('dv-oom2'))?.metadata?.annotations?.[`${A}storage.import.fatalError`],
    'true',
  );
});

void test("the trusted proxy CA is copied into the claim's namespace, owned by the importer pod, and mounted at /proxycerts/", async () => {
  const caName = `proxy-ca-${suite.suffix}`;
  const ca = '-----BEGIN CERTIFICATE-----\nMIIBproxyca\n-----END CERTIFICATE-----\n';
  await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: caName, namespace: ns },
    data: { 'ca.crt': ca },
  });
  await patchConfig({
    importProxy: { HTTPSProxy: 'http://proxy.example.test:3128', trustedCAProxy: caName },
  });
  try {
    await eventually('the config status to carry the CA', async () => {
      const c = await client.get<CDIConfig & KubeObject>(Resources.CDIConfig, 'config');
      return c.status?.importProxy?.trustedCAProxy === caName;
    });
    await suite.pvFor('dv-proxy');
    await suite.createDv('dv-proxy');
    const pod = await eventually('importer-dv-proxy', () => suite.getPod('importer-dv-proxy'));
    const c = pod.spec?.containers[0];
    assert.equal(c?.env?.find((e) => e.name === 'IMPORTER_PROXY_CERT_DIR')?.value, '/proxycerts/');
    assert.equal(c?.env?.find((e) => e.name === 'https_proxy')?.value, 'http://proxy.example.test:3128');
    assert.ok(
      c?.volumeMounts?.some((m) => m.name === 'cdi-proxy-cert-vol' && m.mountPath === '/proxycerts/'),
    );
    assert.equal(
      pod.spec?.volumes?.find((v) => v.name === 'cdi-proxy-cert-vol')?.configMap?.name,
      'import-proxy-cm-dv-proxy',
    );
    const copy = await eventually('the copy in the namespace', () =>
      client.getOrUndefined<ConfigMap>(Resources.ConfigMap, 'import-proxy-cm-dv-proxy', ns),
    );
    assert.equal(copy.data?.['ca.crt'], ca);
    assert.deepEqual(
      copy.metadata?.ownerReferences?.map((o) => [o.kind, o.uid, o.controller]),
      [['Pod', pod.metadata?.uid, true]],
    );
    assert.equal(pod.metadata?.labels?.['app.kubernetes.io/managed-by'], 'cdi-controller');
    assert.equal(pod.metadata?.labels?.['app.kubernetes.io/component'], 'storage');
  } finally {
    await patchConfig({ importProxy: null });
  }
});
