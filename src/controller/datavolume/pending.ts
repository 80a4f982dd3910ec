// kubevirt_cdi_datavolume_pending (upstream updatePendingDataVolumesGauge): the DataVolumes that name no storage
// class, so wait for a default one, and are still Pending or have no phase yet. CDINoDefaultStorageClass fires on
// it when the cluster has neither a default nor a default virtualization StorageClass.
import { Phase } from '../shared/constants.ts';
import type { DataVolume } from '../shared/types.ts';

/** upstream IsDataVolumeUsingDefaultStorageClass: neither spec.pvc nor spec.storage names a class ("" names one). */
export function usesDefaultStorageClass(dv: DataVolume): boolean {
  const spec = dv.spec.pvc ?? dv.spec.storage;
  return spec?.storageClassName === undefined;
}

/** How many of `dvs` wait for a default storage class. */
export function pendingForDefaultStorageClass(dvs: Iterable<DataVolume>): number {
  let n = 0;
  for (const dv of dvs) {
    const phase = dv.status?.phase ?? Phase.Unset;
    if ((phase === Phase.Pending || phase === Phase.Unset) && usesDefaultStorageClass(dv)) n++;
  }
  return n;
}
