// The shapes of the CDI objects the controllers read and write, as plain JSON (what the API server sends).
// Kept minimal and local until src/api exports the full TypeBox-derived types; the field names are upstream's.
import type {
  V1LabelSelector,
  V1ObjectMeta,
  V1PersistentVolumeClaimSpec,
  V1TypedLocalObjectReference,
  V1TypedObjectReference,
  V1LocalObjectReference,
} from '@kubernetes/client-node';

/** Object metadata as JSON: timestamps stay strings. */
export type Meta = Omit<V1ObjectMeta, 'creationTimestamp' | 'deletionTimestamp'> & {
  creationTimestamp?: string;
  deletionTimestamp?: string;
};

export interface DataVolumeSourceHTTP {
  url: string;
  secretRef?: string;
  certConfigMap?: string;
  extraHeaders?: string[];
  secretExtraHeaders?: string[];
  checksum?: string;
  insecureSkipVerify?: boolean;
}

export interface DataVolumeSource {
  http?: DataVolumeSourceHTTP;
  s3?: { url: string; secretRef?: string; certConfigMap?: string };
  gcs?: { url: string; secretRef?: string };
  registry?: {
    url?: string;
    imageStream?: string;
    pullMethod?: string;
    secretRef?: string;
    certConfigMap?: string;
    platform?: { architecture?: string };
  };
  imageio?: {
    url: string;
    diskId: string;
    secretRef?: string;
    certConfigMap?: string;
    insecureSkipVerify?: boolean;
  };
  vddk?: {
    url?: string;
    uuid?: string;
    backingFile?: string;
    thumbprint?: string;
    secretRef?: string;
    initImageURL?: string;
    extraArgs?: string;
  };
  blank?: Record<string, never>;
  upload?: Record<string, never>;
  pvc?: { namespace: string; name: string };
  snapshot?: { namespace: string; name: string };
}

export interface StorageSpec {
  accessModes?: string[];
  selector?: V1LabelSelector;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeName?: string;
  storageClassName?: string;
  volumeMode?: string;
  dataSource?: V1TypedLocalObjectReference;
  dataSourceRef?: V1TypedObjectReference;
}

export interface DataVolumeCondition {
  type: 'Ready' | 'Bound' | 'Running';
  status: 'True' | 'False' | 'Unknown';
  lastTransitionTime?: string;
  lastHeartbeatTime?: string;
  reason?: string;
  message?: string;
}

export interface DataVolumeStatus {
  claimName?: string;
  phase?: string;
  progress?: string;
  restartCount?: number;
  conditions?: DataVolumeCondition[];
}

export interface DataVolume {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  spec: {
    source?: DataVolumeSource;
    sourceRef?: { kind: string; namespace?: string; name: string };
    pvc?: V1PersistentVolumeClaimSpec;
    storage?: StorageSpec;
    contentType?: string;
    preallocation?: boolean;
    priorityClassName?: string;
    serviceAccountName?: string;
    checkpoints?: { previous: string; current: string }[];
    finalCheckpoint?: boolean;
  };
  status?: DataVolumeStatus;
}

export interface ResourceRequirements {
  limits?: Record<string, string>;
  requests?: Record<string, string>;
}

export interface ImportProxy {
  HTTPProxy?: string;
  HTTPSProxy?: string;
  noProxy?: string;
  trustedCAProxy?: string;
}

export interface CDIConfig {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  spec?: {
    scratchSpaceStorageClass?: string;
    podResourceRequirements?: ResourceRequirements;
    featureGates?: string[];
    filesystemOverhead?: { global?: string; storageClass?: Record<string, string> };
    preallocation?: boolean;
    importProxy?: ImportProxy;
    insecureRegistries?: string[];
    imagePullSecrets?: V1LocalObjectReference[];
  };
  status?: {
    scratchSpaceStorageClass?: string;
    defaultPodResourceRequirements?: ResourceRequirements;
    filesystemOverhead?: { global: string; storageClass?: Record<string, string> };
    preallocation?: boolean;
    importProxy?: ImportProxy;
    imagePullSecrets?: V1LocalObjectReference[];
    uploadProxyURL?: string;
  };
}

export interface ClaimPropertySet {
  accessModes?: string[];
  volumeMode?: string;
}

export interface StorageProfile {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  spec?: {
    cloneStrategy?: string;
    claimPropertySets?: ClaimPropertySet[];
    dataImportCronSourceFormat?: string;
    snapshotClass?: string;
  };
  status?: {
    storageClass?: string;
    provisioner?: string;
    cloneStrategy?: string;
    claimPropertySets?: ClaimPropertySet[];
    dataImportCronSourceFormat?: string;
    snapshotClass?: string;
    conditions?: {
      type: string;
      status: string;
      reason?: string;
      message?: string;
      lastTransitionTime?: string;
      lastHeartbeatTime?: string;
    }[];
  };
}

/** A StorageClass as JSON (only what we read). */
export interface StorageClass {
  metadata: Meta;
  provisioner: string;
  parameters?: Record<string, string>;
  volumeBindingMode?: string;
  allowVolumeExpansion?: boolean;
}
