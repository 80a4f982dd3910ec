/**
 * The clone-authorization webhooks against the real kube-apiserver: cdi-apiserver's handlers (datavolume-mutate,
 * datavolume-validate, pvc-clone-mutate) served on the host (10.99.0.1) behind real Mutating/Validating webhook
 * configurations carrying our CA, the entries as the operator renders them (docs/clone.md). The user is a
 * ServiceAccount with rights only in its own namespace, acting through `kubectl --as`; the kube-apiserver sends the
 * AdmissionReviews and answers our SubjectAccessReviews from real RBAC. Holds the cluster lock:
 * `flock -o /work/cluster-tests.lock node --test test/integration/apiserver/clone-webhooks.test.ts`.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AdmissionRequest } from '../../../src/apiserver/admission.ts';
import { webhooks } from '../../../src/apiserver/webhooks/index.ts';
import { cloneSourcerRules } from '../../../src/deploy/rbac.ts';
import { cloneWebhookConfigurations } from '../../../src/deploy/webhooks.ts';
import { Resources, type KubeClient, type KubeObject, type Resource } from '../../../src/kube/index.ts';
import {
  CloneTokenIssuer,
  CloneTokenLeewayMs,
  CloneTokenLifetimeMs,
  checkClonePayload,
} from '../../../src/token/clone.ts';
import { TokenGenerator, TokenValidator } from '../../../src/token/token.ts';
import { clusterClient, createNamespace, eventually, installCrds, kubectl } from '../kube/cluster.ts';
import { deleteIfExists, HOST_IP, R, startAggregatedApiServer } from '../upload/support.ts';

const CLONE_SOURCER = 'cdi.kubevirt.io:clone-sourcer';
const ServiceAccount: Resource = {
  group: '',
  version: 'v1',
  kind: 'ServiceAccount',
  plural: 'serviceaccounts',
  namespaced: true,
};
const ClusterRole: Resource = {
  group: 'rbac.authorization.k8s.io',
  version: 'v1',
  kind: 'ClusterRole',
  plural: 'clusterroles',
  namespaced: false,
};
const TOKEN = 'cdi.kubevirt.io/storage.clone.token';

let kube: KubeClient;
let dir: string;
let golden: string;
let alice: string;
let sa: string;
let cleanups: (() => Promise<void>)[] = [];
const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
const validator = new TokenValidator(CloneTokenIssuer, key.publicKey, CloneTokenLeewayMs);
const seen: AdmissionRequest[] = [];

async function yamlFile(text: string): Promise<string> {
  const f = path.join(dir, `${randomBytes(4).toString('hex')}.yaml`);
  await writeFile(f, text);
  return f;
}

function cloneDv(name: string, srcNs: string, src: string, kind: 'pvc' | 'snapshot' = 'pvc'): string {
  return `apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: ${name}
  namespace: ${alice}
spec:
  source:
    ${kind}:
      namespace: ${srcNs}
      name: ${src}
  storage:
    resources:
      requests:
        storage: 1Gi
`;
}

function clonePvc(name: string, request: string): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${name}
  namespace: ${alice}
  annotations:
    k8s.io/CloneRequest: "${request}"
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`;
}

/** `kubectl create` as the ServiceAccount; the created object, or the refusal. */
async function createAs(yaml: string): Promise<{ ok: KubeObject | undefined; stderr: string }> {
  const r = await kubectl('create', '-f', await yamlFile(yaml), `--as=${sa}`, '-o', 'json');
  return { ok: r.code === 0 ? (JSON.parse(r.stdout) as KubeObject) : undefined, stderr: r.stderr };
}

async function tokenOf(o: KubeObject | undefined): Promise<Awaited<ReturnType<TokenValidator['validate']>>> {
  const t = o?.metadata?.annotations?.[TOKEN];
  assert.ok(t, `no ${TOKEN} on ${o?.metadata?.name}`);
  return validator.validate(t);
}

