// What the worker pods share: the container security context, and "who else has this claim mounted" (an import
// target or a clone source in use waits for those pods).
import type { PersistentVolumeClaim as Pvc, Pod as PodObj } from '../../kube/index.ts';
import { Res, type Kube } from './client.ts';
import { Pod } from './constants.ts';
import { PodClaimIndex } from './indexes.ts';

/** Every worker container: non-root (qemu's uid), no capabilities, no privilege escalation, seccomp RuntimeDefault. */
export function workerSecurityContext(): {
  allowPrivilegeEscalation: boolean;
  capabilities: { drop: string[] };
  runAsNonRoot: boolean;
  runAsUser: number;
  seccompProfile: { type: string };
} {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    runAsNonRoot: true,
    runAsUser: Pod.qemuUid,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The pods (from the cache's claim index) that mount `pvc` and have not finished, except those `ours` accepts. */
export async function podsUsingClaim(kube: Kube, pvc: Pvc, ours: (p: PodObj) => boolean): Promise<PodObj[]> {
  const ns = pvc.metadata?.namespace ?? '';
  const pods = (
    await kube.list<PodObj>(Res.pod, {
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
