// The operator end to end on the full cluster, from a cluster without CDI: `kubectl create -f cdi-operator.yaml` and
// `kubectl create -f cdi-cr.yaml` (the release rendered for this build's images) bring the CDI resource to Available
// with upstream's names, a DataVolume import succeeds, drift of every kind the operator owns is undone, certificates
// rotate under a short certConfig while webhook calls, the upload API and an upload's body go on, the
// BlockUninstallIfWorkloadsExist strategy holds a removal while DataVolumes exist, and deleting the CDI resource
// removes every object the operator made (listed after the install, checked one by one after the removal).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Resources, type KubeClient, type KubeObject, type Resource } from '../../src/kube/index.ts';
import { Kinds, type KindName } from '../../src/operator/resources.ts';
import { OwnedSelector } from '../../src/operator/cache.ts';
import {
  DumpInstallStrategyEnv,
  InstallStrategyConfigMap,
  InstallStrategyKey,
} from '../../src/operator/install-strategy.ts';
import type { ReleaseOptions } from '../../src/operator/release.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import {
  clusterClient,
  createNamespace,
  eventually,
  kubeconfigPath,
  kubectl,
} from '../integration/kube/cluster.ts';
import { runCdi } from '../support/upload.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  imagesEnv,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  uploadToken,
  createUploadDataVolume,
  waitForDataVolume,
  type Fixtures,
} from './harness.ts';
import {
  getCdi,
  installCdi,
  kubectlFile,
  releaseFor,
  uninstallCdi,
  waitAvailable,
  type CdiObject,
} from './operator-install.ts';

let client: KubeClient;
let release: ReleaseOptions;
let fx: Fixtures;
let http: FileServer;
let ns = '';
let cleanupNs: () => Promise<void> = async () => {};
/** every object the operator made, listed once CDI was Available */
let installed: { kind: KindName; name: string; namespace?: string }[] = [];

const Watched: KindName[] = [
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'Service',
  'ConfigMap',
  'Secret',
  'Deployment',
  'NetworkPolicy',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
];

async function listOwned(): Promise<{ kind: KindName; name: string; namespace?: string }[]> {
  const out: { kind: KindName; name: string; namespace?: string }[] = [];
  for (const kind of Watched) {
    const r: Resource = Kinds[kind];
    const list = await client.listAll<KubeObject>(r, { labelSelector: OwnedSelector });
    for (const o of list.items)
      out.push({
        kind,
        name: o.metadata?.name ?? '',
        ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}),
      });
  }
  return out;
}

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  if (await getCdi(client))
    throw new Error(
      'CDI is installed already; this suite installs it itself: npm run cluster:sync -- --undeploy',
    );
  release = releaseFor(imagesEnv()['CDI_IMAGE_TAG'] ?? 'dev');
  fx = await makeFixtures(16);
  http = await startFileServer({ root: fx.dir, host: NODE_IP });
});

after(async () => {
  await cleanupNs();
  await http?.close();
  await fx?.cleanup();
  // whatever a failed test left: the CDI resource and the operator go
  if (release)
    await uninstallCdi(client, release).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
});

const since = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

