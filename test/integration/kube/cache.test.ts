// The informer cache against the real API server: indexes follow adds, updates and deletes; cached objects are
// trimmed, without managedFields, and frozen; a field selector narrows what is cached; a resource that cannot be
// listed makes the cache unhealthy, with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cache,
  ControllerUidIndex,
  controllerUid,
  KubeClient,
  PodClaimIndex,
  podClaims,
  Resources,
  type ConfigMap,
  type Event,
  type KubeObject,
  type Pod,
} from '../../../src/kube/index.ts';
import { eventually, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-cache', (c, n) => ((client = c), (ns = n)));

const NO_NODE = { 'cdi.kubevirt.io/test-no-such-node': 'true' };
const pod = (name: string, claims: string[], ownerUid?: string): Pod => ({
  metadata: {
    name,
    namespace: ns,
    ...(ownerUid
      ? {
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: ownerUid, controller: true },
          ],
        }
      : {}),
  },
  spec: {
    nodeSelector: NO_NODE,
    containers: [
      { name: 'c', image: 'localhost:5000/busybox:any', env: [{ name: 'BIG', value: 'x'.repeat(2000) }] },
    ],
    volumes: claims.map((c, i) => ({ name: `v${i}`, persistentVolumeClaim: { claimName: c } })),
  },
});

void test('indexes answer who mounts a claim and what a controller owns, through adds, updates and deletes', async () => {
  const owner = await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'owner', namespace: ns },
  });
  const cache = new Cache(client);
  cache.informer(Resources.Pod, {
    // what a controller does for other people's pods: keep only what it reads
    transform: (o) => {
      const p = o as Pod;
      return { ...p, spec: { containers: [], volumes: p.spec?.volumes ?? [] } } as KubeObject;
    },
  });
  cache.addIndex(Resources.Pod, PodClaimIndex, podClaims);
  cache.addIndex(Resources.Pod, ControllerUidIndex, controllerUid);
  cache.start();
  try {
    await cache.waitForSync();
    await client.create(Resources.Pod, pod('a', ['data', 'scratch'], owner.metadata?.uid));
    await client.create(Resources.Pod, pod('b', ['data']));
    const users = (claim: string): string[] =>
      cache
        .list<Pod>(Resources.Pod, { index: { name: PodClaimIndex, value: `${ns}/${claim}` } })
        .map((p) => p.metadata?.name ?? '')
        .sort();
    await eventually('both pods cached', () => users('data').length === 2);
    assert.deepEqual(users('scratch'), ['a']);
    assert.deepEqual(
      cache
        .list<Pod>(Resources.Pod, { index: { name: ControllerUidIndex, value: owner.metadata?.uid ?? '' } })
        .map((p) => p.metadata?.name),
      ['a'],
    );
    const a = cache.get<Pod>(Resources.Pod, 'a', ns);
    assert.ok(a);
    assert.equal(a.metadata?.managedFields, undefined, 'managedFields are dropped');
    assert.deepEqual(a.spec?.containers, [], 'the transform trimmed the pod');
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.spec?.volumes?.[0]), 'cached objects are frozen');
    assert.throws(() => {
      (a.metadata as { labels?: Record<string, string> }).labels = { changed: 'yes' };
    }, TypeError);

    await client.mergePatch(Resources.Pod, 'b', { metadata: { labels: { tier: 'x' } } }, { namespace: ns });
    await eventually(
      'the label in the cache',
      () => cache.list(Resources.Pod, { namespace: ns, labelSelector: 'tier=x' }).length === 1,
    );
    await client.delete(Resources.Pod, 'a', { namespace: ns, gracePeriodSeconds: 0 });
    await eventually('a gone from the index', () => users('scratch').length === 0);
    assert.deepEqual(users('data'), ['b']);
  } finally {
    await cache.stop();
  }
});

void test('a field selector narrows an event cache to PVC events that are not our own', async () => {
  const cache = new Cache(client);
  cache.informer(Resources.Event, {
    fieldSelector: 'involvedObject.kind=PersistentVolumeClaim,source!=cdi-controller-cache-test',
  });
  cache.start();
  try {
    await cache.waitForSync();
    const event = (name: string, kind: string, component: string): Event => ({
      metadata: { name, namespace: ns },
      involvedObject: { kind, name: 'claim', namespace: ns, uid: 'u' },
      reason: 'ProvisioningFailed',
      message: name,
      type: 'Warning',
      source: { component },
    });
    await client.create<Event>(
      Resources.Event,
      event('ours', 'PersistentVolumeClaim', 'cdi-controller-cache-test'),
    );
    await client.create<Event>(Resources.Event, event('pod', 'Pod', 'kubelet'));
    await client.create<Event>(
      Resources.Event,
      event('theirs', 'PersistentVolumeClaim', 'persistentvolume-controller'),
    );
    await eventually('the provisioner event cached', () => cache.get(Resources.Event, 'theirs', ns));
    assert.deepEqual(
      cache.list<Event>(Resources.Event, { namespace: ns }).map((e) => e.metadata?.name),
      ['theirs'],
    );
  } finally {
    await cache.stop();
  }
});

void test('a resource the API server cannot list makes the cache unhealthy, naming the informer and the error', async () => {
  const cache = new Cache(client, { informerDefaults: { backoff: { initialMs: 50, maxMs: 100 } } });
  cache.informer({
    group: 'nothing.cdi.kubevirt.io',
    version: 'v1',
    kind: 'Nothing',
    plural: 'nothings',
    namespaced: false,
  });
  const fine = cache.informer(Resources.ConfigMap, { labelSelector: `app=none-${ns}` });
  cache.start();
  try {
    await fine.waitForSync();
    const problems = await eventually('the list error in the problem', () => {
      const p = cache.problems(Date.now(), 0);
      return p.some((x) => x.includes('404')) ? p : undefined;
    });
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(
      problems[0] ?? '',
      /^informer nothings: not synced for \d+ s: GET \/apis\/nothing\.cdi\.kubevirt\.io\/v1\/nothings.*404/,
    );
    assert.equal(cache.synced, false);
    assert.deepEqual(cache.problems(Date.now(), 60_000), [], 'within the allowed time it is still healthy');
  } finally {
    await cache.stop();
  }
});
