/**
 * `npm run bench:scale`: the controller and the importer at scale on the local full cluster (issue 9). Deploys the
 * images hack/images/build.sh pushed last (.cluster/images.env), runs each case, prints one row per number with the
 * command that produced it, and asserts nothing about time.
 *   blank    N blank DataVolumes (default 500) created at once, twice: with the reconcilers reading from the informer
 *            cache (the design), and with every read going to the API server (CDI_READS=api, the old design).
 *            Time until every PVC and importer pod exists and until every DataVolume is Succeeded; the controller's
 *            peak RSS (VmHWM of its process, found through the pod's cgroup); the requests it sent per second (its
 *            own rest_client_requests_total) and the API server's whole request rate (apiserver_request_total: it
 *            has no per-user label, so that one counts the kubelet, the CSI sidecars and kube-controller-manager too).
 *   http     M concurrent HTTP imports (default 50) of a small qcow2 on the one node: all Succeeded, no importer
 *            restarts, md5 on a sample.
 *   1g       `kubectl apply` of a DataVolume → Succeeded for a 1 GiB qcow2 (half random) against `cdi import` of the
 *            same image on the host; md5 both times.
 *   rss      the importer pod's peak memory importing a 10 GiB image (half data) as qcow2, raw.xz and raw.gz: the peak
 *            of the pod cgroup's anonymous memory (total_rss, sampled every 100 ms: page cache excluded) and the
 *            largest VmHWM of its processes.
 * Options: --cases blank,http,1g,rss (default all)  --dvs <N>  --imports <M>  --limit <s> (per case, default 900)
 * --reads cache,api (the blank case's modes; both by default, which adds the ratio rows)
 * --prepare (make the cached fixtures only, no cluster: ~/.cache/cdi-dev/bench-scale/)
 * Needs root (cgroups, /proc of the pods' processes) and the full cluster; run it holding the cluster lock if you
 * share the cluster.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import { homedir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Informer, Resources, type KubeClient, type KubeObject } from '../src/kube/index.ts';
import type { DataVolume } from '../src/controller/shared/types.ts';
import { startFileServer, type FileServer } from '../test/support/fileserver.ts';
import { md5File, seededBytes } from '../test/support/images.ts';
import {
  clusterClient,
  createNamespace,
  eventually,
  kubectl,
  repoRoot,
} from '../test/integration/kube/cluster.ts';
import { NODE_IP, deployCdi, md5OnVolume, requireFullCluster } from '../test/e2e/harness.ts';
import { serviceAccountToken } from '../test/support/metrics-auth.ts';
import { MetricsReader } from '../src/deploy/controller.ts';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const arg = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? (argv[i + 1] ?? dflt) : dflt;
};
const CASES = arg('--cases', 'blank,http,1g,rss').split(',');
/** The blank case's read modes (--reads cache,api): both by default, for the ratio. */
const READS = arg('--reads', 'cache,api').split(',');
const DVS = Number(arg('--dvs', '500'));
const IMPORTS = Number(arg('--imports', '50'));
/** How long one case may take before it is reported as unfinished (--limit <seconds>). */
const LIMIT_MS = Number(arg('--limit', '900')) * 1000;
const CACHE = path.join(homedir(), '.cache', 'cdi-dev', 'bench-scale');
const MiB = 1 << 20;
const GiB = 1 << 30;

const rows: string[] = [];
/** One result line, with the command that reproduces it. */
function row(what: string, value: string, cmd: string): void {
  const line = `${what.padEnd(58)} ${value.padEnd(44)} $ ${cmd}`;
  rows.push(line);
  console.log(line);
}
const cmdFor = (c: string, extra = ''): string => `npm run bench:scale -- --cases ${c}${extra}`;
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const mib = (b: number): string => `${(b / MiB).toFixed(0)} MiB`;

// ---------- fixtures (cached; --prepare makes them without the cluster) ----------

/**
 * A raw disk of `size` bytes, alternating 1 MiB of data and 1 MiB of zeros. `pattern`: the data is a 16 KiB random
 * block repeated (each copy stamped with its offset), so that xz and gzip compress a 10 GiB image in a minute or two on
 * this machine instead of half an hour; the importer's memory does not depend on how well the data compresses.
 */