void test('kubectl create -f cdi-operator.yaml and cdi-cr.yaml: CDI Available with upstream names; an import succeeds', async (t) => {
  const t0 = Date.now();
  const cr = await installCdi(client, release);
  t.diagnostic(`install to Available: ${since(t0)}`);
  assert.equal(cr.status?.phase, 'Deployed');
  assert.equal(cr.status?.observedVersion, release.version);
  assert.equal(cr.status?.targetVersion, release.version);
  assert.equal(cr.status?.operatorVersion, release.version);
  const cond = (type: string) => cr.status?.conditions?.find((c) => c.type === type);
  assert.equal(cond('Available')?.reason, 'DeployCompleted');
  assert.equal(cond('Progressing')?.status, 'False');
  assert.equal(cond('Degraded')?.status, 'False');
  assert.ok(cr.metadata?.finalizers?.includes('operator.cdi.kubevirt.io'));

  installed = await listOwned();
  const names = new Set(installed.map((o) => `${o.kind}/${o.name}`));
  for (const want of [
    'Deployment/cdi-deployment',
    'ServiceAccount/cdi-sa',
    'Service/cdi-prometheus-metrics',
    'ClusterRole/cdi',
    'ClusterRoleBinding/cdi-sa',
    'Role/cdi-deployment',
    'ClusterRole/cdi.kubevirt.io:admin',
    'ClusterRole/cdi.kubevirt.io:edit',
    'ClusterRole/cdi.kubevirt.io:view',
    'ClusterRole/cdi.kubevirt.io:config-reader',
    'ClusterRole/cdi.kubevirt.io:clone-sourcer',
    'ConfigMap/cdi-config',
    'ConfigMap/cdi-insecure-registries',
    'NetworkPolicy/cdi-allow-cdi-api-webhook-server',
    'CustomResourceDefinition/datavolumes.cdi.kubevirt.io',
    'CustomResourceDefinition/cdiconfigs.cdi.kubevirt.io',
    'Deployment/cdi-apiserver',
    'Deployment/cdi-uploadproxy',
    'Service/cdi-api',
    'Service/cdi-uploadproxy',
    'ServiceAccount/cdi-apiserver',
    'ServiceAccount/cdi-uploadproxy',
    'RoleBinding/cdi-apiserver-auth-reader',
    'APIService/v1beta1.upload.cdi.kubevirt.io',
    'ValidatingWebhookConfiguration/cdi-api-datavolume-validate',
    'ValidatingWebhookConfiguration/cdi-api-validate',
    'MutatingWebhookConfiguration/cdi-api-pvc-mutate',
    'ValidatingWebhookConfiguration/cdi-api-dataimportcron-validate',
    'ValidatingWebhookConfiguration/cdi-api-populator-validate',
    'ValidatingWebhookConfiguration/objecttransfer-api-validate',
    'MutatingWebhookConfiguration/cdi-api-datavolume-mutate',
    'Secret/cdi-apiserver-signer',
    'Secret/cdi-apiserver-server-cert',
    'Secret/cdi-uploadproxy-signer',
    'Secret/cdi-uploadproxy-server-cert',
    'Secret/cdi-uploadserver-signer',
    'Secret/cdi-uploadserver-client-signer',
    'Secret/cdi-uploadserver-client-cert',
    'ConfigMap/cdi-apiserver-signer-bundle',
    'ConfigMap/cdi-uploadproxy-signer-bundle',
    'ConfigMap/cdi-uploadserver-signer-bundle',
    'ConfigMap/cdi-uploadserver-client-signer-bundle',
    'ServiceAccount/cdi-metrics-reader',
    'ClusterRole/cdi-metrics-reader',
    'ClusterRoleBinding/cdi-metrics-reader',
    'Secret/cdi-metrics-server-signer',
    'Secret/cdi-metrics-server-cert',
    'ConfigMap/cdi-metrics-server-signer-bundle',
  ])
    assert.ok(names.has(want), `${want} is installed (have ${[...names].join(', ')})`);
  // CDI.spec.config reaches CDIConfig config; the infra placement reaches the Deployment
  const config = await client.get<KubeObject & { spec?: { featureGates?: string[] } }>(
    Resources.CDIConfig,
    'config',
  );
  assert.deepEqual(config.spec?.featureGates, ['HonorWaitForFirstConsumer']);
  const dep = await client.get<
    KubeObject & { spec: { template: { spec: { nodeSelector?: Record<string, string> } } } }
  >(Kinds.Deployment, 'cdi-deployment', 'cdi');
  assert.deepEqual(dep.spec.template.spec.nodeSelector, { 'kubernetes.io/os': 'linux' });
  // kubectl shows the phase
  assert.match((await kubectl('get', 'cdi')).stdout, /cdi\s+\S+\s+Deployed/);

  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-op'));
  await client.create(Resources.DataVolume, {
    metadata: { name: 'after-install', namespace: ns },
    spec: {
      source: { http: { url: `${http.url}/${fx.files.qcow2}` } },
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '32Mi' } } },
    },
  } as KubeObject);
  await eventually(
    'DataVolume after-install Succeeded',
    async () => {
      const dv = await client.get<KubeObject & { status?: { phase?: string } }>(
        Resources.DataVolume,
        'after-install',
        ns,
      );
      if (dv.status?.phase === 'Failed') throw new Error('the import failed');
      return dv.status?.phase === 'Succeeded';
    },
    300_000,
    1000,
  );
  assert.equal(await md5OnVolume(client, ns, 'after-install', { bytes: fx.rawSize }), fx.rawMd5);
  t.diagnostic(`install and import: ${since(t0)}`);
});

