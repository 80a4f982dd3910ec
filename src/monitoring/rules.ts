// The recording rules and alerts of cdi-upstream.md §7, as data: upstream's names, expressions, severities,
// labels and annotations (pkg/monitoring/rules, v1.66), rendered into the PrometheusRule `prometheus-cdi-rules`
// the operator installs when the Prometheus Operator is there, and into deploy/monitoring (npm run gen) for a
// cluster without our operator. Expressions are upstream's byte for byte (the two multi-line ones keep Go's tabs),
// so a rule diff against an upstream install is empty.
import YAML from 'yaml';

/** Alert labels (operator-observability-toolkit's keys, CDI's values). */
export const AlertLabel = {
  severity: 'severity',
  healthImpact: 'operator_health_impact',
  partOf: 'kubernetes_operator_part_of',
  component: 'kubernetes_operator_component',
} as const;
export const PartOfValue = 'kubevirt';
/** upstream common.CDILabelValue */
export const ComponentValue = 'containerized-data-importer';

export const RuleName = 'prometheus-cdi-rules';
export const RecordingGroupName = 'recordingRules.rules';
export const AlertGroupName = 'alerts.rules';

export const DefaultRunbookUrlTemplate = 'https://kubevirt.io/monitoring/runbooks/%s';
/** The environment variable that replaces the runbook URL template (upstream RUNBOOK_URL_TEMPLATE). */
export const RunbookUrlTemplateEnv = 'RUNBOOK_URL_TEMPLATE';

/** upstream common.UnusualRestartCountThreshold */
export const UnusualRestartCountThreshold = 3;

export type Severity = 'critical' | 'warning' | 'info';
export type HealthImpact = 'critical' | 'warning' | 'none';

export interface RecordingRuleSpec {
  record: string;
  /** upstream's help text (for docs/operations.md; not part of the PrometheusRule) */
  help: string;
  expr: string;
}

export interface AlertSpec {
  alert: string;
  expr: string;
  for: string;
  summary: string;
  severity: Severity;
  healthImpact: HealthImpact;
}

/** A rule in the prometheus-operator (and Prometheus rule file) shape. */
export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  rules: Rule[];
}

// Go's raw strings in upstream's alerts/operator.go continue on lines indented with eight tabs and a space.
const cont = '\n' + '\t'.repeat(8) + ' ';

const highRestart = (pod: string, container: string): string =>
  `count(kube_pod_container_status_restarts_total{pod=~'${pod}', container='${container}'} > ${UnusualRestartCountThreshold}) or on() vector(0)`;

/** upstream recordingrules (operator.go, pods.go); the un-prefixed names are upstream's deprecated copies. */
export function recordingRules(namespace: string): RecordingRuleSpec[] {
  const operatorUp = `sum(up{namespace='${namespace}', pod=~'cdi-operator-.*'} or vector(0))`;
  const importer = highRestart('importer-.*', 'importer');
  const upload = highRestart('cdi-upload-.*', 'cdi-upload-server');
  const clone = highRestart('.*-source-pod', 'cdi-clone-source');
  return [
    { record: 'kubevirt_cdi_operator_up', help: '[Deprecated] CDI operator status', expr: operatorUp },
    {
      record: 'cluster:kubevirt_cdi_operator_up:sum',
      help: 'The number of CDI pods that are up',
      expr: operatorUp,
    },
    {
      record: 'kubevirt_cdi_import_pods_high_restart',
      help: '[Deprecated] The number of CDI import pods with high restart count',
      expr: importer,
    },
    {
      record: 'cluster:kubevirt_cdi_import_pods_high_restart:count',
      help: 'The number of CDI import pods with high restart count',
      expr: importer,
    },
    {
      record: 'kubevirt_cdi_upload_pods_high_restart',
      help: '[Deprecated] The number of CDI upload server pods with high restart count',
      expr: upload,
    },
    {
      record: 'cluster:kubevirt_cdi_upload_pods_high_restart:count',
      help: 'The number of CDI upload server pods with high restart count',
      expr: upload,
    },
    {
      record: 'kubevirt_cdi_clone_pods_high_restart',
      help: '[Deprecated] The number of CDI clone pods with high restart count',
      expr: clone,
    },
    {
      record: 'cluster:kubevirt_cdi_clone_pods_high_restart:count',
      help: 'The number of CDI clone pods with high restart count',
      expr: clone,
    },
  ];
}

