// 410 Gone from the real API server: the informer's resourceVersion falls out of the API server's watch
// cache, the server answers 410, and the informer relists, delivering the changes it missed as a diff.
//
// The watch cache keeps every event younger than 75 s (eventFreshDuration) and otherwise evicts the oldest
// when it is full, so the test waits that long and then writes until a watch from the old version is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Informer, KubeClient, Resources, isGone, keyOf, type ConfigMap } from '../../../src/kube/index.ts';
import { clusterClient, createNamespace, eventually } from './cluster.ts';

let client: KubeClient;
let ns: string;
let cleanup: () => Promise<void> = async () => {};

before(async () => {
  client = clusterClient();
  ({ name: ns, cleanup } = await createNamespace(client, 'kube-gone'));
});
after(async () => cleanup());

/** True when a watch of configmaps from `rv` is refused with 410, as an HTTP status or an ERROR event. */
async function watchIsGone(rv: string): Promise<boolean> {
  try {
    for await (const ev of client.watch<{ code?: number }>(Resources.ConfigMap, {
      namespace: ns,
      resourceVersion: rv,
      timeoutSeconds: 1,
    })) {
      if (ev.type === 'ERROR') return ev.object.code === 410;
    }
    return false;
  } catch (e) {
    if (isGone(e)) return true;
    throw e;
  }
}

void test(
  'after 410 Gone the informer relists and reports what changed meanwhile',
  { timeout: 600_000 },
  async () => {
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'stays', namespace: ns },
      data: { v: '1' },
    });
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'goes', namespace: ns },
      data: { v: '1' },
    });
    const inf = new Informer<ConfigMap>(client, Resources.ConfigMap, {
      namespace: ns,
      fieldSelector: 'metadata.name!=churn',
    });
    const seen: string[] = [];
    const ours = (o: ConfigMap): boolean => ['stays', 'goes', 'new'].includes(o.metadata?.name ?? '');
    inf.onAdd((o) => ours(o) && seen.push(`add ${keyOf(o)}`));
    inf.onUpdate((_o, n) => ours(n) && seen.push(`update ${keyOf(n)} ${n.data?.v}`));
    inf.onDelete((o) => ours(o) && seen.push(`delete ${keyOf(o)}`));
    inf.start();
    await inf.waitForSync();
    await inf.stop();
    const rv = inf.lastResourceVersion;
    assert.ok(rv);
    seen.length = 0;

    // While the informer is away: one delete, one add, one update.
    await client.delete(Resources.ConfigMap, 'goes', { namespace: ns });
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'new', namespace: ns },
      data: { v: '1' },
    });
    await client.mergePatch(Resources.ConfigMap, 'stays', { data: { v: '2' } }, { namespace: ns });

    await new Promise((r) => setTimeout(r, 80_000));
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'churn', namespace: ns },
      data: { n: '0' },
    });
    // Churn in parallel batches, probing between batches; the cache may have grown to thousands of events.
    let writes = 0;
    while (!(await watchIsGone(rv))) {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 50; i++) {
            await client.mergePatch(
              Resources.ConfigMap,
              'churn',
              { data: { n: String(++writes) } },
              { namespace: ns },
            );
          }
        }),
      );
      assert.ok(writes < 100_000, 'the watch cache never let go of the old resourceVersion');
    }
    inf.start();
    try {
      await eventually('the relist diff', () => seen.length >= 3);
      const detail = `seen ${JSON.stringify(seen)}, stats ${JSON.stringify(inf.stats)}, ${writes} churn writes`;
      assert.ok(inf.stats.relistsAfterGone >= 1, `the informer saw the 410: ${detail}`);
      assert.deepEqual(seen.sort(), [`add ${ns}/new`, `delete ${ns}/goes`, `update ${ns}/stays 2`], detail);
      assert.deepEqual(
        inf
          .keys()
          .filter((k) => !k.endsWith('/kube-root-ca.crt'))
          .sort(),
        [`${ns}/new`, `${ns}/stays`],
      );
    } finally {
      await inf.stop();
    }
  },
);