void test("the webhooks: datavolume-validate refuses with upstream's message, pvc-mutate completes a labelled claim, upload tokens are served", async () => {
  assert.ok(ns, 'the first test made the namespace');
  const bad = {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name: 'no-size', namespace: ns },
    spec: { source: { http: { url: `${http.url}/${fx.files.qcow2}` } }, storage: {} },
  };
  const refused = await kubectlFile(['create'], JSON.stringify(bad));
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    // upstream's answer: 422 Invalid with the field as its cause, which kubectl prints as such
    /The request is invalid: spec\.Storage\.resources\.requests\.size: Storage size is missing/,
  );
  const scheme = await kubectlFile(
    ['create'],
    JSON.stringify({
      ...bad,
      spec: {
        source: { http: { url: 'ftp://x/y' } },
        storage: { resources: { requests: { storage: '1Gi' } } },
      },
    }),
  );
  assert.match(scheme.stderr, /spec.source Invalid source URL scheme: ftp:\/\/x\/y/);
  // the spec of a DataVolume is immutable
  const upd = await kubectl(
    '-n',
    ns,
    'patch',
    'dv',
    'after-install',
    '--type=merge',
    '-p',
    '{"spec":{"contentType":"archive"}}',
  );
  assert.match(upd.stderr, /Cannot update DataVolume Spec/);

  // objecttransfer-validate: a transfer onto a DataVolume that exists is refused; one onto a free name is admitted
  // with the deprecation warning (nothing runs ObjectTransfers here: it is deleted at once)
  const transfer = (name: string, target: string) =>
    JSON.stringify({
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'ObjectTransfer',
      metadata: { name },
      spec: {
        source: { kind: 'DataVolume', namespace: ns, name: 'after-install' },
        target: { name: target },
      },
    });
  const onto = await kubectlFile(['create'], transfer(`${ns}-taken`, 'after-install'));
  assert.notEqual(onto.code, 0);
  assert.match(onto.stderr, new RegExp(`ObjectTransfer target "${ns}/after-install" already exists`));
  const free = await kubectlFile(['create'], transfer(`${ns}-free`, 'moved'));
  assert.equal(free.code, 0, free.stderr);
  assert.match(free.stderr, /Warning: ObjectTransfer feature is deprecated, and will be deleted soon/);
  await kubectl('delete', 'objecttransfer', `${ns}-free`, '--wait=false');

  // a claim labelled applyStorageProfile=true gets its access mode, volume mode and size from the StorageProfile
  await client.create(Resources.PersistentVolumeClaim, {
    metadata: { name: 'rendered', namespace: ns, labels: { 'cdi.kubevirt.io/applyStorageProfile': 'true' } },
    spec: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '100Mi' } } },
  } as KubeObject);
  const pvc = await client.get<
    KubeObject & {
      spec: { accessModes?: string[]; volumeMode?: string; resources: { requests: { storage: string } } };
    }
  >(Resources.PersistentVolumeClaim, 'rendered', ns);
  const profile = await client.get<
    KubeObject & { status?: { claimPropertySets?: { accessModes: string[]; volumeMode: string }[] } }
  >(Resources.StorageProfile, STORAGE_CLASS);
  const set = profile.status?.claimPropertySets?.[0];
  assert.deepEqual(pvc.spec.accessModes, set?.accessModes);
  assert.equal(pvc.spec.volumeMode, set?.volumeMode);
  if (set?.volumeMode === 'Filesystem')
    assert.ok(
      BigInt(pvc.spec.resources.requests.storage) > 100n << 20n,
      `overhead added: ${pvc.spec.resources.requests.storage}`,
    );
  await client.delete(Resources.PersistentVolumeClaim, 'rendered', { namespace: ns });

  // the aggregated upload API answers through the APIService the operator registered
  const utr = await kubectlFile(
    ['create', '-o', 'json'],
    JSON.stringify({
      apiVersion: 'upload.cdi.kubevirt.io/v1beta1',
      kind: 'UploadTokenRequest',
      metadata: { name: 'after-install', namespace: ns },
      spec: { pvcName: 'after-install' },
    }),
  );
  assert.equal(utr.code, 0, utr.stderr);
});

type Obj = KubeObject & Record<string, unknown>;

async function restored(
  t: TestContext,
  what: string,
  kind: KindName,
  name: string,
  namespace: string | undefined,
  mutate: () => Promise<void>,
  isRestored: (o: Obj, before: Obj) => boolean,
): Promise<void> {
  const r = Kinds[kind];
  const beforeObj = await client.get<Obj>(r, name, namespace);
  const t0 = Date.now();
  await mutate();
  await eventually(
    `${what} restored`,
    async () => {
      const o = await client.getOrUndefined<Obj>(r, name, namespace);
      return o !== undefined && !o.metadata?.deletionTimestamp && isRestored(o, beforeObj);
    },
    60_000,
    100,
  );
  t.diagnostic(`${what}: restored after ${since(t0)}`);
}

const newUid = (o: Obj, b: Obj): boolean => o.metadata?.uid !== b.metadata?.uid;
const del = (kind: KindName, name: string, namespace?: string) => async (): Promise<void> => {
  await client.delete(Kinds[kind], name, { ...(namespace ? { namespace } : {}) });
};

