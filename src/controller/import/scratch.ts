// The scratch PVC "<pvc>-scratch" an importer asks for (upstream newScratchPersistentVolumeClaimSpec and
// createScratchPersistentVolumeClaim): Filesystem, ReadWriteOnce, owned by the importer pod so it goes with it.
import type { PersistentVolumeClaim as Pvc, Pod as PodObj } from '../../kube/index.ts';
import { Label, ManagedLabels } from '../shared/constants.ts';
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
