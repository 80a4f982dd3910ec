import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clusterRules, controllerManifests, renderDeployFiles } from './controller.ts';

void test('deploy/cdi/*.yaml are what src/deploy renders (run npm run gen after a change)', async () => {
  const dir = join(import.meta.dirname, '..', '..', 'deploy', 'cdi');
  for (const [name, text] of Object.entries(renderDeployFiles())) {
    const onDisk = await readFile(join(dir, name), 'utf8').catch(() => '');
    assert.equal(onDisk, text, `deploy/cdi/${name} is stale: run npm run gen`);
  }
});

void test('RBAC is least privilege: no wildcards, no secrets, no deletes of user data', () => {
  for (const r of clusterRules()) {
    const rule = r as { apiGroups: string[]; resources: string[]; verbs: string[] };
    assert.ok(!rule.verbs.includes('*') && !rule.resources.includes('*') && !rule.apiGroups.includes('*'));
    assert.ok(!rule.resources.includes('secrets'), 'the controller never reads secrets: importer pods get them by reference');
    if (rule.resources.includes('persistentvolumeclaims') || rule.resources.includes('datavolumes')) assert.ok(!rule.verbs.includes('delete'));
  }
});

void test('the controller pod runs restricted', () => {
  const dep = controllerManifests().find((o) => o['kind'] === 'Deployment') as { spec: { template: { spec: { containers: { securityContext: Record<string, unknown> }[] } } } };
  const sc = dep.spec.template.spec.containers[0]?.securityContext;
  assert.deepEqual(sc?.['capabilities'], { drop: ['ALL'] });
  assert.equal(sc?.['allowPrivilegeEscalation'], false);
  assert.equal(sc?.['runAsNonRoot'], true);
});
