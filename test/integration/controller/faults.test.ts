// The controllers under faults, on the real API server (fake kubelet, see harness.ts): a cache that lags the API
// server, a status written by someone newer, importer pods that serve hostile metrics, what a change wakes, and a
// process whose lease is taken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import {
  Resources,
  kubeTime,
  microTime,
  type KubeClient,
  type KubeObject,
  type Lease,
  type Pod,
} from '../../../src/kube/index.ts';
import { StaleReadError } from '../../../src/controller/shared/client.ts';
import type { DataVolume } from '../../../src/controller/shared/types.ts';
import { dvsForConfig, dvsForStorageClass, importPvcsForConfig } from '../../../src/controller/wakeups.ts';
import { eventually } from '../kube/cluster.ts';
import {
  LaggingClient,
  NO_NODE,
  freePort,
  kubelet,
  spawnController,
  startLoopbackHttps,
  trackSockets,
  useControllerSuite,
  type RunningManager,
} from './harness.ts';

const A = 'cdi.kubevirt.io/';
const lagging = LaggingClient.fromKubeconfig();
let client: KubeClient;
let ns: string;
let mgr: RunningManager;
const suite = useControllerSuite(
  'ctl-faults',
  {
    client: () => lagging,
    // two scrapes at a time, so that two hostile pods could hold every slot if a scrape were unbounded
    manager: { scrapeConcurrency: 2 },
  },
  (s) => ({ client, ns, mgr } = s),
);

/** Every importer pod the API server ever announced, by name: the UIDs of its ADDED events. */
function watchImporterPods(): {
  uids: (name: string) => string[];
  sync: () => Promise<void>;
  stop: () => void;
} {
  const ac = new AbortController();
  const added = new Map<string, string[]>();
  let sentinels = 0;
  const seenSentinel = new Set<string>();
  void (async () => {
    try {
      for await (const ev of client.watch<Pod>(Resources.Pod, { namespace: ns, signal: ac.signal })) {
        const name = ev.object.metadata?.name ?? '';
        if (ev.type !== 'ADDED') continue;
        if (name.startsWith('sentinel-')) seenSentinel.add(name);
        else added.set(name, [...(added.get(name) ?? []), ev.object.metadata?.uid ?? '']);
      }
    } catch {
      // aborted
    }
  })();
  return {
    uids: (name) => added.get(name) ?? [],
    // pod events arrive in order: once a pod created now is seen, everything before it has been seen too
    sync: async () => {
      const name = `sentinel-${sentinels++}`;
      await client.create(Resources.Pod, {
        metadata: { name, namespace: ns },
        spec: { nodeSelector: NO_NODE, containers: [{ name: 'c', image: 'localhost:5000/busybox:any' }] },
      } as KubeObject);
      await eventually(`the watch to deliver ${name}`, () => seenSentinel.has(name));
    },
    stop: () => ac.abort(),
  };
}

void test('a lagging PVC cache never yields a second importer pod, through a storm of wake-ups and a finished import', async () => {
  const pods = watchImporterPods();
  const key = `${ns}/dv-lag`;
  await suite.pvFor('dv-lag');
  await suite.createDv('dv-lag');
  const first = await eventually('importer-dv-lag', () => suite.getPod('importer-dv-lag'));
  // From here on the cache learns about PVC changes 2.5 s late, while pods are seen at once.
  lagging.lagMs.set('persistentvolumeclaims', 2500);
  const storm = setInterval(() => {
    for (const c of mgr.manager?.controllers ?? []) c.enqueue(key);
  }, 20);
  try {
    await kubelet.setStatus(client, ns, 'importer-dv-lag', kubelet.running(suite.metrics.ip));
    await kubelet.setStatus(
      client,
      ns,
      'importer-dv-lag',
      kubelet.terminated(0, '{"message":"Import Complete"}'),
    );
    // The import controller marks the PVC Succeeded and deletes the pod; the pod's deletion reaches the cache
    // seconds before the PVC's new annotations do. Acting on that stale PVC would start a second import.
    await suite.waitPhase('dv-lag', 'Succeeded');
    await eventually(
      'the importer pod deleted',
      async () => (await suite.getPod('importer-dv-lag')) === undefined,
    );
    const marker = mgr.reconciles.length;
    await eventually('an import reconcile on a cache that shows the success', () =>
      mgr.reconciles
        .slice(marker)
        .some((r) => r.controller === 'import-controller' && r.key === key && r.outcome.result === 'success'),
    );
    await pods.sync();
    assert.deepEqual(pods.uids('importer-dv-lag'), [first.metadata?.uid], 'exactly one importer pod, ever');
    assert.ok(
      mgr.reconciles.some((r) => r.key === key && r.outcome.result === 'deferred'),
      'the lag was felt: reconciles waited for the cache instead of acting on it',
    );
  } finally {
    clearInterval(storm);
    lagging.lagMs.delete('persistentvolumeclaims');
    pods.stop();
  }
});

