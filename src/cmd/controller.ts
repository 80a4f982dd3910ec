// cdi-controller: every reconciler of src/controller behind a Lease leader election, with /healthz, /readyz and
// Prometheus /metrics on one plain-HTTP port (default 8080).
//   KUBECONFIG or --kubeconfig <path>   out of cluster; otherwise the in-cluster service account
//   IMPORTER_IMAGE                      image of the importer pods (default localhost:5000/cdi-importer:latest)
//   PULL_POLICY                         their imagePullPolicy (default IfNotPresent)
//   VERBOSITY                           passed to importer pods as -v=<n> when set
//   POD_NAMESPACE / POD_NAME            lease namespace (default "cdi") and identity (default hostname-pid)
//   HEALTH_PORT                         port of /healthz, /readyz, /metrics (default 8080)
//   WORKLOAD_NODE_SELECTOR              JSON object: node selector of the worker pods (CDI.spec.workload)
//   CDI_READS                           "cache" (default): reconcilers read from the informer cache; "api": every
//                                       read goes to the API server (for the scale bench's comparison)
// Losing the lease ends the process (exit code 1) at once: the workers' signal aborts their requests, and a restart
// starts from a clean cache instead of running on beside a new leader.
import http from 'node:http';
import os from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import client from 'prom-client';
import {
  errorMessage,
  jsonLogger,
  KubeClient,
  LeaderElector,
  loadKubeConfig,
  RuntimeMetrics,
} from '../kube/index.ts';
import { buildManager, type Manager } from '../controller/manager.ts';

const LEASE_NAME = 'cdi-controller-leader-election-helper';
/** An informer failing (or unsynced) for this long makes /healthz fail, so kubelet restarts the process. */
const INFORMER_HEALTH_MS = 120_000;

function nodeSelector(): Record<string, string> | undefined {
  const raw = process.env['WORKLOAD_NODE_SELECTOR'];
  if (!raw) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error(`WORKLOAD_NODE_SELECTOR is not JSON: write it as {"label":"value"}`);
  }
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    Object.values(v).some((x) => typeof x !== 'string')
  ) {
    throw new Error(
      'WORKLOAD_NODE_SELECTOR must be a JSON object of string values, e.g. {"kubernetes.io/os":"linux"}',
    );
  }
  return v as Record<string, string>;
}

function reads(): 'cache' | 'api' {
  const v = process.env['CDI_READS'] || 'cache';
  if (v !== 'cache' && v !== 'api') throw new Error(`CDI_READS is "${v}": use cache (the default) or api`);
  return v;
}

function kubeConfig(argv: string[]): KubeConfig {
  const i = argv.indexOf('--kubeconfig');
  const path = i >= 0 ? argv[i + 1] : process.env['KUBECONFIG'];
  if (path) return loadKubeConfig(path);
  const kc = new KubeConfig();
  try {
    kc.loadFromCluster();
  } catch {
    throw new Error(
      'no kubeconfig: set KUBECONFIG or --kubeconfig, or run inside a pod with a service account',
    );
  }
  if (!kc.getCurrentCluster()?.server || kc.getCurrentCluster()?.server === 'https://undefined:undefined') {
    throw new Error(
      'not running in a cluster (KUBERNETES_SERVICE_HOST unset): set KUBECONFIG or --kubeconfig',
    );
  }
  return kc;
}

/** Runs the controller until SIGTERM/SIGINT (resolves 0) or the lease is lost (resolves 1). */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const log = jsonLogger({ component: 'cdi-controller' });
  const kc = kubeConfig(argv);
  const kube = new KubeClient(kc);
  const namespace = process.env['POD_NAMESPACE'] || 'cdi';
  const identity = process.env['POD_NAME'] || `${os.hostname()}-${process.pid}`;
  const port = Number(process.env['HEALTH_PORT'] || 8080);
  const workloadNodeSelector = nodeSelector();
  const readMode = reads();

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const metrics = new RuntimeMetrics(registry);
  kube.onResponse = (method, code) => metrics.restRequests.inc({ method, code });

  let manager: Manager | undefined;
  const stop = new AbortController();

  let lost = '';
  const elector = new LeaderElector(kube, {
    namespace,
    name: LEASE_NAME,
    identity,
    logger: log,
    metrics,
    onStartedLeading: async (signal) => {
      manager = buildManager({
        client: kube,
        log,
        importerImage: process.env['IMPORTER_IMAGE'] || 'localhost:5000/cdi-importer:latest',
        pullPolicy: process.env['PULL_POLICY'] || 'IfNotPresent',
        ...(process.env['VERBOSITY'] ? { verbose: process.env['VERBOSITY'] } : {}),
        instance: identity,
        cdiNamespace: namespace,
        reads: readMode,
        metrics,
        ...(workloadNodeSelector ? { workloadNodeSelector } : {}),
      });
      await manager.run(signal);
    },
    onStoppedLeading: (end) => {
      if (end.kind !== 'shutdown') lost = end.message;
    },
  });

  const problems = (): string[] => {
    const out: string[] = [];
    const le = elector.health();
    if (le && !le.healthy && le.reason) out.push(le.reason);
    if (elector.isLeader && manager) out.push(...manager.cache.problems(Date.now(), INFORMER_HEALTH_MS));
    return out;
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const text = (code: number, body: string): void =>
      void res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
    if (path === '/healthz') {
      const p = problems();
      return text(p.length === 0 ? 200 : 500, p.length === 0 ? 'ok\n' : p.join('\n') + '\n');
    }
    if (path === '/readyz') {
      // A standby replica is ready (it serves health and waits); the leader once its caches are synced.
      const ready = !stop.signal.aborted && (!elector.isLeader || (manager?.synced() ?? false));
      return text(ready ? 200 : 503, ready ? 'ok\n' : 'not ready\n');
    }
    if (path === '/metrics') {
      for (const c of manager?.controllers ?? []) metrics.queueDepth.set({ name: c.name }, c.queue.length);
      registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
        .catch((e: unknown) => res.writeHead(500).end(errorMessage(e)));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  log.info('serving /healthz, /readyz and /metrics', { port, reads: readMode });

  const shutdown = (sig: string): void => {
    if (stop.signal.aborted) return;
    log.info('shutting down', { signal: sig });
    stop.abort();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  await elector.run(stop.signal);
  if (lost) {
    // Workers were told through their signal; nothing waits for them. The caller exits now.
    log.error(`${lost}; exiting so that a restart begins with a fresh cache`, { identity });
    server.close();
    return 1;
  }
  await new Promise<void>((r) => server.close(() => r()));
  log.info('stopped');
  return 0;
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`cdi-controller: ${errorMessage(e)}`);
      process.exit(1);
    },
  );
}