async function makeDisk(file: string, size: number, pattern: boolean): Promise<string> {
  if (existsSync(file)) return md5File(file);
  const fh = await open(`${file}.part`, 'w');
  const block = seededBytes('bench-scale', 16 << 10);
  try {
    for (let off = 0; off < size; off += 2 * MiB) {
      let data: Buffer;
      if (pattern) {
        data = Buffer.alloc(MiB);
        for (let o = 0; o < MiB; o += block.length) {
          block.copy(data, o);
          data.writeBigUInt64BE(BigInt(off + o), o);
        }
      } else data = seededBytes('bench-scale', MiB, off);
      await fh.write(data, 0, data.length, off);
    }
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  await rename(`${file}.part`, file);
  return md5File(file);
}

async function derive(src: string, out: string, sh: string): Promise<void> {
  if (existsSync(out)) return;
  await run('sh', ['-c', `${sh} && mv "$OUT.part" "$OUT"`], {
    env: { ...process.env, SRC: src, OUT: out },
    maxBuffer: 1 << 20,
  });
}
const toQcow2 = (src: string, out: string): Promise<void> =>
  derive(src, out, 'qemu-img convert -f raw -O qcow2 "$SRC" "$OUT.part"');

interface Fixture {
  dir: string;
  md5: string;
  size: number;
}
async function fixture(name: string, size: number, pattern: boolean, kinds: string[]): Promise<Fixture> {
  const dir = path.join(CACHE, name);
  await mkdir(dir, { recursive: true });
  const raw = path.join(dir, 'disk.raw');
  const md5 = await makeDisk(raw, size, pattern);
  if (kinds.includes('qcow2')) await toQcow2(raw, path.join(dir, 'disk.qcow2'));
  if (kinds.includes('gz'))
    await derive(raw, path.join(dir, 'disk.raw.gz'), 'gzip -1 -c "$SRC" > "$OUT.part"');
  if (kinds.includes('xz'))
    await derive(raw, path.join(dir, 'disk.raw.xz'), 'xz -T2 -3 -c "$SRC" > "$OUT.part"');
  return { dir, md5, size };
}
const small = (): Promise<Fixture> => fixture('small-32m', 32 * MiB, false, ['qcow2']);
const oneGiB = (): Promise<Fixture> => fixture('1g', GiB, false, ['qcow2']);
const tenGiB = (): Promise<Fixture> => fixture('10g', 10 * GiB, true, ['qcow2', 'gz', 'xz']);

// ---------- cluster helpers ----------

type Dv = DataVolume & KubeObject;
interface PodLike extends KubeObject {
  spec?: { containers?: { name: string }[] };
  status?: {
    podIP?: string;
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount?: number }[];
  };
}

/** The deployed controller's pod (the one Ready pod of cdi-deployment). */
async function controllerPod(client: KubeClient): Promise<PodLike> {
  return eventually(
    'a ready cdi-controller pod',
    async () =>
      (
        await client.list<PodLike>(Resources.Pod, {
          namespace: 'cdi',
          labelSelector: 'cdi.kubevirt.io=cdi-deployment',
        })
      ).items.find(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      ),
    180_000,
    500,
  );
}

/** The memory cgroup directory of a pod on this node (cgroupfs driver, cgroup v1). */
function podCgroup(uid: string): string | undefined {
  const base = '/sys/fs/cgroup/memory/kubepods';
  for (const d of [base, `${base}/burstable`, `${base}/besteffort`]) {
    const p = `${d}/pod${uid}`;
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The pids in a cgroup and every cgroup below it (the pod's containers). */
function pidsUnder(cg: string): number[] {
  const out: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const l of readFileSync(`${d}/cgroup.procs`, 'utf8').split('\n')) if (l) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(`${d}/${e.name}`);
    } catch {
      // the pod went away while we looked
    }
  };
  walk(cg);
  return out;
}