void test('drift: a deleted or edited Deployment, Service, ServiceAccount, role or binding is restored', async (t) => {
  assert.ok(installed.length > 0, 'CDI was installed by the first test');
  await restored(
    t,
    'deleted Deployment cdi-deployment',
    'Deployment',
    'cdi-deployment',
    'cdi',
    del('Deployment', 'cdi-deployment', 'cdi'),
    newUid,
  );
  await restored(
    t,
    'Deployment cdi-deployment scaled to 0 and its image edited',
    'Deployment',
    'cdi-deployment',
    'cdi',
    async () => {
      await client.jsonPatch(
        Kinds.Deployment,
        'cdi-deployment',
        [
          { op: 'replace', path: '/spec/replicas', value: 0 },
          {
            op: 'replace',
            path: '/spec/template/spec/containers/0/image',
            value: 'localhost:5000/nothing:here',
          },
        ],
        { namespace: 'cdi' },
      );
    },
    (o) => {
      const spec = o['spec'] as { replicas: number; template: { spec: { containers: { image: string }[] } } };
      return spec.replicas === 1 && spec.template.spec.containers[0]?.image === release.images.controller;
    },
  );
  await restored(
    t,
    'deleted Service cdi-prometheus-metrics',
    'Service',
    'cdi-prometheus-metrics',
    'cdi',
    del('Service', 'cdi-prometheus-metrics', 'cdi'),
    newUid,
  );
  await restored(
    t,
    'deleted ServiceAccount cdi-sa',
    'ServiceAccount',
    'cdi-sa',
    'cdi',
    del('ServiceAccount', 'cdi-sa', 'cdi'),
    newUid,
  );
  await restored(
    t,
    'ClusterRole cdi with its rules cut to one',
    'ClusterRole',
    'cdi',
    undefined,
    async () => {
      await client.jsonPatch(Kinds.ClusterRole, 'cdi', [
        { op: 'replace', path: '/rules', value: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] },
      ]);
    },
    (o, b) => JSON.stringify(o['rules']) === JSON.stringify(b['rules']),
  );
  await restored(
    t,
    'deleted RoleBinding cdi-deployment',
    'RoleBinding',
    'cdi-deployment',
    'cdi',
    del('RoleBinding', 'cdi-deployment', 'cdi'),
    newUid,
  );
  await restored(
    t,
    'deleted ClusterRoleBinding cdi-sa',
    'ClusterRoleBinding',
    'cdi-sa',
    undefined,
    del('ClusterRoleBinding', 'cdi-sa'),
    newUid,
  );
  await restored(
    t,
    'deleted ValidatingWebhookConfiguration cdi-api-datavolume-validate',
    'ValidatingWebhookConfiguration',
    'cdi-api-datavolume-validate',
    undefined,
    del('ValidatingWebhookConfiguration', 'cdi-api-datavolume-validate'),
    newUid,
  );
  await restored(
    t,
    'MutatingWebhookConfiguration cdi-api-pvc-mutate with failurePolicy Ignore and no caBundle',
    'MutatingWebhookConfiguration',
    'cdi-api-pvc-mutate',
    undefined,
    async () => {
      await client.jsonPatch(Kinds.MutatingWebhookConfiguration, 'cdi-api-pvc-mutate', [
        { op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Ignore' },
        { op: 'remove', path: '/webhooks/0/clientConfig/caBundle' },
      ]);
    },
    (o, b) => JSON.stringify(o['webhooks']) === JSON.stringify(b['webhooks']),
  );
  await restored(
    t,
    'deleted certificate bundle ConfigMap cdi-apiserver-signer-bundle',
    'ConfigMap',
    'cdi-apiserver-signer-bundle',
    'cdi',
    del('ConfigMap', 'cdi-apiserver-signer-bundle', 'cdi'),
    (o, b) =>
      newUid(o, b) &&
      ((o['data'] as Record<string, string> | undefined)?.['ca-bundle.crt'] ?? '').includes(
        'BEGIN CERTIFICATE',
      ),
  );
  await restored(
    t,
    'certificate bundle ConfigMap cdi-uploadproxy-signer-bundle emptied',
    'ConfigMap',
    'cdi-uploadproxy-signer-bundle',
    'cdi',
    async () => {
      await client.mergePatch(
        Resources.ConfigMap,
        'cdi-uploadproxy-signer-bundle',
        { data: { 'ca-bundle.crt': '' } },
        { namespace: 'cdi' },
      );
    },
    (o) =>
      ((o['data'] as Record<string, string> | undefined)?.['ca-bundle.crt'] ?? '').includes(
        'BEGIN CERTIFICATE',
      ),
  );
  await restored(
    t,
    'deleted server certificate Secret cdi-apiserver-server-cert',
    'Secret',
    'cdi-apiserver-server-cert',
    'cdi',
    del('Secret', 'cdi-apiserver-server-cert', 'cdi'),
    newUid,
  );
  await restored(
    t,
    'the managed-by label removed from ConfigMap cdi-config',
    'ConfigMap',
    'cdi-config',
    'cdi',
    async () => {
      await client.mergePatch(
        Resources.ConfigMap,
        'cdi-config',
        { metadata: { labels: { 'app.kubernetes.io/managed-by': null } } },
        { namespace: 'cdi' },
      );
    },
    (o) => o.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'cdi-operator',
  );
  // the controller runs again with a token of the new ServiceAccount: CDI comes back to Available
  const t0 = Date.now();
  const cr = await eventually(
    'CDI Available and no longer Degraded',
    async () => {
      const c = await waitAvailable(client, release.version);
      return c.status?.conditions?.find((x) => x.type === 'Degraded')?.status === 'False' ? c : undefined;
    },
    180_000,
    1000,
  );
  t.diagnostic(`Available and not Degraded again after ${since(t0)}`);
  assert.equal(cr.status?.phase, 'Deployed');
  const events = await kubectl(
    'get',
    'events',
    '-n',
    'default',
    '--field-selector',
    'involvedObject.kind=CDI',
    '-o',
    'json',
  );
  const reasons = (JSON.parse(events.stdout) as { items: { reason: string }[] }).items.map((e) => e.reason);
  assert.ok(reasons.includes('CreateResourceSuccess'), `events on the CDI resource: ${reasons.join(', ')}`);
});

