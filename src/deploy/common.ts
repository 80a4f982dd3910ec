// What every CDI component's manifests share, as upstream's operator builds them (pkg/operator/resources/utils
// common.go and the sdk's ResourceBuilder): the common labels, the pod and container hardening, and the
// placement of the infrastructure pods (CDI.spec.infra: node selector, tolerations, affinity plus a preferred
// anti-affinity that spreads a component's replicas over nodes), pull secrets and priority class.

export type Obj = Record<string, unknown>;

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';
export const PullPolicies: readonly PullPolicy[] = ['Always', 'IfNotPresent', 'Never'];

/**
 * Where `s3://` and `gs://` URLs go on this cluster (ours, not upstream's): set on the operator, handed on to
 * cdi-controller, which hands them to S3 and GCS importer pods (docs/importer.md).
 */
export const ObjectStoreEnvNames = [
  'AWS_ENDPOINT_URL_S3',
  'AWS_ENDPOINT_URL',
  'AWS_REGION',
  'STORAGE_EMULATOR_HOST',
] as const;

/** What cdi-operator hands on from its own environment to cdi-controller: the above, and CDI_READS (the scale bench). */
export const ControllerPassThroughEnv = [...ObjectStoreEnvNames, 'CDI_READS'] as const;

/** Where pods go: upstream's sdkapi.NodePlacement (CDI.spec.infra and CDI.spec.workload). */
export interface Placement {
  nodeSelector?: Record<string, string>;
  affinity?: Obj;
  tolerations?: Obj[];
}

/** The settings every component's Deployment takes from the CDI resource. */
export interface ComponentOptions {
  namespace: string;
  /** For the component and every pod it starts. */
  pullPolicy: PullPolicy;
  /** CDI.spec.config.imagePullSecrets */
  imagePullSecrets?: string[];
  /** CDI.spec.priorityClass, or kubevirt-cluster-critical when that class exists */
  priorityClassName?: string;
  /** CDI.spec.infra */
  infra?: Placement;
  /** CDI.spec.config.logVerbosity */
  verbosity?: string;
}

/** The label every CDI object carries (upstream utils.CDILabel); components set it to their name. */
export const CDILabel = 'cdi.kubevirt.io';
export const ManagedByLabel = 'app.kubernetes.io/managed-by';
/** Who manages the components: the operator, as upstream (cdi-operator). */
export const ManagedBy = 'cdi-operator';
export const PrometheusLabel = 'prometheus.cdi.kubevirt.io';
/** KubeVirt's network-policy label: the pod needs the API server and DNS. */
export const AllowClusterServicesLabel = 'np.kubevirt.io/allow-access-cluster-services';

/** upstream commonLabels */
export const commonLabels: Readonly<Record<string, string>> = {
  [CDILabel]: '',
  [ManagedByLabel]: ManagedBy,
  'app.kubernetes.io/component': 'storage',
  app: 'containerized-data-importer',
};

/** The common labels with `cdi.kubevirt.io` set to a component name. */
export function labelsOf(component?: string): Record<string, string> {
  return { ...commonLabels, ...(component !== undefined ? { [CDILabel]: component } : {}) };
}

