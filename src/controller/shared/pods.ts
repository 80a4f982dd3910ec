// What the worker pods share: the container security context, and the scheduling retry of a stuck pod.
import type { PersistentVolumeClaim, Pod as PodObj } from '../../kube/index.ts';
import { Res, type Kube } from './client.ts';
import { Pod } from './constants.ts';
import type { Result } from './runtime.ts';

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

/** Where the scheduling retry of a stuck worker pod was last asked for (on the scratch or target PVC). */
export const SchedulingRetryAnn = 'cdi.kubevirt.io/storage.scheduling.retryRequested';
const BindCompletedAnn = 'pv.kubernetes.io/bind-completed';
/** How long the scheduler gets to place a pod whose claims are bound before it is asked again. */
const SchedulingGraceMs = 3_000;
/** How often a pod that stays unschedulable (with bound claims) is retried, and checked. */
const SchedulingRetryMs = 30_000;
/**
 * What kube-scheduler's VolumeBinding PreFilter writes when it finds a claim unbound or missing in its cache; any
 * other reason (no node matches, no resources) is the scheduler's own answer and not retried.
 */
const StaleClaimMessage = /unbound immediate PersistentVolumeClaims|persistentvolumeclaim "[^"]+" not found/;

/**
 * kube-scheduler (v1.34) can park a worker pod as Unschedulable ("pod has unbound immediate PersistentVolumeClaims")
 * for its 5-minute unschedulable-pods flush although every claim is bound: its PVC event handler and the VolumeBinding
 * plugin's PVC cache are two handlers of one informer, and when the event that binds the scratch PVC reaches the
 * queue first, the retry reads the stale cache and nothing queues the pod again. A worker pod is created before its
 * scratch PVC (the PVC is the pod's), so this race is ours to meet. When our own cache shows every claim of a Pending,
 * Unschedulable pod (for a claim, by its message) fully bound, an annotation on one of its claims is a PVC update, which makes the scheduler retry
 * the pod. Returns when to look again while the pod stays unplaced.
 */
export async function retryUnschedulablePod(
  kube: Pick<Kube, 'get' | 'mergePatch'>,
  pod: PodObj,
  now = Date.now(),
): Promise<Result | undefined> {
  if (pod.status?.phase !== 'Pending' || pod.spec?.nodeName || pod.metadata?.deletionTimestamp)
    return undefined;
  const cond = (pod.status.conditions ?? []).find((c) => c.type === 'PodScheduled');
  if (cond?.status !== 'False' || cond.reason !== 'Unschedulable') return undefined;
  if (!StaleClaimMessage.test(cond.message ?? '')) return undefined;
  const ns = pod.metadata?.namespace;
  const vols = (pod.spec?.volumes ?? []).flatMap((v) =>
    v.persistentVolumeClaim?.claimName ? [{ vol: v.name, claim: v.persistentVolumeClaim.claimName }] : [],
  );
  const names = vols.map((v) => v.claim);
  const claims = await Promise.all(names.map((n) => kube.get<PersistentVolumeClaim>(Res.pvc, n, ns)));
  const bound = claims.every(
    (c) => c && c.spec?.volumeName && c.metadata?.annotations?.[BindCompletedAnn] !== undefined,
  );
  const since = Date.parse(cond.lastTransitionTime ?? '') || 0;
  if (!bound || now - since < SchedulingGraceMs) return { requeueAfterMs: SchedulingGraceMs };
  // the scratch claim when there is one (CDI's own), else the first
  const scratch = vols.findIndex((v) => v.vol === 'cdi-scratch-vol');
  const claim = claims[scratch >= 0 ? scratch : 0];
  if (!claim?.metadata?.name) return undefined;
  const last = Date.parse(claim.metadata.annotations?.[SchedulingRetryAnn] ?? '') || 0;
  if (now - last >= SchedulingRetryMs)
    await kube.mergePatch(Res.pvc, claim.metadata.name, ns, {
      metadata: { annotations: { [SchedulingRetryAnn]: new Date(now).toISOString() } },
    });
  return { requeueAfterMs: SchedulingRetryMs };
}