interface Served {
  fingerprint: string;
  issuer: string;
}

/** The certificate Service cdi/<svc>:443 serves, verified against `bundle` for the Service's name (as its clients do). */
async function servedBy(svc: string, bundle: string): Promise<Served> {
  const s = await client.get<KubeObject & { spec: { clusterIP: string } }>(Resources.Service, svc, 'cdi');
  return new Promise((resolve, reject) => {
    const sock = tls.connect(
      { host: s.spec.clusterIP, port: 443, ca: bundle, servername: `${svc}.cdi.svc` },
      () => {
        const c = sock.getPeerX509Certificate();
        resolve({ fingerprint: c?.fingerprint256 ?? '', issuer: c?.issuer ?? '' });
        sock.destroy();
      },
    );
    sock.setTimeout(10_000, () => sock.destroy(new Error(`${svc}: TLS handshake timed out`)));
    sock.once('error', reject);
  });
}

async function certIn(secret: string): Promise<X509Certificate> {
  const s = await client.get<KubeObject & { data?: Record<string, string> }>(Resources.Secret, secret, 'cdi');
  return new X509Certificate(Buffer.from(s.data?.['tls.crt'] ?? '', 'base64'));
}

async function bundleIn(configMap: string): Promise<string> {
  const cm = await client.get<KubeObject & { data?: Record<string, string> }>(
    Resources.ConfigMap,
    configMap,
    'cdi',
  );
  return cm.data?.['ca-bundle.crt'] ?? '';
}

void test('DUMP_INSTALL_STRATEGY=true on cdi-operator writes cdi-install-strategy with the whole install; without it the ConfigMap goes', async () => {
  assert.ok(installed.length > 0, 'CDI was installed by the first test');
  const strategy = (): Promise<(KubeObject & { data?: Record<string, string> }) | undefined> =>
    client.getOrUndefined(Resources.ConfigMap, InstallStrategyConfigMap, 'cdi');
  assert.equal(await strategy(), undefined, 'off by default, as upstream');
  const setEnv = (v: string): Promise<unknown> =>
    kubectl('-n', 'cdi', 'set', 'env', 'deployment/cdi-operator', `${DumpInstallStrategyEnv}${v}`);
  try {
    await setEnv('=true');
    const cm = await eventually(
      'cdi-install-strategy written',
      async () => {
        const c = await strategy();
        return c?.data?.[InstallStrategyKey] ? c : undefined;
      },
      180_000,
      1000,
    );
    const manifests = cm.data?.[InstallStrategyKey] ?? '';
    // one YAML document per object, with the components upstream's names
    assert.match(manifests, /^---\n/);
    const docs = manifests.split(/^---\n/m).filter((d) => d.trim() !== '');
    for (const [kind, name] of [
      ['Deployment', 'cdi-deployment'],
      ['Deployment', 'cdi-apiserver'],
      ['Deployment', 'cdi-uploadproxy'],
      ['CustomResourceDefinition', 'datavolumes.cdi.kubevirt.io'],
      ['APIService', 'v1beta1.upload.cdi.kubevirt.io'],
    ] as const)
      assert.ok(
        docs.some((d) => d.includes(`\nkind: ${kind}\n`) && d.includes(`\n  name: ${name}\n`)),
        `${kind} ${name} in the install strategy`,
      );
    assert.doesNotMatch(manifests, /kind: Secret\n/, 'no Secrets in it, as upstream');
  } finally {
    await setEnv('-');
  }
  await eventually(
    'cdi-install-strategy gone without the variable',
    async () => (await strategy()) === undefined,
    180_000,
    1000,
  );
  await kubectl('-n', 'cdi', 'rollout', 'status', 'deployment/cdi-operator', '--timeout=180s');
  await waitAvailable(client, release.version);
});

