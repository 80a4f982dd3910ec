// The manifests that run cdi-controller: Namespace, ServiceAccount, least-privilege RBAC, Deployment and the
// metrics Service, plus the user-facing ClusterRoles (src/deploy/rbac.ts). Rendered from code with options (images,
// pull policy, namespace, replicas); `npm run gen` (hack/gen-manifests.ts) writes the local harness's default into
// deploy/cdi/*.yaml, snapshot-tested so a change to a rule or a field shows up in review. Names follow upstream where
// a user may look for them (cdi-deployment, cdi-sa).
import YAML from 'yaml';
import { userClusterRoles } from './rbac.ts';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';
export const PullPolicies: readonly PullPolicy[] = ['Always', 'IfNotPresent', 'Never'];

export interface ControllerDeployOptions {
  namespace: string;
  /** The cdi-controller image, e.g. quay.io/example/cdi-controller:v0.1.0 */
  controllerImage: string;
  /** The image of the importer pods the controller starts. */
  importerImage: string;
  /** For the controller and every pod it starts. */
  pullPolicy: PullPolicy;
  replicas: number;
}

/**
 * The local harness's choice (`npm run gen`, deploy/): hack/images/build.sh pushes :dev (moving) and :<content hash>
 * to the cluster's registry, and :dev moves, so it is pulled Always; deploy-time tooling may pin the hash.
 */
export const defaultDeployOptions: ControllerDeployOptions = {
  namespace: 'cdi',
  controllerImage: 'localhost:5000/cdi-controller:dev',
  importerImage: 'localhost:5000/cdi-importer:dev',
  pullPolicy: 'Always',
  replicas: 1,
};

/** The project's image names under one registry and tag: `<registry>/cdi-controller:<tag>`, `…/cdi-importer:<tag>`. */
export function imagesFrom(registry: string, tag: string): Pick<ControllerDeployOptions, 'controllerImage' | 'importerImage'> {
  const r = registry.replace(/\/+$/, '');
  if (!r || !tag) throw new Error('a registry and a tag are both needed, e.g. --registry quay.io/example --tag v0.1.0');
  return { controllerImage: `${r}/cdi-controller:${tag}`, importerImage: `${r}/cdi-importer:${tag}` };
}

type Obj = Record<string, unknown>;

const labels = { 'app.kubernetes.io/component': 'storage', 'app.kubernetes.io/managed-by': 'cdi-ts', 'cdi.kubevirt.io': 'cdi-controller' };

/**
 * Exactly what the controllers and the process touch, verb by verb:
 * - datavolumes: watch, add the usePopulator annotation (patch); their status through the status subresource (patch)
 * - persistentvolumeclaims: watch; create targets and scratch volumes; patch the status annotations; delete never
 *   (owner references do that) - but the import controller deletes nothing but pods
 * - pods: watch importer pods, list a namespace's pods to find one holding a target claim; create and delete importers
 * - `update` on the finalizers subresource of every owner a child names with blockOwnerDeletion (the
 *   OwnerReferencesPermissionEnforcement admission plugin demands it): DataVolumes own their PVCs, PVCs own the
 *   importer pods, importer pods own the scratch PVCs
 * - storageclasses: read (rendering, overhead); storageprofiles: create/delete one per class, annotate them with the
 *   table's minimum size and DataImportCron hints (patch), write status
 * - persistentvolumes: read (a class without provisioner can do what its volumes offer)
 * - volumesnapshotclasses: read (a profile's snapshotClass and clone strategy)
 * - cdiconfigs: create the singleton, update it (its status lives in the object: the CRD has no status subresource)
 * - events: create and, for repeats, patch (aggregation); list/watch PVC events for the Bound condition
 * - configmaps: create the per-PVC copy of the trusted proxy CA; read its source in CDI's namespace only (the Role)
 * - leases (own namespace only, see the Role): the leader election
 * - datasources: resolve them and write Ready (the whole object: the CRD has no status subresource); a
 *   DataImportCron's managed DataSource is created, pointed at its newest import, deleted with retentionPolicy None;
 *   volumesnapshots: read (a DataSource's snapshot source)
 * - dataimportcrons: watch, write status (the whole object); their imports: create DataVolumes, delete the outdated
 *   ones (garbage collection, as upstream: the only user data the controller deletes, and only its own imports)
 * - cronjobs, jobs (CDI's namespace only, see the Role): the digest pollers
 * - volumeimportsources: read; a PVC naming one gets a prime claim, whose PV is then handed to it (persistentvolumes
 *   update: the claimRef), and the prime deleted (persistentvolumeclaims delete)
 */
