import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import {
  cdiResource,
  defaultReleaseOptions,
  operatorManifests,
  releaseImagesFrom,
  renderReleaseFiles,
} from './release.ts';
import { BundlePlaceholder, renderAll, renderDeployFiles } from './render.ts';
import type { CDIResource } from './reconcile.ts';
import { watchScopes } from './operator.ts';
import { Kinds } from './resources.ts';

const deploy = join(import.meta.dirname, '..', '..', 'deploy');
type Obj = Record<string, unknown>;
type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] };

async function sameFiles(sub: string, files: Record<string, string>): Promise<void> {
  const dir = join(deploy, sub);
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort(),
    Object.keys(files).sort(),
    `deploy/${sub} has other files: run npm run gen`,
  );
  for (const [name, text] of Object.entries(files))
    assert.equal(
      await readFile(join(dir, name), 'utf8'),
      text,
      `deploy/${sub}/${name} is stale: run npm run gen`,
    );
}

const config = {
  namespace: defaultReleaseOptions.namespace,
  version: defaultReleaseOptions.version,
  images: defaultReleaseOptions.images,
  pullPolicy: defaultReleaseOptions.pullPolicy,
  verbosity: defaultReleaseOptions.verbosity,
};
const cr = (): CDIResource => ({
  ...(cdiResource() as unknown as CDIResource),
  metadata: { name: 'cdi', uid: 'u' },
});

void test('deploy/release and deploy/cdi are what src/operator renders (run npm run gen after a change)', async () => {
  await sameFiles('release', renderReleaseFiles());
  await sameFiles(
    'cdi',
    renderDeployFiles({
      cr: cr(),
      config,
      facts: { priorityClasses: new Set(), monitoring: false, apiServerBundle: BundlePlaceholder },
    }),
  );
});

void test('cdi-operator.yaml: namespace, the CDI CRD, the operator ServiceAccount, RBAC and Deployment; cdi-cr.yaml: upstream defaults', () => {
  const docs = YAML.parseAllDocuments(renderReleaseFiles()['cdi-operator.yaml'] ?? '').map(
    (d) => d.toJSON() as Obj,
  );
  const ids = docs.map((d) => `${String(d['kind'])}/${String((d['metadata'] as Obj)['name'])}`);
  assert.deepEqual(ids, [
    'Namespace/cdi',
    'CustomResourceDefinition/cdis.cdi.kubevirt.io',
    'ServiceAccount/cdi-operator',
    'ClusterRole/cdi-operator-cluster',
    'ClusterRoleBinding/cdi-operator',
    'Role/cdi-operator',
    'RoleBinding/cdi-operator',
    // cdi-apiserver's binding to extension-apiserver-authentication-reader lives in kube-system
    'Role/cdi-operator',
    'RoleBinding/cdi-operator',
    'Deployment/cdi-operator',
  ]);
  const crDoc = YAML.parse(renderReleaseFiles()['cdi-cr.yaml'] ?? '') as {
    metadata: { name: string };
    spec: Obj;
  };
  assert.equal(crDoc.metadata.name, 'cdi');
  assert.deepEqual(crDoc.spec['config'], { featureGates: ['HonorWaitForFirstConsumer'] });
  assert.deepEqual(crDoc.spec['infra'], { nodeSelector: { 'kubernetes.io/os': 'linux' } });
  assert.deepEqual(crDoc.spec['workload'], { nodeSelector: { 'kubernetes.io/os': 'linux' } });
  assert.equal(crDoc.spec['uninstallStrategy'], 'RemoveWorkloads');
});

const has = (list: string[] | undefined, v: string): boolean =>
  !!list && (list.includes(v) || list.includes('*'));