/** The upload PVC's server pod, ready, with at least `aheadMs` before its DEADLINE (pods live one leaf refresh here). */
async function freshUploadPod(dv: string, aheadMs: number): Promise<void> {
  await eventually(
    `a ready upload pod for ${dv} with ${aheadMs / 1000} s ahead of it`,
    async () => {
      const d = await client.getOrUndefined<KubeObject & { status?: { phase?: string } }>(
        Resources.DataVolume,
        dv,
        ns,
      );
      if (d?.status?.phase !== 'UploadReady') return false;
      const pod = await client.getOrUndefined<PodObject>(Resources.Pod, `cdi-upload-${dv}`, ns);
      if (pod?.metadata?.deletionTimestamp) return false;
      const ready = pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      const deadline = pod?.spec?.containers?.[0]?.env?.find((e) => e.name === 'DEADLINE')?.value;
      return ready === true && deadline !== undefined && Date.parse(deadline) - Date.now() >= aheadMs;
    },
    240_000,
    500,
  );
}

type PodObject = KubeObject & {
  spec?: { containers?: { env?: { name: string; value?: string }[] }[] };
  status?: { conditions?: { type: string; status: string }[] };
};

const createUploadDv = (name: string): Promise<void> => createUploadDataVolume(client, ns, name);

/**
 * An upload through cdi-uploadproxy whose body is held: half of the raw disk at once, then 4 KiB every half second
 * (a slow link) until `finish()` sends the rest. The proxy is checked against its published bundle.
 */
async function heldUpload(
  pvc: string,
  body: Buffer,
): Promise<{ early: () => string | undefined; finish: () => Promise<{ status: number; body: string }> }> {
  const [svc, bundle, token] = await Promise.all([
    client.get<KubeObject & { spec: { clusterIP: string } }>(Resources.Service, 'cdi-uploadproxy', 'cdi'),
    bundleIn('cdi-uploadproxy-signer-bundle'),
    uploadToken(ns, pvc),
  ]);
  const req = https.request({
    host: svc.spec.clusterIP,
    port: 443,
    servername: 'cdi-uploadproxy.cdi.svc',
    ca: bundle,
    path: '/v1beta1/upload',
    method: 'POST',
    agent: false,
    headers: { authorization: `Bearer ${token}`, 'content-length': String(body.length) },
  });
  let answer: { status: number; body: string } | undefined;
  const answered = new Promise<{ status: number; body: string }>((resolve) => {
    req.on('response', (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve((answer = { status: res.statusCode ?? 0, body: b })));
    });
    req.on('error', (e) => resolve((answer = { status: 0, body: String(e) })));
  });
  let sent = body.length >> 1;
  req.write(body.subarray(0, sent));
  const trickle = setInterval(() => {
    if (sent + 4096 >= body.length) return;
    req.write(body.subarray(sent, sent + 4096));
    sent += 4096;
  }, 500);
  return {
    early: () => (answer ? `${answer.status} ${answer.body}` : undefined),
    finish: async () => {
      clearInterval(trickle);
      req.end(body.subarray(sent));
      return answered;
    },
  };
}