export function clusterRules(): Obj[] {
  return [
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes/status'], verbs: ['patch'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes/finalizers'], verbs: ['update'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['cdiconfigs'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
    {
      apiGroups: ['cdi.kubevirt.io'],
      resources: ['storageprofiles'],
      verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['storageprofiles/status'], verbs: ['update'] },
    { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
    { apiGroups: [''], resources: ['persistentvolumeclaims/finalizers', 'pods/finalizers'], verbs: ['update'] },
    // update: the populators hand a filled volume from its prime claim to the target (the PV's claimRef)
    { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['get', 'list', 'watch', 'update'] },
    { apiGroups: ['storage.k8s.io'], resources: ['storageclasses'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshotclasses'], verbs: ['list', 'watch'] },
    // list/watch: the cache of PVC events (a Pending claim's latest event becomes its Bound condition)
    { apiGroups: [''], resources: ['events'], verbs: ['list', 'watch', 'create', 'patch'] },
    // the per-PVC copy of CDIConfig's trusted proxy CA (import-proxy-cm-<pvc>), owned by the importer pod
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datasources'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['dataimportcrons'], verbs: ['get', 'list', 'watch', 'update'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['volumeimportsources'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ['get', 'list', 'watch'] },
  ];
}

export function controllerManifests(o: ControllerDeployOptions = defaultDeployOptions): Obj[] {
  const ns = o.namespace;
  const selector = { 'cdi.kubevirt.io': 'cdi-controller' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...labels, 'pod-security.kubernetes.io/enforce': 'restricted' } } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cdi-sa', namespace: ns, labels } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'cdi-controller', labels }, rules: clusterRules() },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'cdi-controller', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cdi-controller' },
      subjects: [{ kind: 'ServiceAccount', name: 'cdi-sa', namespace: ns }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'cdi-controller', namespace: ns, labels },
      rules: [
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
        { apiGroups: ['batch'], resources: ['cronjobs', 'jobs'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'cdi-controller', namespace: ns, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cdi-controller' },
      subjects: [{ kind: 'ServiceAccount', name: 'cdi-sa', namespace: ns }],
    },
    // the DataImportCron digest pollers' identity (upstream cdi-cronjob): read a cron, annotate it with the digest
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cdi-cronjob', namespace: ns, labels } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'cdi-cronjob', labels },
      rules: [{ apiGroups: ['cdi.kubevirt.io'], resources: ['dataimportcrons'], verbs: ['get', 'patch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'cdi-cronjob', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cdi-cronjob' },
      subjects: [{ kind: 'ServiceAccount', name: 'cdi-cronjob', namespace: ns }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'cdi-deployment', namespace: ns, labels },
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: selector },
        // a new leader takes over only after the old one released its lease (graceful shutdown)
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels: { ...labels, 'prometheus.cdi.kubevirt.io': 'true' } },
          spec: {
            serviceAccountName: 'cdi-sa',
            securityContext: { runAsNonRoot: true, runAsUser: 107, runAsGroup: 107, seccompProfile: { type: 'RuntimeDefault' } },
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                name: 'cdi-controller',
                image: o.controllerImage,
                imagePullPolicy: o.pullPolicy,
                env: [
                  { name: 'IMPORTER_IMAGE', value: o.importerImage },
                  { name: 'PULL_POLICY', value: o.pullPolicy },
                  { name: 'HEALTH_PORT', value: '8080' },
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
                ports: [{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }],
                livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, initialDelaySeconds: 10, periodSeconds: 10 },
                readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, initialDelaySeconds: 2, periodSeconds: 5 },
                resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '512Mi' } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  seccompProfile: { type: 'RuntimeDefault' },
                },
                terminationMessagePolicy: 'FallbackToLogsOnError',
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'cdi-prometheus-metrics', namespace: ns, labels },
      spec: {
        selector: { ...selector, 'prometheus.cdi.kubevirt.io': 'true' },
        ports: [{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }],
      },
    },
  ];
}

const header = '# Generated by hack/gen-manifests.ts from src/deploy/controller.ts; do not edit (npm run gen).\n';

/** Every object, in the order to apply them (what deploy/cdi holds, in one list). */
export function allManifests(o: ControllerDeployOptions = defaultDeployOptions): Obj[] {
  return [...controllerManifests(o), ...userClusterRoles(labels)];
}

/** deploy/cdi/<file> → YAML text. */
export function renderDeployFiles(o: ControllerDeployOptions = defaultDeployOptions): Record<string, string> {
  const m = controllerManifests(o);
  const doc = (objs: Obj[]): string => header + objs.map((x) => YAML.stringify(x, { lineWidth: 0 })).join('---\n');
  const byKind = (...kinds: string[]): Obj[] => m.filter((x) => kinds.includes(String(x['kind'])));
  return {
    '00-namespace.yaml': doc(byKind('Namespace')),
    '10-rbac.yaml': doc(byKind('ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding')),
    '11-rbac-users.yaml': doc(userClusterRoles(labels)),
    '20-controller.yaml': doc(byKind('Deployment', 'Service')),
  };
}
