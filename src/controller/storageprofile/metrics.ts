// What kubevirt_cdi_storageprofile_info says about a profile (upstream StorageProfileReconciler.computeMetrics):
// computed from the profile's status as just written and its StorageClass; the alerts CDIStorageProfilesIncomplete,
// CDINoDefaultStorageClass, CDIMultipleDefaultVirtStorageClasses and CDIDefaultStorageClassDegraded read it.
import { Ann } from '../../api/constants.ts';
import type { StorageProfileInfo } from '../../monitoring/metrics.ts';
import type { ClaimPropertySet, StorageClass, StorageProfile, VolumeSnapshotClass } from '../shared/types.ts';
import { unsupportedProvisioners } from './capabilities.ts';

export interface ProfileMetricsWorld {
  snapshotClasses: readonly VolumeSnapshotClass[];
  /** Whether a CSIDriver object of this name exists (only asked for the csi-clone strategy). */
  csiDriverExists: (name: string) => boolean;
  /**
   * An OpenShift single-node cluster (Infrastructure "cluster" with SingleReplica control plane and
   * infrastructure topology), where ReadWriteMany is not expected. There is no such API off OpenShift: false.
   */
  singleNode: boolean;
}

/** upstream isIncomplete: no sets, or a set without access modes or volume mode. */
export function isIncomplete(sets: readonly ClaimPropertySet[] | undefined): boolean {
  return !sets?.length || sets.some((s) => !s.accessModes?.length || !s.volumeMode);
}

const hasRwx = (sets: readonly ClaimPropertySet[] | undefined): boolean =>
  (sets ?? []).some((s) => (s.accessModes ?? []).includes('ReadWriteMany'));

/**
 * upstream hasSmartClone: host-assisted copy is not smart; csi-clone is when the provisioner's CSIDriver exists;
 * snapshot (or no strategy) is when a VolumeSnapshotClass exists for the provisioner.
 */
function hasSmartClone(status: NonNullable<StorageProfile['status']>, w: ProfileMetricsWorld): boolean {
  const strategy = status.cloneStrategy;
  const provisioner = status.provisioner;
  if (!provisioner || strategy === 'copy') return false;
  if (strategy === 'csi-clone') return w.csiDriverExists(provisioner);
  return w.snapshotClasses.some((c) => c.driver === provisioner);
}

/** The metric's labels for a profile; undefined while its status names no class or provisioner yet. */
export function storageProfileInfo(
  profile: StorageProfile,
  sc: StorageClass,
  w: ProfileMetricsWorld,
): StorageProfileInfo | undefined {
  const status = profile.status;
  if (!status?.storageClass || !status.provisioner) return undefined;
  const sets = status.claimPropertySets;
  const rwx = hasRwx(sets);
  const smartClone = hasSmartClone(status, w);
  const annotations = sc.metadata.annotations ?? {};
  return {
    storageClass: status.storageClass,
    provisioner: status.provisioner,
    // explicitly unsupported provisioners are not counted as incomplete
    complete: unsupportedProvisioners.has(status.provisioner) || !isIncomplete(sets),
    isDefault: annotations[Ann.DefaultStorageClass] === 'true',
    virtDefault: annotations[Ann.DefaultVirtStorageClass] === 'true',
    rwx,
    smartClone,
    degraded: (!w.singleNode && !rwx) || !smartClone,
  };
}