void test('certificates rotate under a short certConfig (CA and leaves) while webhook calls, the upload API, upload-proxy connections and an upload body in flight go on: none fails; an upload started after the rotation succeeds', async (t) => {
  assert.ok(ns, 'the first test made the namespace');
  const t0 = Date.now();
  const raw = await readFile(path.join(fx.dir, 'disk.raw'));
  const uploadDvs = ['rotation-held', 'rotation-after'];
  // the four CAs of the upload path and the API: the servers' and the upload pods' (server and client)
  const Signers = [
    'cdi-apiserver-signer',
    'cdi-uploadproxy-signer',
    'cdi-uploadserver-signer',
    'cdi-uploadserver-client-signer',
  ] as const;
  // CA: 4 min, rotated at half-life (the old one stays in the bundle for the other 2 min: the leaves' 30 s grace, the
  // kubelet's Secret volume refresh and the servers' 10 s re-read fit); leaves: 3 min, renewed every minute
  await client.mergePatch(Resources.CDI, 'cdi', {
    spec: {
      certConfig: {
        ca: { duration: '4m', renewBefore: '2m' },
        server: { duration: '3m', renewBefore: '2m' },
      },
    },
  });
  try {
    // the new config makes new CAs at once: those are the ones that must rotate while the calls run
    const firstCa = await eventually('new CAs for the short certConfig', async () => {
      const cas = await Promise.all(Signers.map((s) => certIn(s)));
      const short = (c: X509Certificate): boolean =>
        new Date(c.validTo).getTime() - new Date(c.validFrom).getTime() <= 5 * 60_000;
      return cas.every(short) ? cas.map((c) => c.fingerprint256) : undefined;
    });
    t.diagnostic(`short-lived CAs issued after ${since(t0)}`);

    // an upload whose body is in flight through every rotation below, started on a pod made under the new CAs
    await createUploadDv('rotation-held');
    await freshUploadPod('rotation-held', 40_000);
    const held = await heldUpload('rotation-held', raw);
    t.diagnostic(`held upload started after ${since(t0)}`);

    const failures: string[] = [];
    let calls = 0;
    let done = false;
    const bad = {
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'DataVolume',
      metadata: { name: 'rotation-no-size', namespace: ns },
      spec: { source: { http: { url: `${http.url}/${fx.files.qcow2}` } }, storage: {} },
    };
    const good = {
      ...bad,
      metadata: { name: 'rotation-ok', namespace: ns },
      spec: { ...bad.spec, storage: { resources: { requests: { storage: '32Mi' } } } },
    };
    const token = {
      apiVersion: 'upload.cdi.kubevirt.io/v1beta1',
      kind: 'UploadTokenRequest',
      metadata: { name: 'rotation', namespace: ns },
      spec: { pvcName: 'after-install' },
    };
    const calling = (async () => {
      while (!done) {
        const [refused, accepted, utr, proxy] = await Promise.all([
          // the API server calls datavolume-validate with the caBundle of the webhook configuration
          kubectlFile(['create', '--dry-run=server'], JSON.stringify(bad)),
          kubectlFile(['create', '--dry-run=server'], JSON.stringify(good)),
          // the aggregated upload API, through the APIService's caBundle
          kubectlFile(['create', '-o', 'name'], JSON.stringify(token)),
          // a client of cdi-uploadproxy holding the bundle as published now
          bundleIn('cdi-uploadproxy-signer-bundle')
            .then((b) => servedBy('cdi-uploadproxy', b))
            .then(
              () => '',
              (e: unknown) => String(e),
            ),
        ]);
        calls++;
        const at = since(t0);
        if (!/spec\.Storage\.resources\.requests\.size: Storage size is missing/.test(refused.stderr))
          failures.push(`${at} datavolume-validate: ${refused.stderr}`);
        if (accepted.code !== 0) failures.push(`${at} valid DataVolume (dry run): ${accepted.stderr}`);
        if (utr.code !== 0) failures.push(`${at} UploadTokenRequest: ${utr.stderr}`);
        if (proxy) failures.push(`${at} cdi-uploadproxy TLS: ${proxy}`);
        const early = held.early();
        if (early) {
          failures.push(`${at} the held upload was answered before its body ended: ${early}`);
          break;
        }
      }
    })();
    try {
      // each CA rotated; cdi-apiserver and cdi-uploadproxy serving leaves of the new CAs; the proxy's client
      // certificate for the upload pods signed by the new client CA (the old ones expire after their leaves)
      await eventually(
        'the CAs rotated, the servers and the upload client certificate on leaves of the new CAs',
        async () => {
          const cas = await Promise.all(Signers.map((s) => certIn(s)));
          if (cas.some((c, i) => c.fingerprint256 === firstCa[i])) return false;
          for (const [svc, bundle, ca] of [
            ['cdi-api', 'cdi-apiserver-signer-bundle', cas[0]],
            ['cdi-uploadproxy', 'cdi-uploadproxy-signer-bundle', cas[1]],
          ] as const) {
            const served = await servedBy(svc, await bundleIn(bundle));
            if (served.issuer !== ca?.subject) return false;
          }
          const clientLeaf = await certIn('cdi-uploadserver-client-cert');
          return cas[3] !== undefined && clientLeaf.checkIssued(cas[3]);
        },
        420_000,
        2000,
      );
    } finally {
      done = true;
      await calling;
    }
    t.diagnostic(`rotated after ${since(t0)}; ${calls} rounds of calls`);
    assert.ok(calls > 10, `calls ran throughout (${calls} rounds)`);
    assert.deepEqual(failures, []);

    // the held body ends: the upload that was in flight through every rotation succeeds
    const answer = await held.finish();
    assert.equal(answer.status, 200, `the held upload: ${answer.body}`);
    await waitForDataVolume(client, ns, 'rotation-held', 'Succeeded');
    assert.equal(await md5OnVolume(client, ns, 'rotation-held', { bytes: fx.rawSize }), fx.rawMd5);
    t.diagnostic(`held upload done after ${since(t0)}`);

    // a new upload through the rotated CAs with `cdi upload`: its pod is made with a leaf of the new upload server
    // CA and trusts the new client CA (--insecure: the host reaches the proxy at its cluster IP, not the name in its
    // certificate; the proxy's certificate is checked by the calls above)
    await createUploadDv('rotation-after');
    await freshUploadPod('rotation-after', 30_000);
    const proxyIp = (
      await client.get<KubeObject & { spec: { clusterIP: string } }>(
        Resources.Service,
        'cdi-uploadproxy',
        'cdi',
      )
    ).spec.clusterIP;
    const up = await runCdi(
      kubeconfigPath,
      'upload',
      'dv',
      'rotation-after',
      '-n',
      ns,
      '--no-create',
      '--image-path',
      path.join(fx.dir, fx.files.qcow2),
      '--uploadproxy-url',
      `https://${proxyIp}`,
      '--insecure',
      '--wait-secs',
      '180',
      '--no-progress',
    );
    assert.equal(up.code, 0, `cdi upload after the rotation: ${up.stderr}`);
    assert.equal(await md5OnVolume(client, ns, 'rotation-after', { bytes: fx.rawSize }), fx.rawMd5);
  } finally {
    // the uninstall test counts the DataVolumes left (only after-install), and later suites need the defaults
    for (const dv of uploadDvs)
      await client.delete(Resources.DataVolume, dv, { namespace: ns }).catch(() => {});
    await eventually('the rotation uploads’ DataVolumes gone', async () => {
      for (const dv of uploadDvs) if (await client.getOrUndefined(Resources.DataVolume, dv, ns)) return false;
      return true;
    });
    // back to the defaults; the servers pick the new leaves up before the next test relies on cdi-validate
    await client.jsonPatch(Resources.CDI, 'cdi', [{ op: 'remove', path: '/spec/certConfig' }]);
    await eventually(
      'the default-lifetime certificates served again',
      async () => {
        for (const [svc, secret, bundle] of [
          ['cdi-api', 'cdi-apiserver-server-cert', 'cdi-apiserver-signer-bundle'],
          ['cdi-uploadproxy', 'cdi-uploadproxy-server-cert', 'cdi-uploadproxy-signer-bundle'],
        ] as const) {
          const leaf = await certIn(secret);
          if (new Date(leaf.validTo).getTime() - Date.now() < 3600_000) return false;
          const served = await servedBy(svc, await bundleIn(bundle)).catch(() => undefined);
          if (served?.fingerprint !== leaf.fingerprint256) return false;
        }
        return true;
      },
      240_000,
      2000,
    );
  }
});

