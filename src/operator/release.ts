// The release manifests, as upstream publishes them (manifests/templates/release/cdi-operator.yaml.in, cdi-cr.yaml.in):
//
//   kubectl create -f cdi-operator.yaml   Namespace cdi, the CDI CRD, ServiceAccount cdi-operator, its RBAC
//                                         (ClusterRole cdi-operator-cluster, Role cdi-operator and their bindings)
//                                         and Deployment cdi-operator
//   kubectl create -f cdi-cr.yaml         the CDI resource `cdi`: the operator installs everything else from it
//
// Image references, pull policy and version are parameters (hack/gen-manifests.ts --release-*; the local cluster's
// are localhost:5000/<name>:dev). The operator's RBAC is least privilege and complete by construction: what it needs
// to manage the components, plus every rule of every role it installs (Kubernetes lets it grant only what it holds),
// collected from the components' rendered roles.
import YAML from 'yaml';
import { crds } from '../api/crds.ts';
import {
  CDILabel,
  PrometheusLabel,
  AllowClusterServicesLabel,
  restrictedContainer,
  restrictedPod,
  type Obj,
  type PullPolicy,
} from '../deploy/common.ts';
import { HealthPort, MetricsPort } from '../monitoring/server.ts';
import type { OperatorConfig, OperatorImages } from './config.ts';
import { watchScopes } from './operator.ts';
import { renderAll } from './render.ts';

export interface ReleaseOptions {
  namespace: string;
  version: string;
  operatorImage: string;
  images: OperatorImages;
  /** of the operator and, in cdi-cr.yaml, of the components */
  pullPolicy: PullPolicy;
  verbosity: string;
  /**
   * More environment for the operator, which hands the object-store names of it (AWS_ENDPOINT_URL_S3,
   * STORAGE_EMULATOR_HOST, ...) on to cdi-controller: where s3:// and gs:// URLs go (docs/importer.md).
   */
  operatorEnv?: Record<string, string>;
}

/** The local cluster's release: images pushed by hack/images/build.sh as :dev (moving, so pulled Always). */
export const defaultReleaseOptions: ReleaseOptions = {
  namespace: 'cdi',
  version: 'v0.1.0',
  operatorImage: 'localhost:5000/cdi-operator:dev',
  images: {
    controller: 'localhost:5000/cdi-controller:dev',
    importer: 'localhost:5000/cdi-importer:dev',
    apiServer: 'localhost:5000/cdi-apiserver:dev',
    uploadProxy: 'localhost:5000/cdi-uploadproxy:dev',
    uploadServer: 'localhost:5000/cdi-uploadserver:dev',
  },
  pullPolicy: 'Always',
  verbosity: '1',
};

/** Every image of a release under one registry and tag. */
export function releaseImagesFrom(
  registry: string,
  tag: string,
): Pick<ReleaseOptions, 'operatorImage' | 'images'> {
  const r = registry.replace(/\/+$/, '');
  if (!r || !tag)
    throw new Error('a registry and a tag are both needed, e.g. --registry quay.io/example --tag v0.1.0');
  const img = (name: string): string => `${r}/${name}:${tag}`;
  return {
    operatorImage: img('cdi-operator'),
    images: {
      controller: img('cdi-controller'),
      importer: img('cdi-importer'),
      apiServer: img('cdi-apiserver'),
      uploadProxy: img('cdi-uploadproxy'),
      uploadServer: img('cdi-uploadserver'),
    },
  };
}

export const OperatorName = 'cdi-operator';
export const OperatorClusterRole = 'cdi-operator-cluster';
/** The operator's own objects carry this label (upstream operatorLabels) and not the components' managed-by. */
const operatorLabels = {
  'operator.cdi.kubevirt.io': '',
  [CDILabel]: '',
  'app.kubernetes.io/component': 'storage',
};

const all = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

function operatorConfig(o: ReleaseOptions): OperatorConfig {
  return {
    namespace: o.namespace,
    version: o.version,
    images: o.images,
    pullPolicy: o.pullPolicy,
    verbosity: o.verbosity,
  };
}

