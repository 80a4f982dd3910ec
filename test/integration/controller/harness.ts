// Test harness for the controllers on the real API server: the manager runs in this process, and the tests play
// kubelet. On the control-plane profile there is no kubelet, and on the full profile the importer pods are pinned
// (workload node selector) to a node that does not exist, so nothing but these tests ever writes a pod's status:
// they write it through the API server's pods/status subresource exactly as a kubelet would (phase, podIP,
// container restart counts, running/waiting/terminated states with the importer's termination message).
import http from 'node:http';
import https from 'node:https';
import { after, before } from 'node:test';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  KubeClient,
  loadKubeConfig,
  Resources,
  silentLogger,
  jsonLogger,
  kubeTime,
  type KubeObject,
  type PersistentVolumeClaim,
  type Pod,
  type Resource,
  type ReconcileOutcome,
  type WatchEvent,
  type WatchOptions,
} from '../../../src/kube/index.ts';
import { buildManager, type Manager, type ManagerOptions } from '../../../src/controller/manager.ts';
import type { DataVolume } from '../../../src/controller/shared/types.ts';
import { makeTestPki } from '../../support/tls.ts';
import {
  clusterClient,
  createNamespace,
  deleteIfExists,
  eventually,
  installCrds,
  kubeconfigPath,
  repoRoot,
} from '../kube/cluster.ts';

let nodes: boolean | undefined;
/** The full profile has a node (and kube-scheduler); the control-plane profile has neither. */
export async function schedulerPresent(client: KubeClient): Promise<boolean> {
  nodes ??=
    (await client.list({ group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false })).items
      .length > 0;
  return nodes;
}

export const NO_NODE = { 'cdi.kubevirt.io/test-no-such-node': 'true' };
export const IMAGE = 'localhost:5000/cdi-importer:integration';

export interface Reconciled {
  controller: string;
  key: string;
  outcome: ReconcileOutcome;
}

export class RunningManager {
  private ac = new AbortController();
  private done: Promise<void> | undefined;
  manager: Manager | undefined;
  /** Every reconcile of every controller, in order. */
  readonly reconciles: Reconciled[] = [];
  private readonly client: KubeClient;
  private readonly overrides: Partial<ManagerOptions>;
  constructor(client: KubeClient, overrides: Partial<ManagerOptions> = {}) {
    this.client = client;
    this.overrides = overrides;
  }
  start(): void {
    this.ac = new AbortController();
    this.manager = buildManager({
      client: this.client,
      log: process.env['CDI_TEST_LOG'] ? jsonLogger({ test: 'controller' }) : silentLogger,
      importerImage: IMAGE,
      pullPolicy: 'IfNotPresent',
      workloadNodeSelector: NO_NODE,
      onReconciled: (controller, key, outcome) => this.reconciles.push({ controller, key, outcome }),
      ...this.overrides,
    });
    this.done = this.manager.run(this.ac.signal);
  }
  async stop(): Promise<void> {
    this.ac.abort();
    await this.done;
  }
}

/**
 * A client whose watches deliver events late (lagMs per resource plural, changeable at any time), in order: an
 * informer cache that lags the API server, as one does under load. Lists and writes are not delayed.
 */
export class LaggingClient extends KubeClient {
  readonly lagMs = new Map<string, number>();
  static fromKubeconfig(): LaggingClient {
    return new LaggingClient(loadKubeConfig(kubeconfigPath));
  }
  override async *watch<T>(r: Resource, opts: WatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    const inner = super.watch<T>(r, opts);
    const buffered: { ev: WatchEvent<T>; due: number }[] = [];
    let finished = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const pump = (async () => {
      try {
        for await (const ev of inner) {
          // the lag is read per event (a test may change it while the watch runs); order is kept
          const due = Math.max(Date.now() + (this.lagMs.get(r.plural) ?? 0), buffered.at(-1)?.due ?? 0);
          buffered.push({ ev, due });
          wake?.();
        }
      } catch (e) {
        failure = e instanceof Error ? e : new Error(String(e));
      } finally {
        finished = true;
        wake?.();
      }
    })();
    try {
      while (!opts.signal?.aborted) {
        const head = buffered[0];
        if (head) {
          const wait = head.due - Date.now();
          if (wait > 0) await new Promise((res) => setTimeout(res, wait));
          else yield buffered.shift()!.ev;
          continue;
        }
        if (finished) {
          if (failure) throw failure;
          return;
        }
        await new Promise<void>((res) => (wake = res));
        wake = undefined;
      }
    } finally {
      await inner.return(undefined);
      await pump;
    }
  }
}

