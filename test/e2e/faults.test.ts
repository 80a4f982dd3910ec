// Imports that survive what breaks, end to end on the full cluster (issue 9): the deployed cdi-controller killed ten
// times, the API server restarted, the importer pod deleted, the connection dropped, the HTTP server restarted and the
// volume's disk filled, each in the middle of one import. "The middle" is a byte count, not a moment: the image
// server's Valve lets the body through only as far as the test has opened it, so the fault lands while the importer
// is provably mid-body (no sleeps). Every test ends with the right md5 on the volume and checks, from a watch of the
// namespace's importer pods, that no PVC ever had two importer pods at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statfs, stat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Resources, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import type { DataVolume } from '../../src/controller/shared/types.ts';
import { Valve, startFileServer, type FileServer, type FileServerOptions } from '../support/fileserver.ts';
import { clusterClient, createNamespace, eventually, repoRoot } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  createDataVolume,
  deployCdi,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  waitForDataVolume,
  watchImporterPods,
  type Fixtures,
  type ImporterPodWatch,
} from './harness.ts';

const run = promisify(execFile);
let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let undeploy: () => Promise<void> = async () => {};
let fx: Fixtures;
let pods: ImporterPodWatch;
const servers: FileServer[] = [];

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undeploy = await deployCdi(client);
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'faults'));
  // 64 MiB, every other MiB zero: disk.raw is served as is (a raw file target keeps a progress record every 16 MiB)
  fx = await makeFixtures(64);
  pods = await watchImporterPods(client, ns);
});

after(async () => {
  await pods?.stop();
  await cleanupNs();
  for (const s of servers) await s.close();
  await fx?.cleanup();
  await undeploy();
});

async function serve(o: Partial<FileServerOptions> = {}): Promise<FileServer> {
  const s = await startFileServer({ root: fx.dir, host: NODE_IP, etag: true, ...o });
  servers.push(s);
  return s;
}

const sizeOf = async (file: string): Promise<number> => (await stat(join(fx.dir, file))).size;