void test('BlockUninstallIfWorkloadsExist: cdi-validate refuses the removal while a DataVolume exists, then allows it', async (t) => {
  assert.ok(ns, 'the first test made the namespace and its DataVolume');
  await client.mergePatch(Resources.CDI, 'cdi', {
    spec: { uninstallStrategy: 'BlockUninstallIfWorkloadsExist' },
  });
  await eventually(
    'the strategy reaches the operator',
    async () => (await getCdi(client))?.spec?.['uninstallStrategy'] === 'BlockUninstallIfWorkloadsExist',
  );
  // cdi-validate refuses the deletion itself: the CDI resource stays as it is
  const refused = await kubectl('delete', 'cdi', 'cdi', '--wait=false');
  assert.notEqual(refused.code, 0, 'the deletion is refused');
  assert.match(
    refused.stderr,
    /admission webhook "cdi-validate.cdi.kubevirt.io" denied the request: rejecting the uninstall request, since there are still 1 DataVolumes present\. Either delete all DataVolumes or change the uninstall strategy before uninstalling CDI/,
  );
  t.diagnostic(refused.stderr.trim());
  const still: CdiObject | undefined = await getCdi(client);
  assert.equal(still?.metadata?.deletionTimestamp, undefined);
  assert.equal(still?.status?.phase, 'Deployed');
  await client.delete(Resources.DataVolume, 'after-install', { namespace: ns });
  await eventually(
    'DataVolume gone',
    async () => !(await client.getOrUndefined(Resources.DataVolume, 'after-install', ns)),
  );
  const allowedNow = await kubectl('delete', 'cdi', 'cdi', '--wait=false');
  assert.equal(allowedNow.code, 0, allowedNow.stderr);
});

void test('deleting the CDI resource removes every object the operator made', async (t) => {
  assert.ok(installed.length > 0);
  const t0 = Date.now();
  await client.delete(Resources.CDI, 'cdi').catch(() => undefined);
  await eventually('CDI cdi removed', async () => (await getCdi(client)) === undefined, 300_000, 1000);
  t.diagnostic(`removal: ${since(t0)}, ${installed.length} objects`);
  const left: string[] = [];
  for (const o of installed) {
    const got = await client.getOrUndefined(Kinds[o.kind], o.name, o.namespace);
    if (got) left.push(`${o.kind} ${o.namespace ?? ''}/${o.name}`);
  }
  assert.deepEqual(left, [], 'every listed object is gone');
  assert.deepEqual(await listOwned(), [], 'nothing labelled managed-by=cdi-operator is left');
  for (const [kind, name] of [
    ['Lease', 'cdi-controller-leader-election-helper'],
    ['Secret', 'cdi-api-signing-key'],
  ] as const)
    assert.equal(await client.getOrUndefined(Kinds[kind], name, 'cdi'), undefined, `${kind} ${name}`);
  const pods = await client.list(Resources.Pod, { namespace: 'cdi' });
  assert.deepEqual(
    pods.items.map((p) => p.metadata?.name).filter((n) => !n?.startsWith('cdi-operator')),
    [],
    'only the operator runs in the namespace',
  );
  await uninstallCdi(client, release);
});