/**
 * One in-process controller at a time on the cluster: the managers of two test files running at once would both act
 * on every namespace. Held from a suite's before() to its after().
 */
async function exclusive(path: string): Promise<() => Promise<void>> {
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, 'pid'), String(process.pid));
      return () => rm(path, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(await readFile(join(path, 'pid'), 'utf8').catch(() => '0'));
      let alive = true;
      if (pid > 0) {
        try {
          process.kill(pid, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) await rm(path, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Everything a controller test file needs: its namespace, storage classes, the manager, helpers. */
export interface ControllerSuite {
  client: KubeClient;
  ns: string;
  /** Immediate-binding class without a provisioner (claims bind to pvFor's PVs) and a WaitForFirstConsumer one. */
  sc: string;
  wffc: string;
  suffix: string;
  mgr: RunningManager;
  metrics: Awaited<ReturnType<typeof startMetricsServer>>;
  pvFor(claim: string, storageClassName?: string): Promise<void>;
  createDv(
    name: string,
    spec?: Partial<DataVolume['spec']>,
    annotations?: Record<string, string>,
  ): Promise<DataVolume>;
  getDv(name: string): Promise<DataVolume | undefined>;
  getPvc(name: string): Promise<PersistentVolumeClaim | undefined>;
  getPod(name: string): Promise<Pod | undefined>;
  waitPhase(name: string, phase: string): Promise<DataVolume>;
}

/**
 * Registers before/after hooks: CRDs, a paused deployed controller, a namespace, two storage classes with profiles,
 * a metrics server and a running manager (its client and options can be replaced); after: all of it undone.
 */
export function useControllerSuite(
  prefix: string,
  opts: {
    client?: () => KubeClient;
    /** Manager options; a function gets the suite's namespace. */
    manager?: Partial<ManagerOptions> | ((ns: string) => Partial<ManagerOptions>);
  } = {},
  /** Called once everything is set up (node:test runs root before() hooks concurrently: do not rely on their order). */
  ready: (s: ControllerSuite) => void = () => {},
): ControllerSuite {
  const suffix = randomBytes(3).toString('hex');
  const suite = {
    suffix,
    sc: `cdi-test-static-${suffix}`,
    wffc: `cdi-test-wffc-${suffix}`,
  } as ControllerSuite;
  const pvs: string[] = [];
  let cleanupNs: () => Promise<void> = async () => {};
  let resumeDeployed: () => Promise<void> = async () => {};
  let release: () => Promise<void> = async () => {};
  before(async () => {
    release = await exclusive(join(tmpdir(), 'cdi-ts-controller-integration.lock'));
    const client = clusterClient();
    suite.client = client;
    await installCrds(client);
    resumeDeployed = await pauseDeployedController(client);
    let ns: string;
    ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, prefix));
    suite.ns = ns;
    // Classes of our own with no provisioner: claims bind only to the static PVs the tests create.
    for (const [name, mode] of [
      [suite.sc, 'Immediate'],
      [suite.wffc, 'WaitForFirstConsumer'],
    ] as const) {
      await client.create(Resources.StorageClass, {
        metadata: { name, labels: { 'cdi-ts-test': 'controller' } },
        provisioner: 'kubernetes.io/no-provisioner',
        volumeBindingMode: mode,
      } as KubeObject);
    }
    suite.metrics = await startMetricsServer();
    suite.mgr = new RunningManager(
      opts.client?.() ?? client,
      typeof opts.manager === 'function' ? opts.manager(ns) : opts.manager,
    );
    suite.mgr.start();
    // Our classes' provisioner is unknown to the capability table, so give their profiles claim property sets (as
    // a user would); the storage API of the DataVolumes is completed from them.
    for (const name of [suite.sc, suite.wffc]) {
      await eventually(`StorageProfile ${name}`, () => client.getOrUndefined(Resources.StorageProfile, name));
      await client.mergePatch(Resources.StorageProfile, name, {
        spec: { claimPropertySets: [{ accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' }] },
      });
    }
    suite.pvFor = async (claim, storageClassName = suite.sc) => {
      const name = `cdi-test-${suffix}-${ns}-${claim}`.slice(0, 63);
      pvs.push(name);
      await client.create(Resources.PersistentVolume, staticPv(name, storageClassName, ns, claim));
    };
    suite.createDv = (name, spec = {}, annotations = {}) =>
      client.create<DataVolume & KubeObject>(Resources.DataVolume, {
        metadata: { name, namespace: ns, annotations },
        spec: {
          source: { http: { url: `http://images.example.test/${name}.qcow2` } },
          storage: { storageClassName: suite.sc, resources: { requests: { storage: '1Gi' } } },
          ...spec,
        },
      });
    suite.getDv = (name) => client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, name, ns);
    suite.getPvc = (name) =>
      client.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns);
    suite.getPod = (name) => client.getOrUndefined<Pod>(Resources.Pod, name, ns);
    suite.waitPhase = (name, phase) =>
      eventually(`DataVolume ${name} phase ${phase}`, async () => {
        const dv = await suite.getDv(name);
        return dv?.status?.phase === phase ? dv : undefined;
      });
    ready(suite);
  });
  after(async () => {
    await suite.mgr?.stop();
    await suite.metrics?.close();
    await cleanupNs();
    for (const pv of pvs) await deleteIfExists(suite.client, Resources.PersistentVolume, pv);
    for (const sc of [suite.sc, suite.wffc]) await deleteIfExists(suite.client, Resources.StorageClass, sc);
    await resumeDeployed();
    await release();
  });
  return suite;
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** src/cmd/controller.ts as its own process against the cluster, with its lease in `ns`. */
export function spawnController(
  ns: string,
  port: number,
  identity: string,
  /** /metrics (HTTPS, TokenReview + SubjectAccessReview); its default 8443 may be taken on the host */
  metricsPort: number,
): { exited: Promise<number | null>; stderr: () => string; kill: (sig?: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, [join(repoRoot, 'src', 'cmd', 'controller.ts')], {
    env: {
      ...process.env,
      KUBECONFIG: kubeconfigPath,
      HEALTH_PORT: String(port),
      METRICS_PORT: String(metricsPort),
      POD_NAMESPACE: ns, // the lease lives in the test namespace, away from a deployed controller's
      POD_NAME: identity,
      IMPORTER_IMAGE: IMAGE,
      WORKLOAD_NODE_SELECTOR: JSON.stringify(NO_NODE),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return {
    exited: new Promise<number | null>((r) => child.on('exit', (code) => r(code))),
    stderr: () => stderr,
    kill: (sig = 'SIGKILL') => void child.kill(sig),
  };
}

type ContainerStatus = NonNullable<NonNullable<Pod['status']>['containerStatuses']>[number];

/** The importer container's status as kubelet reports it; not ready and not started unless said. */
function importerStatus(
  o: Pick<ContainerStatus, 'restartCount' | 'state'> & Partial<ContainerStatus>,
): ContainerStatus {
  return { name: 'importer', image: IMAGE, imageID: '', ready: false, started: false, ...o };
}

/**
 * Writes a pod's status from what is there: the scheduler and the controller write the pod too, so on a conflict it
 * reads the pod again and retries, as kubelet's status manager does.
 */
async function replacePodStatus(
  client: KubeClient,
  first: Pod,
  next: (pod: Pod) => NonNullable<Pod['status']>,
): Promise<void> {
  let pod = first;
  for (let attempt = 0; ; attempt++) {
    try {
      await client.replace(Resources.Pod, { ...pod, status: next(pod) }, { subresource: 'status' });
      return;
    } catch (e) {
      if ((e as { code?: number }).code !== 409 || attempt >= 10) throw e;
      pod = await client.get<Pod>(Resources.Pod, pod.metadata?.name ?? '', pod.metadata?.namespace);
    }
  }
}

/**
 * What kube-scheduler writes on a pod it could not place (PodScheduled False, Unschedulable, with its message),
 * `agoMs` in the past. Written by the test where the real scheduler's answer cannot be had on demand (its PVC cache
 * race); on the full profile the real scheduler's own first answer lands first.
 */
export async function schedulerRefused(
  client: KubeClient,
  ns: string,
  name: string,
  message: string,
  agoMs: number,
): Promise<void> {
  await eventually('the scheduler has tried the pod', async () => {
    const p = await client.get<Pod>(Resources.Pod, name, ns);
    return !(await schedulerPresent(client)) || p.status?.conditions?.some((c) => c.type === 'PodScheduled');
  });
  const pod = await client.get<Pod>(Resources.Pod, name, ns);
  const condition = {
    type: 'PodScheduled',
    status: 'False',
    reason: 'Unschedulable',
    message,
    lastTransitionTime: kubeTime(new Date(Date.now() - agoMs)),
  };
  await replacePodStatus(client, pod, (p) => ({
    ...p.status,
    phase: 'Pending',
    conditions: [...(p.status?.conditions ?? []).filter((c) => c.type !== 'PodScheduled'), condition],
  }));
}

/** A fake kubelet's view of the importer container, written to pods/status. */
export const kubelet = {
  async setStatus(
    client: KubeClient,
    ns: string,
    name: string,
    status: NonNullable<Pod['status']>,
  ): Promise<void> {
    // On the full profile kube-scheduler marks the (unschedulable) pod with PodScheduled=False shortly after its
    // creation; let that land first, then keep its condition as a kubelet would.
    let pod = await client.get<Pod>(Resources.Pod, name, ns);
    for (
      let i = 0;
      i < 30 &&
      (await schedulerPresent(client)) &&
      !pod.status?.conditions?.some((c) => c.type === 'PodScheduled');
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
      pod = await client.get<Pod>(Resources.Pod, name, ns);
    }
    await replacePodStatus(client, pod, (p) => ({ ...status, conditions: p.status?.conditions ?? [] }));
  },
  running(podIP: string, restartCount = 0): NonNullable<Pod['status']> {
    const now = kubeTime(new Date());
    return {
      phase: 'Running',
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: now,
      containerStatuses: [
        importerStatus({ ready: true, started: true, restartCount, state: { running: { startedAt: now } } }),
      ],
    };
  },
  /** The container exited; `phase` is the pod phase kubelet reports (Succeeded for exit 0 under OnFailure). */
  terminated(exitCode: number, message: string, restartCount = 0): NonNullable<Pod['status']> {
    const now = kubeTime(new Date());
    const reason = exitCode === 0 ? 'Completed' : 'Error';
    return {
      phase: exitCode === 0 ? 'Succeeded' : 'Running',
      containerStatuses: [
        importerStatus({
          restartCount,
          state: { terminated: { exitCode, reason, message, startedAt: now, finishedAt: now } },
        }),
      ],
    };
  },
  /** Killed for memory (exit 137, OOMKilled), waiting in back-off to be restarted. */
  oomKilled(restartCount: number): NonNullable<Pod['status']> {
    return {
      phase: 'Running',
      containerStatuses: [
        importerStatus({
          restartCount,
          state: { waiting: { reason: 'CrashLoopBackOff' } },
          lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
        }),
      ],
    };
  },
  /** After a failed run under restartPolicy OnFailure: waiting in back-off, the failure in lastState. */
  crashLooping(restartCount: number, message: string): NonNullable<Pod['status']> {
    const now = kubeTime(new Date());
    return {
      phase: 'Running',
      containerStatuses: [
        importerStatus({
          restartCount,
          state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off restarting failed container' } },
          lastState: {
            terminated: { exitCode: 1, reason: 'Error', message, startedAt: now, finishedAt: now },
          },
        }),
      ],
    };
  },
};

/** An HTTPS server on <random loopback address>:8443 (the importer's metrics port), where a pod's podIP can point. */
export async function startLoopbackHttps(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ ip: string; server: https.Server; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-metrics-'));
  for (let attempt = 0; ; attempt++) {
    const b = randomBytes(2);
    const ip = `127.${((b[0] ?? 1) % 250) + 2}.${b[1] ?? 1}.${attempt + 10}`;
    const pki = await makeTestPki(dir, { ips: [ip], hostnames: [] });
    const server = https.createServer({ cert: pki.cert, key: pki.key }, handler);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(8443, ip, () => resolve());
      });
    } catch (e) {
      if (attempt < 5) continue;
      throw e;
    }
    return {
      ip,
      server,
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * The importer's metrics endpoint, for real: HTTPS with a self-signed certificate on <loopback address>:8443,
 * serving kubevirt_cdi_import_progress_total. The pod's status.podIP points at it, so the DV controller scrapes
 * it exactly as it would scrape a pod.
 */
export async function startMetricsServer(): Promise<{
  ip: string;
  set: (uid: string, v: number) => void;
  close: () => Promise<void>;
}> {
  const values = new Map<string, number>();
  const s = await startLoopbackHttps((_req, res) => {
    const lines = ['# TYPE kubevirt_cdi_import_progress_total counter'];
    for (const [uid, v] of values) lines.push(`kubevirt_cdi_import_progress_total{ownerUID="${uid}"} ${v}`);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\n') + '\n');
  });
  return { ip: s.ip, set: (uid, v) => values.set(uid, v), close: s.close };
}

/** Sockets a server has seen and which of them are still open (who hung up). */
export function trackSockets(server: https.Server): {
  open: () => number;
  total: () => number;
  closed: () => number;
} {
  const open = new Set<Socket>();
  let total = 0;
  let closed = 0;
  server.on('secureConnection', (sock: Socket) => {
    total++;
    open.add(sock);
    sock.on('close', () => {
      open.delete(sock);
      closed++;
    });
  });
  return { open: () => open.size, total: () => total, closed: () => closed };
}

/** A PV that binds exactly to ns/claim (static provisioning: the PV controller of kube-controller-manager binds it). */
export function staticPv(
  name: string,
  storageClassName: string,
  ns: string,
  claim: string,
  volumeMode = 'Filesystem',
): KubeObject {
  return {
    metadata: { name, labels: { 'cdi-ts-test': 'controller' } },
    spec: {
      capacity: { storage: '20Gi' },
      accessModes: ['ReadWriteOnce'],
      volumeMode,
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName,
      claimRef: { namespace: ns, name: claim },
      // never mounted: no kubelet runs these pods
      hostPath: { path: `/nonexistent/cdi-ts-test/${name}` },
    },
  } as KubeObject;
}

export interface EventLike {
  reason?: string;
  message?: string;
  type?: string;
  involvedObject?: { kind?: string; name?: string };
}
export async function eventsFor(
  client: KubeClient,
  ns: string,
  kind: string,
  name: string,
): Promise<EventLike[]> {
  const l = await client.list<KubeObject & EventLike>(Resources.Event, {
    namespace: ns,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
  });
  return l.items;
}

const deployments: Resource = {
  group: 'apps',
  version: 'v1',
  kind: 'Deployment',
  plural: 'deployments',
  namespaced: true,
};

/**
 * A cdi-controller deployed to the cluster (e2e, npm run cluster:sync) would reconcile the tests' objects too and
 * fight the in-process one; scale it to zero for the duration and return a function that restores it. The operator
 * (cdi-operator) is scaled to zero first, or it would restore the controller's replicas within seconds.
 */
export async function pauseDeployedController(client: KubeClient): Promise<() => Promise<void>> {
  const restores: (() => Promise<void>)[] = [];
  for (const [name, label] of [
    ['cdi-operator', 'name=cdi-operator'],
    ['cdi-deployment', 'cdi.kubevirt.io=cdi-deployment'],
  ] as const) {
    const d = await client.getOrUndefined<KubeObject & { spec?: { replicas?: number } }>(
      deployments,
      name,
      'cdi',
    );
    const replicas = d?.spec?.replicas ?? 0;
    if (!d || replicas === 0) continue;
    await client.mergePatch(deployments, name, { spec: { replicas: 0 } }, { namespace: 'cdi' });
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const pods = await client.list(Resources.Pod, { namespace: 'cdi', labelSelector: label });
      if (pods.items.length === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    restores.unshift(async () => {
      await client.mergePatch(deployments, name, { spec: { replicas } }, { namespace: 'cdi' });
    });
  }
  return async () => {
    for (const r of restores) await r();
  };
}
