// The REST client against the real API server: CRUD, the error taxonomy, the patch content types,
// server-side apply and the status subresource.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiError,
  KubeClient,
  Resources,
  isAlreadyExists,
  isConflict,
  isNotFound,
  type ConfigMap,
  type KubeObject,
} from '../../../src/kube/index.ts';
import type { DataVolume } from '../../../src/api/index.ts';
import { kubeconfigPath, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-client', (c, n) => ((client = c), (ns = n)), { crds: true });

void test('create, get, list, AlreadyExists, NotFound and delete', async () => {
  const cm = await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'one', namespace: ns },
    data: { a: '1' },
  });
  assert.ok(cm.metadata?.uid);
  assert.equal(typeof cm.metadata?.creationTimestamp, 'string', 'timestamps are wire strings');
  await assert.rejects(
    client.create(Resources.ConfigMap, { metadata: { name: 'one', namespace: ns } }),
    (e: unknown) => {
      assert.ok(isAlreadyExists(e));
      assert.equal((e as ApiError).code, 409);
      assert.equal((e as ApiError).reason, 'AlreadyExists');
      return true;
    },
  );
  assert.equal((await client.get<ConfigMap>(Resources.ConfigMap, 'one', ns)).data?.a, '1');
  const list = await client.list<ConfigMap>(Resources.ConfigMap, {
    namespace: ns,
    fieldSelector: 'metadata.name=one',
  });
  assert.deepEqual(
    list.items.map((i) => i.metadata?.name),
    ['one'],
  );
  assert.ok(list.metadata.resourceVersion);
  assert.equal(list.items[0]?.kind, 'ConfigMap', 'list items carry their kind');
  assert.equal(list.items[0]?.apiVersion, 'v1');
  await assert.rejects(
    client.get(Resources.ConfigMap, 'missing', ns),
    (e: unknown) => isNotFound(e) && (e as ApiError).reason === 'NotFound',
  );
  assert.equal(await client.getOrUndefined(Resources.ConfigMap, 'missing', ns), undefined);
  assert.equal(await client.delete(Resources.ConfigMap, 'one', { namespace: ns }), true);
  assert.equal(await client.delete(Resources.ConfigMap, 'one', { namespace: ns }), false);
});

void test('merge patch and JSON patch send their own content types', async () => {
  await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'patch', namespace: ns },
    data: { a: '1', b: '2' },
  });
  const merged = await client.mergePatch<ConfigMap>(
    Resources.ConfigMap,
    'patch',
    { data: { b: null, c: '3' } },
    { namespace: ns },
  );
  assert.deepEqual(merged.data, { a: '1', c: '3' });
  const patched = await client.jsonPatch<ConfigMap>(
    Resources.ConfigMap,
    'patch',
    [
      { op: 'test', path: '/metadata/resourceVersion', value: merged.metadata?.resourceVersion },
      { op: 'replace', path: '/data/a', value: 'x' },
    ],
    { namespace: ns },
  );
  assert.equal(patched.data?.a, 'x');
  await assert.rejects(
    client.jsonPatch(
      Resources.ConfigMap,
      'patch',
      [{ op: 'test', path: '/metadata/resourceVersion', value: merged.metadata?.resourceVersion }],
      {
        namespace: ns,
      },
    ),
    (e: unknown) => e instanceof ApiError && e.code === 422,
  );
});

void test('replace with a stale resourceVersion is a Conflict', async () => {
  const cm = await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'occ', namespace: ns },
    data: { v: '1' },
  });
  await client.replace<ConfigMap>(Resources.ConfigMap, { ...cm, data: { v: '2' } });
  await assert.rejects(
    client.replace<ConfigMap>(Resources.ConfigMap, { ...cm, data: { v: '3' } }),
    (e: unknown) => {
      assert.ok(isConflict(e));
      assert.equal((e as ApiError).reason, 'Conflict');
      return true;
    },
  );
});

void test('server-side apply records the field manager and reports conflicts between managers', async () => {
  const obj: ConfigMap = { metadata: { name: 'ssa', namespace: ns }, data: { owned: 'a' } };
  const applied = await client.apply(Resources.ConfigMap, obj, { fieldManager: 'cdi-test-a' });
  assert.ok(
    applied.metadata?.managedFields?.some((m) => m.manager === 'cdi-test-a' && m.operation === 'Apply'),
  );
  await assert.rejects(
    client.apply(
      Resources.ConfigMap,
      { metadata: { name: 'ssa', namespace: ns }, data: { owned: 'b' } },
      { fieldManager: 'cdi-test-b' },
    ),
    (e: unknown) => isConflict(e) && /cdi-test-a/.test((e as Error).message),
  );
  const forced = await client.apply(
    Resources.ConfigMap,
    { metadata: { name: 'ssa', namespace: ns }, data: { owned: 'b' } },
    { fieldManager: 'cdi-test-b', force: true },
  );
  assert.equal(forced.data?.owned, 'b');
  // Applying a custom resource works too (strategic merge patch would get 415 here).
  const dv = await client.apply<DataVolume & KubeObject>(
    Resources.DataVolume,
    {
      metadata: { name: 'ssa-dv', namespace: ns },
      spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
    },
    { fieldManager: 'cdi-test-a' },
  );
  assert.deepEqual(dv.spec.source, { blank: {} });
});

void test('a status merge patch carrying a stale resourceVersion is refused (the conditional status write)', async () => {
  const created = await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'status', namespace: ns },
    spec: { source: { upload: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
  });
  const stale = created.metadata?.resourceVersion;
  const dv = await client.mergePatch<DataVolume & KubeObject>(
    Resources.DataVolume,
    'status',
    { metadata: { resourceVersion: stale }, status: { phase: 'UploadScheduled', progress: 'N/A' } },
    { namespace: ns, subresource: 'status' },
  );
  assert.equal(dv.status?.phase, 'UploadScheduled');
  assert.equal(dv.status?.progress, 'N/A');
  await assert.rejects(
    client.mergePatch(
      Resources.DataVolume,
      'status',
      { metadata: { resourceVersion: stale }, status: { phase: 'Pending' } },
      { namespace: ns, subresource: 'status' },
    ),
    (e: unknown) => isConflict(e),
  );
  const now = await client.get<DataVolume & KubeObject>(Resources.DataVolume, 'status', ns);
  assert.equal(now.status?.phase, 'UploadScheduled', 'the newer status stands');
});

void test('a missing kubeconfig gives one clear line', () => {
  assert.throws(
    () => KubeClient.fromFile(`${kubeconfigPath}.does-not-exist`),
    /^Error: kubeconfig .* cannot be read: bring the cluster up/,
  );
});

void test('createOrGet treats AlreadyExists as success and returns the existing object', async () => {
  const first = await client.createOrGet<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'once', namespace: ns },
    data: { v: '1' },
  });
  assert.equal(first.created, true);
  const second = await client.createOrGet<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'once', namespace: ns },
    data: { v: '2' },
  });
  assert.equal(second.created, false);
  assert.equal(second.object.data?.v, '1', 'the existing object, not the attempted one');
  assert.equal(second.object.metadata?.uid, first.object.metadata?.uid);
});
