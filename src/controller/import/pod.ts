// Renders the importer pod for a PVC: upstream's layout (pkg/controller/import-controller.go, makeImporterPodSpec),
// with configuration passed only through environment variables (the importer's contract, see src/cmd/importer.ts).
import type { PersistentVolumeClaim as Pvc, Pod as PodObj } from '../../kube/index.ts';
import type { V1LocalObjectReference } from '@kubernetes/client-node';
import { Ann, ContentType, Label, ManagedLabels, Pod, Source } from '../shared/constants.ts';
import { workerSecurityContext } from '../shared/pods.ts';
import { stringQuantities } from '../shared/quantity.ts';
import type { CDIConfig, ResourceRequirements } from '../shared/types.ts';
import { NodePull, nodePullServerCommand } from '../../api/nodepull.ts';

type PodContainer = NonNullable<PodObj['spec']>['containers'][number];
type PodVolume = NonNullable<NonNullable<PodObj['spec']>['volumes']>[number];
type PodContainerEnv = NonNullable<PodContainer['env']>;

/** Values the importer receives; one field per upstream env var. */
export interface ImportEnv {
  source: string;
  endpoint: string;
  contentType: string;
  imageSize: string;
  ownerUID: string;
  filesystemOverhead: string;
  insecureTLS: boolean;
  diskId: string;
  uuid: string;
  backingFile: string;
  thumbprint: string;
  currentCheckpoint: string;
  previousCheckpoint: string;
  finalCheckpoint: string;
  preallocation: boolean;
  httpProxy: string;
  httpsProxy: string;
  noProxy: string;
  cacheMode: string;
  registryImageArchitecture: string;
  /** Registry node pull: `node` (the endpoint is the image's own server), else empty. */
  pullMethod: string;
  readyFile: string;
  doneFile: string;
  /** Registry node pull: the image the kubelet pulls for the `server` container. */
  nodePullImage: string;
  checksum: string;
  /** vddk: the image holding the VDDK library (PVC annotation, else the v2v-vmware ConfigMap; see controller.ts). */
  vddkInitImage: string;
  /** vddk: the ConfigMap of extra VDDK options, mounted at /vddk-args. */
  vddkExtraArgs: string;
  secretName: string;
  certConfigMap: string;
  /** CDIConfig's trusted proxy CA ConfigMap (in CDI's namespace); the pod mounts its per-PVC copy. */
  certConfigMapProxy: string;
  extraHeaders: string[];
  secretExtraHeaders: string[];
}

export interface ImporterPodOptions {
  image: string;
  pullPolicy: string;
  /** Passed as `-v=<n>` when set. */
  verbose?: string;
  resources?: ResourceRequirements;
  imagePullSecrets?: V1LocalObjectReference[];
  /** Workload node placement (upstream CDI.spec.workload.nodeSelector) for the worker pods. */
  nodeSelector?: Record<string, string>;
  /**
   * Where `s3://` and `gs://` URLs go on this cluster (ours, not upstream's): the controller's own
   * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION and STORAGE_EMULATOR_HOST, handed to S3 and GCS importers.
   */
  objectStoreEnv?: Record<string, string>;
}

const anns = (pvc: Pvc): Record<string, string> => pvc.metadata?.annotations ?? {};

/** The import source named by the PVC: upstream's GetSource (unknown or missing means http). */
export function getSource(pvc: Pvc): string {
  const s = anns(pvc)[Ann.source] ?? '';
  return (Object.values(Source) as string[]).includes(s) ? s : Source.http;
}

export function getContentType(pvc: Pvc): string {
  return anns(pvc)[Ann.contentType] === ContentType.archive ? ContentType.archive : ContentType.kubevirt;
}

export function getVolumeMode(pvc: Pvc): 'Block' | 'Filesystem' {
  return pvc.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem';
}

export function importPodName(pvc: Pvc): string {
  const fromAnn = anns(pvc)[Ann.importPod];
  if (fromAnn) return fromAnn;
  const cp = anns(pvc)[Ann.currentCheckpoint];
  return resourceName(
    Pod.importerPrefix,
    cp ? `${pvc.metadata?.name ?? ''}-checkpoint-${cp}` : (pvc.metadata?.name ?? ''),
  );
}

/** The namespace's copy of the trusted proxy CA, owned by the importer pod (upstream import-proxy-cm-<pvc>). */
export function proxyConfigMapName(pvc: Pvc): string {
  return resourceName(Pod.proxyConfigMapPrefix, pvc.metadata?.name ?? '');
}

