// Names of the status protocol between the controllers, the worker pods and the user.
// Exact upstream strings (pkg/controller/common/util.go, pkg/common/common.go): a manifest or script written for
// upstream CDI must see the same annotations, labels, phases, reasons and events.
// These live here until src/api exports them; the values are the contract, not the module.

const G = 'cdi.kubevirt.io';

export const Ann = {
  // import request (written by the DV controller, or by a user on a bare PVC)
  endpoint: `${G}/storage.import.endpoint`,
  source: `${G}/storage.import.source`,
  secretName: `${G}/storage.import.secretName`,
  certConfigMap: `${G}/storage.import.certConfigMap`,
  contentType: `${G}/storage.contentType`,
  extraHeaders: `${G}/storage.import.extraHeaders`,
  secretExtraHeaders: `${G}/storage.import.secretExtraHeaders`,
  checksum: `${G}/storage.import.checksum`,
  insecureSkipVerify: `${G}/storage.import.insecureSkipVerify`,
  diskId: `${G}/storage.import.diskId`,
  uuid: `${G}/storage.import.uuid`,
  backingFile: `${G}/storage.import.backingFile`,
  thumbprint: `${G}/storage.import.vddk.thumbprint`,
  registryImportMethod: `${G}/storage.import.registryImportMethod`,
  registryImageArchitecture: `${G}/storage.import.registryImageArchitecture`,
  preallocationRequested: `${G}/storage.preallocation.requested`,
  preallocationApplied: `${G}/storage.preallocation`,
  immediateBinding: `${G}/storage.bind.immediate.requested`,
  usePopulator: `${G}/storage.usePopulator`,
  retainAfterCompletion: `${G}/storage.pod.retainAfterCompletion`,
  priorityClassName: `${G}/storage.pod.priorityclassname`,
  podServiceAccount: `${G}/storage.pod.serviceAccountName`,
  createdForDataVolume: `${G}/createdForDataVolume`,
  populatedFor: `${G}/storage.populatedFor`,
  prePopulated: `${G}/storage.prePopulated`,
  // status protocol (written by the import controller)
  podPhase: `${G}/storage.pod.phase`,
  podReady: `${G}/storage.pod.ready`,
  podRestarts: `${G}/storage.pod.restarts`,
  podSchedulable: `${G}/storage.pod.schedulable`,
  importPod: `${G}/storage.import.importPodName`,
  requiresScratch: `${G}/storage.import.requiresScratch`,
  requiresDirectIo: `${G}/storage.import.requiresDirectIo`,
  fatalError: `${G}/storage.import.fatalError`,
  runningCondition: `${G}/storage.condition.running`,
  runningConditionMessage: `${G}/storage.condition.running.message`,
  runningConditionReason: `${G}/storage.condition.running.reason`,
  boundCondition: `${G}/storage.condition.bound`,
  boundConditionMessage: `${G}/storage.condition.bound.message`,
  boundConditionReason: `${G}/storage.condition.bound.reason`,
  createdBy: `${G}/storage.createdByController`,
  // storage classes
  defaultStorageClass: 'storageclass.kubernetes.io/is-default-class',
  defaultVirtStorageClass: 'storageclass.kubevirt.io/is-default-virt-class',
  minimumSupportedPvcSize: `${G}/minimumSupportedPvcSize`,
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
} as const;

export const Phase = {
  Unset: '',
  Pending: 'Pending',
  PVCBound: 'PVCBound',
  ImportScheduled: 'ImportScheduled',
  ImportInProgress: 'ImportInProgress',
  WaitForFirstConsumer: 'WaitForFirstConsumer',
  PendingPopulation: 'PendingPopulation',
  Paused: 'Paused',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
  Unknown: 'Unknown',
} as const;
export type DataVolumePhase = (typeof Phase)[keyof typeof Phase];

export const Reason = {
  ImportScheduled: 'ImportScheduled',
  ImportInProgress: 'ImportInProgress',
  ImportFailed: 'ImportFailed',
  ImportSucceeded: 'ImportSucceeded',
  ErrImportFailed: 'ErrImportFailed',
  ImportTargetInUse: 'ImportTargetInUse',
  ErrClaimLost: 'ErrClaimLost',
  ErrClaimNotValid: 'ErrClaimNotValid',
  ErrExceededQuota: 'ErrExceededQuota',
  CreatingScratchSpace: 'CreatingScratchSpace',
  ScratchSpaceRequired: 'Scratch space required',
  ImagePullFailed: 'ImagePullFailed',
  ChecksumError: 'ChecksumError',
  TransferRunning: 'TransferRunning',
  Bound: 'Bound',
  Pending: 'Pending',
  ClaimLost: 'ClaimLost',
  NotFound: 'NotFound',
  Unschedulable: 'Unschedulable',
} as const;

export const Message = {
  importScheduled: (pvc: string): string => `Import into ${pvc} scheduled`,
  importInProgress: (pvc: string): string => `Import into ${pvc} in progress`,
  importFailed: (pvc: string): string => `Failed to import into PVC ${pvc}`,
  importSucceeded: (pvc: string): string => `Successfully imported into PVC ${pvc}`,
  claimLost: (pvc: string): string => `PVC ${pvc} lost`,
  podRunning: 'Pod is running',
  scratchSpaceRequired: 'scratch space required and none found',
  imagePullFailure: 'failed to pull image',
  importComplete: 'Import Complete',
  storageClassNotFound: 'DataVolume.storage spec is missing accessMode and no storageClass to choose profile',
} as const;

export const Source = {
  http: 'http',
  s3: 's3',
  gcs: 'gcs',
  registry: 'registry',
  imageio: 'imageio',
  vddk: 'vddk',
  none: 'none',
  glance: 'glance',
} as const;

export const ContentType = { kubevirt: 'kubevirt', archive: 'archive' } as const;

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
  metricsPort: 8443,
  qemuUid: 107,
  keyAccess: 'accessKeyId',
  keySecret: 'secretKey',
  cacheModeTryNone: 'TRYNONE',
  oomKilled: 'OOMKilled',
} as const;

export const CDIConfigName = 'config';
export const DefaultGlobalOverhead = '0.06';
export const DefaultPodResources = {
  limits: { cpu: '750m', memory: '600M' },
  requests: { cpu: '100m', memory: '60M' },
} as const;

export const GroupVersion = 'cdi.kubevirt.io/v1beta1';
