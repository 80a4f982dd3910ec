// cdi-controller: every reconciler of src/controller behind a Lease leader election, with /healthz, /readyz and
// Prometheus /metrics on one plain-HTTP port (default 8080).
//   KUBECONFIG or --kubeconfig <path>   out of cluster; otherwise the in-cluster service account
//   IMPORTER_IMAGE                      image of the importer pods (default localhost:5000/cdi-importer:latest)
//   PULL_POLICY                         their imagePullPolicy (default IfNotPresent)
//   VERBOSITY                           passed to importer pods as -v=<n> when set
//   POD_NAMESPACE / POD_NAME            lease namespace (default "cdi") and identity (default hostname-pid)
//   HEALTH_PORT                         port of /healthz, /readyz, /metrics (default 8080)
//   WORKLOAD_NODE_SELECTOR              JSON object: node selector of the worker pods (CDI.spec.workload)
import http from 'node:http';
import os from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import client from 'prom-client';
import { jsonLogger, KubeClient, LeaderElector, loadKubeConfig, errorMessage } from '../kube/index.ts';
import { buildManager } from '../controller/manager.ts';

const LEASE_NAME = 'cdi-controller-leader-election-helper';

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

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const log = jsonLogger({ component: 'cdi-controller' });
  const kc = kubeConfig(argv);
  const kube = new KubeClient(kc);
  const namespace = process.env['POD_NAMESPACE'] || 'cdi';
  const identity = process.env['POD_NAME'] || `${os.hostname()}-${process.pid}`;
  const port = Number(process.env['HEALTH_PORT'] || 8080);
  const workloadNodeSelector = nodeSelector();

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const leaderGauge = new client.Gauge({
    name: 'kubevirt_cdi_controller_leader',
    help: '1 while this replica leads',
    registers: [registry],
  });
  const reconciles = new client.Counter({
    name: 'kubevirt_cdi_controller_reconcile_total',
    help: 'Reconciles by controller and result',
    labelNames: ['controller', 'result'] as const,
    registers: [registry],
  });
  const depth = new client.Gauge({
    name: 'kubevirt_cdi_controller_workqueue_depth',
    help: 'Keys waiting per controller',
    labelNames: ['controller'] as const,
    registers: [registry],
  });

  let manager: ReturnType<typeof buildManager> | undefined;
  let leading = false;
  const stop = new AbortController();

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/readyz') {
      // A standby replica is ready (it serves health and waits); the leader once its caches are synced.
      const ready = !stop.signal.aborted && (!leading || (manager?.synced() ?? false));
      return void res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ok\n' : 'not ready\n');
    }
    if (path === '/metrics') {
      for (const c of manager?.controllers ?? []) depth.set({ controller: c.name }, c.queue.length);
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
  log.info('serving /healthz, /readyz and /metrics', { port });

  const elector = new LeaderElector(kube, {
    namespace,
    name: LEASE_NAME,
    identity,
    logger: log,
    onStartedLeading: async (lost) => {
      leading = true;
      leaderGauge.set(1);
      manager = buildManager({
        client: kube,
        log,
        importerImage: process.env['IMPORTER_IMAGE'] || 'localhost:5000/cdi-importer:latest',
        pullPolicy: process.env['PULL_POLICY'] || 'IfNotPresent',
        ...(process.env['VERBOSITY'] ? { verbose: process.env['VERBOSITY'] } : {}),
        instance: identity,
        ...(workloadNodeSelector ? { workloadNodeSelector } : {}),
        onReconcile: (controller, result) => reconciles.inc({ controller, result }),
      });
      await manager.run(lost);
    },
    onStoppedLeading: () => {
      leading = false;
      leaderGauge.set(0);
    },
  });

  const shutdown = (sig: string): void => {
    if (stop.signal.aborted) return;
    log.info('shutting down', { signal: sig });
    stop.abort();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  await elector.run(stop.signal);
  await new Promise<void>((r) => server.close(() => r()));
  log.info('stopped');
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    console.error(`cdi-controller: ${errorMessage(e)}`);
    process.exit(1);
  });
}