export function scratchPvcName(pvc: Pvc): string {
  return resourceName(pvc.metadata?.name ?? '', Pod.scratchSuffix);
}

/**
 * upstream naming.GetResourceName (openshift library-go naming.GetName with the DNS-1123 subdomain limit of 253):
 * "<base>-<suffix>", or, when too long, a shortened base plus an FNV-32a hash of the full base, so that two long
 * names never collide.
 */
export function resourceName(base: string, suffix: string): string {
  const max = 253;
  const name = `${base}-${suffix}`;
  if (name.length <= max) return name;
  let h = 0x811c9dc5;
  for (const c of Buffer.from(base)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  const hash = h.toString(16);
  return `${base.slice(0, max - hash.length - suffix.length - 2)}-${hash}-${suffix}`;
}

/**
 * Upstream requiresScratchSpace: archive content, glance, imageio deltas, or the annotation. Not a pod-pull registry
 * import, unlike upstream: our importer streams a raw or compressed-raw disk out of its layer straight to the target
 * and asks for scratch (termination message scratchSpaceRequired) only for the formats that need it (ADR 0030).
 */
export function requiresScratch(pvc: Pvc): boolean {
  const a = anns(pvc);
  let required = false;
  if (getContentType(pvc) === ContentType.archive) required = true;
  else {
    switch (getSource(pvc)) {
      case Source.glance:
        required = true;
        break;
    }
  }
  return required || a[Ann.requiresScratch] === 'true';
}

/** Builds the importer environment from the PVC annotations and the CDIConfig status (upstream createImportEnvVar). */
export function buildImportEnv(
  pvc: Pvc,
  config: CDIConfig | undefined,
  filesystemOverhead: string,
): ImportEnv {
  const a = anns(pvc);
  const source = getSource(pvc);
  const imageSize = pvc.spec?.resources?.requests?.['storage'];
  if (imageSize === undefined) {
    throw new Error(
      `PVC ${pvc.metadata?.namespace}/${pvc.metadata?.name} has no spec.resources.requests.storage: set the volume size`,
    );
  }
  const endpoint = a[Ann.endpoint] ?? '';
  if (source !== Source.none && endpoint === '') {
    throw new Error(
      `annotation "${Ann.endpoint}" in PVC "${pvc.metadata?.namespace}/${pvc.metadata?.name}" is empty: set it to the image URL`,
    );
  }
  const proxy = config?.status?.importProxy;
  // pullMethod node: the kubelet pulls the image and its server hands the disk over as plain HTTP
  const nodePull = source === Source.registry && a[Ann.registryImportMethod] === NodePull.method;
  const extraHeaders: string[] = [];
  const secretExtraHeaders: string[] = [];
  // Sorted so the pod spec (and IMPORTER_EXTRA_HEADER_<n>) is stable across reconciles; the DV controller writes
  // ".0", ".1", ... in spec order, which sorts the same way for fewer than ten headers.
  for (const k of Object.keys(a).sort()) {
    if (k.startsWith(Ann.extraHeaders)) extraHeaders.push(a[k] ?? '');
    if (k.startsWith(Ann.secretExtraHeaders)) secretExtraHeaders.push(a[k] ?? '');
  }
  const owners = pvc.metadata?.ownerReferences ?? [];
  return {
    source: nodePull ? Source.http : source,
    endpoint: source === Source.none ? '' : nodePull ? NodePull.endpoint : endpoint,
    contentType: getContentType(pvc),
    imageSize: String(imageSize),
    ownerUID: owners.length === 1 ? (owners[0]?.uid ?? '') : (pvc.metadata?.uid ?? ''),
    filesystemOverhead,
    insecureTLS: isInsecureTLS(a, source, endpoint, config),
    diskId: a[Ann.diskId] ?? '',
    uuid: a[Ann.uuid] ?? '',
    backingFile: a[Ann.backingFile] ?? '',
    thumbprint: a[Ann.thumbprint] ?? '',
    currentCheckpoint: a[Ann.currentCheckpoint] ?? '',
    previousCheckpoint: a[Ann.previousCheckpoint] ?? '',
    finalCheckpoint: a[Ann.finalCheckpoint] ?? '',
    preallocation: a[Ann.preallocationRequested] === 'true',
    httpProxy: proxy?.HTTPProxy ?? '',
    httpsProxy: proxy?.HTTPSProxy ?? '',
    noProxy: proxy?.noProxy ?? '',
    cacheMode: a[Ann.requiresDirectIo] === 'true' ? Pod.cacheModeTryNone : '',
    registryImageArchitecture: a[Ann.registryImageArchitecture] ?? '',
    pullMethod: nodePull ? NodePull.method : '',
    readyFile: nodePull ? NodePull.readyFile : '',
    doneFile: nodePull ? NodePull.doneFile : '',
    nodePullImage: nodePull ? nodePullImage(a, endpoint) : '',
    checksum: a[Ann.checksum] ?? '',
    vddkInitImage: source === Source.vddk ? (a[Ann.vddkInitImageURL] ?? '') : '',
    vddkExtraArgs: source === Source.vddk ? (a[Ann.vddkExtraArgs] ?? '') : '',
    secretName: source === Source.none ? '' : (a[Ann.secretName] ?? ''),
    certConfigMap: source === Source.none ? '' : (a[Ann.certConfigMap] ?? ''),
    certConfigMapProxy: proxy?.trustedCAProxy ?? '',
    extraHeaders,
    secretExtraHeaders,
  };
}

/** upstream getRegistryImportImage: the endpoint without its docker:// scheme (an ImageStream name as it is). */
function nodePullImage(a: Record<string, string>, endpoint: string): string {
  if (a[Ann.registryImageStream] === 'true') return endpoint;
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new Error(`illegal registry endpoint ${endpoint}: use docker://registry/repository:tag`);
  }
  if (u.protocol !== 'docker:')
    throw new Error(
      `registry endpoint ${endpoint} cannot be pulled by the node: use docker://registry/repository:tag or pullMethod pod`,
    );
  return u.host + u.pathname;
}

