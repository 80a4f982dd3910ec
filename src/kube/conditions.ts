// Kubernetes-style conditions: setCondition keeps lastTransitionTime while the status does not change and
// returns the same array when nothing changed, so a reconcile can skip a no-op status write.
import { kubeTime } from './types.ts';

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastHeartbeatTime?: string;
}

export type ConditionUpdate<C extends Condition> = Omit<C, 'lastTransitionTime' | 'lastHeartbeatTime'>;

export interface SetConditionOptions {
  /** Also stamp lastHeartbeatTime when the condition changes (upstream CDI does for DataVolumes). */
  heartbeat?: boolean;
}

export function findCondition<C extends Condition>(
  conditions: readonly C[] | undefined,
  type: string,
): C | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

export function setCondition<C extends Condition>(
  conditions: readonly C[] | undefined,
  update: ConditionUpdate<C>,
  now: Date,
  opts: SetConditionOptions = {},
): C[] {
  const list = conditions ?? [];
  const existing = findCondition(list, update.type);
  const stamp = kubeTime(now);
  if (
    existing &&
    existing.status === update.status &&
    (existing.reason ?? '') === (update.reason ?? '') &&
    (existing.message ?? '') === (update.message ?? '')
  ) {
    return conditions === undefined ? [] : (conditions as C[]);
  }
  // Built from the update alone, so a reason or message the update leaves out is cleared, not inherited.
  const next = {
    ...update,
    lastTransitionTime:
      existing && existing.status === update.status ? (existing.lastTransitionTime ?? stamp) : stamp,
  } as C;
  if (opts.heartbeat) next.lastHeartbeatTime = stamp;
  else if (existing?.lastHeartbeatTime !== undefined) next.lastHeartbeatTime = existing.lastHeartbeatTime;
  return existing ? list.map((c) => (c.type === update.type ? next : c)) : [...list, next];
}

export function removeCondition<C extends Condition>(
  conditions: readonly C[] | undefined,
  type: string,
): C[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}
