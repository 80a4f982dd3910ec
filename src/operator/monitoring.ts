// The Prometheus Operator objects upstream's operator installs when their CRDs exist (pkg/operator/controller
// prometheus.go), in the CDI namespace: PrometheusRule prometheus-cdi-rules (src/monitoring/rules.ts: the recording
// rules and alerts of cdi-upstream.md §7), ServiceMonitor service-monitor-cdi, the token Secret it scrapes with
// (cdi-metrics-reader-token, of ServiceAccount cdi-metrics-reader), and Role/RoleBinding cdi-monitoring that let the
// monitoring stack's prometheus-k8s discover the Service's endpoints. The operator renders them only while
// prometheusrules/servicemonitors.monitoring.coreos.com are served, and removes them with the rest.
//
// One deviation: upstream's ServiceMonitor skips verification (controller-runtime serves a self-signed certificate);
// ours verifies against the bundle of the certificate the operator issues (cdi-metrics-server-signer-bundle).
import { labelsOf, PrometheusLabel, type Obj } from '../deploy/common.ts';
import { MetricsReader, MetricsService } from '../deploy/controller.ts';
import { BundleKey } from '../certs/reconcile.ts';
import { prometheusRule, runbookUrlTemplate, RuleName } from '../monitoring/rules.ts';
import { MetricsBundle } from './certs.ts';

export const PrometheusRuleName = RuleName;
export const ServiceMonitorName = 'service-monitor-cdi';
/** upstream common.MetricsReaderTokenName */
export const MetricsReaderToken = 'cdi-metrics-reader-token';
/** upstream rbacName */
export const MonitoringRbacName = 'cdi-monitoring';

/** upstream getMonitoringNamespace: where the monitoring stack's prometheus-k8s ServiceAccount lives. */
export function monitoringNamespace(env: Record<string, string | undefined> = process.env): string {
  return env['MONITORING_NAMESPACE'] || 'monitoring';
}

export interface MonitoringOptions {
  runbookUrlTemplate?: string;
  monitoringNamespace?: string;
}

export function monitoringManifests(namespace: string, o: MonitoringOptions = {}): Obj[] {
  const labels = { ...labelsOf(), [PrometheusLabel]: 'true' };
  const rule = prometheusRule(namespace, o.runbookUrlTemplate ?? runbookUrlTemplate());
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: MetricsReaderToken,
        namespace,
        labels,
        annotations: { 'kubernetes.io/service-account.name': MetricsReader },
      },
      type: 'kubernetes.io/service-account-token',
    },
    { ...rule, metadata: { ...(rule['metadata'] as Obj), labels } },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: {
        name: ServiceMonitorName,
        namespace,
        labels: { ...labels, 'openshift.io/cluster-monitoring': '' },
      },
      spec: {
        namespaceSelector: { matchNames: [namespace] },
        selector: { matchLabels: { [PrometheusLabel]: 'true' } },
        endpoints: [
          {
            port: 'metrics',
            scheme: 'https',
            authorization: { credentials: { name: MetricsReaderToken, key: 'token' } },
            tlsConfig: {
              ca: { configMap: { name: MetricsBundle, key: BundleKey } },
              serverName: `${MetricsService}.${namespace}.svc`,
            },
          },
        ],
      },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: MonitoringRbacName, namespace, labels },
      rules: [
        { apiGroups: [''], resources: ['services', 'endpoints', 'pods'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: MonitoringRbacName, namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: MonitoringRbacName },
      subjects: [
        {
          kind: 'ServiceAccount',
          namespace: o.monitoringNamespace ?? monitoringNamespace(),
          name: 'prometheus-k8s',
        },
      ],
    },
  ];
}
