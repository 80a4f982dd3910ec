// Multi-stage (warm) imports, upstream pkg/controller/common/checkpoint-util.go: a DataVolume with `checkpoints`
// imports one checkpoint per importer pod. The PVC's annotations are the only memory: storage.checkpoint.current /
// .previous / .final name the checkpoint the next pod transfers, storage.checkpoint.pod.id the pod that ran it
// (the import controller writes it), storage.checkpoint.copied.<checkpoint> = that pod's uid once it succeeded, and
// storage.checkpoint.done when the final one is in. Between checkpoints the DataVolume is Paused. Pure functions:
// the DataVolume controller writes what they return.
import { Ann as ApiAnn } from '../../api/constants.ts';
import type { DataVolume } from './types.ts';

export const CheckpointAnn = {
  current: ApiAnn.CurrentCheckpoint,
  previous: ApiAnn.PreviousCheckpoint,
  final: ApiAnn.FinalCheckpoint,
  copied: ApiAnn.CheckpointsCopied,
  done: ApiAnn.MultiStageImportDone,
  podId: ApiAnn.CurrentPodID,
} as const;

export interface CheckpointArgs {
  checkpoints: { current: string; previous: string }[];
  isFinal: boolean;
}

export interface CheckpointRecord {
  current: string;
  previous: string;
  isFinal: boolean;
}

type Annotations = Record<string, string>;

export function checkpointArgs(dv: DataVolume): CheckpointArgs {
  return {
    checkpoints: (dv.spec.checkpoints ?? []).map((c) => ({
      current: c.current ?? '',
      previous: c.previous ?? '',
    })),
    isFinal: dv.spec.finalCheckpoint === true,
  };
}

const copiedKey = (checkpoint: string): string => `${CheckpointAnn.copied}.${checkpoint}`;

/** upstream IsMultiStageImportInProgress */
export function isMultiStageInProgress(a: Annotations): boolean {
  return CheckpointAnn.current in a && !(CheckpointAnn.done in a);
}

/** upstream GetNextCheckpoint: the first checkpoint of the spec not copied yet. */
export function nextCheckpoint(a: Annotations, args: CheckpointArgs): CheckpointRecord | undefined {
  const n = args.checkpoints.length;
  if (n === 0) return undefined;
  if (!a[CheckpointAnn.current]) {
    const first = args.checkpoints[0]!;
    return { current: first.current, previous: first.previous, isFinal: n === 1 && args.isFinal };
  }
  for (const [i, c] of args.checkpoints.entries()) {
    if (c.current === '') continue;
    if (!(copiedKey(c.current) in a))
      return { current: c.current, previous: c.previous, isFinal: n === i + 1 && args.isFinal };
  }
  return undefined;
}

/** The annotations a new PVC of a multi-stage DataVolume starts with (upstream updateAnnotations). */
export function initialCheckpointAnnotations(dv: DataVolume): Annotations {
  if (!isMultiStage(dv)) return {};
  const c = nextCheckpoint({}, checkpointArgs(dv));
  if (!c) return {};
  return {
    [CheckpointAnn.current]: c.current,
    [CheckpointAnn.previous]: c.previous,
    [CheckpointAnn.final]: String(c.isFinal),
  };
}

/**
 * upstream UpdatesMultistageImportSucceeded, once the checkpoint's pod Succeeded: mark the checkpoint copied (by
 * the pod that did it, so a reconcile at a bad moment never skips one) and point at the next one, resetting the pod
 * phase so the import controller starts its pod; after the final one, clean up and mark the import done. Returns
 * the annotation changes (null removes), or undefined when there is nothing to change.
 */
export function multiStageSucceeded(
  a: Annotations,
  args: CheckpointArgs,
): Record<string, string | null> | undefined {
  const current = a[CheckpointAnn.current];
  if (current === undefined) return undefined;
  const out: Record<string, string | null> = {};
  if (a[CheckpointAnn.final] === 'true' && copiedKey(current) in a) {
    for (const k of Object.keys(a)) if (k.startsWith(`${CheckpointAnn.copied}.`)) out[k] = null;
    out[CheckpointAnn.current] = null;
    out[CheckpointAnn.previous] = null;
    out[CheckpointAnn.final] = null;
    out[CheckpointAnn.podId] = null;
    out[CheckpointAnn.done] = 'true';
    return out;
  }
  const podId = a[CheckpointAnn.podId] ?? '';
  const next: Annotations = { ...a };
  const usedBefore = Object.entries(a).some(
    ([k, v]) => k.startsWith(`${CheckpointAnn.copied}.`) && v === podId,
  );
  if (!usedBefore && current !== '') next[copiedKey(current)] = podId;
  const c = nextCheckpoint(next, args);
  if (c) {
    next[CheckpointAnn.current] = c.current;
    next[CheckpointAnn.previous] = c.previous;
    next[CheckpointAnn.final] = String(c.isFinal);
    if (next[ApiAnn.PodPhase] === 'Succeeded') {
      next[ApiAnn.PodPhase] = 'Unknown';
      delete next[ApiAnn.ImportPod];
    }
  }
  for (const [k, v] of Object.entries(next)) if (a[k] !== v) out[k] = v;
  for (const k of Object.keys(a)) if (!(k in next)) out[k] = null;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A multi-stage DataVolume: checkpoints on an imageio or vddk source (upstream's webhook lets those be edited). */
export function isMultiStage(dv: DataVolume): boolean {
  return (
    (dv.spec.checkpoints?.length ?? 0) > 0 &&
    (dv.spec.source?.imageio !== undefined || dv.spec.source?.vddk !== undefined)
  );
}