const coveredBy = (r: Rule, by: Rule[]): boolean =>
  (r.apiGroups ?? []).every((g) =>
    (r.resources ?? []).every((res) =>
      r.verbs.every((v) =>
        by.some(
          (b) =>
            has(b.apiGroups, g) &&
            has(b.resources, res) &&
            has(b.verbs, v) &&
            (!b.resourceNames || (r.resourceNames ?? []).every((n) => b.resourceNames?.includes(n))),
        ),
      ),
    ),
  );

void test('the operator holds every rule it grants (RBAC escalation) and manages every kind it renders, nothing more', () => {
  const objs = operatorManifests();
  const clusterRules = (objs.find((o) => o['kind'] === 'ClusterRole') as { rules: Rule[] }).rules;
  const roles = objs.filter((o) => o['kind'] === 'Role') as {
    metadata: { namespace: string };
    rules: Rule[];
  }[];
  const rendered = renderAll({ cr: cr(), config, facts: { priorityClasses: new Set(), monitoring: true } });
  for (const o of rendered) {
    if (o['kind'] === 'ClusterRole')
      for (const r of o['rules'] as Rule[]) assert.ok(coveredBy(r, clusterRules), JSON.stringify(r));
    if (o['kind'] === 'Role') {
      const ns = (o['metadata'] as { namespace: string }).namespace;
      const mine = roles.find((x) => x.metadata.namespace === ns)?.rules ?? [];
      for (const r of o['rules'] as Rule[])
        assert.ok(coveredBy(r, [...mine, ...clusterRules]), `${ns}: ${JSON.stringify(r)}`);
    }
  }
  // every kind it applies and watches: apply (patch), list/watch, delete
  const allowed = (group: string, resource: string, verb: string, ns?: string): boolean =>
    coveredBy({ apiGroups: [group], resources: [resource], verbs: [verb] }, [
      ...clusterRules,
      ...(ns ? (roles.find((x) => x.metadata.namespace === ns)?.rules ?? []) : []),
    ]);
  const plural = (kind: string): [string, string] => {
    const r = (Kinds as Record<string, { group: string; plural: string }>)[kind]!;
    return [r.group, r.plural];
  };
  for (const s of watchScopes(config)) {
    const [group, resource] = plural(s.kind);
    for (const verb of ['get', 'list', 'watch', 'patch', 'delete'])
      assert.ok(allowed(group, resource, verb, s.namespace), `${verb} ${resource} ${s.namespace ?? ''}`);
  }
  assert.ok(!allowed('', 'secrets', 'get'), 'secrets only in its namespace');
  assert.ok(!allowed('apps', 'deployments', 'delete'), 'deployments only in its namespace');
  // (persistentvolumeclaims delete it holds because the controller does: a smart clone's temporary claim)
  assert.ok(!allowed('', 'namespaces', 'delete'), 'never namespaces');
});

void test('images, pull policy and version are parameters of the release', () => {
  const o = {
    ...defaultReleaseOptions,
    ...releaseImagesFrom('quay.io/example', 'v9'),
    version: 'v9',
    pullPolicy: 'IfNotPresent' as const,
  };
  const text = renderReleaseFiles(o)['cdi-operator.yaml'] ?? '';
  assert.ok(!text.includes('localhost:5000'));
  const dep = operatorManifests(o).find((x) => x['kind'] === 'Deployment') as {
    spec: {
      template: { spec: { containers: { image: string; env: { name: string; value?: string }[] }[] } };
    };
  };
  const c = dep.spec.template.spec.containers[0]!;
  assert.equal(c.image, 'quay.io/example/cdi-operator:v9');
  const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
  assert.equal(env['OPERATOR_VERSION'], 'v9');
  assert.equal(env['CONTROLLER_IMAGE'], 'quay.io/example/cdi-controller:v9');
  assert.equal(env['UPLOAD_SERVER_IMAGE'], 'quay.io/example/cdi-uploadserver:v9');
  assert.equal(env['PULL_POLICY'], 'IfNotPresent');
  assert.equal((cdiResource(o)['spec'] as Obj)['imagePullPolicy'], 'IfNotPresent');
});
