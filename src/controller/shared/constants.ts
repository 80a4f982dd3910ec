// Names of the status protocol between the controllers, the worker pods and the user.
// Exact upstream strings (pkg/controller/common/util.go, pkg/common/common.go): a manifest or script written for
// upstream CDI must see the same annotations, labels, phases, reasons and events.
// The strings come from src/api (the single definition of upstream's names); this module gives the controllers
// short camelCase handles and the few worker-pod constants src/api does not define.
import {
  Ann as ApiAnn,
  ContentType as ApiContentType,
  EventReason,
  Group as G,
  ImportSource,
  Label as ApiLabel,
  Message as ApiMessage,
  Phase,
  Reason as ApiReason,
} from '../../api/constants.ts';

export const Ann = {
  // import request (written by the DV controller, or by a user on a bare PVC)
  endpoint: ApiAnn.Endpoint,
  source: ApiAnn.Source,
  secretName: ApiAnn.Secret,
  certConfigMap: ApiAnn.CertConfigMap,
  contentType: ApiAnn.ContentType,
  extraHeaders: ApiAnn.ExtraHeaders,
  secretExtraHeaders: ApiAnn.SecretExtraHeaders,
  checksum: ApiAnn.Checksum,
  insecureSkipVerify: ApiAnn.InsecureSkipVerify,
  diskId: ApiAnn.DiskID,
  uuid: ApiAnn.UUID,
  backingFile: ApiAnn.BackingFile,
  thumbprint: ApiAnn.Thumbprint,
  registryImportMethod: ApiAnn.RegistryImportMethod,
  registryImageArchitecture: ApiAnn.RegistryImageArchitecture,
  preallocationRequested: ApiAnn.PreallocationRequested,
  preallocationApplied: ApiAnn.PreallocationApplied,
  immediateBinding: ApiAnn.ImmediateBinding,
  usePopulator: ApiAnn.UsePopulator,
  retainAfterCompletion: ApiAnn.PodRetainAfterCompletion,
  priorityClassName: ApiAnn.PriorityClassName,
  podServiceAccount: ApiAnn.PodServiceAccount,
  createdForDataVolume: ApiAnn.CreatedForDataVolume,
  populatedFor: ApiAnn.PopulatedFor,
  prePopulated: ApiAnn.PrePopulated,
  uploadRequest: ApiAnn.UploadRequest,
  uploadPod: ApiAnn.UploadPod,
  // status protocol (written by the import controller)
  podPhase: ApiAnn.PodPhase,
  podReady: ApiAnn.PodReady,
  podRestarts: ApiAnn.PodRestarts,
  podSchedulable: ApiAnn.PodSchedulable,
  importPod: ApiAnn.ImportPod,
  requiresScratch: ApiAnn.RequiresScratch,
  requiresDirectIo: ApiAnn.RequiresDirectIO,
  fatalError: ApiAnn.ImportFatalError,
  runningCondition: ApiAnn.RunningCondition,
  runningConditionMessage: ApiAnn.RunningConditionMessage,
  runningConditionReason: ApiAnn.RunningConditionReason,
  boundCondition: ApiAnn.BoundCondition,
  boundConditionMessage: ApiAnn.BoundConditionMessage,
  boundConditionReason: ApiAnn.BoundConditionReason,
  createdBy: ApiAnn.CreatedBy,
  vddkHost: ApiAnn.VddkHostConnection,
  vddkVersion: ApiAnn.VddkVersion,
  vddkInitImageURL: ApiAnn.VddkInitImageURL,
  vddkExtraArgs: ApiAnn.VddkExtraArgs,
  currentPodId: ApiAnn.CurrentPodID,
  multiStageDone: ApiAnn.MultiStageImportDone,
  currentCheckpoint: ApiAnn.CurrentCheckpoint,
  previousCheckpoint: ApiAnn.PreviousCheckpoint,
  finalCheckpoint: ApiAnn.FinalCheckpoint,
  registryImageStream: ApiAnn.RegistryImageStream,
  // upstream AnnExternalPopulation: the PVC is filled by someone else's populator; the import controller skips it
  externalPopulation: `${G}/externalPopulation`,
  // clone (upstream pkg/controller/common/util.go)
  cloneRequest: ApiAnn.CloneRequest,
  cloneOf: ApiAnn.CloneOf,
  cloneToken: ApiAnn.CloneToken,
  extendedCloneToken: ApiAnn.ExtendedCloneToken,
  cloneType: ApiAnn.CloneType,
  cloneFallbackReason: ApiAnn.CloneFallbackReason,
  cloneSourcePod: ApiAnn.CloneSourcePod,
  permissiveClone: ApiAnn.PermissiveClone,
  /** upstream AnnOwnerRef: "<namespace>/<name>" of the target a clone's pod or temporary object works for. */
  ownerRef: `${G}/storage.ownerRef`,
  /** upstream AnnUploadClientName: the CN the target's upload server accepts. */
  uploadClientName: ApiAnn.UploadClientName,
  // storage classes
  defaultStorageClass: ApiAnn.DefaultStorageClass,
  defaultVirtStorageClass: ApiAnn.DefaultVirtStorageClass,
  minimumSupportedPvcSize: ApiAnn.MinimumSupportedPVCSize,
} as const;

export const Label = {
  app: 'app',
  appValue: 'containerized-data-importer',
  component: G,
  importerValue: 'importer',
  prometheus: 'prometheus.cdi.kubevirt.io',
  prometheusValue: 'true',
  fillingUp: 'alerts.k8s.io/KubePersistentVolumeFillingUp',
  fillingUpValue: 'disabled',
  excludeFromVelero: 'velero.io/exclude-from-backup',
  /** cdi.kubevirt.io: <value> of a host-assisted clone's source pod (upstream CloningLabelValue's pod). */
  cloneSourceValue: 'cdi-clone-source',
  uploadServerValue: 'cdi-upload-server',
} as const;