/** The container hardening upstream applies to every component (restricted Pod Security profile). */
export const restrictedContainer: Readonly<Obj> = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Pod-level security: the app image runs as uid 107 (qemu), as upstream's. */
export const restrictedPod: Readonly<Obj> = {
  runAsNonRoot: true,
  runAsUser: 107,
  runAsGroup: 107,
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * upstream AddPodPreferredDuringSchedulingIgnoredDuringExecution: the given affinity plus a preferred
 * anti-affinity between the component's own pods (one node per replica where possible).
 */
export function infraAffinity(component: string, affinity?: Obj): Obj {
  const spread = {
    weight: 1,
    podAffinityTerm: {
      labelSelector: { matchExpressions: [{ key: CDILabel, operator: 'In', values: [component] }] },
      topologyKey: 'kubernetes.io/hostname',
    },
  };
  const base = structuredClone(affinity ?? {});
  const anti = (base['podAntiAffinity'] as Obj | undefined) ?? {};
  const preferred = (anti['preferredDuringSchedulingIgnoredDuringExecution'] as Obj[] | undefined) ?? [];
  return {
    ...base,
    podAntiAffinity: { ...anti, preferredDuringSchedulingIgnoredDuringExecution: [...preferred, spread] },
  };
}

/** The pod-spec fields that place an infrastructure pod and let it pull: affinity, selector, tolerations, … */
export function infraPodFields(component: string, o: ComponentOptions): Obj {
  const p = o.infra ?? {};
  return {
    affinity: infraAffinity(component, p.affinity),
    ...(p.nodeSelector && Object.keys(p.nodeSelector).length ? { nodeSelector: { ...p.nodeSelector } } : {}),
    ...(p.tolerations?.length ? { tolerations: structuredClone(p.tolerations) } : {}),
    ...(o.priorityClassName ? { priorityClassName: o.priorityClassName } : {}),
    ...(o.imagePullSecrets?.length ? { imagePullSecrets: o.imagePullSecrets.map((name) => ({ name })) } : {}),
  };
}

export interface DeploymentSpec {
  name: string;
  serviceAccount: string;
  replicas: number;
  /** extra labels of the Deployment and its pods (beyond the common ones and `cdi.kubevirt.io: <name>`) */
  labels?: Record<string, string>;
  container: Obj;
  volumes?: Obj[];
  strategy?: Obj;
  terminationGracePeriodSeconds?: number;
}

/**
 * A component's Deployment as upstream's CreateDeployment makes it: selector `cdi.kubevirt.io: <name>` (the
 * selector is immutable, so it never changes between versions), the common labels on the Deployment and its pods,
 * a hardened pod placed by CDI.spec.infra.
 */
export function componentDeployment(o: ComponentOptions, d: DeploymentSpec): Obj {
  const labels = { ...labelsOf(d.name), ...d.labels };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: d.name, namespace: o.namespace, labels },
    spec: {
      replicas: d.replicas,
      selector: { matchLabels: { [CDILabel]: d.name } },
      ...(d.strategy ? { strategy: d.strategy } : {}),
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: d.serviceAccount,
          securityContext: { ...restrictedPod },
          ...infraPodFields(d.name, o),
          ...(d.terminationGracePeriodSeconds !== undefined
            ? { terminationGracePeriodSeconds: d.terminationGracePeriodSeconds }
            : {}),
          containers: [
            {
              imagePullPolicy: o.pullPolicy,
              ...d.container,
              securityContext: { ...restrictedContainer },
              terminationMessagePolicy: 'FallbackToLogsOnError',
            },
          ],
          ...(d.volumes?.length ? { volumes: d.volumes } : {}),
        },
      },
    },
  };
}

/** A ServiceAccount, ClusterRole(Binding) or Role(Binding) with the common labels. */
export function serviceAccount(namespace: string, name: string, component?: string): Obj {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels: labelsOf(component) } };
}

const rbacApi = 'rbac.authorization.k8s.io/v1';

export function clusterRole(name: string, rules: Obj[], component?: string): Obj {
  return { apiVersion: rbacApi, kind: 'ClusterRole', metadata: { name, labels: labelsOf(component) }, rules };
}

export function clusterRoleBinding(
  name: string,
  role: string,
  sa: { name: string; namespace: string },
  component?: string,
): Obj {
  return {
    apiVersion: rbacApi,
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: labelsOf(component) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ kind: 'ServiceAccount', ...sa }],
  };
}

export function role(namespace: string, name: string, rules: Obj[], component?: string): Obj {
  return { apiVersion: rbacApi, kind: 'Role', metadata: { name, namespace, labels: labelsOf(component) }, rules };
}

export function roleBinding(
  namespace: string,
  name: string,
  roleRef: { kind: 'Role' | 'ClusterRole'; name: string },
  sa: { name: string; namespace: string },
  component?: string,
): Obj {
  return {
    apiVersion: rbacApi,
    kind: 'RoleBinding',
    metadata: { name, namespace, labels: labelsOf(component) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...roleRef },
    subjects: [{ kind: 'ServiceAccount', ...sa }],
  };
}
