// Informer → queue → reconcile wiring against the real API server, with a reconcile that writes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cache,
  Controller,
  KubeClient,
  Resources,
  controllerRef,
  expectationOwner,
  isAtLeast,
  splitKey,
  type ConfigMap,
  type KubeObject,
} from '../../../src/kube/index.ts';
import type { DataVolume } from '../../../src/api/index.ts';
import { eventually, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-controller', (c, n) => ((client = c), (ns = n)), { crds: true });

void test('a controller reconciles from the cache, converges, and never reconciles a key on a cache that misses its own last write', async () => {
  const label = `t-${ns}`;
  await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'pre', namespace: ns, labels: { app: label } },
    data: { in: 'a' },
  });
  const cache = new Cache(client);
  const informer = cache.informer<ConfigMap>(Resources.ConfigMap, { labelSelector: `app=${label}` });
  assert.equal(
    cache.informer(Resources.ConfigMap, { labelSelector: `app=${label}` }),
    informer,
    'informers are shared',
  );
  assert.throws(
    () => cache.informer(Resources.ConfigMap),
    /already watches configmaps with another selector/,
  );
  const writes: string[] = [];
  const reconciles = new Map<string, number>();
  const lastWrite = new Map<string, string>();
  const stale: string[] = [];
  const controller = new Controller({
    name: 'copy',
    workers: 2,
    expectations: cache.expectations,
    reconcile: async (key) => {
      reconciles.set(key, (reconciles.get(key) ?? 0) + 1);
      const cm = cache.get<ConfigMap>(Resources.ConfigMap, splitKey(key).name, splitKey(key).namespace);
      if (!cm) return;
      const written = lastWrite.get(key);
      if (written && !isAtLeast(cm.metadata?.resourceVersion, written)) stale.push(key);
      assert.ok(Object.isFrozen(cm) && Object.isFrozen(cm.data), 'cached objects are frozen');
      const want = (cm.data?.in ?? '').toUpperCase();
      if (cm.data?.out === want) return; // converged
      const { namespace, name } = splitKey(key);
      const out = await client.mergePatch<ConfigMap>(
        Resources.ConfigMap,
        name,
        { data: { out: want } },
        { namespace },
      );
      lastWrite.set(key, out.metadata?.resourceVersion ?? '');
      cache.expectations.expectWrite(
        expectationOwner('copy', key),
        Resources.ConfigMap,
        key,
        out.metadata?.resourceVersion,
      );
      // a storm of wake-ups right after the write: none may run on the copy that lacks it
      for (let i = 0; i < 5; i++) controller.enqueue(key);
      writes.push(`${name}=${want}`);
    },
  }).watch(informer);
  const stop = new AbortController();
  cache.start();
  const running = controller.run(stop.signal);
  try {
    await eventually('the pre-existing object', () => informer.get(`${ns}/pre`)?.data?.out === 'A');
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'new', namespace: ns, labels: { app: label } },
      data: { in: 'b' },
    });
    await eventually('the new object', () => informer.get(`${ns}/new`)?.data?.out === 'B');
    await client.mergePatch(Resources.ConfigMap, 'new', { data: { in: 'c' } }, { namespace: ns });
    await eventually('the update', () => informer.get(`${ns}/new`)?.data?.out === 'C');
    assert.deepEqual(writes.sort(), ['new=B', 'new=C', 'pre=A']);
    // Each write woke the controller once more, and that pass wrote nothing.
    assert.ok((reconciles.get(`${ns}/pre`) ?? 0) >= 2);
    assert.deepEqual(stale, [], 'no reconcile saw a cache older than its own last write');
    assert.equal(
      cache.list<ConfigMap>(Resources.ConfigMap, { namespace: ns, labelSelector: `app=${label}` }).length,
      2,
    );
  } finally {
    stop.abort();
    await running;
    await cache.stop();
  }
});

void test('a child with controllerRef(owner) is garbage-collected with its owner', async () => {
  const dv = await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'owner', namespace: ns },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
  });
  await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'child', namespace: ns, ownerReferences: [controllerRef(dv, Resources.DataVolume)] },
  });
  await client.delete(Resources.DataVolume, 'owner', { namespace: ns });
  await eventually(
    'the garbage collector to delete the child',
    async () => (await client.getOrUndefined(Resources.ConfigMap, 'child', ns)) === undefined,
  );
});
