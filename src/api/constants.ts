// Exact strings of upstream CDI: API group, annotations, labels, phases, condition types/reasons and
// event reasons (see docs reference cdi-upstream.md §1.4 and §1.5). Names follow upstream's Go constants.

export const Group = 'cdi.kubevirt.io';
export const Version = 'v1beta1';
export const ApiVersion = `${Group}/${Version}`;

const g = `${Group}/`;

/** Annotations, on DataVolumes, PVCs and worker pods. */
export const Ann = {
  // user-settable
  ImmediateBinding: `${g}storage.bind.immediate.requested`,
  UsePopulator: `${g}storage.usePopulator`,
  PodRetainAfterCompletion: `${g}storage.pod.retainAfterCompletion`,
  CheckStaticVolume: `${g}storage.checkStaticVolume`,
  AllowClaimAdoption: `${g}allowClaimAdoption`,
  PrePopulated: `${g}storage.prePopulated`,
  PopulatedFor: `${g}storage.populatedFor`,
  VddkExtraArgs: `${g}storage.pod.vddk.extraargs`,
  CloneType: `${g}cloneType`,
  CloneStrategy: `${g}clone-strategy`,
  DefaultStorageClass: 'storageclass.kubernetes.io/is-default-class',
  DefaultVirtStorageClass: 'storageclass.kubevirt.io/is-default-virt-class',
  DefaultSnapshotClass: 'snapshot.storage.kubernetes.io/is-default-class',
  MinimumSupportedPVCSize: `${g}minimumSupportedPvcSize`,
  UseReadWriteOnceForDataImportCron: `${g}useReadWriteOnceForDataImportCron`,
  SnapshotClassForDataImportCron: `${g}snapshotClassForDataImportCron`,
  SelectedNode: 'volume.kubernetes.io/selected-node',
  /**
   * cdi-ts, not upstream: on a StorageClass whose provisioner CDI's capability table does not know, the claim
   * property sets of its StorageProfile as a JSON list, e.g. [{"accessModes":["ReadWriteOnce"],"volumeMode":"Block"}].
   * A profile's own spec.claimPropertySets still wins.
   */
  ClaimPropertySets: `${g}claim-property-sets`,

  // the PVC annotation API of the import controller
  Source: `${g}storage.import.source`,
  Endpoint: `${g}storage.import.endpoint`,
  Secret: `${g}storage.import.secretName`,
  CertConfigMap: `${g}storage.import.certConfigMap`,
  ContentType: `${g}storage.contentType`,
  RegistryImportMethod: `${g}storage.import.registryImportMethod`,
  RegistryImageStream: `${g}storage.import.registryImageStream`,
  RegistryImageArchitecture: `${g}storage.import.registryImageArchitecture`,
  DiskID: `${g}storage.import.diskId`,
  UUID: `${g}storage.import.uuid`,
  BackingFile: `${g}storage.import.backingFile`,
  Thumbprint: `${g}storage.import.vddk.thumbprint`,
  ExtraHeaders: `${g}storage.import.extraHeaders`,
  SecretExtraHeaders: `${g}storage.import.secretExtraHeaders`,
  Checksum: `${g}storage.import.checksum`,
  InsecureSkipVerify: `${g}storage.import.insecureSkipVerify`,
  PreviousCheckpoint: `${g}storage.checkpoint.previous`,
  CurrentCheckpoint: `${g}storage.checkpoint.current`,
  FinalCheckpoint: `${g}storage.checkpoint.final`,
  CheckpointsCopied: `${g}storage.checkpoint.copied`,
  MultiStageImportDone: `${g}storage.checkpoint.done`,
  CurrentPodID: `${g}storage.checkpoint.pod.id`,
  PreallocationRequested: `${g}storage.preallocation.requested`,
  PriorityClassName: `${g}storage.pod.priorityclassname`,
  PodServiceAccount: `${g}storage.pod.serviceAccountName`,

  // upload and clone
  UploadRequest: `${g}storage.upload.target`,
  CloneRequest: 'k8s.io/CloneRequest',
  CloneOf: 'k8s.io/CloneOf',
  CloneToken: `${g}storage.clone.token`,
  ExtendedCloneToken: `${g}storage.extended.clone.token`,
  CloneFallbackReason: `${g}cloneFallbackReason`,
  ClonePhase: `${g}clonePhase`,
  CloneSourcePod: `${g}storage.sourceClonePodName`,
  PermissiveClone: `${g}permissiveClone`,
  OwnerUID: `${g}ownerUID`,
  /** upstream AnnOwnedByDataVolume: "<namespace>/<name>" of the DataVolume a claim in another namespace works for. */
  OwnedByDataVolume: `${g}ownedByDataVolume`,

  // written by the controllers: the status protocol
  CreatedBy: `${g}storage.createdByController`,
  PodPhase: `${g}storage.pod.phase`,
  PodReady: `${g}storage.pod.ready`,
  PodRestarts: `${g}storage.pod.restarts`,
  PodSchedulable: `${g}storage.pod.schedulable`,
  ImportPod: `${g}storage.import.importPodName`,
  UploadPod: `${g}storage.uploadPodName`,
  RunningCondition: `${g}storage.condition.running`,
  RunningConditionMessage: `${g}storage.condition.running.message`,
  RunningConditionReason: `${g}storage.condition.running.reason`,
  BoundCondition: `${g}storage.condition.bound`,
  BoundConditionMessage: `${g}storage.condition.bound.message`,
  BoundConditionReason: `${g}storage.condition.bound.reason`,
  SourceRunningCondition: `${g}storage.condition.source.running`,
  SourceRunningConditionMessage: `${g}storage.condition.source.running.message`,
  SourceRunningConditionReason: `${g}storage.condition.source.running.reason`,
  RequiresScratch: `${g}storage.import.requiresScratch`,
  RequiresDirectIO: `${g}storage.import.requiresDirectIo`,
  ImportFatalError: `${g}storage.import.fatalError`,
  PreallocationApplied: `${g}storage.preallocation`,
  PopulatorProgress: `${g}storage.populator.progress`,
  PopulatorKind: `${g}storage.populator.kind`,
  PVCPrimeName: `${g}storage.populator.pvcPrime`,
  VddkVersion: `${g}storage.pod.vddk.version`,
  VddkHostConnection: `${g}storage.pod.vddk.host`,
  VddkInitImageURL: `${g}storage.pod.vddk.initimageurl`,
  CreatedForDataVolume: `${g}createdForDataVolume`,
  EventSourceKind: `${g}events.source.kind`,
  EventSource: `${g}events.source`,
  // DataImportCron
  SourceDesiredDigest: `${g}storage.import.sourceDesiredDigest`,
  LastCronTime: `${g}storage.import.lastCronTime`,
  NextCronTime: `${g}storage.import.nextCronTime`,
  LastUseTime: `${g}storage.import.lastUseTime`,
  ImportStorageClass: `${g}storage.import.storageClass`,
  /** upstream AnnSourceVolumeMode: the volume mode of the claim a DataImportCron's snapshot was cut from */
  SourceVolumeMode: `${g}storage.import.sourceVolumeMode`,
  /** upstream AnnAdvisedRestoreSize: the size to restore a DataImportCron's snapshot at */
  AdvisedRestoreSize: `${g}storage.import.advisedRestoreSize`,
  // upload server pods, their Service and Secret (upstream annCreatedByUpload)
  CreatedByUpload: `${g}storage.createdByUploadController`,
  /** upstream AnnUploadClientName: the CN a host-assisted clone target's upload server accepts */
  UploadClientName: `${g}uploadClientName`,

  // copied from a DataVolume to its worker pods
  PodNetwork: 'k8s.v1.cni.cncf.io/networks',
  PodMultusDefaultNetwork: 'v1.multus-cni.io/default-network',
  PodSidecarInjectionIstio: 'sidecar.istio.io/inject',
  PodSidecarInjectionLinkerd: 'linkerd.io/inject',
  OpenDefaultPorts: 'k8s.ovn.org/open-default-ports',
} as const;

