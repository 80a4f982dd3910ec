// How a worker pod's state becomes PVC annotations (the status protocol the DV controller reads).
// Pure functions mirroring upstream's updatePvcFromPod / setAnnotationsFromPodWithPrefix / parseTerminationMessage.
import type { Pod as PodObj } from '../../kube/index.ts';
type ContainerStatus = NonNullable<NonNullable<PodObj['status']>['containerStatuses']>[number];
type ContainerTerminated = NonNullable<NonNullable<ContainerStatus['state']>['terminated']>;
import { parseTerminationJson, type TerminationMessage } from '../../api/termination.ts';
import { Ann, Message, Pod, Reason } from '../shared/constants.ts';

export type { TerminationMessage };

/**
 * Parses the termination message of the first container when it exited with code 0 (the importer writes JSON then;
 * on a non-zero exit it writes a plain error line, read as text by annotationsFromPod).
 * Returns undefined when there is nothing to parse; throws a one-line error when the JSON is malformed.
 */
export function parseTerminationMessage(pod: PodObj): TerminationMessage | undefined {
  const t = pod.status?.containerStatuses?.[0]?.state?.terminated;
  if (!t || t.exitCode !== 0) return undefined;
  try {
    return parseTerminationJson(t.message ?? '');
  } catch (e) {
    throw new Error(`termination message of pod ${pod.metadata?.name} is ${(e as Error).message}`);
  }
}

/** upstream simplifyKnownMessage: out-of-space errors all read as one clear sentence. */
export function simplifyKnownMessage(msg: string): string {
  if (
    msg.includes('is larger than the reported available') ||
    msg.includes('no space left on device') ||
    msg.includes('file largest block is bigger than maxblock') ||
    msg.includes('disk quota exceeded')
  ) {
    return 'DataVolume too small to contain image';
  }
  return msg;
}

export function isOOMKilled(s: ContainerStatus | undefined): boolean {
  return s?.state?.terminated?.reason === Pod.oomKilled || s?.lastState?.terminated?.reason === Pod.oomKilled;
}

/**
 * Copies restarts and the Running condition from the pod into `anno` (upstream setAnnotationsFromPodWithPrefix).
 * One improvement over upstream: while the container waits in CrashLoopBackOff, the reason and message come from its
 * last termination, so a retrying import keeps showing why it failed instead of the previous reconcile's text.
 */
export function setAnnotationsFromPod(
  anno: Record<string, string>,
  pod: PodObj,
  termMsg: TerminationMessage | undefined,
): void {
  const statuses = pod.status?.containerStatuses;
  if (!statuses || statuses.length === 0) return;
  const first = statuses[0] as ContainerStatus;
  const prefix = Ann.runningCondition;
  const annRestarts = Number.parseInt(anno[Ann.podRestarts] ?? '0', 10) || 0;
  if (first.restartCount >= annRestarts) anno[Ann.podRestarts] = String(first.restartCount);

  if (statuses.every((s) => s.state?.running)) {
    anno[prefix] = 'true';
    anno[`${prefix}.message`] = '';
    anno[`${prefix}.reason`] = Message.podRunning;
    return;
  }
  anno[prefix] = 'false';

  for (const s of statuses) {
    const w = s.state?.waiting;
    if (
      s.started === false &&
      w &&
      ['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName'].includes(w.reason ?? '')
    ) {
      anno[`${prefix}.message`] = `${Message.imagePullFailure}: ${s.image}`;
      anno[`${prefix}.reason`] = Reason.ImagePullFailed;
      return;
    }
  }

  const state = first.state;
  if (state?.waiting && state.waiting.reason !== 'CrashLoopBackOff') {
    anno[`${prefix}.message`] = simplifyKnownMessage(state.waiting.message ?? '');
    anno[`${prefix}.reason`] = state.waiting.reason ?? '';
    return;
  }
  const terminated: ContainerTerminated | undefined =
    state?.terminated ?? (state?.waiting ? first.lastState?.terminated : undefined);
  if (!terminated) return;
  if (termMsg && state?.terminated) {
    if (termMsg.scratchSpaceRequired) {
      anno[Ann.requiresScratch] = 'true';
      anno[`${prefix}.message`] = Message.scratchSpaceRequired;
      anno[`${prefix}.reason`] = Reason.ScratchSpaceRequired;
      return;
    }
    if (termMsg.message !== undefined) anno[`${prefix}.message`] = termMsg.message;
    if (termMsg.vddkInfo?.Host) anno[Ann.vddkHost] = termMsg.vddkInfo.Host;
    if (termMsg.vddkInfo?.Version) anno[Ann.vddkVersion] = termMsg.vddkInfo.Version;
    if (termMsg.preallocationApplied) anno[Ann.preallocationApplied] = 'true';
  } else {
    const text = terminated.message ?? '';
    anno[`${prefix}.message`] = simplifyKnownMessage(text.trim());
    if (text.includes('Preallocation applied')) anno[Ann.preallocationApplied] = 'true';
    if (text.includes(Message.imagePullFailure)) {
      anno[`${prefix}.reason`] = Reason.ImagePullFailed;
      return;
    }
  }
  anno[`${prefix}.reason`] = terminated.reason ?? '';
}