/** VmHWM (peak resident set) of a process, in bytes. */
function vmHwm(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function cgroupAnon(cg: string): number {
  try {
    const m = /^total_rss (\d+)/m.exec(readFileSync(`${cg}/memory.stat`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The sum of a counter over all its label sets in a Prometheus text exposition. */
function counterSum(text: string, name: string): number {
  let n = 0;
  for (const l of text.split('\n'))
    if (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) n += Number(l.slice(l.lastIndexOf(' ') + 1));
  return n;
}
const apiserverRequests = async (): Promise<number> =>
  counterSum((await kubectl('get', '--raw', '/metrics')).stdout, 'apiserver_request_total');
/** The controller's own API request count, from its HTTPS /metrics with the cdi-metrics-reader token (ADR 0040). */
async function controllerRequests(client: KubeClient, ip: string): Promise<number> {
  const token = await serviceAccountToken(client, 'cdi', MetricsReader);
  const text = await new Promise<string>((resolve, reject) => {
    https
      .get(
        // the serving certificate is the operator's; this bench reads a counter, it does not check who serves it
        {
          host: ip,
          port: 8443,
          path: '/metrics',
          headers: { authorization: `Bearer ${token}` },
          rejectUnauthorized: false,
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () =>
            res.statusCode === 200
              ? resolve(body)
              : reject(new Error(`controller /metrics: HTTP ${res.statusCode}`)),
          );
        },
      )
      .on('error', reject);
  });
  return counterSum(text, 'rest_client_requests_total');
}

/** Removes a namespace and waits until it is gone (its PVCs, and so their volumes, with it). */
async function dropNamespace(client: KubeClient, ns: string): Promise<void> {
  await client.delete(Resources.Namespace, ns);
  await eventually(
    `namespace ${ns} gone`,
    async () => (await client.getOrUndefined(Resources.Namespace, ns)) === undefined,
    900_000,
    2000,
  );
}

/**
 * Undoes the case's deployment (CDI removed if the case installed it, its controller environment taken off) and waits
 * until no cdi-controller pod is on its way out: the next case measures one process. Where CDI was installed before
 * the bench, the controller stays (a ready pod, none terminating).
 */
async function undeployController(client: KubeClient, undo: () => Promise<void>): Promise<void> {
  await undo();
  await eventually(
    'no cdi-controller pod terminating',
    async () => {
      const pods = (
        await client.list<PodLike>(Resources.Pod, {
          namespace: 'cdi',
          labelSelector: 'cdi.kubevirt.io=cdi-deployment',
        })
      ).items;
      return pods.every((p) => !p.metadata?.deletionTimestamp);
    },
    600_000,
    1000,
  );
}

/** Informers on a namespace's DataVolumes, PVCs and importer pods, with the moment each count was reached. */
async function watchNamespace(client: KubeClient, ns: string) {
  const dvs = new Informer<Dv>(client, Resources.DataVolume, { namespace: ns });
  const pvcs = new Informer<KubeObject>(client, Resources.PersistentVolumeClaim, { namespace: ns });
  const pods = new Informer<PodLike>(client, Resources.Pod, {
    namespace: ns,
    labelSelector: 'cdi.kubevirt.io=importer',
  });
  const podUids = new Set<string>();
  let maxRestarts = 0;
  const seePod = (p: PodLike): void => {
    podUids.add(p.metadata?.uid ?? '');
    for (const c of p.status?.containerStatuses ?? [])
      maxRestarts = Math.max(maxRestarts, c.restartCount ?? 0);
  };
  pods.onAdd(seePod).onUpdate((_o, p) => seePod(p));
  for (const i of [dvs, pvcs, pods]) i.start();
  await Promise.all([dvs.waitForSync(), pvcs.waitForSync(), pods.waitForSync()]);
  return {
    succeeded: (): Dv[] => dvs.list(ns).filter((d) => d.status?.phase === 'Succeeded'),
    dvs: (): Dv[] => dvs.list(ns),
    pvcCount: (): number => pvcs.list(ns).length,
    podCount: (): number => podUids.size,
    maxRestarts: (): number => maxRestarts,
    stop: async (): Promise<void> => {
      await Promise.all([dvs.stop(), pvcs.stop(), pods.stop()]);
    },
  };
}

/**
 * Checks `done` every 100 ms (the informers keep the counts current; the tick only samples them), recording when each
 * of `marks` first held. Past `limitMs` it returns what it has, with `timedOut`: a bench reports, it does not fail.
 */
async function until(
  what: string,
  limitMs: number,
  marks: Record<string, () => boolean>,
  done: () => boolean,
  tick?: () => void,
): Promise<Record<string, number>> {
  const t0 = performance.now();
  const at: Record<string, number> = {};
  for (;;) {
    tick?.();
    for (const [k, f] of Object.entries(marks))
      if (at[k] === undefined && f()) at[k] = performance.now() - t0;
    if (done()) return at;
    if (performance.now() - t0 > limitMs)
      throw new Error(`gave up waiting for ${what} after ${secs(limitMs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Creates many objects with a bounded number in flight (one client, as `kubectl apply -f` of a list would). */
async function createAll(client: KubeClient, objs: KubeObject[], inFlight = 32): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < objs.length) await client.create(Resources.DataVolume, objs[next++] as KubeObject);
    }),
  );
}

const dv = (ns: string, name: string, source: unknown, size: string): KubeObject =>
  ({
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name, namespace: ns },
    spec: { source, storage: { resources: { requests: { storage: size } } } },
  }) as KubeObject;

// ---------- cases ----------

async function blank(
  client: KubeClient,
  reads: 'cache' | 'api',
): Promise<{ ctlRate: number; apiRate: number }> {
  const undo = await deployCdi(client, reads === 'api' ? { controllerEnv: { CDI_READS: 'api' } } : {});
  const { name: ns } = await createNamespace(client, `scale-${reads}`);
  const w = await watchNamespace(client, ns);
  try {
    const ctl = await controllerPod(client);
    const ip = ctl.status?.podIP ?? '';
    const cg = podCgroup(ctl.metadata?.uid ?? '');
    const ctl0 = await controllerRequests(client, ip);
    const api0 = await apiserverRequests();
    const t0 = performance.now();
    const objs = Array.from({ length: DVS }, (_, i) => dv(ns, `blank-${i}`, { blank: {} }, '16Mi'));
    const created = createAll(client, objs).then(() => performance.now() - t0);
    let peakRss = 0;
    const at = await until(
      `${DVS} blank DataVolumes Succeeded (reads: ${reads})`,
      LIMIT_MS,
      { pvcs: () => w.pvcCount() >= DVS, pods: () => w.podCount() >= DVS },
      () => w.succeeded().length >= DVS,
      () => {
        if (cg) for (const p of pidsUnder(cg)) peakRss = Math.max(peakRss, vmHwm(p));
      },
    );
    const total = performance.now() - t0;
    const ctlN = (await controllerRequests(client, ip)) - ctl0;
    const apiN = (await apiserverRequests()) - api0;
    if (cg) for (const p of pidsUnder(cg)) peakRss = Math.max(peakRss, vmHwm(p));
    const c = cmdFor('blank', ` --dvs ${DVS}`);
    const tag = `blank ×${DVS} [reads: ${reads}]`;
    row(`${tag} all created (client side)`, secs(await created), c);
    row(`${tag} all PVCs exist`, at['pvcs'] !== undefined ? secs(at['pvcs']) : 'never', c);
    row(
      `${tag} all importer pods exist`,
      at['pods'] !== undefined ? secs(at['pods']) : `${w.podCount()} pods seen`,
      c,
    );
    row(
      `${tag} all Succeeded`,
      at['timedOut'] !== undefined ? `only ${w.succeeded().length} after ${secs(total)}` : secs(total),
      c,
    );
    row(`${tag} controller peak RSS (VmHWM)`, peakRss ? mib(peakRss) : 'not found (run as root)', c);
    const ctlRate = ctlN / (total / 1000);
    const apiRate = apiN / (total / 1000);
    row(
      `${tag} controller requests (its rest_client_requests_total)`,
      `${ctlN} = ${ctlRate.toFixed(1)}/s`,
      c,
    );
    row(`${tag} API server requests, all clients`, `${apiN} = ${apiRate.toFixed(1)}/s`, c);
    return { ctlRate, apiRate };
  } finally {
    await w.stop();
    await undeployController(client, undo);
    await dropNamespace(client, ns);
  }
}

async function httpImports(client: KubeClient): Promise<void> {
  const fx = await small();
  const srv = await startFileServer({ root: fx.dir, host: NODE_IP });
  const undo = await deployCdi(client);
  const { name: ns } = await createNamespace(client, 'scale-http');
  const w = await watchNamespace(client, ns);
  try {
    const t0 = performance.now();
    const objs = Array.from({ length: IMPORTS }, (_, i) =>
      dv(ns, `http-${i}`, { http: { url: `${srv.url}/disk.qcow2` } }, '64Mi'),
    );
    await createAll(client, objs);
    await until(`${IMPORTS} HTTP imports Succeeded`, LIMIT_MS, {}, () => {
      if (w.dvs().some((d) => d.status?.phase === 'Failed')) throw new Error('a DataVolume Failed');
      return w.succeeded().length >= IMPORTS;
    });
    const total = performance.now() - t0;
    const restarts = w.dvs().reduce((n, d) => n + (d.status?.restartCount ?? 0), 0);
    const sample = [0, Math.floor(IMPORTS / 2), IMPORTS - 1];
    let ok = 0;
    for (const i of sample)
      if ((await md5OnVolume(client, ns, `http-${i}`, { bytes: fx.size })) === fx.md5) ok++;
    const c = cmdFor('http', ` --imports ${IMPORTS}`);
    row(
      `http ×${IMPORTS} qcow2 (32 MiB, half data) all Succeeded`,
      `${w.succeeded().length}/${IMPORTS} in ${secs(total)}`,
      c,
    );
    row(
      `http ×${IMPORTS} restarts (DataVolume restartCount, pod restarts)`,
      `${restarts}, ${w.maxRestarts()}`,
      c,
    );
    row(`http ×${IMPORTS} md5 on a sample`, `${ok}/${sample.length} match`, c);
    row(`http ×${IMPORTS} bytes served`, `${(srv.bytesSent() / MiB).toFixed(0)} MiB`, c);
  } finally {
    await w.stop();
    await undeployController(client, undo);
    await dropNamespace(client, ns);
    await srv.close();
  }
}

async function kubectlApply(obj: KubeObject): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const kc = path.join(homedir(), '.cache', 'cdi-dev', 'kube-v1.34.4', 'bin', 'kubectl');
    const p = spawn(existsSync(kc) ? kc : 'kubectl', ['apply', '-f', '-'], {
      env: { ...process.env, KUBECONFIG: path.join(repoRoot, '.cluster', 'kubeconfig') },
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl apply exited ${code}`))));
    p.stdin.end(JSON.stringify(obj));
  });
}

