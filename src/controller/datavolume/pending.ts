// kubevirt_cdi_datavolume_pending (upstream updatePendingDataVolumesGauge): the DataVolumes that name no storage
// class, so wait for a default one, and are still Pending or have no phase yet. CDINoDefaultStorageClass fires on
// it when the cluster has neither a default nor a default virtualization StorageClass. Upstream lists every
// DataVolume on every DataVolume event; PendingDataVolumes keeps the set up to date one event at a time instead.
import { Phase } from '../shared/constants.ts';
import type { DataVolume } from '../shared/types.ts';

/** upstream IsDataVolumeUsingDefaultStorageClass: neither spec.pvc nor spec.storage names a class ("" names one). */
export function usesDefaultStorageClass(dv: DataVolume): boolean {
  const spec = dv.spec.pvc ?? dv.spec.storage;
  return spec?.storageClassName === undefined;
}

/** Pending (or phase-less) and without a class of its own. */
export function waitsForDefaultStorageClass(dv: DataVolume): boolean {
  const phase = dv.status?.phase ?? Phase.Unset;
  return (phase === Phase.Pending || phase === Phase.Unset) && usesDefaultStorageClass(dv);
}

/** The DataVolumes waiting for a default class, by key, fed by the DataVolume informer's events. */
export class PendingDataVolumes {
  readonly #keys = new Set<string>();

  /** The DataVolume `key` is now `dv` (added or updated); returns the new count. */
  set(key: string, dv: DataVolume): number {
    if (waitsForDefaultStorageClass(dv)) this.#keys.add(key);
    else this.#keys.delete(key);
    return this.#keys.size;
  }

  /** The DataVolume `key` is gone; returns the new count. */
  delete(key: string): number {
    this.#keys.delete(key);
    return this.#keys.size;
  }

  get size(): number {
    return this.#keys.size;
  }
}
