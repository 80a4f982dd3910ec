// The kinds the operator installs and watches, and how to find a rendered object's REST resource.
import { Resources, type Resource } from '../kube/index.ts';

const r = (group: string, version: string, kind: string, plural: string, namespaced: boolean): Resource => ({
  group,
  version,
  kind,
  plural,
  namespaced,
});

export const Kinds = {
  CustomResourceDefinition: Resources.CustomResourceDefinition,
  ClusterRole: r('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', false),
  ClusterRoleBinding: r(
    'rbac.authorization.k8s.io',
    'v1',
    'ClusterRoleBinding',
    'clusterrolebindings',
    false,
  ),
  Role: r('rbac.authorization.k8s.io', 'v1', 'Role', 'roles', true),
  RoleBinding: r('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings', true),
  ServiceAccount: r('', 'v1', 'ServiceAccount', 'serviceaccounts', true),
  Service: Resources.Service,
  ConfigMap: Resources.ConfigMap,
  Secret: Resources.Secret,
  Deployment: r('apps', 'v1', 'Deployment', 'deployments', true),
  NetworkPolicy: r('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', true),
  ValidatingWebhookConfiguration: r(
    'admissionregistration.k8s.io',
    'v1',
    'ValidatingWebhookConfiguration',
    'validatingwebhookconfigurations',
    false,
  ),
  MutatingWebhookConfiguration: r(
    'admissionregistration.k8s.io',
    'v1',
    'MutatingWebhookConfiguration',
    'mutatingwebhookconfigurations',
    false,
  ),
  APIService: r('apiregistration.k8s.io', 'v1', 'APIService', 'apiservices', false),
  PrometheusRule: r('monitoring.coreos.com', 'v1', 'PrometheusRule', 'prometheusrules', true),
  ServiceMonitor: r('monitoring.coreos.com', 'v1', 'ServiceMonitor', 'servicemonitors', true),
  PriorityClass: r('scheduling.k8s.io', 'v1', 'PriorityClass', 'priorityclasses', false),
  Pod: Resources.Pod,
  Lease: Resources.Lease,
  CDI: Resources.CDI,
  CDIConfig: Resources.CDIConfig,
  DataVolume: Resources.DataVolume,
} as const satisfies Record<string, Resource>;

export type KindName = keyof typeof Kinds;

/** Kinds that exist only when Prometheus Operator's CRDs are installed. */
export const MonitoringKinds: readonly KindName[] = ['PrometheusRule', 'ServiceMonitor'];
export const MonitoringCrds = [
  'prometheusrules.monitoring.coreos.com',
  'servicemonitors.monitoring.coreos.com',
];

/** The REST resource of a rendered object (by kind; the rendered apiVersion must match the table's). */
export function resourceOf(obj: { apiVersion?: unknown; kind?: unknown }): Resource {
  const kind = String(obj.kind);
  const res = (Kinds as Record<string, Resource>)[kind];
  if (!res) throw new Error(`the operator has no REST resource for kind ${kind}`);
  const apiVersion = res.group === '' ? res.version : `${res.group}/${res.version}`;
  if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersion)
    throw new Error(`${kind} is served as ${apiVersion}, not ${JSON.stringify(obj.apiVersion)}`);
  return res;
}