async function oneGiBImport(client: KubeClient): Promise<void> {
  const fx = await oneGiB();
  const out = path.join(CACHE, 'host-out.img');
  const local = await startFileServer({ root: fx.dir, host: '127.0.0.1' });
  const hostCmd = `node bin/cdi.js import ${local.url}/disk.qcow2 --to ${out} --size 2Gi`;
  let hostMs: number;
  let hostOk: boolean;
  try {
    const h0 = performance.now();
    await run(process.execPath, [
      path.join(repoRoot, 'bin', 'cdi.js'),
      'import',
      `${local.url}/disk.qcow2`,
      '--to',
      out,
      '--size',
      '2Gi',
      '--no-progress',
    ]);
    hostMs = performance.now() - h0;
    hostOk = (await md5File(out, fx.size)) === fx.md5;
  } finally {
    await local.close();
    await rm(out, { force: true });
  }
  const srv: FileServer = await startFileServer({ root: fx.dir, host: NODE_IP });
  const undo = await deployCdi(client);
  const { name: ns } = await createNamespace(client, 'scale-1g');
  const w = await watchNamespace(client, ns);
  try {
    const c0 = performance.now();
    await kubectlApply(dv(ns, 'big', { http: { url: `${srv.url}/disk.qcow2` } }, '2Gi'));
    await until('the 1 GiB DataVolume Succeeded', LIMIT_MS, {}, () => {
      if (w.dvs().some((d) => d.status?.phase === 'Failed')) throw new Error('the DataVolume Failed');
      return w.succeeded().length === 1;
    });
    const dvMs = performance.now() - c0;
    const dvOk = (await md5OnVolume(client, ns, 'big', { bytes: fx.size })) === fx.md5;
    row(
      `1 GiB qcow2 (half random): cdi import on the host`,
      `${secs(hostMs)}, md5 ${hostOk ? 'ok' : 'MISMATCH'}`,
      hostCmd,
    );
    row(
      `1 GiB qcow2: kubectl apply → Succeeded`,
      `${secs(dvMs)}, md5 ${dvOk ? 'ok' : 'MISMATCH'}, ${(dvMs / hostMs).toFixed(2)}× host`,
      cmdFor('1g'),
    );
  } finally {
    await w.stop();
    await undeployController(client, undo);
    await dropNamespace(client, ns);
    await srv.close();
  }
}

