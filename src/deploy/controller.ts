// The manifests that run cdi-controller, with upstream's names (pkg/operator/resources/cluster/controller.go,
// namespaced/controller.go): ServiceAccount cdi-sa, ClusterRole cdi bound by ClusterRoleBinding cdi-sa, Role and
// RoleBinding cdi-deployment (its Lease), Deployment cdi-deployment and the metrics Service cdi-prometheus-metrics.
// Rendered from code with options; the operator (src/operator) installs them from a CDI resource, and
// `npm run gen` writes what it installs for the default resource into deploy/cdi/ for review (snapshot-tested, so a
// change to a rule or a field shows up in a diff).
import { DefaultMetricsCertDir as MetricsCertDir, HealthPort, MetricsPort } from '../monitoring/server.ts';
import { siblingImage } from '../api/naming.ts';
import { userClusterRoles } from './rbac.ts';
import {
  AllowClusterServicesLabel,
  clusterRole,
  clusterRoleBinding,
  componentDeployment,
  labelsOf,
  PrometheusLabel,
  role,
  roleBinding,
  serviceAccount,
  type ComponentOptions,
  type Obj,
  type Placement,
} from './common.ts';

export { PullPolicies, type PullPolicy } from './common.ts';

export const ControllerName = 'cdi-deployment';
export const ControllerServiceAccount = 'cdi-sa';
export const ControllerClusterRole = 'cdi';
export const MetricsService = 'cdi-prometheus-metrics';
/** upstream common.MetricsReaderServiceAccountName: the ServiceAccount (and ClusterRole) that may scrape /metrics */
export const MetricsReader = 'cdi-metrics-reader';
/** upstream's cdi-cronjob: the ServiceAccount of the DataImportCron digest pollers */
export const CronJobServiceAccount = 'cdi-cronjob';
/** The controller's metrics serving certificate (ADR 0040 §3; ours, upstream has none), issued by the operator. */
export const MetricsCertSecret = 'cdi-metrics-server-cert';

export interface ControllerDeployOptions extends ComponentOptions {
  /** The cdi-controller image, e.g. quay.io/example/cdi-controller:v0.1.0 */
  controllerImage: string;
  /** The image of the importer pods the controller starts. */
  importerImage: string;
  /** The image of the upload server pods; default: cdi-uploadserver beside the importer image. */
  uploadServerImage?: string;
  /** CDI.spec.infra.deploymentReplicas */
  replicas: number;
  /** CDI.spec.workload: where the worker pods (importer, upload server) go */
  workload?: Placement;
  /** More environment for cdi-controller, e.g. AWS_ENDPOINT_URL_S3 (where s3:// URLs go; docs/importer.md). */
  controllerEnv?: Record<string, string>;
}

/**
 * The local harness's choice (`npm run gen`, deploy/): hack/images/build.sh pushes :dev (moving) and :<content hash>
 * to the cluster's registry, and :dev moves, so it is pulled Always; deploy-time tooling may pin the hash.
 */
export const defaultDeployOptions: ControllerDeployOptions = {
  namespace: 'cdi',
  controllerImage: 'localhost:5000/cdi-controller:dev',
  importerImage: 'localhost:5000/cdi-importer:dev',
  uploadServerImage: 'localhost:5000/cdi-uploadserver:dev',
  pullPolicy: 'Always',
  replicas: 1,
};

