// Storage class and filesystem-overhead resolution shared by the DV and import controllers (upstream
// pkg/controller/common: GetStorageClassByName*, GetPlatformDefaultStorageClass, GetFilesystemOverheadForStorageClass).
import { Ann, ContentType, DefaultGlobalOverhead } from './constants.ts';
import type { CDIConfig, StorageClass } from './types.ts';

/** The default class for an annotation: newest first, then by name (Kubernetes' own rule). */
export function platformDefault(classes: StorageClass[], annotation: string): StorageClass | undefined {
  const defaults = classes.filter((c) => c.metadata.annotations?.[annotation] === 'true');
  defaults.sort((a, b) => {
    const ta = Date.parse(a.metadata.creationTimestamp ?? '') || 0;
    const tb = Date.parse(b.metadata.creationTimestamp ?? '') || 0;
    if (ta !== tb) return tb - ta;
    return (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');
  });
  return defaults[0];
}

/**
 * The class named, or when no name is given the default: for kubevirt content the default virt class beats the
 * Kubernetes default (upstream GetStorageClassByNameWithVirtFallback); archive content uses the Kubernetes default.
 */
export function storageClassByName(
  classes: StorageClass[],
  name: string | undefined,
  contentType: string = ContentType.archive,
): StorageClass | undefined {
  if (name === undefined) {
    if (contentType !== ContentType.archive) {
      const virt = platformDefault(classes, Ann.defaultVirtStorageClass);
      if (virt) return virt;
    }
    return platformDefault(classes, Ann.defaultStorageClass);
  }
  return classes.find((c) => c.metadata.name === name);
}

/** Filesystem overhead for a storage class as CDIConfig.status resolves it; "0" for Block or an empty class name. */
export function filesystemOverheadFor(
  config: CDIConfig | undefined,
  classes: StorageClass[],
  storageClassName: string | undefined,
  volumeMode: string | undefined,
): string {
  if (volumeMode === 'Block') return '0';
  if (storageClassName === '') return '0';
  if (!config) return '0';
  const fo = config.status?.filesystemOverhead;
  if (!fo) return '0';
  const target = storageClassByName(classes, storageClassName) ?? storageClassByName(classes, undefined);
  const global = fo.global ?? DefaultGlobalOverhead;
  if (!target) return global;
  return fo.storageClass?.[target.metadata.name ?? ''] ?? global;
}

export function isWaitForFirstConsumer(
  classes: StorageClass[],
  storageClassName: string | undefined,
): boolean {
  const sc = storageClassByName(classes, storageClassName);
  return sc?.volumeBindingMode === 'WaitForFirstConsumer';
}

/**
 * HonorWaitForFirstConsumer: upstream's default CDI CR lists it, and until our operator exists nothing writes that
 * list, so an unset featureGates means on; an explicit list is taken as written (as upstream reads it).
 */
export function honorWaitForFirstConsumer(config: CDIConfig | undefined): boolean {
  const gates = config?.spec?.featureGates;
  return gates === undefined || gates.includes('HonorWaitForFirstConsumer');
}
