// The shapes of the objects the controllers read and write, as plain JSON (what the API server sends). DataVolume
// and CDIConfig are src/api's TypeBox types with the metadata the API server always sets; StorageProfile and
// StorageClass stay minimal (only what the controllers read).
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { Condition } from '../../kube/index.ts';
import type { CDIConfig as ApiCDIConfig } from '../../api/cdiconfig.ts';
import type { DataVolume as ApiDataVolume } from '../../api/datavolume.ts';

/** Object metadata as JSON: timestamps stay strings. */
export type Meta = Omit<V1ObjectMeta, 'creationTimestamp' | 'deletionTimestamp'> & {
  creationTimestamp?: string;
  deletionTimestamp?: string;
};

export type {
  DataVolumeCondition,
  DataVolumeSource,
  DataVolumeSourceHTTP,
  DataVolumeStatus,
  StorageSpec,
} from '../../api/datavolume.ts';

/** A DataVolume as the API server sends it: metadata is always there. */
export type DataVolume = Omit<ApiDataVolume, 'metadata'> & { metadata: Meta };

export type { ResourceRequirements } from '../../api/k8s.ts';

/** A CDIConfig as the API server sends it: metadata is always there; spec may be empty. */
export type CDIConfig = Omit<ApiCDIConfig, 'metadata' | 'spec'> & {
  metadata: Meta;
  spec?: ApiCDIConfig['spec'];
};

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
    conditions?: Condition[];
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