/** Waits for the valve to have let `n` bytes through, with a deadline (a stuck import fails the test, not hangs it). */
async function passed(valve: Valve, n: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_r, reject) => {
    timer = setTimeout(
      () => reject(new Error(`gave up waiting for ${what}: ${valve.passed} of ${n} bytes served`)),
      300_000,
    );
  });
  try {
    await Promise.race([valve.reached(n), limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** The end every test shares: Succeeded, the right bytes, and never two importer pods at once. */
async function assertImported(name: string): Promise<DataVolume> {
  const dv = await waitForDataVolume(client, ns, name, 'Succeeded');
  assert.equal(dv.status?.progress, '100.0%');
  assert.equal(await md5OnVolume(client, ns, name, { bytes: fx.rawSize }), fx.rawMd5);
  assert.equal(pods.peak.get(name), 1, `importer pods for ${name} at one moment`);
  return dv;
}

const controllerPods = async (): Promise<(KubeObject & { status?: PodStatus })[]> =>
  (
    await client.list<KubeObject & { status?: PodStatus }>(Resources.Pod, {
      namespace: 'cdi',
      labelSelector: 'cdi.kubevirt.io=cdi-deployment',
    })
  ).items;
interface PodStatus {
  conditions?: { type: string; status: string }[];
}

void test('the controller killed 10 times during one import: Succeeded, the right bytes, one importer pod', async () => {
  const file = fx.files.qcow2;
  const size = await sizeOf(file);
  const valve = new Valve(0);
  const srv = await serve({ valve });
  await createDataVolume(client, ns, 'ctl-kill', { http: { url: `${srv.url}/${file}` } }, { size: '128Mi' });
  const step = Math.floor((size * 0.9) / 10);
  for (let k = 1; k <= 10; k++) {
    valve.open(k * step);
    await passed(valve, k * step, `the importer to read ${k * step} bytes`);
    const before = await controllerPods();
    assert.ok(before.length > 0, 'a controller pod to kill');
    // half the kills are SIGKILL (no grace: the lease is not released), half a graceful stop
    for (const p of before)
      await client.delete(Resources.Pod, p.metadata?.name ?? '', {
        namespace: 'cdi',
        ...(k % 2 === 1 ? { gracePeriodSeconds: 0 } : {}),
      });
    const old = new Set(before.map((p) => p.metadata?.uid));
    await eventually(
      `a new controller pod ready after kill ${k}`,
      async () =>
        (await controllerPods()).some(
          (p) =>
            !old.has(p.metadata?.uid) &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ),
      180_000,
      500,
    );
  }
  valve.open();
  await assertImported('ctl-kill');
});

void test('the API server restarted mid-import: Succeeded, the right bytes, one importer pod', async () => {
  const file = fx.files.rawXz;
  const size = await sizeOf(file);
  const valve = new Valve(Math.floor(size * 0.4));
  const srv = await serve({ valve });
  await createDataVolume(
    client,
    ns,
    'api-restart',
    { http: { url: `${srv.url}/${file}` } },
    { size: '128Mi' },
  );
  await passed(valve, Math.floor(size * 0.4), 'the importer to read 40% of the image');
  // hack/cluster: stop kube-apiserver and start it again (etcd, kubelet and the pods stay)
  await run('bash', [join(repoRoot, 'hack/cluster/cluster.sh'), 'restart-apiserver'], { timeout: 180_000 });
  await eventually('the API server to answer again', () => client.list(Resources.Namespace), 120_000, 500);
  valve.open();
  await assertImported('api-restart');
});

void test('the importer pod deleted mid-import: the next pod resumes (bytes served well under 2× the image)', async () => {
  const file = 'disk.raw';
  const size = await sizeOf(file);
  const at = Math.floor(size * 0.6);
  const valve = new Valve(at);
  const srv = await serve({ valve });
  await createDataVolume(
    client,
    ns,
    'pod-deleted',
    { http: { url: `${srv.url}/${file}` } },
    { size: '128Mi' },
  );
  await passed(valve, at, 'the importer to read 60% of the image');
  const pod = await client.get(Resources.Pod, 'importer-pod-deleted', ns);
  await client.delete(Resources.Pod, 'importer-pod-deleted', { namespace: ns });
  // the next pod must not get the stalled body of the old one: open only once the old pod is gone
  await eventually(
    'the old importer pod gone',
    async () =>
      (await client.getOrUndefined(Resources.Pod, 'importer-pod-deleted', ns))?.metadata?.uid !==
      pod.metadata?.uid,
    180_000,
    500,
  );
  valve.open();
  await assertImported('pod-deleted');
  assert.equal(pods.seen.get('pod-deleted')?.size, 2, 'a second importer pod did the rest');
  const served = srv.bytesSent();
  assert.ok(
    srv.requests.some((r) => /^bytes=[1-9]\d*-/.test(String(r.headers.range ?? ''))),
    `the second pod asked for the rest by range: ${JSON.stringify(srv.requests.map((r) => r.headers.range ?? null))}`,
  );
  assert.ok(served < 1.5 * size, `served ${served} bytes for a ${size}-byte image`);
  console.log(`# pod deleted at ${at} of ${size} bytes: ${served} served (${(served / size).toFixed(2)}×)`);
});

void test('the connection dropped three times mid-body: continued by range (bytes served under 1.2× the image)', async () => {
  const file = fx.files.rawGz;
  const size = await sizeOf(file);
  let drops = 0;
  const srv = await serve({ dropAfterBytes: Math.floor(size / 5), dropTimes: 3, onDrop: () => drops++ });
  await createDataVolume(client, ns, 'dropped', { http: { url: `${srv.url}/${file}` } }, { size: '128Mi' });
  await assertImported('dropped');
  assert.equal(drops, 3);
  const served = srv.bytesSent();
  const ranged = srv.requests.filter((r) => /^bytes=[1-9]\d*-/.test(String(r.headers.range ?? '')));
  assert.ok(ranged.length >= 3, `three continuations by range: ${srv.requests.length} requests`);
  assert.ok(served < 1.2 * size, `served ${served} bytes for a ${size}-byte image`);
  assert.equal(pods.seen.get('dropped')?.size, 1, 'one importer pod (continued in place, not restarted)');
  console.log(`# 3 drops: ${served} of ${size} bytes served (${(served / size).toFixed(2)}×)`);
});

void test('the HTTP server restarted mid-import: Succeeded, the right bytes, one importer pod', async () => {
  const file = fx.files.vmdk;
  const size = await sizeOf(file);
  const valve = new Valve(Math.floor(size * 0.4));
  const first = await startFileServer({ root: fx.dir, host: NODE_IP, etag: true, valve });
  await createDataVolume(
    client,
    ns,
    'srv-restart',
    { http: { url: `${first.url}/${file}` } },
    { size: '128Mi' },
  );
  await passed(valve, Math.floor(size * 0.4), 'the importer to read 40% of the image');
  await first.close();
  const second = await serve({ port: first.port, valve });
  valve.open();
  await assertImported('srv-restart');
  assert.ok(second.requests.length > 0, 'the importer came back to the restarted server');
});

void test("the volume's disk full mid-import: a clear message, never Succeeded; with space again it completes", async () => {
  // A small loop filesystem as the volume (a hostPath PV bound to the claim in advance), so the harness fills a disk
  // of its own, never the machine's.
  const tag = ns;
  const dir = join(fx.dir, 'diskfull');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  await run('truncate', ['-s', '96M', join(dir, 'fs.img')]);
  await run('mkfs.ext4', ['-q', '-F', '-m', '0', join(dir, 'fs.img')]);
  await run('mount', ['-o', 'loop', join(dir, 'fs.img'), mnt]);
  await run('chmod', ['0777', mnt]); // the importer does not run as root, and a hostPath volume ignores fsGroup
  const sc = `faults-${tag}`;
  try {
    await client.create(Resources.StorageClass, {
      metadata: { name: sc },
      provisioner: 'kubernetes.io/no-provisioner',
      volumeBindingMode: 'Immediate',
    } as KubeObject);
    await client.create(Resources.PersistentVolume, {
      metadata: { name: sc },
      spec: {
        capacity: { storage: '96Mi' },
        accessModes: ['ReadWriteOnce'],
        volumeMode: 'Filesystem',
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: sc,
        hostPath: { path: mnt, type: 'Directory' },
        claimRef: { namespace: ns, name: 'disk-full' },
      },
    } as KubeObject);
    const file = 'disk.raw';
    const size = await sizeOf(file);
    const valve = new Valve(Math.floor(size / 4));
    const srv = await serve({ valve });
    await createDataVolume(
      client,
      ns,
      'disk-full',
      { http: { url: `${srv.url}/${file}` } },
      {
        pvc: {
          accessModes: ['ReadWriteOnce'],
          volumeMode: 'Filesystem',
          storageClassName: sc,
          resources: { requests: { storage: '96Mi' } },
        },
      },
    );
    await passed(valve, Math.floor(size / 4), 'the importer to read a quarter of the image');
    // fill what is left of the filesystem (fallocate takes it all at once; dd mops up what it leaves)
    const free = await statfs(mnt);
    await run('fallocate', ['-l', String(free.bavail * free.bsize), join(mnt, 'filler')]).catch(() => {});
    await run('dd', ['if=/dev/zero', `of=${join(mnt, 'filler2')}`, 'bs=64k']).catch(() => {});
    valve.open();
    const full = await eventually(
      'a condition saying the volume is full',
      async () => {
        const dv = await client.get<DataVolume & KubeObject>(Resources.DataVolume, 'disk-full', ns);
        assert.notEqual(dv.status?.phase, 'Succeeded', 'Succeeded on a full disk');
        const c = dv.status?.conditions?.find((x) => x.type === 'Running' && x.status === 'False');
        return /too small|no space left/i.test(c?.message ?? '') ? dv : undefined;
      },
      300_000,
      1000,
    );
    const running = full.status?.conditions?.find((x) => x.type === 'Running');
    console.log(`# disk full: ${full.status?.phase}: ${running?.reason}: ${running?.message}`);
    assert.notEqual(full.status?.phase, 'Succeeded');
    assert.notEqual(full.status?.phase, 'Failed', 'a full disk is retried, not given up');
    // the user frees space (here: the filler goes): the next attempt completes, with the right bytes
    await rm(join(mnt, 'filler'), { force: true });
    await rm(join(mnt, 'filler2'), { force: true });
    await assertImported('disk-full');
  } finally {
    await client.delete(Resources.DataVolume, 'disk-full', { namespace: ns }).catch(() => false);
    await eventually(
      'the disk-full claim and its pods gone',
      async () =>
        (await client.getOrUndefined(Resources.PersistentVolumeClaim, 'disk-full', ns)) === undefined &&
        (await client.list(Resources.Pod, { namespace: ns })).items.length === 0,
      180_000,
      1000,
    ).catch(() => undefined);
    await client.delete(Resources.PersistentVolume, sc).catch(() => false);
    await client.delete(Resources.StorageClass, sc).catch(() => false);
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
  }
});