/** Default values of the allow-listed pod annotations when the DataVolume does not set them. */
export const PodAnnotationDefaults = {
  [Ann.PodSidecarInjectionIstio]: 'false',
  [Ann.PodSidecarInjectionLinkerd]: 'disabled',
} as const;

/** Values of `storage.import.source`. */
export const ImportSource = {
  HTTP: 'http',
  S3: 's3',
  GCS: 'gcs',
  Registry: 'registry',
  ImageIO: 'imageio',
  VDDK: 'vddk',
  None: 'none',
  Glance: 'glance',
} as const;

export const Label = {
  App: 'app',
  Component: Group,
  PartOf: 'app.kubernetes.io/part-of',
  Version: 'app.kubernetes.io/version',
  ManagedBy: 'app.kubernetes.io/managed-by',
  KubernetesComponent: 'app.kubernetes.io/component',
  Prometheus: 'prometheus.cdi.kubevirt.io',
  ApplyStorageProfile: `${g}applyStorageProfile`,
  UploadTarget: `${g}uploadTarget`,
  DataImportCron: `${g}dataImportCron`,
  /** upstream DataImportCronNsLabel, DataImportCronPollerLabel, DataImportCronCleanupLabel */
  DataImportCronNamespace: `${g}dataImportCronNs`,
  DataImportCronPoller: `${g}dataImportCronPoller`,
  DataImportCronCleanup: `${g}dataImportCron.cleanup`,
  KubePersistentVolumeFillingUp: 'alerts.k8s.io/KubePersistentVolumeFillingUp',
  ExcludeFromVeleroBackup: 'velero.io/exclude-from-backup',
} as const;

export const LabelValue = {
  App: 'containerized-data-importer',
  PrometheusTrue: 'true',
  KubePersistentVolumeFillingUpDisabled: 'disabled',
  UploadServer: 'cdi-upload-server',
  Cloning: 'host-assisted-cloning',
  SmartClone: 'cdi-smart-clone',
  /** upstream CloneFromSnapshotFallbackPVCCDILabel: the claim a snapshot is restored into for a host-assisted copy. */
  CloneFromSnapshotFallbackPvc: 'cdi-clone-from-snapshot-source-host-assisted-fallback-pvc',
} as const;