/** The rules of every (Cluster)Role the components bring, by scope: the operator must hold them to grant them. */
function grantedRules(o: ReleaseOptions): { cluster: Obj[]; namespaced: Map<string, Obj[]> } {
  const probe = {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'CDI',
    metadata: { name: 'cdi', uid: 'probe' },
    spec: {},
  };
  const objs = renderAll({
    cr: probe,
    config: operatorConfig(o),
    facts: { priorityClasses: new Set(), monitoring: true, apiServerBundle: 'probe' },
  });
  const cluster: Obj[] = [];
  const namespaced = new Map<string, Obj[]>();
  const add = (ns: string, rules: Obj[]): void =>
    void namespaced.set(ns, [...(namespaced.get(ns) ?? []), ...rules]);
  for (const x of objs) {
    const rules = (x['rules'] as Obj[] | undefined) ?? [];
    const ns = String((x['metadata'] as Obj)['namespace']);
    if (x['kind'] === 'ClusterRole') cluster.push(...rules);
    if (x['kind'] === 'Role') add(ns, rules);
    const ref = x['roleRef'] as { kind: string; name: string } | undefined;
    // a binding to a Role the components do not bring (extension-apiserver-authentication-reader in kube-system):
    // the right to bind exactly that Role rather than holding what it grants
    if (
      x['kind'] === 'RoleBinding' &&
      ref?.kind === 'Role' &&
      !objs.some(
        (r) =>
          r['kind'] === 'Role' &&
          (r['metadata'] as Obj)['name'] === ref.name &&
          (r['metadata'] as Obj)['namespace'] === ns,
      )
    )
      add(ns, [
        {
          apiGroups: ['rbac.authorization.k8s.io'],
          resources: ['roles'],
          resourceNames: [ref.name],
          verbs: ['bind'],
        },
      ]);
  }
  return { cluster: dedupe(cluster), namespaced: new Map([...namespaced].map(([k, v]) => [k, dedupe(v)])) };
}

function dedupe(rules: Obj[]): Obj[] {
  const seen = new Set<string>();
  return rules.filter((r) => {
    const k = JSON.stringify(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** What the operator does itself, cluster-wide. */
function managementClusterRules(): Obj[] {
  return [
    { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: all },
    {
      apiGroups: ['rbac.authorization.k8s.io'],
      resources: ['clusterroles', 'clusterrolebindings'],
      verbs: all,
    },
    {
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations'],
      verbs: all,
    },
    { apiGroups: ['apiregistration.k8s.io'], resources: ['apiservices'], verbs: all },
    {
      apiGroups: ['cdi.kubevirt.io'],
      resources: ['cdis'],
      verbs: ['get', 'list', 'watch', 'update', 'patch'],
    },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['cdis/finalizers'], verbs: ['update'] },
    {
      apiGroups: ['cdi.kubevirt.io'],
      resources: ['cdiconfigs'],
      verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'],
    },
    // BlockUninstallIfWorkloadsExist: count them
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['list'] },
    // the worker pods and services removed on uninstall (upstream deleteWorkerResources)
    { apiGroups: [''], resources: ['pods', 'services'], verbs: ['list', 'delete'] },
    { apiGroups: ['scheduling.k8s.io'], resources: ['priorityclasses'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  ];
}

/** What the operator does itself, in a namespace it renders into. */
function managementNamespacedRules(ns: string, cdiNamespace: string): Obj[] {
  if (ns !== cdiNamespace)
    return [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: all }];
  return [
    {
      apiGroups: [''],
      resources: ['serviceaccounts', 'configmaps', 'secrets', 'services'],
      verbs: all,
    },
    { apiGroups: ['apps'], resources: ['deployments'], verbs: all },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: all },
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: all },
    { apiGroups: ['monitoring.coreos.com'], resources: ['prometheusrules', 'servicemonitors'], verbs: all },
    // its own election, and the controller's Lease removed on uninstall
    {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['get', 'create', 'update', 'delete'],
    },
  ];
}

function labels(extra: Record<string, string> = {}): Record<string, string> {
  return { ...operatorLabels, ...extra };
}

export function operatorRbac(o: ReleaseOptions): Obj[] {
  const granted = grantedRules(o);
  const sa = { kind: 'ServiceAccount', name: OperatorName, namespace: o.namespace };
  const rbac = 'rbac.authorization.k8s.io/v1';
  const namespaces = new Set([o.namespace, ...granted.namespaced.keys()]);
  for (const s of watchScopes(operatorConfig(o))) if (s.namespace) namespaces.add(s.namespace);
  const out: Obj[] = [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: OperatorName, namespace: o.namespace, labels: labels() },
    },
    {
      apiVersion: rbac,
      kind: 'ClusterRole',
      metadata: { name: OperatorClusterRole, labels: labels() },
      rules: dedupe([...managementClusterRules(), ...granted.cluster]),
    },
    {
      apiVersion: rbac,
      kind: 'ClusterRoleBinding',
      metadata: { name: OperatorName, labels: labels() },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: OperatorClusterRole },
      subjects: [sa],
    },
  ];
  for (const ns of [...namespaces].sort((a, b) =>
    a === o.namespace ? -1 : b === o.namespace ? 1 : a.localeCompare(b),
  )) {
    out.push(
      {
        apiVersion: rbac,
        kind: 'Role',
        metadata: { name: OperatorName, namespace: ns, labels: labels() },
        rules: dedupe([...managementNamespacedRules(ns, o.namespace), ...(granted.namespaced.get(ns) ?? [])]),
      },
      {
        apiVersion: rbac,
        kind: 'RoleBinding',
        metadata: { name: OperatorName, namespace: ns, labels: labels() },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: OperatorName },
        subjects: [sa],
      },
    );
  }
  return out;
}