before(async () => {
  kube = clusterClient();
  await installCrds(kube);
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-clone-webhooks-'));
  const deps = {
    kube,
    namespace: 'cdi',
    cloneTokens: new TokenGenerator(CloneTokenIssuer, key.privateKey, CloneTokenLifetimeMs),
  };
  // the handlers cdi-apiserver serves, each call recorded
  const routes = webhooks(deps).map((w) => ({
    path: w.path,
    admit: (r: AdmissionRequest) => {
      seen.push(r);
      return w.admit(r);
    },
  }));
  const api = await startAggregatedApiServer(kube, routes);
  cleanups.push(api.cleanup);
  const g = await createNamespace(kube, 'cdi-test-golden');
  const a = await createNamespace(kube, 'cdi-test-alice');
  cleanups.push(g.cleanup, a.cleanup);
  golden = g.name;
  alice = a.name;
  // alice's ServiceAccount: DataVolumes, PVCs and pods in her own namespace, nothing in golden
  await kube.create(ServiceAccount, { metadata: { name: 'vm-owner', namespace: alice } });
  sa = `system:serviceaccount:${alice}:vm-owner`;
  await kube.create(R.Role, {
    metadata: { name: 'vm-owner', namespace: alice },
    rules: [
      { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['create', 'get', 'update'] },
      { apiGroups: [''], resources: ['persistentvolumeclaims', 'pods'], verbs: ['create', 'get', 'update'] },
    ],
  } as KubeObject);
  await kube.create(R.RoleBinding, {
    metadata: { name: 'vm-owner', namespace: alice },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'vm-owner' },
    subjects: [{ kind: 'ServiceAccount', name: 'vm-owner', namespace: alice }],
  } as KubeObject);
  // upstream's ClusterRole, as deploy/ ships it (created here when CDI is not installed)
  const existing = await kube.getOrUndefined(ClusterRole, CLONE_SOURCER);
  if (!existing) {
    await kube.create(ClusterRole, {
      metadata: { name: CLONE_SOURCER },
      rules: cloneSourcerRules(),
    } as KubeObject);
    cleanups.push(() => deleteIfExists(kube, ClusterRole, CLONE_SOURCER));
  }
  const caBundle = Buffer.from(api.ca.certPem).toString('base64');
  // the configurations as the operator renders them, pointed at this server and at the test's namespaces
  const cfg = cloneWebhookConfigurations({
    namePrefix: `cdi-test-${randomBytes(3).toString('hex')}-`,
    clientConfig: (p) => ({ url: `https://${HOST_IP}:${api.port}${p}`, caBundle }),
    namespaceSelector: {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [golden, alice] }],
    },
  });
  for (const [r, list] of [
    [R.Mutating, cfg.mutating],
    [R.Validating, cfg.validating],
  ] as const) {
    for (const c of list) {
      const name = (c.metadata as { name: string }).name;
      cleanups.push(() => deleteIfExists(kube, r, name));
      await kube.create(r, c);
    }
  }
  // configurations take effect asynchronously: wait until the validating webhook refuses a DataVolume
  await eventually('the webhooks to be in effect', async () => {
    const r = await kubectl(
      '-n',
      alice,
      'create',
      '-f',
      await yamlFile(`apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: probe-${randomBytes(2).toString('hex')}
spec:
  storage: {resources: {requests: {storage: 1Gi}}}
`),
    );
    return r.code !== 0 && /Data volume should have either Source or SourceRef/.test(r.stderr);
  });
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  cleanups = [];
  if (dir) await rm(dir, { recursive: true, force: true });
});

