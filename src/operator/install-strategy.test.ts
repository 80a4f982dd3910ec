import { test } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import type { CDI } from '../api/index.ts';
import { operatorConfigFromEnv } from './config.ts';
import { dumpInstallStrategy, installStrategyConfigMap, parseGoBool } from './install-strategy.ts';
import { renderAll } from './render.ts';

const env = {
  OPERATOR_VERSION: 'v1',
  CONTROLLER_IMAGE: 'c',
  IMPORTER_IMAGE: 'i',
  APISERVER_IMAGE: 'a',
  UPLOAD_PROXY_IMAGE: 'p',
  UPLOAD_SERVER_IMAGE: 's',
};
const cr = { apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'CDI', metadata: { name: 'cdi' }, spec: {} } as CDI;

void test('DUMP_INSTALL_STRATEGY is off unless set, parsed as Go strconv.ParseBool', () => {
  assert.equal(operatorConfigFromEnv(env).dumpInstallStrategy, undefined);
  assert.equal(operatorConfigFromEnv({ ...env, DUMP_INSTALL_STRATEGY: 'true' }).dumpInstallStrategy, true);
  assert.equal(operatorConfigFromEnv({ ...env, DUMP_INSTALL_STRATEGY: 'F' }).dumpInstallStrategy, undefined);
  assert.throws(
    () => operatorConfigFromEnv({ ...env, DUMP_INSTALL_STRATEGY: 'yes' }),
    /DUMP_INSTALL_STRATEGY must be true or false \(or 1, t, 0, f\), not "yes"/,
  );
  assert.equal(parseGoBool('1', 'X'), true);
  assert.equal(parseGoBool('FALSE', 'X'), false);
});

void test("cdi-install-strategy: upstream's name and key, the install as YAML documents in upstream's kind order", () => {
  const config = operatorConfigFromEnv({ ...env, DUMP_INSTALL_STRATEGY: 'true' });
  const desired = renderAll({
    cr,
    config,
    facts: { apiServerBundle: 'PEM\n', monitoring: true, priorityClasses: new Set() },
  });
  const cm = installStrategyConfigMap('cdi', desired);
  assert.deepEqual(cm['metadata'], {
    name: 'cdi-install-strategy',
    namespace: 'cdi',
    labels: { 'app.kubernetes.io/component': 'storage' },
  });
  const text = (cm['data'] as Record<string, string>)['manifests'] ?? '';
  assert.ok(text.startsWith('---\n'), 'every document opens with ---');
  const docs = YAML.parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown>);
  const kinds = docs.map((d) => String(d['kind']));
  const order = [
    'ServiceAccount',
    'ClusterRole',
    'ClusterRoleBinding',
    'Role',
    'RoleBinding',
    'CustomResourceDefinition',
    'Service',
    'ValidatingWebhookConfiguration',
    'MutatingWebhookConfiguration',
    'APIService',
    'Deployment',
    'ConfigMap',
  ];
  // grouped by kind in upstream's order, every kind of the install present
  assert.deepEqual([...new Set(kinds)], order);
  const ids = new Set(
    docs.map((d) => `${String(d['kind'])}/${String((d['metadata'] as { name: string }).name)}`),
  );
  for (const id of [
    'Deployment/cdi-deployment',
    'Deployment/cdi-apiserver',
    'Deployment/cdi-uploadproxy',
    'ServiceAccount/cdi-sa',
    'ConfigMap/cdi-config',
    'ValidatingWebhookConfiguration/objecttransfer-api-validate',
    'APIService/v1beta1.upload.cdi.kubevirt.io',
    'CustomResourceDefinition/datavolumes.cdi.kubevirt.io',
  ])
    assert.ok(ids.has(id), id);
  // what upstream's dump leaves out
  for (const kind of ['NetworkPolicy', 'Secret', 'PrometheusRule', 'ServiceMonitor'])
    assert.ok(!kinds.includes(kind), kind);
  for (const d of docs) {
    const meta = d['metadata'] as { labels?: Record<string, string>; creationTimestamp?: unknown };
    assert.equal(meta.labels?.['app.kubernetes.io/managed-by'], undefined);
    assert.equal('status' in d, false);
  }
  // the documents are the rendered objects otherwise unchanged (keys sorted, as Go's yaml.JSONToYAML writes them)
  const deployment = (d: Record<string, unknown>) =>
    d['kind'] === 'Deployment' && (d['metadata'] as { name: string }).name === 'cdi-deployment';
  const dep = docs.find(deployment);
  const want = desired.find(deployment);
  // (as JSON: a field the renderer leaves undefined is no field, as in upstream's json.Marshal)
  assert.deepEqual(dep?.['spec'], JSON.parse(JSON.stringify(want?.['spec'])));
  assert.deepEqual(Object.keys(dep ?? {}), ['apiVersion', 'kind', 'metadata', 'spec']);
  assert.match(
    text,
    /\nrules:\n- apiGroups:\n/,
    'sequences are not indented under their key, as Go writes them',
  );
  assert.equal(dumpInstallStrategy([]), '');
});
