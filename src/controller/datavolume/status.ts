// DataVolume status from the PVC's annotations (upstream controller-base.go updateStatus, import-controller.go
// updateStatusPhase, conditions.go). Pure: the caller fetches, this decides, the caller writes.
import { setCondition, type PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { Ann, Message, Phase, ProgressDone, Reason } from '../shared/constants.ts';
import type { DataVolume, DataVolumeCondition, DataVolumeStatus } from '../shared/types.ts';
import { isMultiStageInProgress } from '../shared/checkpoints.ts';

export interface DvEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface PhaseContext {
  /** The claim's class binds on first consumer and HonorWaitForFirstConsumer is on. */
  waitForFirstConsumer: boolean;
  /** Which worker fills the claim (upstream: the import, upload or external-population reconciler's updateStatusPhase). */
  work?: 'import' | 'upload' | 'external';
  /**
   * External population: the claim's provisioner has a CSIDriver, or the claim is made from a PVC or a snapshot
   * (upstream checkPopulationRequirements). Asked only once the claim is Bound.
   */
  populationSupported?: boolean;
}

const anns = (pvc: Pvc): Record<string, string> => pvc.metadata?.annotations ?? {};

/** True unless the claim was pre-populated for this DV (then no import is needed). */
export function pvcRequiresWork(pvc: Pvc | undefined, dv: DataVolume): boolean {
  if (!pvc) return true;
  return anns(pvc)[Ann.populatedFor] !== dv.metadata.name;
}

/** upstream ImportReconciler.updateStatusPhase: the pod phase (copied onto the PVC) picks the DV phase. */
function importPhase(pvc: Pvc, status: DataVolumeStatus, dv: DataVolume): DvEvent | undefined {
  const a = anns(pvc);
  const podPhase = a[Ann.podPhase];
  if (podPhase !== 'Succeeded') {
    const update = Ann.importPod in a && pvc.status?.phase === 'Bound' && pvcRequiresWork(pvc, dv);
    if (!update) return undefined;
  }
  status.phase = Phase.ImportScheduled;
  const name = pvc.metadata?.name ?? '';
  switch (podPhase) {
    case undefined:
      return undefined;
    case 'Pending':
      status.phase = Phase.ImportScheduled;
      return { type: 'Normal', reason: Reason.ImportScheduled, message: Message.importScheduled(name) };
    case 'Running':
      status.phase = Phase.ImportInProgress;
      return { type: 'Normal', reason: Reason.ImportInProgress, message: Message.importInProgress(name) };
    case 'Failed':
      // Only a fatal error fails the DV; otherwise kubelet restarts the pod (restartPolicy OnFailure).
      if (a[Ann.fatalError] === 'true') status.phase = Phase.Failed;
      return { type: 'Warning', reason: Reason.ImportFailed, message: Message.importFailed(name) };
    case 'Succeeded':
      if (isMultiStageInProgress(a)) {
        // one checkpoint is in; the DataVolume controller points the PVC at the next one (checkpoints.ts)
        status.phase = Phase.Paused;
        return { type: 'Normal', reason: Reason.ImportPaused, message: Message.importPaused(name) };
      }
      status.phase = Phase.Succeeded;
      status.progress = ProgressDone;
      return { type: 'Normal', reason: Reason.ImportSucceeded, message: Message.importSucceeded(name) };
    default:
      return undefined;
  }
}

/** upstream UploadReconciler.updateStatusPhase: the upload pod's phase and readiness (copied onto the PVC). */
function uploadPhase(pvc: Pvc, status: DataVolumeStatus, dv: DataVolume): DvEvent | undefined {
  const a = anns(pvc);
  const podPhase = a[Ann.podPhase];
  if (podPhase !== 'Succeeded') {
    const update = Ann.uploadRequest in a && pvc.status?.phase === 'Bound' && pvcRequiresWork(pvc, dv);
    if (!update) return undefined;
  }
  status.phase = Phase.UploadScheduled;
  const name = pvc.metadata?.name ?? '';
  switch (podPhase) {
    case 'Pending':
      return { type: 'Normal', reason: Reason.UploadScheduled, message: Message.uploadScheduled(name) };
    case 'Running':
      if (a[Ann.podReady] !== 'true') return undefined;
      status.phase = Phase.UploadReady;
      return { type: 'Normal', reason: Reason.UploadReady, message: Message.uploadReady(name) };
    case 'Failed':
      return { type: 'Warning', reason: Reason.UploadFailed, message: Message.uploadFailed(name) };
    case 'Succeeded':
      status.phase = Phase.Succeeded;
      return { type: 'Normal', reason: Reason.UploadSucceeded, message: Message.uploadSucceeded(name) };
    default:
      return undefined;
  }
}

/** upstream PopulatorReconciler.updateStatusPhase: a bound claim that someone else's populator filled is done. */
function externalPhase(pvc: Pvc, status: DataVolumeStatus, supported: boolean): DvEvent | undefined {
  const name = pvc.metadata?.name ?? '';
  if (!supported)
    return {
      type: 'Warning',
      reason: Reason.NoCSIDriverForExternalPopulation,
      message: Message.noCSIDriverForExternalPopulation,
    };
  status.phase = Phase.Succeeded;
  const ref = pvc.spec?.dataSourceRef ?? pvc.spec?.dataSource;
  return {
    type: 'Normal',
    reason: Reason.ExternalPopulationSucceeded,
    message: Message.externalPopulationSucceeded(name, ref?.name ?? ''),
  };
}

/** Whether an externally populated claim names a PVC or a VolumeSnapshot (no populator: no CSIDriver needed). */
export function populatedFromVolume(pvc: Pvc): boolean {
  const kinds = [pvc.spec?.dataSource?.kind, pvc.spec?.dataSourceRef?.kind];
  return kinds.includes('PersistentVolumeClaim') || kinds.includes('VolumeSnapshot');
}

/**
 * Phase, claimName and restartCount (upstream updateStatus without the progress scrape and conditions).
 * Returns the event to emit if the phase changes.
 */
export function computePhase(
  dv: DataVolume,
  pvc: Pvc | undefined,
  ctx: PhaseContext,
): { status: DataVolumeStatus; event?: DvEvent } {
  const status: DataVolumeStatus = structuredClone(dv.status ?? {});
  let event: DvEvent | undefined;
  if (!pvc) {
    if ((status.phase ?? '') === Phase.Unset || Ann.prePopulated in (dv.metadata.annotations ?? {}))
      status.phase = Phase.Pending;
    return { status };
  }
  if (pvc.metadata?.deletionTimestamp) return { status };
  status.claimName = pvc.metadata?.name;
  const requiresWork = pvcRequiresWork(pvc, dv);
  const workPhase =
    ctx.work === 'upload'
      ? uploadPhase
      : ctx.work === 'external'
        ? (p: Pvc, s: DataVolumeStatus) => externalPhase(p, s, ctx.populationSupported ?? false)
        : importPhase;
  if (anns(pvc)[Ann.podPhase] === 'Succeeded' && requiresWork) {
    event = workPhase(pvc, status, dv);
  } else {
    switch (pvc.status?.phase) {
      case 'Pending':
        if (requiresWork)
          status.phase = ctx.waitForFirstConsumer ? Phase.WaitForFirstConsumer : Phase.Pending;
        else status.phase = Phase.Succeeded;
        break;
      case 'Bound':
        if ([Phase.Pending, Phase.WaitForFirstConsumer, Phase.Unknown].includes(status.phase as never))
          status.phase = Phase.PVCBound;
        if (requiresWork) event = workPhase(pvc, status, dv);
        else status.phase = Phase.Succeeded;
        break;
      case 'Lost':
        status.phase = Phase.Failed;
        event = {
          type: 'Warning',
          reason: Reason.ErrClaimLost,
          message: Message.claimLost(pvc.metadata?.name ?? ''),
        };
        break;
      default:
        if (pvc.status?.phase) status.phase = Phase.Unknown;
    }
  }
  const restarts = Number.parseInt(anns(pvc)[Ann.podRestarts] ?? '', 10);
  if (Number.isInteger(restarts) && restarts >= 0) status.restartCount = restarts;
  if (!status.progress) status.progress = 'N/A';
  return { status, ...(event ? { event } : {}) };
}

/** Upstream's DataVolume condition rule (kube/conditions.ts with the heartbeat), applied to `conds` in place. */
function updateCondition(
  conds: DataVolumeCondition[],
  type: DataVolumeCondition['type'],
  status: DataVolumeCondition['status'],
  message: string,
  reason: string,
  now: string,
): void {
  const next = setCondition(conds, { type, status, message, reason }, new Date(now), { heartbeat: true });
  if (next !== conds) conds.splice(0, conds.length, ...next);
}

/** Ready/Bound/Running as upstream's updateConditions computes them (Running and Ready are never both True). */
export function updateConditions(
  status: DataVolumeStatus,
  pvc: Pvc | undefined,
  reason: string,
  message: string,
  now: string,
): void {
  const conds = (status.conditions ??= []);
  const a = pvc ? anns(pvc) : {};
  const readyStatus =
    status.phase === Phase.Succeeded ? 'True' : status.phase === Phase.Unknown ? 'Unknown' : 'False';

  // Bound
  if (pvc) {
    const bc = a[Ann.boundCondition];
    const pvcCond =
      bc === undefined
        ? undefined
        : {
            status: bc.toLowerCase() === 'true' ? 'True' : bc.toLowerCase() === 'false' ? 'False' : 'Unknown',
            message: a[Ann.boundConditionMessage] ?? '',
            reason: a[Ann.boundConditionReason] ?? '',
          };
    const name = pvc.metadata?.name ?? '';
    switch (pvc.status?.phase) {
      case 'Bound':
        if (!pvcCond || pvcCond.status === 'True')
          updateCondition(conds, 'Bound', 'True', `PVC ${name} Bound`, Reason.Bound, now);
        else {
          updateCondition(conds, 'Bound', 'False', pvcCond.message, pvcCond.reason, now);
          updateCondition(conds, 'Ready', 'False', '', '', now);
        }
        break;
      case 'Pending':
        if (!pvcCond || pvcCond.status === 'True')
          updateCondition(conds, 'Bound', 'False', `PVC ${name} Pending`, Reason.Pending, now);
        else
          updateCondition(
            conds,
            'Bound',
            'False',
            `target PVC ${name} Pending and ${pvcCond.message}`,
            pvcCond.reason,
            now,
          );
        updateCondition(conds, 'Ready', 'False', '', '', now);
        break;
      case 'Lost':
        updateCondition(conds, 'Bound', 'False', 'Claim Lost', Reason.ClaimLost, now);
        updateCondition(conds, 'Ready', 'False', '', '', now);
        break;
      default:
        updateCondition(conds, 'Bound', 'False', '', '', now);
        updateCondition(conds, 'Ready', 'False', '', '', now);
    }
  } else {
    updateCondition(conds, 'Bound', 'False', message || 'No PVC found', reason || Reason.NotFound, now);
    updateCondition(conds, 'Ready', 'False', '', '', now);
  }

  updateCondition(conds, 'Ready', readyStatus, message, reason, now);

  // Running
  const rMsg = a[Ann.runningConditionMessage] ?? '';
  const rReason = a[Ann.runningConditionReason] ?? '';
  if (a[Ann.podSchedulable] === 'false') {
    updateCondition(conds, 'Running', 'False', 'Importer pod cannot be scheduled', Reason.Unschedulable, now);
  } else if (Ann.runningCondition in a) {
    switch ((a[Ann.runningCondition] ?? '').toLowerCase()) {
      case 'true':
        updateCondition(conds, 'Running', 'True', rMsg, rReason, now);
        updateCondition(conds, 'Ready', 'False', '', Reason.TransferRunning, now);
        break;
      case 'false':
        updateCondition(conds, 'Running', 'False', rMsg, rReason, now);
        break;
      default:
        updateCondition(conds, 'Running', 'Unknown', rMsg, rReason, now);
    }
  } else {
    updateCondition(conds, 'Running', 'False', rMsg, rReason, now);
  }
}

/** Events upstream emits when conditions change: Bound changes (Normal) and a new failure message (Warning). */
export function conditionEvents(current: DataVolumeCondition[], original: DataVolumeCondition[]): DvEvent[] {
  const find = (l: DataVolumeCondition[], t: string): DataVolumeCondition | undefined =>
    l.find((c) => c.type === t);
  const out: DvEvent[] = [];
  const bound = find(current, 'Bound');
  const oBound = find(original, 'Bound');
  if (
    bound &&
    (!oBound ||
      bound.status !== oBound.status ||
      bound.reason !== oBound.reason ||
      bound.message !== oBound.message)
  ) {
    out.push({ type: 'Normal', reason: bound.reason ?? '', message: bound.message ?? '' });
  }
  const ready = find(current, 'Ready');
  const running = find(current, 'Running');
  const oRunning = find(original, 'Running');
  if (
    ready &&
    bound &&
    running &&
    ready.status === 'False' &&
    running.status === 'False' &&
    bound.status === 'True'
  ) {
    const msg = running.message ?? '';
    if (msg !== '' && msg !== Message.scratchSpaceRequired && (!oRunning || oRunning.message !== msg)) {
      out.push({ type: 'Warning', reason: running.reason ?? '', message: msg });
    }
  }
  return out;
}