void describe('clone authorization through the real kube-apiserver', () => {
  void it('a user with only namespace-local rights is refused, with the missing permission named', async () => {
    const r = await createAs(cloneDv('fedora-a', golden, 'fedora'));
    assert.equal(r.ok, undefined);
    // the kube-apiserver renders the webhook's 422 and its cause
    assert.match(r.stderr, /The request is invalid: spec\.source\.PVC\.namespace: /);
    assert.match(
      r.stderr,
      new RegExp(
        `User system:serviceaccount:${alice}:vm-owner has insufficient permissions in clone source namespace ${golden}: cloning PersistentVolumeClaim ${golden}/fedora needs "create" on "datavolumes/source" \\(group cdi\\.kubevirt\\.io\\) or "create" on "pods" in ${golden}; an administrator of ${golden} grants it with a RoleBinding to the ClusterRole cdi\\.kubevirt\\.io:clone-sourcer`,
      ),
    );
    assert.equal(await kube.getOrUndefined(Resources.DataVolume, 'fedora-a', alice), undefined);
  });

  void it('the same user clones within her own namespace (no review needed) and gets a token', async () => {
    const r = await createAs(cloneDv('own-copy', alice, 'base'));
    assert.ok(r.ok, r.stderr);
    const p = await tokenOf(r.ok);
    checkClonePayload(
      p,
      { kind: 'pvc', namespace: alice, name: 'base' },
      { namespace: alice, name: 'own-copy' },
    );
  });

  void it('the older API: a PVC annotated k8s.io/CloneRequest across namespaces is refused the same way', async () => {
    const r = await createAs(clonePvc('legacy-a', `${golden}/fedora`));
    assert.equal(r.ok, undefined);
    assert.match(r.stderr, /The request is invalid: metadata\.annotations\.k8s\.io\/CloneRequest: User /);
    assert.match(
      r.stderr,
      /insufficient permissions in clone source namespace .*cdi\.kubevirt\.io:clone-sourcer/,
    );
    const bad = await createAs(clonePvc('legacy-bad', 'no-slash'));
    assert.match(
      bad.stderr,
      /k8s\.io\/CloneRequest "no-slash" is not "<source namespace>\/<source PVC name>"/,
    );
  });

  void it('a PVC without the annotation never reaches the webhook (the matchCondition)', async () => {
    const before = seen.filter((s) => s.resource.resource === 'persistentvolumeclaims').length;
    const r = await createAs(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: plain, namespace: ${alice}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`);
    assert.ok(r.ok, r.stderr);
    assert.equal(seen.filter((s) => s.resource.resource === 'persistentvolumeclaims').length, before);
  });

  void it('with clone-sourcer bound in the source namespace: the DataVolume and the annotated PVC get their tokens', async () => {
    await kube.create(R.RoleBinding, {
      metadata: { name: 'alice-clones-golden', namespace: golden },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CLONE_SOURCER },
      subjects: [{ kind: 'ServiceAccount', name: 'vm-owner', namespace: alice }],
    } as KubeObject);
    // RBAC takes effect at once for SubjectAccessReviews, but give the authorizer cache its moment
    const dv = await eventually(
      'the DataVolume to be admitted',
      async () => (await createAs(cloneDv('fedora-b', golden, 'fedora'))).ok,
    );
    const p = await tokenOf(dv);
    assert.equal(p.operation, 'Clone');
    checkClonePayload(
      p,
      { kind: 'pvc', namespace: golden, name: 'fedora' },
      { namespace: alice, name: 'fedora-b' },
    );
    const pvc = await createAs(clonePvc('legacy-b', `${golden}/fedora`));
    assert.ok(pvc.ok, pvc.stderr);
    checkClonePayload(
      await tokenOf(pvc.ok),
      { kind: 'pvc', namespace: golden, name: 'fedora' },
      { namespace: alice, name: 'legacy-b' },
    );
    // a snapshot source is granted by datavolumes/source too
    const snap = await createAs(cloneDv('from-snap', golden, 'fedora-snap', 'snapshot'));
    assert.ok(snap.ok, snap.stderr);
    assert.equal((await tokenOf(snap.ok)).resource.resource, 'volumesnapshots');
  });

  void it('a token the creator wrote herself is replaced by one the webhook signs', async () => {
    const yaml = cloneDv('forged', golden, 'fedora').replace(
      `  namespace: ${alice}\n`,
      `  namespace: ${alice}\n  annotations:\n    ${TOKEN}: "eyJhbGciOiJub25lIn0.e30."\n`,
    );
    const r = await createAs(yaml);
    assert.ok(r.ok, r.stderr);
    checkClonePayload(
      await tokenOf(r.ok),
      { kind: 'pvc', namespace: golden, name: 'fedora' },
      { namespace: alice, name: 'forged' },
    );
  });

  void it('datavolume-validate: the spec is immutable, and a clone source needs its namespace', async () => {
    const up = await kubectl(
      '-n',
      alice,
      'patch',
      'dv',
      'fedora-b',
      '--type=merge',
      '-p',
      '{"spec":{"source":{"pvc":{"name":"windows"}}}}',
    );
    assert.notEqual(up.code, 0);
    assert.match(up.stderr, /The request is invalid: DataVolume\.Spec: Cannot update DataVolume Spec/);
    const noNs = await createAs(cloneDv('no-ns', '""', 'fedora'));
    assert.match(noNs.stderr, /spec\.source\.PVC source PVC is not valid/);
    // a clone may leave the size out under `storage`: the controller takes the source's
    const sizeless = await createAs(
      cloneDv('sizeless', golden, 'fedora').replace(/  storage:\n[\s\S]*$/, '  storage: {}\n'),
    );
    assert.ok(sizeless.ok, sizeless.stderr);
  });

  void it('a source namespace that does not exist is refused', async () => {
    const r = await createAs(cloneDv('nowhere', 'no-such-namespace-x', 'fedora'));
    assert.match(r.stderr, /namespaces "no-such-namespace-x" not found/);
  });
});