void test('a status computed from a stale DataVolume is refused by the API server and retried; the newer status survives', async () => {
  await suite.createDv('dv-rv'); // no PV: it stays Pending
  const pending = await eventually('dv-rv Pending with conditions', async () => {
    const dv = await suite.getDv('dv-rv');
    return dv?.status?.conditions?.some((c) => c.type === 'Bound') ? dv : undefined;
  });
  await eventually('the cache to show it', () =>
    mgr.manager?.cache.get<DataVolume & KubeObject>(Resources.DataVolume, 'dv-rv', ns)?.metadata
      ?.resourceVersion === pending.metadata.resourceVersion
      ? true
      : undefined,
  );
  lagging.lagMs.set('datavolumes', 4000);
  try {
    // A newer writer (a new leader, another controller) adds to the status; our cache will not see it for 4 s.
    await client.mergePatch(
      Resources.DataVolume,
      'dv-rv',
      {
        status: {
          conditions: [
            ...(pending.status?.conditions ?? []),
            {
              type: 'ExternalCheck',
              status: 'True',
              reason: 'Checked',
              message: 'written by a newer writer',
              lastTransitionTime: kubeTime(new Date()),
            },
          ],
        },
      },
      { namespace: ns, subresource: 'status' },
    );
    const marker = mgr.reconciles.length;
    // Something the DataVolume must reflect changes on its PVC (seen at once): the restart count.
    await client.mergePatch(
      Resources.PersistentVolumeClaim,
      'dv-rv',
      { metadata: { annotations: { [`${A}storage.pod.restarts`]: '3' } } },
      { namespace: ns },
    );
    const dv = await eventually('restartCount 3 on the DataVolume', async () => {
      const d = await suite.getDv('dv-rv');
      return d?.status?.restartCount === 3 ? d : undefined;
    });
    assert.ok(
      dv.status?.conditions?.some((c) => c.type === 'ExternalCheck'),
      'the newer status was not overwritten by one computed from the stale copy',
    );
    const refused = mgr.reconciles
      .slice(marker)
      .filter((r) => r.key === `${ns}/dv-rv` && r.outcome.result === 'error')
      .map((r) => r.outcome.error);
    assert.ok(
      refused.some((e) => e instanceof StaleReadError && /changed since it was read/.test(e.message)),
      `a write refused for its stale resourceVersion: ${refused.map(String).join('; ')}`,
    );
  } finally {
    lagging.lagMs.delete('datavolumes');
  }
});

