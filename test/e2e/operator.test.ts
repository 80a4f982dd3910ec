// The operator end to end on the full cluster, from a cluster without CDI: `kubectl create -f cdi-operator.yaml` and
// `kubectl create -f cdi-cr.yaml` (the release rendered for this build's images) bring the CDI resource to Available
// with upstream's names, a DataVolume import succeeds, drift of every kind the operator owns is undone, the
// BlockUninstallIfWorkloadsExist strategy holds a removal while DataVolumes exist, and deleting the CDI resource
// removes every object the operator made (listed after the install, checked one by one after the removal).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Resources, type KubeClient, type KubeObject, type Resource } from '../../src/kube/index.ts';
import { Kinds, type KindName } from '../../src/operator/resources.ts';
import { OwnedSelector } from '../../src/operator/cache.ts';
import type { ReleaseOptions } from '../../src/operator/release.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { clusterClient, createNamespace, eventually, kubectl } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  imagesEnv,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  type Fixtures,
} from './harness.ts';
import {
  getCdi,
  installCdi,
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

void test('BlockUninstallIfWorkloadsExist: removal waits while DataVolumes exist, with the message; then proceeds', async (t) => {
  assert.ok(ns, 'the first test made the namespace and its DataVolume');
  await client.mergePatch(Resources.CDI, 'cdi', {
    spec: { uninstallStrategy: 'BlockUninstallIfWorkloadsExist' },
  });
  await eventually(
    'the strategy reaches the operator',
    async () => (await getCdi(client))?.spec?.['uninstallStrategy'] === 'BlockUninstallIfWorkloadsExist',
  );
  const del = await kubectl('delete', 'cdi', 'cdi', '--wait=false');
  if (del.code !== 0) {
    // the cdi-validate webhook refused it
    assert.match(del.stderr, /there are still 1 DataVolumes present/);
    t.diagnostic(`refused by the webhook: ${del.stderr.trim()}`);
  } else {
    const held = await eventually('the operator holds the removal', async () => {
      const cr: CdiObject | undefined = await getCdi(client);
      const d = cr?.status?.conditions?.find((c) => c.type === 'Degraded');
      return d?.reason === 'UninstallBlocked' ? d : undefined;
    });
    assert.match(
      held.message ?? '',
      /rejecting the uninstall request, since there are still 1 DataVolumes present/,
    );
    assert.equal((await getCdi(client))?.status?.phase, 'Deleting');
    assert.ok(await client.getOrUndefined(Kinds.Deployment, 'cdi-deployment', 'cdi'), 'nothing was removed');
  }
  await client.delete(Resources.DataVolume, 'after-install', { namespace: ns });
  if (del.code !== 0) {
    await eventually(
      'DataVolume gone',
      async () => !(await client.getOrUndefined(Resources.DataVolume, 'after-install', ns)),
    );
    const again = await kubectl('delete', 'cdi', 'cdi', '--wait=false');
    assert.equal(again.code, 0, again.stderr);
  }
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
