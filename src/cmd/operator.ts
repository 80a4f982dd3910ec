// cdi-operator: installs, upgrades and removes CDI from a CDI resource (src/operator), behind a Lease leader election,
// with /healthz, /readyz and Prometheus /metrics (kubevirt_cdi_cr_ready) on one plain-HTTP port.
//   KUBECONFIG or --kubeconfig <path>   out of cluster; otherwise the in-cluster service account
//   OPERATOR_VERSION, CONTROLLER_IMAGE, IMPORTER_IMAGE, APISERVER_IMAGE, UPLOAD_PROXY_IMAGE, UPLOAD_SERVER_IMAGE
//                                       what to install (the operator's Deployment sets them)
//   PULL_POLICY, VERBOSITY              defaults for the components (CDI.spec overrides them)
//   POD_NAMESPACE / POD_NAME            the CDI namespace (default "cdi") and the lease identity
//   HEALTH_PORT                         port of /healthz, /readyz, /metrics (default 8080)
import http from 'node:http';
import os from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import client from 'prom-client';
import { errorMessage, jsonLogger, KubeClient, loadKubeConfig } from '../kube/index.ts';
import { operatorConfigFromEnv } from '../operator/config.ts';
import { runOperator } from '../operator/operator.ts';

function kubeConfig(argv: string[]): KubeConfig {
  const i = argv.indexOf('--kubeconfig');
  const path = i >= 0 ? argv[i + 1] : process.env['KUBECONFIG'];
  if (path) return loadKubeConfig(path);
  const kc = new KubeConfig();
  kc.loadFromCluster();
  if (!process.env['KUBERNETES_SERVICE_HOST'])
    throw new Error(
      'not running in a cluster (KUBERNETES_SERVICE_HOST unset): set KUBECONFIG or --kubeconfig',
    );
  return kc;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const log = jsonLogger({ component: 'cdi-operator' });
  const config = operatorConfigFromEnv(process.env);
  const kube = new KubeClient(kubeConfig(argv));
  const identity = process.env['POD_NAME'] || `${os.hostname()}-${process.pid}`;
  const port = Number(process.env['HEALTH_PORT'] || 8080);

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const ready = new client.Gauge({
    name: 'kubevirt_cdi_cr_ready',
    help: 'CDI install ready',
    registers: [registry],
  });
  const leader = new client.Gauge({
    name: 'kubevirt_cdi_operator_leader',
    help: '1 while this replica leads',
    registers: [registry],
  });
  const stop = new AbortController();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/readyz') {
      const ok = !stop.signal.aborted;
      return void res
        .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ok ? 'ok\n' : 'stopping\n');
    }
    if (path === '/metrics') {
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
  log.info('cdi-operator starting', { version: config.version, namespace: config.namespace, port });

  const shutdown = (sig: string): void => {
    if (stop.signal.aborted) return;
    log.info('shutting down', { signal: sig });
    stop.abort();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  await runOperator(
    {
      kube,
      config,
      log,
      identity,
      setReady: (v) => ready.set(v),
      onLeading: (l) => leader.set(l ? 1 : 0),
    },
    stop.signal,
  );
  await new Promise<void>((r) => server.close(() => r()));
  log.info('stopped');
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    console.error(`cdi-operator: ${errorMessage(e)}`);
    process.exit(1);
  });
}
