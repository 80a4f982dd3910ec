// The shapes of the objects the controllers read and write, as plain JSON (what the API server sends): src/api's
// TypeBox types (one definition each), with the metadata the API server always sets.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { CDIConfig as ApiCDIConfig } from '../../api/cdiconfig.ts';
import type { DataImportCron as ApiDataImportCron } from '../../api/dataimportcron.ts';
import type { DataSource as ApiDataSource } from '../../api/datasource.ts';
import type { DataVolume as ApiDataVolume } from '../../api/datavolume.ts';
import type { StorageProfile as ApiStorageProfile } from '../../api/storageprofile.ts';

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

export type { ClaimPropertySet, StorageClass, VolumeSnapshotClass } from '../../api/storageprofile.ts';

/** A StorageProfile as the API server sends it: metadata is always there; spec may be empty. */
export type StorageProfile = Omit<ApiStorageProfile, 'metadata' | 'spec'> & {
  metadata: Meta;
  spec?: ApiStorageProfile['spec'];
};

export type { DataSourceSource } from '../../api/datasource.ts';

/** A DataSource as the API server sends it: metadata is always there. */
export type DataSource = Omit<ApiDataSource, 'metadata'> & { metadata: Meta };

/** A DataImportCron as the API server sends it: metadata is always there. */
export type DataImportCron = Omit<ApiDataImportCron, 'metadata'> & {
  metadata: Meta;
};

/** The VolumeSnapshot fields CDI reads (snapshot.storage.k8s.io/v1). */
export interface VolumeSnapshot {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  spec?: {
    source?: { persistentVolumeClaimName?: string; volumeSnapshotContentName?: string };
    volumeSnapshotClassName?: string;
  };
  status?: {
    readyToUse?: boolean;
    restoreSize?: string | number;
    boundVolumeSnapshotContentName?: string;
    error?: { message?: string };
  };
}

/** The VolumeSnapshotContent fields CDI reads: the driver and the volume mode of the snapshotted claim. */
export interface VolumeSnapshotContent {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  spec?: { driver?: string; sourceVolumeMode?: 'Filesystem' | 'Block' };
  status?: { readyToUse?: boolean; error?: { message?: string } };
}