async function importerRss(client: KubeClient): Promise<void> {
  const fx = await tenGiB();
  const srv = await startFileServer({ root: fx.dir, host: NODE_IP });
  const undo = await deployCdi(client);
  const { name: ns } = await createNamespace(client, 'scale-rss');
  const w = await watchNamespace(client, ns);
  try {
    for (const [label, file] of [
      ['qcow2', 'disk.qcow2'],
      ['raw.xz', 'disk.raw.xz'],
      ['raw.gz', 'disk.raw.gz'],
    ] as const) {
      const name = `rss-${label.replace('.', '-')}`;
      const t0 = performance.now();
      await client.create(
        Resources.DataVolume,
        dv(ns, name, { http: { url: `${srv.url}/${file}` } }, '11Gi'),
      );
      let anon = 0;
      let hwm = 0;
      let cg: string | undefined;
      const pids = new Set<number>();
      await until(
        `the 10 GiB ${label} import Succeeded`,
        LIMIT_MS,
        {},
        () => {
          const d = w.dvs().find((x) => x.metadata?.name === name);
          if (d?.status?.phase === 'Failed') throw new Error(`${name} Failed`);
          return d?.status?.phase === 'Succeeded';
        },
        () => {
          cg ??= findImporterCgroup(ns, name);
          if (!cg) return;
          anon = Math.max(anon, cgroupAnon(cg));
          for (const p of pidsUnder(cg)) {
            pids.add(p);
            hwm = Math.max(hwm, vmHwm(p));
          }
        },
      );
      const ms = performance.now() - t0;
      const size = (await stat(path.join(fx.dir, file))).size;
      row(
        `importer peak memory, 10 GiB (half data) as ${label} (${(size / MiB).toFixed(0)} MiB)`,
        cg
          ? `anon ${mib(anon)}, largest VmHWM ${mib(hwm)} (${pids.size} pids), ${secs(ms)}`
          : 'pod cgroup not found',
        cmdFor('rss'),
      );
      await client.delete(Resources.DataVolume, name, { namespace: ns });
      await eventually(
        `${name} PVC gone`,
        async () => (await client.getOrUndefined(Resources.PersistentVolumeClaim, name, ns)) === undefined,
        300_000,
        1000,
      );
    }
  } finally {
    await w.stop();
    await undeployController(client, undo);
    await dropNamespace(client, ns);
    await srv.close();
  }
}

