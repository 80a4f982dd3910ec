// The CDI resource's status, as upstream's operator sdk writes it (controller-lifecycle-operator-sdk cr-status.go,
// reconciler.go): a phase and the three conditions Available, Progressing and Degraded, with the sdk's reasons
// (DeployStarted, DeployCompleted, UpgradeStarted, ConfigError, …) and our own where the sdk leaves them empty
// (which Deployment is not ready, what blocks a removal). operatorVersion and targetVersion are the running
// operator's version; observedVersion is the version whose components are all rolled out.
import { setCondition, findCondition, type Condition } from '../kube/index.ts';

export const CDIPhase = {
  Empty: '',
  Deploying: 'Deploying',
  Deployed: 'Deployed',
  Upgrading: 'Upgrading',
  Deleting: 'Deleting',
  Deleted: 'Deleted',
  Error: 'Error',
} as const;
export type CDIPhase = (typeof CDIPhase)[keyof typeof CDIPhase];

export const CDICondition = {
  Available: 'Available',
  Progressing: 'Progressing',
  Degraded: 'Degraded',
} as const;

export const CDIReason = {
  DeployStarted: 'DeployStarted',
  DeployCompleted: 'DeployCompleted',
  UpgradeStarted: 'UpgradeStarted',
  ConfigError: 'ConfigError',
  /** not upstream: a component's Deployment has fewer ready replicas than it asks for */
  DeploymentNotReady: 'DeploymentNotReady',
  /** not upstream: applying an object failed (the message names it and says why) */
  ApplyFailed: 'ApplyFailed',
  /** not upstream: removal waits (DataVolumes under BlockUninstallIfWorkloadsExist, objects still going away) */
  UninstallBlocked: 'UninstallBlocked',
  Uninstalling: 'Uninstalling',
} as const;

export interface CDIStatus {
  phase?: string;
  conditions?: Condition[];
  operatorVersion?: string;
  targetVersion?: string;
  observedVersion?: string;
}

type Cond = { status: 'True' | 'False'; reason?: string; message?: string };

/** Sets the three conditions at once (a condition given no reason clears its reason, as the sdk does). */
export function withConditions(
  status: CDIStatus,
  now: Date,
  available: Cond,
  progressing: Cond,
  degraded: Cond,
): CDIStatus {
  let c = status.conditions;
  c = setCondition(c, { type: CDICondition.Available, ...available }, now, { heartbeat: true });
  c = setCondition(c, { type: CDICondition.Progressing, ...progressing }, now, { heartbeat: true });
  c = setCondition(c, { type: CDICondition.Degraded, ...degraded }, now, { heartbeat: true });
  return c === status.conditions ? status : { ...status, conditions: c };
}

const T = 'True' as const;
const F = 'False' as const;

/** sdk MarkCrDeploying */
export const markDeploying = (s: CDIStatus, now: Date, reason: string, message: string): CDIStatus =>
  withConditions(s, now, { status: F }, { status: T, reason, message }, { status: F });

/** sdk MarkCrHealthyMessage */
export const markHealthy = (s: CDIStatus, now: Date, reason: string, message: string): CDIStatus =>
  withConditions(s, now, { status: T, reason, message }, { status: F }, { status: F });

/** sdk MarkCrUpgradeHealingDegraded */
export const markUpgrading = (s: CDIStatus, now: Date, reason: string, message: string): CDIStatus =>
  withConditions(s, now, { status: T }, { status: T }, { status: T, reason, message });

/** sdk MarkCrFailed */
export const markFailed = (s: CDIStatus, now: Date, reason: string, message: string): CDIStatus =>
  withConditions(s, now, { status: F }, { status: F }, { status: T, reason, message });

/** sdk MarkCrFailedHealing: not available, working on it, degraded. */
export const markFailedHealing = (s: CDIStatus, now: Date, reason: string, message: string): CDIStatus =>
  withConditions(s, now, { status: F }, { status: T }, { status: T, reason, message });

/** Only the Degraded condition (sdk CheckDegraded), the others as they are. */
export function withDegraded(s: CDIStatus, now: Date, degraded: Cond): CDIStatus {
  const c = setCondition(s.conditions, { type: CDICondition.Degraded, ...degraded }, now, {
    heartbeat: true,
  });
  return c === s.conditions ? s : { ...s, conditions: c };
}

export const conditionTrue = (s: CDIStatus | undefined, type: string): boolean =>
  findCondition(s?.conditions, type)?.status === 'True';

/**
 * kubevirt_cdi_cr_ready as upstream sets it: 1 when Available; 0 when not Available and not Progressing either; a
 * resource still progressing keeps the value it had (undefined here).
 */
export function readiness(s: CDIStatus | undefined): 0 | 1 | undefined {
  if (conditionTrue(s, CDICondition.Available)) return 1;
  if (!conditionTrue(s, CDICondition.Progressing)) return 0;
  return undefined;
}

interface DeploymentStatusView {
  metadata?: { name?: string; generation?: number };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
  };
}

/**
 * Why a Deployment is not rolled out and ready, or undefined when it is (sdk CheckDeploymentReady, plus: the
 * controller observed the current spec and every replica runs it, so an upgrade is complete only when the new pods
 * are the ready ones).
 */
export function deploymentNotReady(d: DeploymentStatusView | undefined, name: string): string | undefined {
  if (!d) return `Deployment ${name} does not exist yet`;
  const want = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  if ((st.observedGeneration ?? 0) < (d.metadata?.generation ?? 0))
    return `Deployment ${name}: the new spec is not rolled out yet`;
  const ready = st.readyReplicas ?? 0;
  const updated = st.updatedReplicas ?? 0;
  if ((st.replicas ?? 0) !== want || ready !== want || updated !== want)
    return `Deployment ${name}: ${ready}/${want} replicas ready, ${updated} updated`;
  return undefined;
}

/** Compares two statuses for a write (heartbeats aside: they change with every condition change anyway). */
export function sameStatus(a: CDIStatus | undefined, b: CDIStatus): boolean {
  return JSON.stringify(a ?? {}) === JSON.stringify(b);
}
