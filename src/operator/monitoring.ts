// The Prometheus Operator objects upstream's operator installs when their CRDs exist (pkg/operator/controller
// prometheus.go): PrometheusRule prometheus-cdi-rules and ServiceMonitor service-monitor-cdi in the CDI namespace.
// The operator renders them only while prometheusrules/servicemonitors.monitoring.coreos.com are served, and removes
// them with the rest. The rules' content (recording rules and alerts of cdi-upstream.md §7) is cdiRuleGroups().
import { labelsOf, PrometheusLabel, type Obj } from '../deploy/common.ts';

export const PrometheusRuleName = 'prometheus-cdi-rules';
export const ServiceMonitorName = 'service-monitor-cdi';

/**
 * The rule groups of prometheus-cdi-rules. Empty until the metrics-and-alerts work fills them in (issue 13's
 * metrics part): this function is the one place they go.
 */
export function cdiRuleGroups(_namespace: string): Obj[] {
  return [];
}

export function monitoringManifests(namespace: string): Obj[] {
  const labels = { ...labelsOf(), [PrometheusLabel]: 'true' };
  return [
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: PrometheusRuleName, namespace, labels },
      spec: { groups: cdiRuleGroups(namespace) },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: ServiceMonitorName, namespace, labels },
      spec: {
        namespaceSelector: { matchNames: [namespace] },
        selector: { matchLabels: { [PrometheusLabel]: 'true', 'cdi.kubevirt.io': '' } },
        endpoints: [{ port: 'metrics', scheme: 'http', path: '/metrics' }],
      },
    },
  ];
}