export interface PodUpdate {
  annotations: Record<string, string>;
  labels: Record<string, string>;
  events: { type: 'Normal' | 'Warning'; reason: string; message: string }[];
  /** The pod must be recreated (scratch space or direct I/O needed); its phase is not copied. */
  podModificationsNeeded: boolean;
  fatal: boolean;
  complete: boolean;
  /** What a successful import reported for the user (termination message `warnings`). */
  warnings: string[];
}

/**
 * The PVC annotations and labels after looking at the pod (upstream updatePvcFromPod, minus the API calls).
 * Fatal: a checksum mismatch (upstream's only one), and a request the importer refused for good (termination message
 * `fatalReason`, ours), both reported by the importer with exit code 0 so that kubelet does not retry them.
 * Everything else that fails (unreachable URL, image too large, bad format) exits non-zero and kubelet retries it.
 */
export function podToPvcUpdate(
  pvcAnnotations: Record<string, string>,
  pvcLabels: Record<string, string>,
  pod: PodObj,
): PodUpdate {
  const anno = { ...pvcAnnotations };
  const events: PodUpdate['events'] = [];
  let termMsg: TerminationMessage | undefined;
  try {
    termMsg = parseTerminationMessage(pod);
  } catch {
    termMsg = undefined; // as upstream: an unparsable message is read as plain text below
  }
  setAnnotationsFromPod(anno, pod, termMsg);

  if (termMsg?.message?.includes('checksum mismatch')) {
    anno[Ann.podPhase] = 'Failed';
    anno[Ann.fatalError] = 'true';
    anno[Ann.runningCondition] = 'false';
    if (!anno[Ann.runningConditionMessage])
      anno[Ann.runningConditionMessage] = simplifyKnownMessage(termMsg.message);
    anno[Ann.runningConditionReason] = Reason.ChecksumError;
    events.push({
      type: 'Warning',
      reason: Reason.ErrImportFailed,
      message: simplifyKnownMessage(termMsg.message),
    });
  }

  // a request the importer refused for good (a checksum for imageio or vddk): fatal as a mismatch, with its reason
  if (termMsg?.fatalReason) {
    const message = termMsg.message ?? termMsg.fatalReason;
    anno[Ann.podPhase] = 'Failed';
    anno[Ann.fatalError] = 'true';
    anno[Ann.runningCondition] = 'false';
    anno[Ann.runningConditionMessage] = message;
    anno[Ann.runningConditionReason] = termMsg.fatalReason;
    events.push({ type: 'Warning', reason: Reason.ErrImportFailed, message });
  }

  let podModificationsNeeded = termMsg?.scratchSpaceRequired === true;
  const status = pod.status?.containerStatuses?.[0];
  const container = pod.spec?.containers[0];
  const directIo = (container?.env ?? []).some(
    (e) => e.name === 'CACHE_MODE' && e.value === Pod.cacheModeTryNone,
  );
  if (status) {
    if (isOOMKilled(status) && directIo) {
      // The second OOM, already with direct I/O (upstream's remedy for page-cache growth): more retries would only
      // loop. Fail, and say which limit to raise.
      const limit = String(container?.resources?.limits?.['memory'] ?? 'none');
      const message = `the importer ran out of memory again with direct I/O (CACHE_MODE=${Pod.cacheModeTryNone}): raise its memory limit (now ${limit}) in CDIConfig spec.podResourceRequirements.limits.memory and recreate the DataVolume`;
      anno[Ann.fatalError] = 'true';
      anno[Ann.podPhase] = 'Failed';
      anno[Ann.runningCondition] = 'false';
      anno[Ann.runningConditionMessage] = message;
      anno[Ann.runningConditionReason] = Pod.oomKilled;
      events.push({ type: 'Warning', reason: Reason.ErrImportFailed, message });
    } else if (isOOMKilled(status)) {
      podModificationsNeeded = true;
      anno[Ann.requiresDirectIo] = 'true';
    }
    const t = status.state?.terminated;
    if (t && t.exitCode > 0)
      events.push({ type: 'Warning', reason: Reason.ErrImportFailed, message: t.message ?? '' });
  }

  anno[Ann.importPod] = pod.metadata?.name ?? '';
  // multi-stage: which pod transferred the current checkpoint (the DV controller marks it copied by this uid)
  if (anno[Ann.currentCheckpoint]) anno[Ann.currentPodId] = pod.metadata?.uid ?? '';
  if (!podModificationsNeeded && anno[Ann.fatalError] !== 'true')
    anno[Ann.podPhase] = pod.status?.phase ?? '';

  anno[Ann.podSchedulable] = 'true';
  if (anno[Ann.podPhase] === 'Pending') {
    for (const c of pod.status?.conditions ?? []) {
      if (c.type === 'PodScheduled' && c.reason === 'Unschedulable') {
        anno[Ann.podSchedulable] = 'false';
        break;
      }
    }
  }
  // the pod runs with direct I/O: the request is served
  if (directIo && anno[Ann.requiresDirectIo] === 'true') anno[Ann.requiresDirectIo] = 'false';

  const labels: Record<string, string> = { ...pvcLabels, app: 'containerized-data-importer' };
  const complete = anno[Ann.podPhase] === 'Succeeded';
  if (complete && termMsg?.labels) {
    for (const [k, v] of Object.entries(termMsg.labels)) if (!(k in labels)) labels[k] = v;
  }
  return {
    annotations: anno,
    labels,
    events,
    podModificationsNeeded,
    fatal: anno[Ann.fatalError] === 'true',
    complete,
    warnings: complete ? (termMsg?.warnings ?? []) : [],
  };
}