/** DataVolume.status.phase values (exact strings). */
export const Phase = {
  Unset: '',
  Pending: 'Pending',
  PVCBound: 'PVCBound',
  ImportScheduled: 'ImportScheduled',
  ImportInProgress: 'ImportInProgress',
  CloneScheduled: 'CloneScheduled',
  CloneInProgress: 'CloneInProgress',
  SnapshotForSmartCloneInProgress: 'SnapshotForSmartCloneInProgress',
  CloneFromSnapshotSourceInProgress: 'CloneFromSnapshotSourceInProgress',
  SmartClonePVCInProgress: 'SmartClonePVCInProgress',
  CSICloneInProgress: 'CSICloneInProgress',
  ExpansionInProgress: 'ExpansionInProgress',
  NamespaceTransferInProgress: 'NamespaceTransferInProgress',
  PrepClaimInProgress: 'PrepClaimInProgress',
  RebindInProgress: 'RebindInProgress',
  UploadScheduled: 'UploadScheduled',
  UploadReady: 'UploadReady',
  WaitForFirstConsumer: 'WaitForFirstConsumer',
  PendingPopulation: 'PendingPopulation',
  Paused: 'Paused',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
  Unknown: 'Unknown',
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export const ConditionType = {
  Ready: 'Ready',
  Bound: 'Bound',
  Running: 'Running',
  /** StorageProfile */
  Recognized: 'Recognized',
  /** StorageProfile (cdi-ts, not upstream): False while a setting cannot be used; the message says which. */
  Valid: 'Valid',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const ConditionStatus = { True: 'True', False: 'False', Unknown: 'Unknown' } as const;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

/** Condition reasons and messages seen on DataVolumes. */
export const Reason = {
  Completed: 'Completed',
  Error: 'Error',
  ImagePullFailed: 'ImagePullFailed',
  ChecksumError: 'ChecksumError',
  ScratchSpaceRequired: 'Scratch space required',
  CreatingScratchSpace: 'CreatingScratchSpace',
  Pending: 'Pending',
  Bound: 'Bound',
  ClaimLost: 'ClaimLost',
  TransferRunning: 'TransferRunning',
  NotFound: 'NotFound',
  Unschedulable: 'Unschedulable',
} as const;

export const Message = {
  ImportComplete: 'Import Complete',
  CloneComplete: 'Clone Complete',
  NoPVCFound: 'No PVC found',
  ClaimLost: 'Claim Lost',
  ImporterUnschedulable: 'Importer pod cannot be scheduled',
  ScratchSpaceRequired: 'scratch space required and none found',
} as const;

/** Event reasons on DataVolumes and PVCs. */
export const EventReason = {
  ImportScheduled: 'ImportScheduled',
  ImportInProgress: 'ImportInProgress',
  ImportSucceeded: 'ImportSucceeded',
  ImportFailed: 'ImportFailed',
  ErrImportFailed: 'ErrImportFailed',
  ImportPaused: 'ImportPaused',
  ImportPVCNotReady: 'ImportPVCNotReady',
  CloneScheduled: 'CloneScheduled',
  CloneInProgress: 'CloneInProgress',
  CloneFromSnapshotSourceInProgress: 'CloneFromSnapshotSourceInProgress',
  CloneSucceeded: 'CloneSucceeded',
  CloneFailed: 'CloneFailed',
  CloneValidationFailed: 'CloneValidationFailed',
  CloneWithoutSource: 'CloneWithoutSource',
  UploadScheduled: 'UploadScheduled',
  UploadReady: 'UploadReady',
  UploadSucceeded: 'UploadSucceeded',
  UploadFailed: 'UploadFailed',
  ImportTargetInUse: 'ImportTargetInUse',
  UploadTargetInUse: 'UploadTargetInUse',
  CloneSourceInUse: 'CloneSourceInUse',
  ErrExceededQuota: 'ErrExceededQuota',
  ExternalPopulationSucceeded: 'ExternalPopulationSucceeded',
  NoCSIDriverForExternalPopulation: 'NoCSIDriverForExternalPopulation',
  ErrClaimNotValid: 'ErrClaimNotValid',
  ErrIncompatiblePVC: 'ErrIncompatiblePVC',
  ErrStartingPod: 'ErrStartingPod',
  ErrResourceExists: 'ErrResourceExists',
  ErrResourceMarkedForDeletion: 'ErrResourceMarkedForDeletion',
  ErrClaimLost: 'ErrClaimLost',
  ClaimMisbound: 'ClaimMisbound',
  NotAuthorized: 'NotAuthorized',
  IncompatibleVolumeModes: 'IncompatibleVolumeModes',
  NoVolumeSnapshotClass: 'NoVolumeSnapshotClass',
  IncompatibleProvisioners: 'IncompatibleProvisioners',
  NoVolumeExpansion: 'NoVolumeExpansion',
  NoProvisionerMatch: 'NoProvisionerMatch',
} as const;

export const ContentType = { KubeVirt: 'kubevirt', Archive: 'archive' } as const;