/** upstream alerts/operator.go */
export const alertSpecs: readonly AlertSpec[] = [
  {
    alert: 'CDIOperatorDown',
    expr: 'cluster:kubevirt_cdi_operator_up:sum == 0',
    for: '10m',
    summary: 'CDI operator is down',
    severity: 'critical',
    healthImpact: 'critical',
  },
  {
    alert: 'CDINotReady',
    expr: 'kubevirt_cdi_cr_ready == 0',
    for: '10m',
    summary: 'CDI is not available to use',
    severity: 'critical',
    healthImpact: 'critical',
  },
  {
    alert: 'CDIDataVolumeUnusualRestartCount',
    expr: 'cluster:kubevirt_cdi_import_pods_high_restart:count > 0 or cluster:kubevirt_cdi_upload_pods_high_restart:count > 0 or cluster:kubevirt_cdi_clone_pods_high_restart:count > 0',
    for: '5m',
    summary:
      'Some CDI population workloads have an unusual restart count, meaning they are probably failing and need to be investigated',
    severity: 'warning',
    healthImpact: 'none',
  },
  {
    alert: 'CDIStorageProfilesIncomplete',
    expr: 'sum by(storageclass,provisioner) ((kubevirt_cdi_storageprofile_info{complete="false"}>0))',
    for: '5m',
    summary:
      'Incomplete StorageProfile {{ $labels.storageclass }}, accessMode/volumeMode cannot be inferred by CDI for PVC population request',
    severity: 'info',
    healthImpact: 'none',
  },
  {
    alert: 'CDIDataImportCronOutdated',
    expr: 'sum by(namespace,cron_name) (kubevirt_cdi_dataimportcron_outdated{pending="false"}) > 0',
    for: '15m',
    summary:
      'DataImportCron (recurring polling of VM templates disk image sources, also known as golden images) PVCs are not being updated on the defined schedule',
    severity: 'warning',
    healthImpact: 'none',
  },
  {
    alert: 'CDINoDefaultStorageClass',
    expr:
      'sum(kubevirt_cdi_storageprofile_info{default="true"} or on() vector(0)) +' +
      cont +
      'sum(kubevirt_cdi_storageprofile_info{virtdefault="true"} or on() vector(0)) +' +
      cont +
      '(count(kubevirt_cdi_datavolume_pending == 0) or on() vector(0)) == 0',
    for: '5m',
    summary: 'No default StorageClass or virtualization StorageClass, and a DataVolume is pending for one',
    severity: 'warning',
    healthImpact: 'none',
  },
  {
    alert: 'CDIMultipleDefaultVirtStorageClasses',
    expr: 'sum(kubevirt_cdi_storageprofile_info{virtdefault="true"} or on() vector(0)) > 1',
    for: '5m',
    summary: 'More than one default virtualization StorageClass detected',
    severity: 'warning',
    healthImpact: 'none',
  },
  {
    alert: 'CDIDefaultStorageClassDegraded',
    expr:
      'sum(kubevirt_cdi_storageprofile_info{default="true",degraded="false"} or on() vector(0)) +' +
      cont +
      'sum(kubevirt_cdi_storageprofile_info{virtdefault="true",degraded="false"} or on() vector(0)) +' +
      cont +
      'on () (0*(sum(kubevirt_cdi_storageprofile_info{default="true"}) or sum(kubevirt_cdi_storageprofile_info{virtdefault="true"}))) == 0',
    for: '5m',
    summary: 'Default storage class has no smart clone or ReadWriteMany',
    severity: 'warning',
    healthImpact: 'none',
  },
];

/** The runbook URL template from the environment (upstream GetRunbookURLTemplate); exactly one %s. */
export function runbookUrlTemplate(env: Record<string, string | undefined> = process.env): string {
  const t = env[RunbookUrlTemplateEnv] ?? DefaultRunbookUrlTemplate;
  if (t.split('%s').length !== 2) {
    throw new Error(
      `${RunbookUrlTemplateEnv} "${t}" must contain exactly one %s (where the alert name goes), e.g. ${DefaultRunbookUrlTemplate}`,
    );
  }
  return t;
}

/** Go's cmp.Compare on strings: byte order (JavaScript's < compares UTF-16 units; the names here are ASCII). */
const byKey =
  <T>(key: (x: T) => string) =>
  (a: T, b: T): number => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };

/** The alerts with the labels and annotations upstream's alerts.Register adds, sorted as its registry lists them. */
export function alertRules(template: string = DefaultRunbookUrlTemplate): Rule[] {
  return alertSpecs
    .map((a): Rule => ({
      alert: a.alert,
      expr: a.expr,
      for: a.for,
      annotations: { summary: a.summary, runbook_url: template.replace('%s', a.alert) },
      labels: {
        [AlertLabel.severity]: a.severity,
        [AlertLabel.healthImpact]: a.healthImpact,
        [AlertLabel.partOf]: PartOfValue,
        [AlertLabel.component]: ComponentValue,
      },
    }))
    .sort(byKey((r) => `${r.alert}:${r.expr}`));
}

/** The two groups of prometheus-cdi-rules, in operator-observability-toolkit's order. */
export function ruleGroups(namespace: string, template: string = DefaultRunbookUrlTemplate): RuleGroup[] {
  const recording = recordingRules(namespace)
    .map((r): Rule => ({ record: r.record, expr: r.expr }))
    .sort(byKey((r) => `${r.record}:${r.expr}`));
  return [
    { name: RecordingGroupName, rules: recording },
    { name: AlertGroupName, rules: alertRules(template) },
  ];
}

/** The PrometheusRule object (upstream rules.BuildPrometheusRule); the operator adds its recommended labels. */
export function prometheusRule(
  namespace: string,
  template: string = DefaultRunbookUrlTemplate,
): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: RuleName,
      namespace,
      labels: { 'cdi.kubevirt.io': '', 'prometheus.cdi.kubevirt.io': 'true' },
    },
    spec: { groups: ruleGroups(namespace, template) },
  };
}

/** A Prometheus rule file (what `promtool check rules` and prometheus --config rule_files read). */
export function ruleFileYaml(namespace: string, template: string = DefaultRunbookUrlTemplate): string {
  return YAML.stringify({ groups: ruleGroups(namespace, template) }, { lineWidth: 0 });
}

const header =
  '# Generated by hack/gen-manifests.ts from src/monitoring/rules.ts; do not edit (npm run gen).\n';

/** deploy/monitoring/<file> → YAML text: the PrometheusRule, for clusters with the Prometheus Operator. */
export function renderMonitoringFiles(namespace = 'cdi'): Record<string, string> {
  return {
    'prometheus-cdi-rules.yaml': header + YAML.stringify(prometheusRule(namespace), { lineWidth: 0 }),
  };
}
