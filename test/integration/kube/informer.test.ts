// The informer against the real API server: it sees adds, updates and deletes, survives watches that the
// server ends every second, and restarts a watch that went silent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Informer, KubeClient, Resources, keyOf, type ConfigMap } from '../../../src/kube/index.ts';
import { eventually, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-informer', (c, n) => ((client = c), (ns = n)));

function recorder(inf: Informer<ConfigMap>): string[] {
  const seen: string[] = [];
  inf.onAdd((o) => seen.push(`add ${keyOf(o)} ${o.data?.v ?? ''}`));
  inf.onUpdate((old, o) => seen.push(`update ${keyOf(o)} ${old.data?.v ?? ''}->${o.data?.v ?? ''}`));
  inf.onDelete((o) => seen.push(`delete ${keyOf(o)}`));
  return seen;
}

void test('the informer lists, then sees add, update and delete; waitForSync resolves after the list', async () => {
  await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'before', namespace: ns },
    data: { v: '0' },
  });
  const inf = new Informer<ConfigMap>(client, Resources.ConfigMap, {
    namespace: ns,
    labelSelector: 'test=informer',
  });
  const all = new Informer<ConfigMap>(client, Resources.ConfigMap, { namespace: ns });
  const seen = recorder(inf);
  inf.start();
  all.start();
  try {
    await inf.waitForSync();
    await all.waitForSync();
    assert.ok(inf.hasSynced);
    assert.equal(seen.length, 0, 'the label selector filters the pre-existing object out');
    assert.equal(all.get(`${ns}/before`)?.data?.v, '0', 'the cache holds what was listed');
    const labels = { test: 'informer' };
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'a', namespace: ns, labels },
      data: { v: '1' },
    });
    await client.mergePatch(Resources.ConfigMap, 'a', { data: { v: '2' } }, { namespace: ns });
    await client.delete(Resources.ConfigMap, 'a', { namespace: ns });
    await eventually('the delete to be seen', () => seen.includes(`delete ${ns}/a`));
    assert.deepEqual(seen, [`add ${ns}/a 1`, `update ${ns}/a 1->2`, `delete ${ns}/a`]);
    assert.equal(inf.get(`${ns}/a`), undefined);
  } finally {
    await inf.stop();
    await all.stop();
  }
});

void test('the informer resumes after the server ends its watch (timeoutSeconds=1) without missing or repeating events', async () => {
  const inf = new Informer<ConfigMap>(client, Resources.ConfigMap, {
    namespace: ns,
    labelSelector: 'test=expiry',
    watchTimeoutSeconds: 1,
  });
  const seen = recorder(inf);
  inf.start();
  try {
    await inf.waitForSync();
    const labels = { test: 'expiry' };
    for (let i = 1; i <= 4; i++) {
      // Wait for a fresh watch connection each time, so that changes straddle server-side watch ends.
      const watches = inf.stats.watches;
      await eventually('the next watch', () => inf.stats.watches > watches + 1);
      await client.apply(
        Resources.ConfigMap,
        { metadata: { name: 'x', namespace: ns, labels }, data: { v: String(i) } },
        { fieldManager: 'test' },
      );
    }
    await eventually('the last update', () => inf.get(`${ns}/x`)?.data?.v === '4');
    assert.deepEqual(seen, [
      `add ${ns}/x 1`,
      `update ${ns}/x 1->2`,
      `update ${ns}/x 2->3`,
      `update ${ns}/x 3->4`,
    ]);
    assert.equal(
      inf.stats.lists,
      1,
      'a watch that ends normally resumes from its resourceVersion, no relist',
    );
  } finally {
    await inf.stop();
  }
});

void test('the staleness watchdog restarts a silent watch, and the informer still sees changes', async () => {
  const inf = new Informer<ConfigMap>(client, Resources.ConfigMap, {
    namespace: ns,
    labelSelector: 'test=stale',
    watchTimeoutSeconds: 3600,
    staleAfterMs: 300,
  });
  const seen = recorder(inf);
  inf.start();
  try {
    await inf.waitForSync();
    await eventually('a watchdog restart', () => inf.stats.staleRestarts >= 2);
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 's', namespace: ns, labels: { test: 'stale' } },
      data: { v: '1' },
    });
    await eventually('the add after restarts', () => seen.includes(`add ${ns}/s 1`));
    assert.equal(inf.stats.lists, 1);
  } finally {
    await inf.stop();
  }
});