export function operatorDeployment(o: ReleaseOptions): Obj {
  const podLabels = labels({
    name: OperatorName,
    [CDILabel]: OperatorName,
    [PrometheusLabel]: 'true',
    [AllowClusterServicesLabel]: 'true',
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: OperatorName, namespace: o.namespace, labels: podLabels },
    spec: {
      replicas: 1,
      selector: { matchLabels: { name: OperatorName } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          serviceAccountName: OperatorName,
          securityContext: { ...restrictedPod },
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          // a new operator takes over once the old one released the lease (it does on SIGTERM)
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: OperatorName,
              image: o.operatorImage,
              imagePullPolicy: o.pullPolicy,
              env: [
                { name: 'OPERATOR_VERSION', value: o.version },
                { name: 'CONTROLLER_IMAGE', value: o.images.controller },
                { name: 'IMPORTER_IMAGE', value: o.images.importer },
                { name: 'APISERVER_IMAGE', value: o.images.apiServer },
                { name: 'UPLOAD_PROXY_IMAGE', value: o.images.uploadProxy },
                { name: 'UPLOAD_SERVER_IMAGE', value: o.images.uploadServer },
                { name: 'PULL_POLICY', value: o.pullPolicy },
                { name: 'VERBOSITY', value: o.verbosity },
                ...Object.entries(o.operatorEnv ?? {}).map(([name, value]) => ({ name, value })),
                { name: 'HEALTH_PORT', value: String(HealthPort) },
                { name: 'METRICS_PORT', value: String(MetricsPort) },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              ],
              ports: [
                { name: 'metrics', containerPort: MetricsPort, protocol: 'TCP' },
                { name: 'health', containerPort: HealthPort, protocol: 'TCP' },
              ],
              livenessProbe: {
                httpGet: { path: '/healthz', port: 'health' },
                initialDelaySeconds: 5,
                timeoutSeconds: 10,
              },
              readinessProbe: {
                httpGet: { path: '/readyz', port: 'health' },
                initialDelaySeconds: 2,
                timeoutSeconds: 10,
              },
              resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '512Mi' } },
              securityContext: { ...restrictedContainer },
              terminationMessagePolicy: 'FallbackToLogsOnError',
            },
          ],
        },
      },
    },
  };
}

export function operatorManifests(o: ReleaseOptions = defaultReleaseOptions): Obj[] {
  const cdiCrd = crds().find((c) => (c['metadata'] as Obj)['name'] === 'cdis.cdi.kubevirt.io') as Obj;
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: o.namespace,
        labels: { [CDILabel]: '', 'pod-security.kubernetes.io/enforce': 'restricted' },
      },
    },
    cdiCrd,
    ...operatorRbac(o),
    operatorDeployment(o),
  ];
}

/** The CDI resource with upstream's defaults (cdi-cr.yaml.in), the uninstall strategy spelled out. */
export function cdiResource(o: ReleaseOptions = defaultReleaseOptions): Obj {
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'CDI',
    metadata: { name: 'cdi' },
    spec: {
      config: { featureGates: ['HonorWaitForFirstConsumer'] },
      imagePullPolicy: o.pullPolicy,
      infra: { nodeSelector: { 'kubernetes.io/os': 'linux' } },
      workload: { nodeSelector: { 'kubernetes.io/os': 'linux' } },
      uninstallStrategy: 'RemoveWorkloads',
    },
  };
}

const header = (what: string): string =>
  `# ${what}\n# Generated by hack/gen-manifests.ts from src/operator/release.ts; do not edit (npm run gen).\n`;

export const toYaml = (objs: Obj[]): string =>
  objs.map((x) => YAML.stringify(x, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');

/** deploy/release/<file> → YAML text. */
export function renderReleaseFiles(o: ReleaseOptions = defaultReleaseOptions): Record<string, string> {
  return {
    'cdi-operator.yaml':
      header('CDI operator: kubectl create -f cdi-operator.yaml, then kubectl create -f cdi-cr.yaml') +
      toYaml(operatorManifests(o)),
    'cdi-cr.yaml': header('The CDI resource: the operator installs CDI from it') + toYaml([cdiResource(o)]),
  };
}
