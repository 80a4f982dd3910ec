// Test harness for the controllers on the real API server: the manager runs in this process, and the tests play
// kubelet. On the control-plane profile there is no kubelet, and on the full profile the importer pods are pinned
// (workload node selector) to a node that does not exist, so nothing but these tests ever writes a pod's status:
// they write it through the API server's pods/status subresource exactly as a kubelet would (phase, podIP,
// container restart counts, running/waiting/terminated states with the importer's termination message).
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  Resources,
  silentLogger,
  jsonLogger,
  kubeTime,
  type KubeClient,
  type KubeObject,
  type Pod,
  type Resource,
} from '../../../src/kube/index.ts';
import { buildManager, type Manager } from '../../../src/controller/manager.ts';
import { makeTestPki } from '../../support/tls.ts';

let nodes: boolean | undefined;
/** The full profile has a node (and kube-scheduler); the control-plane profile has neither. */
async function schedulerPresent(client: KubeClient): Promise<boolean> {
  nodes ??=
    (await client.list({ group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false })).items
      .length > 0;
  return nodes;
}

export const NO_NODE = { 'cdi.kubevirt.io/test-no-such-node': 'true' };
export const IMAGE = 'localhost:5000/cdi-importer:integration';

export class RunningManager {
  private ac = new AbortController();
  private done: Promise<void> | undefined;
  manager: Manager | undefined;
  private readonly client: KubeClient;
  constructor(client: KubeClient) {
    this.client = client;
  }
  start(): void {
    this.ac = new AbortController();
    this.manager = buildManager({
      client: this.client,
      log: process.env['CDI_TEST_LOG'] ? jsonLogger({ test: 'controller' }) : silentLogger,
      importerImage: IMAGE,
      pullPolicy: 'IfNotPresent',
      workloadNodeSelector: NO_NODE,
    });
    this.done = this.manager.run(this.ac.signal);
  }
  async stop(): Promise<void> {
    this.ac.abort();
    await this.done;
  }
}

type ContainerStatus = NonNullable<NonNullable<Pod['status']>['containerStatuses']>[number];

/** The importer container's status as kubelet reports it; not ready and not started unless said. */
function importerStatus(
  o: Pick<ContainerStatus, 'restartCount' | 'state'> & Partial<ContainerStatus>,
): ContainerStatus {
  return { name: 'importer', image: IMAGE, imageID: '', ready: false, started: false, ...o };
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
    await client.replace(
      Resources.Pod,
      { ...pod, status: { ...status, conditions: pod.status?.conditions ?? [] } },
      { subresource: 'status' },
    );
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
  const dir = await mkdtemp(join(tmpdir(), 'cdi-metrics-'));
  const values = new Map<string, number>();
  for (let attempt = 0; ; attempt++) {
    const b = randomBytes(2);
    const ip = `127.${((b[0] ?? 1) % 250) + 2}.${b[1] ?? 1}.${attempt + 10}`;
    const pki = await makeTestPki(dir, { ips: [ip], hostnames: [] });
    const server = https.createServer({ cert: pki.cert, key: pki.key }, (_req, res) => {
      const lines = ['# TYPE kubevirt_cdi_import_progress_total counter'];
      for (const [uid, v] of values) lines.push(`kubevirt_cdi_import_progress_total{ownerUID="${uid}"} ${v}`);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\n') + '\n');
    });
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
      set: (uid, v) => values.set(uid, v),
      close: async () => {
        await new Promise<void>((r) => server.close(() => r()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
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
