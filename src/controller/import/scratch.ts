// The scratch PVC "<pvc>-scratch" an importer asks for (upstream newScratchPersistentVolumeClaimSpec and
// createScratchPersistentVolumeClaim): Filesystem, ReadWriteOnce, owned by the importer pod so it goes with it.
import type { PersistentVolumeClaim as Pvc, Pod as PodObj } from '../../kube/index.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import { Label, ManagedLabels } from '../shared/constants.ts';
import type { Logger } from '../shared/runtime.ts';
import { filesystemOverheadFor } from '../shared/storage.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';
import {
  MiB,
  parseOverhead,
  parseQuantity,
  requiredSpace,
  roundUp,
  usableSpace,
} from '../shared/quantity.ts';

/**
 * Size so that, after the scratch class's overhead, the scratch volume still holds the target's usable size:
 * roundUp(requiredSpace(scratchOverhead, usableSpace(targetOverhead, targetRequest)), 1MiB).
 */
export function scratchSize(targetRequest: string, targetOverhead: string, scratchOverhead: string): bigint {
  const expected = usableSpace(parseOverhead(targetOverhead), parseQuantity(targetRequest));
  return roundUp(requiredSpace(parseOverhead(scratchOverhead), expected), MiB);
}

export function makeScratchPvc(
  pvc: Pvc,
  pod: PodObj,
  name: string,
  storageClassName: string,
  size: bigint,
): Pvc {
  // kubevirt.io annotations travel, CDI's do not: they would start another import on the scratch volume
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(pvc.metadata?.annotations ?? {})) {
    if (k.includes('kubevirt.io/') && !k.includes('cdi.kubevirt.io/')) annotations[k] = v;
  }
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: pvc.metadata?.namespace,
      labels: { ...ManagedLabels, [Label.app]: Label.appValue, [Label.excludeFromVelero]: 'true' },
      annotations,
      ownerReferences: [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          name: pod.metadata?.name ?? '',
          uid: pod.metadata?.uid ?? '',
          blockOwnerDeletion: true,
          controller: true,
        },
      ],
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      volumeMode: 'Filesystem',
      resources: { requests: { storage: size.toString() } },
      ...(storageClassName ? { storageClassName } : {}),
    },
  };
}

/**
 * Creates the scratch PVC `name` of a worker pod for target `pvc` (class: CDIConfig's scratch class, else the
 * target's), sized by scratchSize; AlreadyExists is success.
 */
export async function createScratchPvc(
  d: { kube: Kube; log: Logger },
  pvc: Pvc,
  pod: PodObj,
  name: string,
  config: CDIConfig | undefined,
  classes: StorageClass[],
): Promise<void> {
  const ns = pvc.metadata?.namespace;
  const scName = config?.status?.scratchSpaceStorageClass || pvc.spec?.storageClassName || '';
  const mode = pvc.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem';
  const size = scratchSize(
    String(pvc.spec?.resources?.requests?.['storage'] ?? '0'),
    filesystemOverheadFor(config, classes, pvc.spec?.storageClassName, mode),
    filesystemOverheadFor(config, classes, scName || undefined, 'Filesystem'),
  );
  try {
    await d.kube.create(Res.pvc, makeScratchPvc(pvc, pod, name, scName, size));
    d.log.info('created scratch PVC', { namespace: ns, pvc: name, size: size.toString() });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}
