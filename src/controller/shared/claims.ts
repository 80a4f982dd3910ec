// Who else holds a claim: a worker pod (importer, upload server) is not started while another pod mounts its target.
import { isControlledBy, type PersistentVolumeClaim as Pvc, type Pod } from '../../kube/index.ts';
import { Res, type Kube } from './client.ts';
import { PodClaimIndex } from './indexes.ts';

/** Pods not controlled by the PVC, not finished, that mount it (upstream GetPodsUsingPVCs), from the cache's index. */
export async function podsUsingClaim(kube: Kube, pvc: Pvc): Promise<Pod[]> {
  const ns = pvc.metadata?.namespace ?? '';
  const pods = (
    await kube.list<Pod>(Res.pod, {
      namespace: ns,
      index: { name: PodClaimIndex, value: `${ns}/${pvc.metadata?.name ?? ''}` },
    })
  ).items;
  return pods.filter(
    (p) =>
      !isControlledBy(p, pvc) &&
      p.status?.phase !== 'Succeeded' &&
      p.status?.phase !== 'Failed' &&
      (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === pvc.metadata?.name),
  );
}
