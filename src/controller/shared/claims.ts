// Who else holds a claim: a worker pod (importer, upload server, clone source) is not started while another pod
// mounts its target (or, for a clone, its source).
import { isControlledBy, type PersistentVolumeClaim as Pvc, type Pod } from '../../kube/index.ts';
import { Res, type Kube } from './client.ts';
import { PodClaimIndex } from './indexes.ts';

/**
 * Pods that mount the PVC and have not finished (upstream GetPodsUsingPVCs), from the cache's index, except those
 * `ours` accepts (default: the pods the PVC controls, its own worker).
 */
export async function podsUsingClaim(
  kube: Kube,
  pvc: Pvc,
  ours: (p: Pod) => boolean = (p) => isControlledBy(p, pvc),
): Promise<Pod[]> {
  const ns = pvc.metadata?.namespace ?? '';
  const pods = (
    await kube.list<Pod>(Res.pod, {
      namespace: ns,
      index: { name: PodClaimIndex, value: `${ns}/${pvc.metadata?.name ?? ''}` },
    })
  ).items;
  return pods.filter(
    (p) =>
      !ours(p) &&
      p.status?.phase !== 'Succeeded' &&
      p.status?.phase !== 'Failed' &&
      (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === pvc.metadata?.name),
  );
}