/** The project's image names under one registry and tag: `<registry>/cdi-controller:<tag>`, `…/cdi-importer:<tag>`. */
export function imagesFrom(
  registry: string,
  tag: string,
): Pick<ControllerDeployOptions, 'controllerImage' | 'importerImage' | 'uploadServerImage'> {
  const r = registry.replace(/\/+$/, '');
  if (!r || !tag) throw new Error('a registry and a tag are both needed, e.g. --registry quay.io/example --tag v0.1.0');
  return {
    controllerImage: `${r}/cdi-controller:${tag}`,
    importerImage: `${r}/cdi-importer:${tag}`,
    uploadServerImage: `${r}/cdi-uploadserver:${tag}`,
  };
}

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
 * - csidrivers: get one (the storage profile gauge: is csi-clone smart?; external population: is there a CSI driver?)
 * - tokenreviews, subjectaccessreviews: create; who scrapes /metrics and whether they may (ADR 0040)
 * - leases (own namespace only, see the Role): the leader election
 * - services: watch; create the upload server's Service cdi-upload-<pvc> (owned by the PVC), delete it after the
 *   upload; secrets: create the upload pod's certificate Secret (owned by the pod), delete it when the pod is
 *   replaced at its deadline; in CDI's namespace (the Role) the CAs, bundles and leaves of the upload path
 * - clones: PVCs deleted (a smart clone's temporary claim beside a source in another namespace); PVs read and patched
 *   (Retain and claimRef while a cloned volume moves to its target); secrets and services created and deleted (the
 *   upload server's TLS material and Service, a clone source pod's client certificate; the CAs and the token
 *   signing key read in CDI's namespace); VolumeSnapshots (smart clones' temporary ones; a snapshot source and its
 *   content read); CDI read for cloneStrategyOverride
 * - datasources: resolve them and write Ready (the whole object: the CRD has no status subresource); a
 *   DataImportCron's managed DataSource is created, pointed at its newest import, deleted with retentionPolicy None;
 *   volumesnapshots: read (a DataSource's snapshot source)
 * - dataimportcrons: watch, write status (the whole object); their imports: create DataVolumes, delete the outdated
 *   ones (garbage collection, as upstream: the only user data the controller deletes, and only its own imports);
 *   with the snapshot source format, VolumeSnapshots of the imports: create, patch (labels, lastUseTime), list and
 *   delete (garbage collection; the DataVolume and PVC once the snapshot is ready)
 * - cronjobs, jobs (CDI's namespace only, see the Role): the digest pollers
 * - volumeimportsources, volumeuploadsources, volumeclonesources: read; a PVC naming one gets a claim that is filled
 *   (prime-<uid>, or tmp-pvc-<uid> for a clone, with tmp-snapshot-<uid> for a snapshot clone), whose PV is then handed
 *   to it (persistentvolumes update: the claimRef), and that claim deleted (persistentvolumeclaims delete)
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
    // patch: a cloned volume moves to its target (Retain, claimRef); update: the populators hand a filled volume
    // from its prime claim to the target (the claimRef)
    { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['get', 'list', 'watch', 'patch', 'update'] },
    // the upload server's Service cdi-upload-<pvc> (uploads and clone targets; ADR 0044)
    { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
    // made and removed, never read outside CDI's namespace (the Role reads the CAs and the signing key there)
    { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'delete'] },
    { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshotcontents'], verbs: ['get'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['cdis'], verbs: ['list'] },
    { apiGroups: ['storage.k8s.io'], resources: ['storageclasses'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshotclasses'], verbs: ['list', 'watch'] },
    // list/watch: the cache of PVC events (a Pending claim's latest event becomes its Bound condition)
    { apiGroups: [''], resources: ['events'], verbs: ['list', 'watch', 'create', 'patch'] },
    // the per-PVC copy of CDIConfig's trusted proxy CA (import-proxy-cm-<pvc>), owned by the importer pod
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    // a csi-clone profile's smart-clone label (kubevirt_cdi_storageprofile_info)
    { apiGroups: ['storage.k8s.io'], resources: ['csidrivers'], verbs: ['get'] },
    // the metrics endpoint's delegated authentication and authorization
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datasources'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['dataimportcrons'], verbs: ['get', 'list', 'watch', 'update'] },
    {
      apiGroups: ['cdi.kubevirt.io'],
      resources: ['volumeimportsources', 'volumeuploadsources', 'volumeclonesources'],
      verbs: ['get', 'list', 'watch'],
    },
  ];
}

/** In the CDI namespace only: the leader election Lease; the trusted proxy CA's source ConfigMap and the upload CAs (read). */
export function namespacedRules(): Obj[] {
  return [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
    // the upload path's CAs and bundles, which the operator keeps (the controller issues upload server leaves)
    { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
    // the DataImportCron digest pollers
    { apiGroups: ['batch'], resources: ['cronjobs', 'jobs'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
  ];
}

const json = (v: unknown): string => JSON.stringify(v);

export function controllerManifests(o: ControllerDeployOptions = defaultDeployOptions): Obj[] {
  const ns = o.namespace;
  const sa = { name: ControllerServiceAccount, namespace: ns };
  const w = o.workload ?? {};
  const env: Obj[] = [
    { name: 'IMPORTER_IMAGE', value: o.importerImage },
    {
      name: 'UPLOADSERVER_IMAGE',
      value: o.uploadServerImage ?? siblingImage(o.importerImage, 'cdi-uploadserver'),
    },
    { name: 'CLONER_IMAGE', value: siblingImage(o.importerImage, 'cdi-cloner') },
    { name: 'UPLOADPROXY_SERVICE', value: 'cdi-uploadproxy' },
    { name: 'PULL_POLICY', value: o.pullPolicy },
    ...(o.verbosity !== undefined ? [{ name: 'VERBOSITY', value: o.verbosity }] : []),
    ...(w.nodeSelector && Object.keys(w.nodeSelector).length
      ? [{ name: 'WORKLOAD_NODE_SELECTOR', value: json(w.nodeSelector) }]
      : []),
    ...(w.tolerations?.length ? [{ name: 'WORKLOAD_TOLERATIONS', value: json(w.tolerations) }] : []),
    ...(w.affinity && Object.keys(w.affinity).length ? [{ name: 'WORKLOAD_AFFINITY', value: json(w.affinity) }] : []),
    ...(o.imagePullSecrets?.length ? [{ name: 'IMAGE_PULL_SECRETS', value: o.imagePullSecrets.join(',') }] : []),
    { name: 'HEALTH_PORT', value: String(HealthPort) },
    { name: 'METRICS_PORT', value: String(MetricsPort) },
    { name: 'METRICS_CERT_DIR', value: MetricsCertDir },
    // the operator owns the certificates: the controller only reads the upload CAs (h/upload-ctl's switch)
    { name: 'CDI_CERTIFICATES', value: 'read' },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    // a certificate made at start (none mounted yet) covers the pod IP too
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ...Object.entries(o.controllerEnv ?? {}).map(([name, value]) => ({ name, value })),
  ];
  return [
    serviceAccount(ns, ControllerServiceAccount),
    clusterRole(ControllerClusterRole, clusterRules()),
    clusterRoleBinding(ControllerServiceAccount, ControllerClusterRole, sa),
    role(ns, ControllerName, namespacedRules()),
    roleBinding(ns, ControllerName, { kind: 'Role', name: ControllerName }, sa),
    // upstream's metrics reader: a ServiceAccount whose token a Prometheus scrapes with (the ServiceMonitor's)
    serviceAccount(ns, MetricsReader),
    clusterRole(MetricsReader, [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]),
    clusterRoleBinding(MetricsReader, MetricsReader, { name: MetricsReader, namespace: ns }),
    // the DataImportCron digest pollers' identity (upstream cdi-cronjob): read a cron, annotate it with the digest
    serviceAccount(ns, CronJobServiceAccount),
    clusterRole(CronJobServiceAccount, [
      { apiGroups: ['cdi.kubevirt.io'], resources: ['dataimportcrons'], verbs: ['get', 'patch'] },
    ]),
    clusterRoleBinding(CronJobServiceAccount, CronJobServiceAccount, { name: CronJobServiceAccount, namespace: ns }),
    componentDeployment(o, {
      name: ControllerName,
      serviceAccount: ControllerServiceAccount,
      replicas: o.replicas,
      labels: { [PrometheusLabel]: 'true', [AllowClusterServicesLabel]: 'true' },
      // a new leader takes over only after the old one released its lease (graceful shutdown)
      strategy: { type: 'Recreate' },
      terminationGracePeriodSeconds: 30,
      container: {
        name: 'cdi-controller',
        image: o.controllerImage,
        env,
        ports: [
          { name: 'metrics', containerPort: MetricsPort, protocol: 'TCP' },
          { name: 'health', containerPort: HealthPort, protocol: 'TCP' },
        ],
        // Liveness catches a process that is wedged, not one that is slow. On a node saturated by importer pods (500
        // DataVolumes at once on 2 cores) the controller gets a few percent of a CPU: a 1 s probe killed a working
        // controller, and a restarted one took 90 s to list 500 DataVolumes, their claims, pods and events, so each
        // restart failed its probes again. The startup probe gives the first sync 5 minutes; after it, 6 probes of
        // 10 s must fail, which is well past the lease (15 s) that a stuck leader loses and exits for anyway.
        // Upstream's controller has no liveness probe at all.
        startupProbe: {
          httpGet: { path: '/healthz', port: 'health' },
          periodSeconds: 10,
          timeoutSeconds: 10,
          failureThreshold: 30,
        },
        livenessProbe: {
          httpGet: { path: '/healthz', port: 'health' },
          periodSeconds: 10,
          timeoutSeconds: 10,
          failureThreshold: 6,
        },
        readinessProbe: {
          httpGet: { path: '/readyz', port: 'health' },
          initialDelaySeconds: 2,
          periodSeconds: 5,
          timeoutSeconds: 10,
        },
        // upstream's requests: the CPU share the controller keeps beside importer pods (100m each by default)
        resources: { requests: { cpu: '100m', memory: '150Mi' }, limits: { memory: '512Mi' } },
        volumeMounts: [{ name: 'metrics-cert', mountPath: MetricsCertDir, readOnly: true }],
      },
      // optional: the controller makes a throwaway certificate until the operator has issued this one
      volumes: [
        {
          name: 'metrics-cert',
          secret: {
            secretName: MetricsCertSecret,
            optional: true,
            items: [
              { key: 'tls.crt', path: 'tls.crt' },
              { key: 'tls.key', path: 'tls.key' },
            ],
            defaultMode: 0o644, // 420 in the YAML, as upstream: readable by the non-root server (uid 107)
          },
        },
      ],
    }),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: MetricsService, namespace: ns, labels: { ...labelsOf(), [PrometheusLabel]: 'true' } },
      spec: {
        selector: { [PrometheusLabel]: 'true' },
        ports: [{ name: 'metrics', port: MetricsPort, targetPort: 'metrics', protocol: 'TCP' }],
      },
    },
  ];
}

/** The controller's objects and the user-facing ClusterRoles, in the order to apply them. */
export function allManifests(o: ControllerDeployOptions = defaultDeployOptions): Obj[] {
  return [...controllerManifests(o), ...userClusterRoles(labelsOf())];
}