/** The importer pod's cgroup (pods are named importer-<pvc>; main's pod informer records their uids). */
const importerUids = new Map<string, string>();
function findImporterCgroup(ns: string, pvc: string): string | undefined {
  const uid = importerUids.get(`${ns}/${pvc}`);
  return uid ? podCgroup(uid) : undefined;
}

// ---------- main ----------

async function main(): Promise<void> {
  if (argv.includes('--prepare')) {
    if (CASES.includes('http')) await small();
    if (CASES.includes('1g')) await oneGiB();
    if (CASES.includes('rss')) await tenGiB();
    console.log(`fixtures ready in ${CACHE}`);
    return;
  }
  const client = clusterClient();
  await requireFullCluster(client);
  const tag = readFileSync(path.join(repoRoot, '.cluster', 'images.env'), 'utf8').match(
    /CDI_IMAGE_TAG=(.*)/,
  )?.[1];
  console.log(`bench:scale on the local cluster, images ${tag ?? '?'}, ${new Date().toISOString()}`);
  const podWatch = new Informer<PodLike>(client, Resources.Pod, {
    labelSelector: 'cdi.kubevirt.io=importer',
  });
  podWatch.onAdd((p) =>
    importerUids.set(
      `${p.metadata?.namespace}/${p.metadata?.name?.replace(/^importer-/, '')}`,
      p.metadata?.uid ?? '',
    ),
  );
  podWatch.start();
  // one case failing (a timeout, a Failed DataVolume) is a row of its own; the others still run
  const attempt = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      row(`${name}: did not complete`, (e as Error).message.slice(0, 200), cmdFor(name));
    }
  };
  try {
    if (CASES.includes('blank'))
      await attempt('blank', async () => {
        const cache = READS.includes('cache') ? await blank(client, 'cache') : undefined;
        const api = READS.includes('api') ? await blank(client, 'api') : undefined;
        if (!cache || !api) return;
        const c = cmdFor('blank', ` --dvs ${DVS}`);
        row(
          `blank ×${DVS} controller requests/s, api reads ÷ cache reads`,
          `${(api.ctlRate / cache.ctlRate).toFixed(1)}×`,
          c,
        );
        row(
          `blank ×${DVS} API server requests/s (all clients), api ÷ cache`,
          `${(api.apiRate / cache.apiRate).toFixed(2)}×`,
          c,
        );
      });
    if (CASES.includes('http')) await attempt('http', () => httpImports(client));
    if (CASES.includes('1g')) await attempt('1g', () => oneGiBImport(client));
    if (CASES.includes('rss')) await attempt('rss', () => importerRss(client));
  } finally {
    await podWatch.stop();
  }
  console.log('\n' + rows.join('\n'));
}

await main();