void test('importer pods that trickle their metrics forever or send a huge body cost one bounded scrape each; other imports keep their progress', async () => {
  const stopWriting = new AbortController();
  // writes a byte every 50 ms for as long as the client listens
  const trickle = await startLoopbackHttps((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const t = setInterval(() => res.write('#'), 50);
    res.on('close', () => clearInterval(t));
    stopWriting.signal.addEventListener('abort', () => clearInterval(t));
  });
  // 200 MiB of metrics text per request, as fast as the client reads it
  let hugeCompleted = 0;
  const huge = await startLoopbackHttps((_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const chunk = Buffer.alloc(1 << 20, 'x');
    let sent = 0;
    res.on('finish', () => hugeCompleted++);
    const pump = (): void => {
      while (sent < 200 << 20 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  });
  const trickleSockets = trackSockets(trickle.server);
  const hugeSockets = trackSockets(huge.server);
  let maxTrickleOpen = 0;
  trickle.server.on(
    'secureConnection',
    () => (maxTrickleOpen = Math.max(maxTrickleOpen, trickleSockets.open())),
  );
  try {
    const dvs: Record<string, DataVolume> = {};
    for (const [name, ip] of [
      ['dv-trickle', trickle.ip],
      ['dv-huge', huge.ip],
      ['dv-good', suite.metrics.ip],
    ] as const) {
      await suite.pvFor(name);
      dvs[name] = await suite.createDv(name);
      await eventually(`importer-${name}`, () => suite.getPod(`importer-${name}`));
      await kubelet.setStatus(client, ns, `importer-${name}`, kubelet.running(ip));
    }
    suite.metrics.set(dvs['dv-good']?.metadata.uid ?? '', 33);
    await eventually(
      'the good import shows its progress',
      async () => (await suite.getDv('dv-good'))?.status?.progress === '33.00%',
    );
    // the server sees the controller hang up (the trickle never ends and the body never completes by itself)
    await eventually('the trickling pod scraped twice, and hung up on each time', () =>
      trickleSockets.closed() >= 2 ? true : undefined,
    );
    await eventually('the huge body cut off', () => (hugeSockets.closed() >= 1 ? true : undefined));
    assert.equal(hugeCompleted, 0, 'no 200 MiB body was ever read to its end');
    assert.equal(maxTrickleOpen, 1, 'a pod is never scraped again while its last scrape is still running');
    for (const name of ['dv-trickle', 'dv-huge']) {
      const dv = await suite.getDv(name);
      assert.equal(dv?.status?.progress, 'N/A', `${name} shows no made-up progress`);
      assert.equal(dv?.status?.phase, 'ImportInProgress');
    }
    // and the good one keeps moving while the hostile ones are scraped again and again
    suite.metrics.set(dvs['dv-good']?.metadata.uid ?? '', 66.5);
    await eventually(
      'new progress',
      async () => (await suite.getDv('dv-good'))?.status?.progress === '66.50%',
    );
  } finally {
    stopWriting.abort();
    await trickle.close();
    await huge.close();
  }
});

void test('a StorageClass or CDIConfig change wakes only the DataVolumes and imports it can affect', async () => {
  await suite.createDv('fan-a'); // our immediate class, no PV: waits, in flight
  await suite.createDv('fan-w', {
    storage: { storageClassName: suite.wffc, resources: { requests: { storage: '1Gi' } } },
  });
  await suite.createDv('fan-default', { storage: { resources: { requests: { storage: '1Gi' } } } });
  await suite.pvFor('fan-done');
  await suite.createDv('fan-done');
  await eventually('importer-fan-done', () => suite.getPod('importer-fan-done'));
  await kubelet.setStatus(
    client,
    ns,
    'importer-fan-done',
    kubelet.terminated(0, '{"message":"Import Complete"}'),
  );
  await suite.waitPhase('fan-done', 'Succeeded');
  const cache = mgr.manager!.cache;
  await eventually(
    'the cache to show fan-done Succeeded',
    () =>
      cache.get<DataVolume & KubeObject>(Resources.DataVolume, 'fan-done', ns)?.status?.phase === 'Succeeded',
  );
  // (other tests of this file leave DataVolumes of our class behind: only the fan-* ones count here)
  const ours = (keys: string[]): string[] => keys.filter((k) => k.startsWith(`${ns}/fan-`)).sort();
  const cls = (name: string, isDefault = false) => ({
    metadata: {
      name,
      ...(isDefault ? { annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } : {}),
    },
    provisioner: 'kubernetes.io/no-provisioner',
  });
  assert.deepEqual(
    ours(dvsForStorageClass(cache, cls(suite.sc))),
    [`${ns}/fan-a`],
    'not fan-done: it is finished',
  );
  assert.deepEqual(ours(dvsForStorageClass(cache, cls(suite.wffc))), [`${ns}/fan-w`]);
  assert.deepEqual(
    ours(dvsForStorageClass(cache, cls('some-other-class', true))),
    [`${ns}/fan-default`],
    'a default class wakes the DataVolumes that name no class',
  );
  assert.deepEqual(
    ours(dvsForStorageClass(cache, cls('some-other-class'), cls('some-other-class', true))),
    [`${ns}/fan-default`],
    'and so does a class that stopped being the default',
  );
  assert.deepEqual(ours(dvsForConfig(cache)), [`${ns}/fan-a`, `${ns}/fan-default`, `${ns}/fan-w`]);
  assert.ok(!ours(importPvcsForConfig(cache)).includes(`${ns}/fan-done`), 'a finished import is not woken');
});

void test('a process whose lease is taken stops at once and exits 1, saying who holds it now', async () => {
  await mgr.stop(); // the process under test is now the only controller
  const port = await freePort();
  const proc = spawnController(ns, port, 'cdi-controller-lease-loser', await freePort());
  const leaseName = 'cdi-controller-leader-election-helper';
  try {
    await eventually('the process to lead', async () => {
      const l = await client.getOrUndefined<Lease>(Resources.Lease, leaseName, ns);
      return l?.spec?.holderIdentity === 'cdi-controller-lease-loser' ? l : undefined;
    });
    await eventually('/readyz', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    // Another replica takes the lease over (as it would once the loser's renewals stopped reaching the server).
    await eventually('the lease taken', async () => {
      const l = await client.get<Lease>(Resources.Lease, leaseName, ns);
      const now = microTime(new Date());
      return client
        .replace<Lease>(Resources.Lease, {
          ...l,
          spec: {
            ...l.spec,
            holderIdentity: 'thief',
            acquireTime: now,
            renewTime: now,
            leaseTransitions: (l.spec?.leaseTransitions ?? 0) + 1,
          },
        })
        .then(() => true)
        .catch(() => undefined);
    });
    assert.equal(await proc.exited, 1, `exit code; stderr: ${proc.stderr().slice(-800)}`);
    const line = proc
      .stderr()
      .split('\n')
      .find((l) => l.includes('"msg":"lost the lease'));
    assert.ok(line, proc.stderr().slice(-800));
    const entry = JSON.parse(line) as { level: string; msg: string };
    assert.equal(entry.level, 'error');
    assert.equal(
      entry.msg,
      `lost the lease ${ns}/${leaseName}: it is now held by thief; exiting so that a restart begins with a fresh cache`,
    );
    const lease = await client.get<Lease>(Resources.Lease, leaseName, ns);
    assert.equal(lease.spec?.holderIdentity, 'thief', 'the loser did not write the lease again');
  } finally {
    proc.kill();
  }
});
