// cdi-controller: every reconciler of src/controller behind a Lease leader election. Prometheus /metrics over HTTPS
// (default :8443) behind TokenReview + SubjectAccessReview; /healthz and /readyz on a plain-HTTP port (default 8080)
// for the kubelet's probes (docs/adr/0040-metrics-endpoint.md).
//   KUBECONFIG or --kubeconfig <path>   out of cluster; otherwise the in-cluster service account
//   IMPORTER_IMAGE                      image of the importer pods (default localhost:5000/cdi-importer:latest)
//   UPLOADSERVER_IMAGE, CLONER_IMAGE    images of a host-assisted clone's target and source pods (default: beside
//                                       IMPORTER_IMAGE, cdi-uploadserver and cdi-cloner of the same tag)
//   PULL_POLICY                         their imagePullPolicy (default IfNotPresent)
//   CDI_CERTIFICATES                    "reconcile" (default): create and rotate the upload certificates in
//                                       POD_NAMESPACE; "read": only read them (when the operator owns them)
//   VERBOSITY                           passed to importer pods as -v=<n> when set
//   POD_NAMESPACE / POD_NAME            lease namespace (default "cdi") and identity (default hostname-pid)
//   HEALTH_PORT                         port of /healthz and /readyz (default 8080)
//   METRICS_PORT                        port of /metrics, HTTPS (default 8443)
//   METRICS_CERT_DIR                    tls.crt and tls.key of the metrics server (default
//                                       /var/run/certs/cdi-metrics-server-cert, Secret cdi-metrics-server-cert);
//                                       re-read when rotated; without them a self-signed certificate made at start
//   TLS_MIN_VERSION, TLS_CIPHERS        the metrics server's TLS floor and ciphers
//   WORKLOAD_NODE_SELECTOR              JSON object: node selector of the worker pods (CDI.spec.workload)
//   CDI_READS                           "cache" (default): reconcilers read from the informer cache; "api": every
//                                       read goes to the API server (for the scale bench's comparison)
//   AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, STORAGE_EMULATOR_HOST
//                                       handed to S3 and GCS importer pods: where s3:// and gs:// URLs go
// Losing the lease ends the process (exit code 1) at once: the workers' signal aborts their requests, and a restart
// starts from a clean cache instead of running on beside a new leader.
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
import { serviceHostnames } from '../certs/reconcile.ts';
import { tlsProfileFromEnv } from '../certs/tls.ts';
import { DelegatedAuth, KubeReviews } from '../monitoring/auth.ts';
import { ControllerMetrics } from '../monitoring/metrics.ts';
import {
  DefaultMetricsCertDir,
  HealthPort,
  MetricsPort,
  startHealthServer,
  startMetricsServer,
} from '../monitoring/server.ts';
import { ObjectStoreEnvNames } from '../deploy/common.ts';

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
  const healthPort = Number(process.env['HEALTH_PORT'] || HealthPort);
  const metricsPort = Number(process.env['METRICS_PORT'] || MetricsPort);
  const tls = tlsProfileFromEnv(process.env);
  const workloadNodeSelector = nodeSelector();
  const readMode = reads();

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const metrics = new RuntimeMetrics(registry);
  const gauges = new ControllerMetrics(registry);
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
        ...(process.env['UPLOADSERVER_IMAGE']
          ? { uploadServerImage: process.env['UPLOADSERVER_IMAGE'] }
          : {}),
        certificates: process.env['CDI_CERTIFICATES'] === 'read' ? 'read' : 'reconcile',
        ...(process.env['CLONER_IMAGE'] ? { clonerImage: process.env['CLONER_IMAGE'] } : {}),
        pullPolicy: process.env['PULL_POLICY'] || 'IfNotPresent',
        ...(process.env['VERBOSITY'] ? { verbose: process.env['VERBOSITY'] } : {}),
        instance: identity,
        cdiNamespace: namespace,
        reads: readMode,
        metrics,
        gauges,
        ...(workloadNodeSelector ? { workloadNodeSelector } : {}),
        objectStoreEnv: Object.fromEntries(
          ObjectStoreEnvNames.flatMap((n) => (process.env[n] ? [[n, process.env[n]]] : [])),
        ),
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

  const health = await startHealthServer({
    port: healthPort,
    problems,
    // A standby replica is ready (it serves health and waits); the leader once its caches are synced.
    ready: () => !stop.signal.aborted && (!elector.isLeader || (manager?.synced() ?? false)),
  });
  const metricsServer = await startMetricsServer({
    registry,
    auth: new DelegatedAuth(new KubeReviews(kube)),
    log,
    port: metricsPort,
    certDir: process.env['METRICS_CERT_DIR'] || DefaultMetricsCertDir,
    hostnames: [
      ...serviceHostnames('cdi-prometheus-metrics', namespace),
      ...(process.env['POD_IP'] ? [process.env['POD_IP']] : []),
    ],
    tls,
    beforeScrape: () => {
      for (const c of manager?.controllers ?? []) metrics.queueDepth.set({ name: c.name }, c.queue.length);
    },
  });
  log.info('serving /healthz and /readyz over HTTP, /metrics over HTTPS', {
    health: health.port,
    metrics: metricsServer.port,
    reads: readMode,
  });
  const closeServers = (): Promise<unknown> => Promise.all([health.close(), metricsServer.close()]);

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
    void closeServers();
    return 1;
  }
  await closeServers();
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