/** Finalizers the clone controllers put on what they must clean up after in another namespace. */
export const Finalizer = {
  /** upstream cloneSourcePodFinalizer: the target PVC of a host-assisted clone (its source pod lives elsewhere). */
  cloneSource: `${G}/cloneSource`,
  /**
   * The DataVolume of a smart or CSI clone from another namespace (temporary claim and snapshot there), and of a
   * snapshot's host-assisted copy (the claim the snapshot was restored into).
   */
  cloneTemporaries: `${G}/cloneTemporaries`,
} as const;

/** source.component of the controller's events, and its app.kubernetes.io/managed-by. */
export const Component = 'cdi-controller';

/**
 * Upstream's recommended labels (util.SetRecommendedLabels) on what the controllers create: CDIConfig,
 * StorageProfiles, worker pods and scratch PVCs.
 */
export const ManagedLabels = {
  [ApiLabel.KubernetesComponent]: 'storage',
  [ApiLabel.ManagedBy]: Component,
} as const;

// Phases and reasons are upstream's strings as src/api defines them (condition reasons and event reasons in one map).
export { Phase };
export type DataVolumePhase = (typeof Phase)[keyof typeof Phase];
export const Reason = {
  ...EventReason,
  ...ApiReason,
  // ours (upstream has no event for them)
  /** A successful import's warning (termination message `warnings`), e.g. content that is not a disk image. */
  ImportWarning: 'ImportWarning',
  /** CDIConfig settings that cannot be applied as written. */
  InvalidConfiguration: 'InvalidConfiguration',
  /** upstream common.AwaitingVDDK: a vddk import without an init image to take the library from. */
  AwaitingVDDK: 'AwaitingVDDK',
} as const;

export const Message = {
  importScheduled: (pvc: string): string => `Import into ${pvc} scheduled`,
  importInProgress: (pvc: string): string => `Import into ${pvc} in progress`,
  importFailed: (pvc: string): string => `Failed to import into PVC ${pvc}`,
  importSucceeded: (pvc: string): string => `Successfully imported into PVC ${pvc}`,
  importPaused: (pvc: string): string => `Multistage import into PVC ${pvc} is paused`,
  claimLost: (pvc: string): string => `PVC ${pvc} lost`,
  uploadScheduled: (pvc: string): string => `Upload into ${pvc} scheduled`,
  uploadReady: (pvc: string): string => `Upload into ${pvc} ready`,
  uploadFailed: (pvc: string): string => `Upload into ${pvc} failed`,
  uploadSucceeded: (pvc: string): string => `Successfully uploaded into ${pvc}`,
  externalPopulationSucceeded: (pvc: string, populator: string): string =>
    `PVC ${pvc} successfully populated by ${populator}`,
  noCSIDriverForExternalPopulation: 'No CSI drivers were found: External population not supported',
  podRunning: 'Pod is running',
  scratchSpaceRequired: ApiMessage.ScratchSpaceRequired,
  imagePullFailure: 'failed to pull image',
  importComplete: ApiMessage.ImportComplete,
  cloneComplete: ApiMessage.CloneComplete,
  storageClassNotFound: 'DataVolume.storage spec is missing accessMode and no storageClass to choose profile',
} as const;

export const Source = {
  http: ImportSource.HTTP,
  s3: ImportSource.S3,
  gcs: ImportSource.GCS,
  registry: ImportSource.Registry,
  imageio: ImportSource.ImageIO,
  vddk: ImportSource.VDDK,
  none: ImportSource.None,
  glance: ImportSource.Glance,
} as const;

export const ContentType = { kubevirt: ApiContentType.KubeVirt, archive: ApiContentType.Archive } as const;

// Worker pod layout (pkg/common/common.go)
export const Pod = {
  importerPrefix: 'importer',
  scratchSuffix: 'scratch',
  dataVolName: 'cdi-data-vol',
  scratchVolName: 'cdi-scratch-vol',
  certVolName: 'cdi-cert-vol',
  dataDir: '/data',
  blockPath: '/dev/cdi-block-volume',
  scratchDir: '/scratch',
  certDir: '/certs',
  secretExtraHeadersDir: '/extraheaders',
  proxyCertVolName: 'cdi-proxy-cert-vol',
  proxyCertDir: '/proxycerts/',
  /** The per-PVC copy of CDIConfig's trusted proxy CA ConfigMap (upstream GetImportProxyConfigMapName). */
  proxyConfigMapPrefix: 'import-proxy-cm',
  metricsPort: 8443,
  qemuUid: 107,
  keyAccess: 'accessKeyId',
  keySecret: 'secretKey',
  cacheModeTryNone: 'TRYNONE',
  vddkVolName: 'vddk-vol-mount',
  vddkDir: '/opt',
  vddkArgsVolName: 'vddk-extra-args',
  vddkArgsDir: '/vddk-args',
  /** upstream VddkConfigMap / VddkConfigDataKey: the cluster-wide VDDK init image, in CDI's namespace */
  vddkConfigMap: 'v2v-vmware',
  vddkConfigKey: 'vddk-init-image',
  oomKilled: 'OOMKilled',
} as const;

export const CDIConfigName = 'config';
export const DefaultGlobalOverhead = '0.06';
export const DefaultPodResources = {
  limits: { cpu: '750m', memory: '600M' },
  requests: { cpu: '100m', memory: '60M' },
} as const;

/** The progress a finished import, upload or clone shows (upstream cc.ProgressDone). */
export const ProgressDone = '100.0%';

export const GroupVersion = 'cdi.kubevirt.io/v1beta1';
