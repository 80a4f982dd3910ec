// The CDI metrics of cdi-upstream.md §7 that the control plane exports, with upstream's names, help texts and labels
// (pkg/monitoring/metrics/cdi-controller, operator-controller). Each set registers on the registry its process
// passes in (no global registry); controllers get the object and call its setters.
import { Gauge, type Registry } from 'prom-client';

/** The labels of kubevirt_cdi_storageprofile_info, in upstream's order. */
export const StorageProfileInfoLabels = [
  'storageclass',
  'provisioner',
  'complete',
  'default',
  'virtdefault',
  'rwx',
  'smartclone',
  'degraded',
] as const;
type ProfileLabel = (typeof StorageProfileInfoLabels)[number];

/** What kubevirt_cdi_storageprofile_info says about one StorageClass's profile. */
export interface StorageProfileInfo {
  storageClass: string;
  provisioner: string;
  /** every claim property set has access modes and a volume mode (or the provisioner is known not to work) */
  complete: boolean;
  /** the Kubernetes default class */
  isDefault: boolean;
  /** the default virtualization class */
  virtDefault: boolean;
  rwx: boolean;
  /** snapshot or CSI clone possible */
  smartClone: boolean;
  /** not optimal for virtualization: no ReadWriteMany (outside single-node clusters) or no smart clone */
  degraded: boolean;
}

const CronLabels = ['namespace', 'cron_name', 'pending'] as const;
type CronLabel = (typeof CronLabels)[number];

const b = (v: boolean): string => String(v);

/** cdi-controller's gauges. */
export class ControllerMetrics {
  readonly dataVolumePending: Gauge;
  readonly storageProfileInfo: Gauge<ProfileLabel>;
  readonly dataImportCronOutdated: Gauge<CronLabel>;
  // prom-client removes a series by its full label set only; what was set last is kept to replace it
  readonly #profiles = new Map<string, Record<ProfileLabel, string>>();
  readonly #crons = new Map<string, Record<CronLabel, string>>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.dataVolumePending = new Gauge({
      name: 'kubevirt_cdi_datavolume_pending',
      help: 'Number of DataVolumes pending for default storage class to be configured',
      registers,
    });
    this.storageProfileInfo = new Gauge({
      name: 'kubevirt_cdi_storageprofile_info',
      help:
        '`StorageProfiles` info labels: ' +
        '`storageclass`, `provisioner`, ' +
        '`complete` indicates if all storage profiles recommended PVC settings are complete, ' +
        "`default` indicates if it's the Kubernetes default storage class, " +
        "`virtdefault` indicates if it's the default virtualization storage class, " +
        '`rwx` indicates if the storage class supports `ReadWriteMany`, ' +
        '`smartclone` indicates if it supports snapshot or CSI based clone, ' +
        '`degraded` indicates it is not optimal for virtualization',
      labelNames: StorageProfileInfoLabels,
      registers,
    });
    this.dataImportCronOutdated = new Gauge({
      name: 'kubevirt_cdi_dataimportcron_outdated',
      help: 'DataImportCron has an outdated import',
      labelNames: CronLabels,
      registers,
    });
  }

  /** DataVolumes without a storage class of their own that are still Pending (or have no phase yet). */
  setDataVolumePending(count: number): void {
    this.dataVolumePending.set(count);
  }

  /** One series per class, value 1: a change of any label replaces the class's previous series. */
  setStorageProfileInfo(info: StorageProfileInfo): void {
    const labels: Record<ProfileLabel, string> = {
      storageclass: info.storageClass,
      provisioner: info.provisioner,
      complete: b(info.complete),
      default: b(info.isDefault),
      virtdefault: b(info.virtDefault),
      rwx: b(info.rwx),
      smartclone: b(info.smartClone),
      degraded: b(info.degraded),
    };
    this.deleteStorageProfileInfo(info.storageClass);
    this.storageProfileInfo.set(labels, 1);
    this.#profiles.set(info.storageClass, labels);
  }

  /** Drops the class's series (its StorageClass is gone); returns how many were removed. */
  deleteStorageProfileInfo(storageClass: string): number {
    const had = this.#profiles.get(storageClass);
    if (!had) return 0;
    this.storageProfileInfo.remove(had);
    this.#profiles.delete(storageClass);
    return 1;
  }

  /**
   * upstream updateDataImportCronOutdatedMetric: 1 when the cron's import is not up to date; `pending` when that is
   * because its DataVolume waits for a default storage class (the alert ignores those).
   */
  setDataImportCronOutdated(namespace: string, name: string, outdated: boolean, pending: boolean): void {
    this.deleteDataImportCronOutdated(namespace, name);
    const labels = { namespace, cron_name: name, pending: b(pending) };
    this.dataImportCronOutdated.set(labels, outdated ? 1 : 0);
    this.#crons.set(`${namespace}/${name}`, labels);
  }

  /** Drops the cron's series (the DataImportCron is gone); returns how many were removed. */
  deleteDataImportCronOutdated(namespace: string, name: string): number {
    const key = `${namespace}/${name}`;
    const had = this.#crons.get(key);
    if (!had) return 0;
    this.dataImportCronOutdated.remove(had);
    this.#crons.delete(key);
    return 1;
  }
}

/** cdi-operator's gauge: kubevirt_cdi_cr_ready. */
export class OperatorMetrics {
  readonly crReady: Gauge;

  constructor(registry: Registry) {
    this.crReady = new Gauge({
      name: 'kubevirt_cdi_cr_ready',
      help: 'CDI install ready',
      registers: [registry],
    });
    this.setInit();
  }

  /** -1 until the first reconcile decides: 0 is what CDINotReady fires on, so the gauge cannot start there. */
  setInit(): void {
    this.crReady.set(-1);
  }

  /** 1 when the CDI resource is Available, 0 otherwise. */
  setReady(ready: boolean): void {
    this.crReady.set(ready ? 1 : 0);
  }
}
