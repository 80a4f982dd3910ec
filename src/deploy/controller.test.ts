import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allManifests, clusterRules, controllerManifests, defaultDeployOptions, imagesFrom } from './controller.ts';
import { userClusterRoles } from './rbac.ts';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Role = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; rules?: Rule[] };

void test('RBAC is least privilege: no wildcards, no reading secrets, no deletes of DataVolumes', () => {
  for (const r of clusterRules()) {
    const rule = r as Rule;
    assert.ok(!rule.verbs.includes('*') && !rule.resources.includes('*') && !rule.apiGroups.includes('*'));
    // importer pods get secrets by reference; upload pods get a Secret the controller writes (and never reads back)
    if (rule.resources.includes('secrets'))
      assert.deepEqual(rule.verbs.filter((v) => ['get', 'list', 'watch', 'update', 'patch'].includes(v)), [], 'the controller never reads secrets outside its namespace');
    // deletes of DataVolumes and PVCs (a smart clone's temporary claim, a populator's prime, a DataImportCron's
    // outdated imports): granted on their own rule, not in passing
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
    uploadServerImage: 'quay.io/example/cdi-uploadserver:v0.1.0',
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

void test('names are upstream\'s: cdi-sa, ClusterRole cdi bound by cdi-sa, Role cdi-deployment, Deployment cdi-deployment', () => {
  const names = controllerManifests().map((o) => `${String(o['kind'])}/${String((o['metadata'] as { name: string }).name)}`);
  assert.deepEqual(names, [
    'ServiceAccount/cdi-sa',
    'ClusterRole/cdi',
    'ClusterRoleBinding/cdi-sa',
    'Role/cdi-deployment',
    'RoleBinding/cdi-deployment',
    'ServiceAccount/cdi-metrics-reader',
    'ClusterRole/cdi-metrics-reader',
    'ClusterRoleBinding/cdi-metrics-reader',
    'ServiceAccount/cdi-cronjob',
    'ClusterRole/cdi-cronjob',
    'ClusterRoleBinding/cdi-cronjob',
    'Deployment/cdi-deployment',
    'Service/cdi-prometheus-metrics',
  ]);
  const dep = controllerManifests().find((o) => o['kind'] === 'Deployment') as { spec: { selector: unknown; template: { metadata: { labels: Record<string, string> } } } };
  assert.deepEqual(dep.spec.selector, { matchLabels: { 'cdi.kubevirt.io': 'cdi-deployment' } });
  assert.equal(dep.spec.template.metadata.labels['app.kubernetes.io/managed-by'], 'cdi-operator');
  // what upstream's tooling selects the controller's pods by (`kubectl get pods -l app=containerized-data-importer`)
  assert.equal(dep.spec.template.metadata.labels['app'], 'containerized-data-importer');
  assert.equal(dep.spec.template.metadata.labels['cdi.kubevirt.io'], 'cdi-deployment');
});

void test('infra placement, priority class, pull secrets and workload placement reach the Deployment', () => {
  const dep = controllerManifests({
    ...defaultDeployOptions,
    infra: { nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }] },
    workload: { nodeSelector: { tier: 'workers' } },
    priorityClassName: 'kubevirt-cluster-critical',
    imagePullSecrets: ['regcred'],
    verbosity: '3',
  }).find((o) => o['kind'] === 'Deployment') as { spec: { template: { spec: Record<string, unknown> & { containers: { env: { name: string; value?: string }[] }[] } } } };
  const pod = dep.spec.template.spec;
  assert.deepEqual(pod['nodeSelector'], { 'kubernetes.io/os': 'linux' });
  assert.deepEqual(pod['tolerations'], [{ key: 'CriticalAddonsOnly', operator: 'Exists' }]);
  assert.equal(pod['priorityClassName'], 'kubevirt-cluster-critical');
  assert.deepEqual(pod['imagePullSecrets'], [{ name: 'regcred' }]);
  const anti = (pod['affinity'] as { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: unknown[] } }).podAntiAffinity;
  assert.equal(anti.preferredDuringSchedulingIgnoredDuringExecution.length, 1);
  const env = Object.fromEntries(pod.containers[0]!.env.map((e) => [e.name, e.value]));
  assert.equal(env['WORKLOAD_NODE_SELECTOR'], '{"tier":"workers"}');
  assert.equal(env['VERBOSITY'], '3');
});

void test('metrics (ADR 0040): HTTPS :8443 behind the Service, the optional certificate mounted, probes on the plain health port, the reviews allowed', () => {
  const objs = controllerManifests();
  type Container = {
    ports: { name: string; containerPort: number }[];
    livenessProbe: { httpGet: { port: string } };
    readinessProbe: { httpGet: { port: string } };
    volumeMounts: { name: string; mountPath: string }[];
    env: { name: string; value?: string }[];
  };
  const dep = objs.find((o) => o['kind'] === 'Deployment') as {
    spec: { template: { spec: { containers: Container[]; volumes: { name: string; secret: { secretName: string; optional: boolean } }[] } } };
  };
  const c = dep.spec.template.spec.containers[0]!;
  assert.deepEqual(c.ports.map((p) => [p.name, p.containerPort]), [['metrics', 8443], ['health', 8080]]);
  assert.equal(c.livenessProbe.httpGet.port, 'health');
  assert.equal(c.readinessProbe.httpGet.port, 'health');
  const vol = dep.spec.template.spec.volumes.find((v) => v.name === 'metrics-cert');
  assert.deepEqual(vol?.secret.secretName, 'cdi-metrics-server-cert');
  assert.equal(vol?.secret.optional, true);
  const dir = c.env.find((e) => e.name === 'METRICS_CERT_DIR')?.value;
  assert.equal(c.volumeMounts.find((m) => m.name === 'metrics-cert')?.mountPath, dir);
  const svc = objs.find((o) => o['kind'] === 'Service') as { spec: { ports: { port: number; targetPort: string }[] } };
  assert.deepEqual(svc.spec.ports.map((p) => [p.port, p.targetPort]), [[8443, 'metrics']]);
  const rules = clusterRules() as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  for (const r of ['tokenreviews', 'subjectaccessreviews'])
    assert.ok(rules.some((x) => x.resources.includes(r) && x.verbs.includes('create')), `may create ${r}`);
  const reader = objs.find((o) => o['kind'] === 'ClusterRole' && (o['metadata'] as { name: string }).name === 'cdi-metrics-reader');
  assert.deepEqual(reader?.['rules'], [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
});
