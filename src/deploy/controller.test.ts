import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { allManifests, clusterRules, controllerManifests, defaultDeployOptions, imagesFrom, renderDeployFiles } from './controller.ts';
import { userClusterRoles } from './rbac.ts';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Role = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; rules?: Rule[] };

void test('deploy/cdi/*.yaml are what src/deploy renders (run npm run gen after a change)', async () => {
  const dir = join(import.meta.dirname, '..', '..', 'deploy', 'cdi');
  const files = renderDeployFiles();
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort(), Object.keys(files).sort(), 'deploy/cdi has other files: run npm run gen');
  for (const [name, text] of Object.entries(files)) {
    const onDisk = await readFile(join(dir, name), 'utf8').catch(() => '');
    assert.equal(onDisk, text, `deploy/cdi/${name} is stale: run npm run gen`);
  }
});

void test('RBAC is least privilege: no wildcards, no secrets, no deletes of user data', () => {
  for (const r of clusterRules()) {
    const rule = r as Rule;
    assert.ok(!rule.verbs.includes('*') && !rule.resources.includes('*') && !rule.apiGroups.includes('*'));
    assert.ok(!rule.resources.includes('secrets'), 'the controller never reads secrets: importer pods get them by reference');
    // deletes of DataVolumes and PVCs: only the DataImportCron's garbage collection of its own outdated imports
    if (rule.resources.includes('persistentvolumeclaims') || rule.resources.includes('datavolumes'))
      assert.deepEqual(rule.resources.length, 1, 'user data deletes are granted on their own rule, not in passing');
  }
});

const can = (rules: Rule[], group: string, resource: string, verb: string): boolean =>
  rules.some((r) => r.apiGroups.includes(group) && (r.resources.includes(resource) || r.resources.includes('*')) && (r.verbs.includes(verb) || r.verbs.includes('*')));

void test('the controller may update the finalizers of every owner it names with blockOwnerDeletion', () => {
  const rules = clusterRules() as Rule[];
  // DataVolume → target PVC, PVC → importer pod, importer pod → scratch PVC (controllerRef sets blockOwnerDeletion)
  for (const [group, owner] of [['cdi.kubevirt.io', 'datavolumes'], ['', 'persistentvolumeclaims'], ['', 'pods']] as const)
    assert.ok(can(rules, group, `${owner}/finalizers`, 'update'), `${owner}/finalizers`);
  assert.ok(can(rules, 'snapshot.storage.k8s.io', 'volumesnapshotclasses', 'watch'));
  assert.ok(can(rules, '', 'persistentvolumes', 'list'));
  assert.ok(can(rules, 'cdi.kubevirt.io', 'storageprofiles', 'patch'));
});

void test('the user ClusterRoles are upstream\'s: aggregated into admin, edit and view; clone-sourcer; config-reader for everyone', () => {
  const objs = userClusterRoles({}) as Role[];
  const byName = new Map(objs.filter((o) => o.kind === 'ClusterRole').map((o) => [o.metadata.name, o]));
  assert.deepEqual([...byName.keys()], ['cdi.kubevirt.io:admin', 'cdi.kubevirt.io:edit', 'cdi.kubevirt.io:view', 'cdi.kubevirt.io:clone-sourcer', 'cdi.kubevirt.io:config-reader']);
  for (const to of ['admin', 'edit', 'view'])
    assert.equal(byName.get(`cdi.kubevirt.io:${to}`)?.metadata.labels?.[`rbac.authorization.k8s.io/aggregate-to-${to}`], 'true');
  const edit = byName.get('cdi.kubevirt.io:edit')?.rules ?? [];
  for (const kind of ['datavolumes', 'datasources', 'dataimportcrons', 'volumeimportsources', 'volumeuploadsources', 'volumeclonesources'])
    for (const verb of ['create', 'delete', 'get', 'list', 'watch', 'update', 'patch']) assert.ok(can(edit, 'cdi.kubevirt.io', kind, verb), `edit ${verb} ${kind}`);
  assert.ok(can(edit, 'cdi.kubevirt.io', 'datavolumes/source', 'create'));
  assert.ok(can(edit, 'upload.cdi.kubevirt.io', 'uploadtokenrequests', 'create'));
  assert.deepEqual(byName.get('cdi.kubevirt.io:admin')?.rules, edit);
  const view = byName.get('cdi.kubevirt.io:view')?.rules ?? [];
  assert.ok(can(view, 'cdi.kubevirt.io', 'datavolumes', 'list'));
  assert.ok(!can(view, 'cdi.kubevirt.io', 'datavolumes', 'create'), 'view cannot create');
  assert.deepEqual(byName.get('cdi.kubevirt.io:clone-sourcer')?.rules, [{ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes/source'], verbs: ['create'] }]);
  const binding = objs.find((o) => o.kind === 'ClusterRoleBinding') as unknown as { roleRef: { name: string }; subjects: { name: string }[] };
  assert.equal(binding.roleRef.name, 'cdi.kubevirt.io:config-reader');
  assert.ok(binding.subjects.some((s) => s.name === 'system:authenticated'));
});

void test('the controller pod runs restricted', () => {
  const dep = controllerManifests().find((o) => o['kind'] === 'Deployment') as { spec: { template: { spec: { containers: { securityContext: Record<string, unknown> }[] } } } };
  const sc = dep.spec.template.spec.containers[0]?.securityContext;
  assert.deepEqual(sc?.['capabilities'], { drop: ['ALL'] });
  assert.equal(sc?.['allowPrivilegeEscalation'], false);
  assert.equal(sc?.['runAsNonRoot'], true);
});

void test('images, pull policy and namespace are parameters; the defaults are the local harness\'s', () => {
  assert.deepEqual(imagesFrom('quay.io/example/', 'v0.1.0'), {
    controllerImage: 'quay.io/example/cdi-controller:v0.1.0',
    importerImage: 'quay.io/example/cdi-importer:v0.1.0',
  });
  assert.throws(() => imagesFrom('quay.io/example', ''), /a registry and a tag are both needed/);
  assert.equal(defaultDeployOptions.controllerImage, 'localhost:5000/cdi-controller:dev');
  const objs = allManifests({ ...defaultDeployOptions, ...imagesFrom('registry.example.com/cdi', '1.2.3'), pullPolicy: 'IfNotPresent', namespace: 'cdi-system' });
  const dep = objs.find((o) => o['kind'] === 'Deployment') as { metadata: { namespace: string }; spec: { template: { spec: { containers: { image: string; imagePullPolicy: string; env: { name: string; value?: string }[] }[] } } } };
  const c = dep.spec.template.spec.containers[0]!;
  assert.equal(dep.metadata.namespace, 'cdi-system');
  assert.equal(c.image, 'registry.example.com/cdi/cdi-controller:1.2.3');
  assert.equal(c.imagePullPolicy, 'IfNotPresent');
  assert.deepEqual(c.env.filter((e) => e.name === 'IMPORTER_IMAGE' || e.name === 'PULL_POLICY').map((e) => e.value), ['registry.example.com/cdi/cdi-importer:1.2.3', 'IfNotPresent']);
  const text = JSON.stringify(objs);
  assert.ok(!text.includes('localhost:5000'), 'nothing of the local harness is left');
  // every namespaced object and every ServiceAccount subject is in the chosen namespace
  for (const o of objs as { metadata: { namespace?: string }; subjects?: { kind: string; namespace?: string }[] }[]) {
    if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, 'cdi-system');
    for (const s of o.subjects ?? []) if (s.kind === 'ServiceAccount') assert.equal(s.namespace, 'cdi-system');
  }
});
