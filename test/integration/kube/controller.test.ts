// Informer → queue → reconcile wiring against the real API server, with a reconcile that writes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Controller,
  InformerFactory,
  KubeClient,
  Resources,
  controllerRef,
  splitKey,
  type ConfigMap,
  type KubeObject,
} from '../../../src/kube/index.ts';
import type { DataVolume } from '../../../src/api/index.ts';
import { eventually, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-controller', (c, n) => ((client = c), (ns = n)), { crds: true });

void test('a controller reconciles every ConfigMap it sees and converges: a second pass changes nothing', async () => {
  await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'pre', namespace: ns, labels: { app: 't' } },
    data: { in: 'a' },
  });
  const factory = new InformerFactory(client);
  const informer = factory.informer<ConfigMap>(Resources.ConfigMap, {
    namespace: ns,
    labelSelector: 'app=t',
  });
  assert.equal(
    factory.informer(Resources.ConfigMap, { namespace: ns, labelSelector: 'app=t' }),
    informer,
    'informers are shared',
  );
  const writes: string[] = [];
  const reconciles = new Map<string, number>();
  const controller = new Controller({
    name: 'copy',
    workers: 2,
    reconcile: async (key) => {
      reconciles.set(key, (reconciles.get(key) ?? 0) + 1);
      const cm = informer.get(key);
      if (!cm) return;
      const want = (cm.data?.in ?? '').toUpperCase();
      if (cm.data?.out === want) return; // converged
      const { namespace, name } = splitKey(key);
      await client.mergePatch(Resources.ConfigMap, name, { data: { out: want } }, { namespace });
      writes.push(`${name}=${want}`);
    },
  }).watch(informer);
  const stop = new AbortController();
  factory.start();
  const running = controller.run(stop.signal);
  try {
    await eventually('the pre-existing object', () => informer.get(`${ns}/pre`)?.data?.out === 'A');
    await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'new', namespace: ns, labels: { app: 't' } },
      data: { in: 'b' },
    });
    await eventually('the new object', () => informer.get(`${ns}/new`)?.data?.out === 'B');
    await client.mergePatch(Resources.ConfigMap, 'new', { data: { in: 'c' } }, { namespace: ns });
    await eventually('the update', () => informer.get(`${ns}/new`)?.data?.out === 'C');
    assert.deepEqual(writes.sort(), ['new=B', 'new=C', 'pre=A']);
    // Each write woke the controller once more, and that pass wrote nothing.
    assert.ok((reconciles.get(`${ns}/pre`) ?? 0) >= 2);
  } finally {
    stop.abort();
    await running;
    await factory.stop();
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
