import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { apiServerManifests, renderUploadDeployFiles, uploadApiService, uploadProxyManifests } from './upload.ts';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

void test('deploy/upload/*.yaml are what src/deploy/upload.ts renders (run npm run gen after a change)', async () => {
  const dir = join(import.meta.dirname, '..', '..', 'deploy', 'upload');
  for (const [name, text] of Object.entries(renderUploadDeployFiles())) {
    const onDisk = await readFile(join(dir, name), 'utf8').catch(() => '');
    assert.equal(onDisk, text, `deploy/upload/${name} is stale: run npm run gen`);
  }
});

void test('RBAC is least privilege: no wildcards; the proxy reads PVCs and one ConfigMap, the API server only gets what its webhooks read', () => {
  const rules = (objs: Record<string, unknown>[]): Rule[] =>
    objs.filter((o) => o['kind'] === 'ClusterRole' || o['kind'] === 'Role').flatMap((o) => o['rules'] as Rule[]);
  for (const r of [...rules(apiServerManifests()), ...rules(uploadProxyManifests())]) {
    assert.ok(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'));
    assert.ok(!r.verbs.includes('delete') && !r.verbs.includes('update') && !r.verbs.includes('patch'));
  }
  assert.deepEqual(rules(uploadProxyManifests()), [
    { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
  ]);
  assert.deepEqual(rules(apiServerManifests()), [
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
    { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datasources', 'cdiconfigs'], verbs: ['get'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] },
  ]);
});

void test('the pods run restricted, mount their certificates, and the proxy gets the public key from the Secret', () => {
  for (const objs of [apiServerManifests(), uploadProxyManifests()]) {
    const dep = objs.find((o) => o['kind'] === 'Deployment') as {
      spec: { template: { spec: { containers: { securityContext: Record<string, unknown>; env: { name: string }[] }[] } } };
    };
    const c = dep.spec.template.spec.containers[0]!;
    assert.deepEqual(c.securityContext['capabilities'], { drop: ['ALL'] });
    assert.equal(c.securityContext['readOnlyRootFilesystem'], true);
  }
  const proxy = JSON.stringify(uploadProxyManifests());
  assert.match(proxy, /"APISERVER_PUBLIC_KEY","valueFrom":\{"secretKeyRef":\{"name":"cdi-api-signing-key","key":"id_rsa.pub"\}\}/);
  assert.match(proxy, /cdi-uploadserver-client-cert/);
});

void test('the APIService is made with the CA bundle, never without', () => {
  const a = uploadApiService('cdi', 'PEM');
  assert.equal(a.metadata?.name, 'v1beta1.upload.cdi.kubevirt.io');
  assert.equal(a.spec['caBundle'], Buffer.from('PEM').toString('base64'));
  assert.ok(!Object.values(renderUploadDeployFiles()).some((t) => t.includes('kind: APIService')));
});