function isInsecureTLS(
  a: Record<string, string>,
  source: string,
  endpoint: string,
  config: CDIConfig | undefined,
): boolean {
  if (
    (a[Ann.source] === Source.http || a[Ann.source] === Source.imageio) &&
    a[Ann.insecureSkipVerify] === 'true'
  )
    return true;
  if (!endpoint) return false;
  try {
    const u = new URL(endpoint);
    return u.protocol === 'docker:' && (config?.spec?.insecureRegistries ?? []).includes(u.host);
  } catch {
    return false;
  }
}

export function makeImportEnv(e: ImportEnv): PodContainerEnv {
  const env: PodContainerEnv = [
    { name: 'IMPORTER_SOURCE', value: e.source },
    { name: 'IMPORTER_ENDPOINT', value: e.endpoint },
    { name: 'IMPORTER_CONTENTTYPE', value: e.contentType },
    { name: 'IMPORTER_IMAGE_SIZE', value: e.imageSize },
    { name: 'OWNER_UID', value: e.ownerUID },
    { name: 'FILESYSTEM_OVERHEAD', value: e.filesystemOverhead },
    { name: 'INSECURE_TLS', value: String(e.insecureTLS) },
    { name: 'IMPORTER_DISK_ID', value: e.diskId },
    { name: 'IMPORTER_UUID', value: e.uuid },
    { name: 'IMPORTER_PULL_METHOD', value: e.pullMethod },
    { name: 'IMPORTER_READY_FILE', value: e.readyFile },
    { name: 'IMPORTER_DONE_FILE', value: e.doneFile },
    { name: 'IMPORTER_BACKING_FILE', value: e.backingFile },
    { name: 'IMPORTER_THUMBPRINT', value: e.thumbprint },
    { name: 'http_proxy', value: e.httpProxy },
    { name: 'https_proxy', value: e.httpsProxy },
    { name: 'no_proxy', value: e.noProxy },
    { name: 'IMPORTER_CURRENT_CHECKPOINT', value: e.currentCheckpoint },
    { name: 'IMPORTER_PREVIOUS_CHECKPOINT', value: e.previousCheckpoint },
    { name: 'IMPORTER_FINAL_CHECKPOINT', value: e.finalCheckpoint },
    { name: 'PREALLOCATION', value: String(e.preallocation) },
    { name: 'CACHE_MODE', value: e.cacheMode },
    { name: 'IMPORTER_REGISTRY_IMAGE_ARCHITECTURE', value: e.registryImageArchitecture },
    { name: 'IMPORTER_CHECKSUM', value: e.checksum },
  ];
  if (e.secretName && e.source !== Source.gcs) {
    env.push(
      {
        name: 'IMPORTER_ACCESS_KEY_ID',
        valueFrom: { secretKeyRef: { name: e.secretName, key: Pod.keyAccess } },
      },
      {
        name: 'IMPORTER_SECRET_KEY',
        valueFrom: { secretKeyRef: { name: e.secretName, key: Pod.keySecret } },
      },
    );
  }
  if (e.secretName && e.source === Source.gcs) {
    env.push({ name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/google/credentials.json' });
  }
  if (e.certConfigMap) env.push({ name: 'IMPORTER_CERT_DIR', value: Pod.certDir });
  if (e.certConfigMapProxy) env.push({ name: 'IMPORTER_PROXY_CERT_DIR', value: Pod.proxyCertDir });
  e.extraHeaders.forEach((h, i) => env.push({ name: `IMPORTER_EXTRA_HEADER_${i}`, value: h }));
  return env;
}

/**
 * What every worker pod takes from its PVC and CDI's settings: priority class and service account (the PVC's
 * annotations), image pull secrets (CDIConfig) and the workload node selector.
 */
export function workerPlacement(
  a: Record<string, string>,
  opts: Pick<ImporterPodOptions, 'imagePullSecrets' | 'nodeSelector'>,
): Pick<
  NonNullable<PodObj['spec']>,
  'priorityClassName' | 'serviceAccountName' | 'imagePullSecrets' | 'nodeSelector'
> {
  return {
    ...(a[Ann.priorityClassName] ? { priorityClassName: a[Ann.priorityClassName] } : {}),
    ...(a[Ann.podServiceAccount] ? { serviceAccountName: a[Ann.podServiceAccount] } : {}),
    ...(opts.imagePullSecrets?.length ? { imagePullSecrets: opts.imagePullSecrets } : {}),
    ...(opts.nodeSelector && Object.keys(opts.nodeSelector).length
      ? { nodeSelector: { ...opts.nodeSelector } }
      : {}),
  };
}

/** The whole importer pod: restricted security context, owned by the PVC, named from the PVC annotation. */
export function makeImporterPod(
  pvc: Pvc,
  env: ImportEnv,
  opts: ImporterPodOptions,
  scratchName: string | undefined,
): PodObj {
  const pvcName = pvc.metadata?.name ?? '';
  const block = getVolumeMode(pvc) === 'Block';
  const container: PodContainer = {
    name: Pod.importerPrefix,
    image: opts.image,
    imagePullPolicy: opts.pullPolicy,
    ...(opts.verbose ? { args: [`-v=${opts.verbose}`] } : {}),
    env: makeImportEnv(env),
    ports: [{ name: 'metrics', containerPort: Pod.metricsPort, protocol: 'TCP' }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
    ...(opts.resources ? { resources: stringQuantities(opts.resources) } : {}),
  };
  const mounts: NonNullable<PodContainer['volumeMounts']> = [];
  if (block) container.volumeDevices = [{ name: Pod.dataVolName, devicePath: Pod.blockPath }];
  else mounts.push({ name: Pod.dataVolName, mountPath: Pod.dataDir });
  const volumes: PodVolume[] = [
    { name: Pod.dataVolName, persistentVolumeClaim: { claimName: pvcName, readOnly: false } },
  ];
  if (scratchName) {
    mounts.push({ name: Pod.scratchVolName, mountPath: Pod.scratchDir });
    volumes.push({
      name: Pod.scratchVolName,
      persistentVolumeClaim: { claimName: scratchName, readOnly: false },
    });
  }
  if (env.certConfigMap) {
    mounts.push({ name: Pod.certVolName, mountPath: Pod.certDir });
    volumes.push({ name: Pod.certVolName, configMap: { name: env.certConfigMap } });
  }
  if (env.certConfigMapProxy) {
    mounts.push({ name: Pod.proxyCertVolName, mountPath: Pod.proxyCertDir });
    volumes.push({ name: Pod.proxyCertVolName, configMap: { name: proxyConfigMapName(pvc) } });
  }
  if (env.source === Source.gcs && env.secretName) {
    mounts.push({ name: 'cdi-secret-vol', mountPath: '/google' });
    volumes.push({ name: 'cdi-secret-vol', secret: { secretName: env.secretName } });
  }
  env.secretExtraHeaders.forEach((secretName, i) => {
    mounts.push({
      name: `cdi-secret-extra-headers-vol-${i}`,
      mountPath: `${Pod.secretExtraHeadersDir}/${i}`,
    });
    volumes.push({ name: `cdi-secret-extra-headers-vol-${i}`, secret: { secretName } });
  });
  if ((env.source === Source.s3 || env.source === Source.gcs) && opts.objectStoreEnv) {
    for (const [name, value] of Object.entries(opts.objectStoreEnv)) container.env?.push({ name, value });
  }
  // upstream SetRestrictedSecurityContext, for every container
  const securityContext = workerSecurityContext();
  const containers: PodContainer[] = [container];
  const initContainers: PodContainer[] = [];
  if (env.pullMethod === NodePull.method) {
    const shared = [{ name: NodePull.sharedVolName, mountPath: NodePull.sharedDir }];
    mounts.push(...shared);
    volumes.push({ name: NodePull.sharedVolName, emptyDir: {} });
    const helper = {
      imagePullPolicy: opts.pullPolicy,
      volumeMounts: shared,
      terminationMessagePolicy: 'FallbackToLogsOnError',
      ...(opts.resources ? { resources: stringQuantities(opts.resources) } : {}),
      securityContext,
    };
    initContainers.push({
      name: 'init',
      image: opts.image,
      command: [...NodePull.installCommand],
      ...helper,
    });
    containers.push({
      name: 'server',
      image: env.nodePullImage,
      command: nodePullServerCommand(env.registryImageArchitecture || undefined),
      ...helper,
    });
  }
  if (env.vddkInitImage) {
    // upstream's vddk-side-car: the user's image copies the VDDK library into /opt, where nbdkit's plugin looks
    mounts.push({ name: Pod.vddkVolName, mountPath: Pod.vddkDir });
    volumes.push({ name: Pod.vddkVolName, emptyDir: {} });
    initContainers.push({
      name: 'vddk-side-car',
      image: env.vddkInitImage,
      volumeMounts: [{ name: Pod.vddkVolName, mountPath: Pod.vddkDir }],
      terminationMessagePolicy: 'FallbackToLogsOnError',
      ...(opts.resources ? { resources: stringQuantities(opts.resources) } : {}),
      securityContext,
    });
  }
  if (env.vddkExtraArgs) {
    mounts.push({ name: Pod.vddkArgsVolName, mountPath: Pod.vddkArgsDir });
    volumes.push({ name: Pod.vddkArgsVolName, configMap: { name: env.vddkExtraArgs } });
  }
  if (mounts.length > 0) container.volumeMounts = mounts;
  container.securityContext = { ...securityContext };
  // upstream setRegistryNodeImportNodeSelector: the kubelet pulls the architecture asked for by running there
  const nodeSelector = {
    ...(opts.nodeSelector ?? {}),
    ...(env.pullMethod === NodePull.method && env.registryImageArchitecture
      ? { 'kubernetes.io/arch': env.registryImageArchitecture }
      : {}),
  };

  const a = anns(pvc);
  const annotations: Record<string, string> = { [Ann.createdBy]: 'yes' };
  // upstream allowedAnnotations: network and sidecar settings a user may set on the DV/PVC for the worker pod
  const allowed: Record<string, string> = {
    'k8s.v1.cni.cncf.io/networks': '',
    'v1.multus-cni.io/default-network': '',
    'sidecar.istio.io/inject': 'false',
    'linkerd.io/inject': 'disabled',
    'k8s.ovn.org/open-default-ports': '',
  };
  for (const [k, def] of Object.entries(allowed)) {
    const v = a[k] ?? def;
    if (v) annotations[k] = v;
  }

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: a[Ann.importPod] ?? importPodName(pvc),
      namespace: pvc.metadata?.namespace,
      annotations,
      labels: {
        ...ManagedLabels,
        ...(pvc.metadata?.labels ?? {}),
        [Label.app]: Label.appValue,
        [Label.component]: Label.importerValue,
        [Label.prometheus]: Label.prometheusValue,
      },
      ownerReferences: [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          name: pvcName,
          uid: pvc.metadata?.uid ?? '',
          blockOwnerDeletion: true,
          controller: true,
        },
      ],
    },
    spec: {
      ...(initContainers.length > 0 ? { initContainers } : {}),
      containers,
      volumes,
      restartPolicy: 'OnFailure',
      enableServiceLinks: false,
      // the importer never talks to the API server: no token in the pod
      automountServiceAccountToken: false,
      ...workerPlacement(a, { ...opts, nodeSelector }),
      securityContext: {
        seccompProfile: { type: 'RuntimeDefault' },
        // fsGroup lets the non-root importer write the mounted volumes (upstream sets it when anything is mounted)
        ...(mounts.length > 0 ? { fsGroup: Pod.qemuUid } : {}),
      },
    },
  };
}
