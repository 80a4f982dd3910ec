// cdi-operator: installs, upgrades and removes CDI from a CDI resource (src/operator), behind a Lease leader election,
// with /healthz and /readyz on a plain-HTTP port and Prometheus /metrics (kubevirt_cdi_cr_ready) over HTTPS behind
// TokenReview + SubjectAccessReview, as the controller's (docs/adr/0040-metrics-endpoint.md; the certificate is made
// at start: nothing issues the operator one).
//   KUBECONFIG or --kubeconfig <path>   out of cluster; otherwise the in-cluster service account
//   OPERATOR_VERSION, CONTROLLER_IMAGE, IMPORTER_IMAGE, APISERVER_IMAGE, UPLOAD_PROXY_IMAGE, UPLOAD_SERVER_IMAGE
//                                       what to install (the operator's Deployment sets them)
//   PULL_POLICY, VERBOSITY              defaults for the components (CDI.spec overrides them)
//   POD_NAMESPACE / POD_NAME            the CDI namespace (default "cdi") and the lease identity
//   HEALTH_PORT, METRICS_PORT           ports of /healthz and /readyz (default 8080), of /metrics (default 8443)
//   TLS_MIN_VERSION, TLS_CIPHERS        the metrics server's TLS floor and ciphers
//   DUMP_INSTALL_STRATEGY               true: write ConfigMap cdi-install-strategy (src/operator/install-strategy.ts)
import os from 'node:os';
import client from 'prom-client';
import { errorMessage, jsonLogger, KubeClient } from '../kube/index.ts';
import { processKubeConfig } from './kubeconfig.ts';
import { tlsProfileFromEnv } from '../certs/tls.ts';
import { DelegatedAuth, KubeReviews } from '../monitoring/auth.ts';
import { OperatorMetrics } from '../monitoring/metrics.ts';
import { HealthPort, MetricsPort, startHealthServer, startMetricsServer } from '../monitoring/server.ts';
import { operatorConfigFromEnv } from '../operator/config.ts';
import { runOperator } from '../operator/operator.ts';

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const log = jsonLogger({ component: 'cdi-operator' });
  const config = operatorConfigFromEnv(process.env);
  const kube = new KubeClient(processKubeConfig(argv));
  const identity = process.env['POD_NAME'] || `${os.hostname()}-${process.pid}`;
  const healthPort = Number(process.env['HEALTH_PORT'] || HealthPort);
  const metricsPort = Number(process.env['METRICS_PORT'] || MetricsPort);

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const ready = new OperatorMetrics(registry);
  const leader = new client.Gauge({
    name: 'kubevirt_cdi_operator_leader',
    help: '1 while this replica leads',
    registers: [registry],
  });
  const stop = new AbortController();
  const health = await startHealthServer({ port: healthPort, ready: () => !stop.signal.aborted });
  const metrics = await startMetricsServer({
    registry,
    auth: new DelegatedAuth(new KubeReviews(kube)),
    log,
    port: metricsPort,
    hostnames: [`cdi-operator.${config.namespace}.svc`],
    tls: tlsProfileFromEnv(process.env),
  });
  log.info('cdi-operator starting', {
    version: config.version,
    namespace: config.namespace,
    health: health.port,
    metrics: metrics.port,
  });

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
      setReady: (v) => ready.crReady.set(v),
      onLeading: (l) => leader.set(l ? 1 : 0),
    },
    stop.signal,
  );
  await Promise.all([health.close(), metrics.close()]);
  log.info('stopped');
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    console.error(`cdi-operator: ${errorMessage(e)}`);
    process.exit(1);
  });
}
