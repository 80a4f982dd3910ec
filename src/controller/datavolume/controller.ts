// The DataVolume controller (import sources, legacy non-populator flow, and external population): renders and owns
// the target PVC, then maps the PVC's annotations and the importer's progress into DataVolume.status (upstream
// pkg/controller/datavolume).
// Everything it reads comes from the cache; nothing here polls: PVC changes (the import controller copies the pod's
// state onto the PVC) and progress changes (ProgressScraper) queue the DataVolume.
import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { isDeepStrictEqual } from 'node:util';
import { Ann, CDIConfigName, GroupVersion, Phase, Reason, Source } from '../shared/constants.ts';
import { checkpointArgs, isMultiStageInProgress, multiStageSucceeded } from '../shared/checkpoints.ts';
import { isAlreadyExists, isForbidden, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import { kubeTime, patchStatus } from '../shared/status.ts';
import { honorWaitForFirstConsumer, isWaitForFirstConsumer } from '../shared/storage.ts';
import type { CDIConfig, DataVolume, StorageClass, StorageProfile } from '../shared/types.ts';
import { formatProgress, type ProgressSource } from './progress.ts';
import { parseDataVolume } from '../../api/parse.ts';
import { ClaimNotValidError, newPvcForDataVolume, renderPvcSpec } from './render.ts';
import {
  checkSource,
  InvalidReason,
  RefusedPhase,
  SourceController,
  specEditNotice,
  type SourceCheck,
} from './sources.ts';
import { resolveSourceRef } from './sourceref.ts';
import {
  computePhase,
  conditionEvents,
  populatedFromVolume,
  updateConditions,
  type DvEvent,
} from './status.ts';

/** How often a claim a ResourceQuota refused is tried again (the quota may be raised, or claims freed). */
export const QuotaRetryMs = 30_000;

/**
 * A claim the API server refused for a ResourceQuota (upstream: ErrExceededQuota): the event that says so, with the
 * API server's words (they name the quota and the resource) and what to do.
 */
export function quotaRefusal(e: unknown): DvEvent | undefined {
  const msg = (e as Error | undefined)?.message ?? '';
  if (!isForbidden(e) || !msg.includes('exceeded quota')) return undefined;
  return {
    type: 'Warning',
    reason: Reason.ErrExceededQuota,
    message: `${msg}. A ResourceQuota of the namespace does not allow this claim: ask its administrator to raise it, or use a storage class it allows`,
  };
}

export interface DvDeps {
  kube: Kube;
  recorder: Recorder;
  log: Logger;
  now?: () => Date;
  /** The importer progress of running imports (ProgressScraper); without it progress stays as it is. */
  progress?: ProgressSource;
  /**
   * The sources this reconciler serves (SourceController): "import" (the default; it also says what is wrong with
   * refused DataVolumes) or "upload". Each leaves the others' DataVolumes alone.
   */
  serves?: 'import' | 'upload';
}

const involved = (dv: DataVolume): DataVolume => ({ ...dv, apiVersion: GroupVersion, kind: 'DataVolume' });

export async function reconcileDataVolume(d: DvDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  let dv = await d.kube.get<DataVolume>(Res.dataVolume, name, namespace);
  if (!dv || dv.metadata.deletionTimestamp) {
    d.progress?.untrack(key);
    return;
  }
  let pvc = await d.kube.get<Pvc>(Res.pvc, name, namespace);

  // sourceRef → the DataSource's pvc or snapshot, so that what follows sees a plain clone source.
  const ref = await resolveSourceRef(d.kube, dv);
  if (!ref.ok) {
    // Made from an earlier resolution: the DataSource moved on or went away since, which changes nothing here.
    // Said once, by the import reconciler (as for every refusal).
    if (pvc || dv.status?.phase === Phase.Succeeded || (d.serves ?? 'import') !== 'import') return;
    d.progress?.untrack(key);
    await writeStatus(d, dv, { ...(dv.status ?? {}), phase: dv.status?.phase || RefusedPhase }, undefined, {
      type: 'Warning',
      reason: ref.reason,
      message: ref.message,
    });
    return;
  }

  // The edge: what upstream's webhook would refuse, or a source this build does not serve, is said on the DV.
  let check: SourceCheck;
  try {
    parseDataVolume(dv);
    check = checkSource(ref.dv);
  } catch (e) {
    check = { ok: false, reason: InvalidReason.invalid, message: (e as Error).message };
  }
  // A spec edited after its PVC was made keeps that PVC (specEditNotice below), whatever the edit says.
  const edited = pvc !== undefined && specEditNotice(dv) !== undefined;
  const serves = d.serves ?? 'import';
  if (!check.ok && !edited) {
    if (serves !== 'import') return; // said once, by the import reconciler
    d.progress?.untrack(key);
    await writeStatus(d, dv, { ...(dv.status ?? {}), phase: dv.status?.phase || RefusedPhase }, undefined, {
      type: 'Warning',
      reason: check.reason,
      message: check.message,
    });
    return;
  }
  if (check.ok && SourceController[check.kind] !== serves) return; // another controller's DataVolume
  if (!check.ok && ((check.kind && SourceController[check.kind]) || 'import') !== serves) return;

  const [classes, profiles, config] = await Promise.all([
    d.kube.list<StorageClass>(Res.storageClass).then((l) => l.items),
    d.kube.list<StorageProfile>(Res.storageProfile).then((l) => l.items),
    d.kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName),
  ]);
  const world = {
    storageClasses: classes,
    storageProfile: (n: string): StorageProfile | undefined => profiles.find((p) => p.metadata.name === n),
    config,
  };

  let spec;
  try {
    spec = renderPvcSpec(dv, pvc, world);
  } catch (e) {
    if (!(e instanceof ClaimNotValidError)) throw e;
    await writeStatus(d, dv, { ...(dv.status ?? {}), phase: dv.status?.phase ?? Phase.Unset }, undefined, {
      type: 'Warning',
      reason: Reason.ErrClaimNotValid,
      message: e.message,
    });
    // Nothing to retry until the user or a StorageClass/StorageProfile change gives us something new.
    return;
  }

  // External population (upstream's external-population controller): the claim carries the dataSourceRef, someone
  // else's populator fills it, and the DataVolume is done once the claim is Bound.
  const external = check.ok && check.kind === 'external';
  // This controller implements the legacy flow; record that on the DV as upstream does for its decision.
  if (!external && dv.metadata.annotations?.[Ann.usePopulator] !== 'false') {
    dv = await d.kube.mergePatch<DataVolume>(Res.dataVolume, name, namespace, {
      metadata: { annotations: { [Ann.usePopulator]: 'false' } },
    });
  }

  if (pvc) {
    const uid = dv.metadata.uid;
    const owned = (pvc.metadata?.ownerReferences ?? []).some((o) => o.controller === true && o.uid === uid);
    if (!owned && pvc.metadata?.annotations?.[Ann.populatedFor] !== dv.metadata.name) {
      const message = `Resource "${name}" already exists and is not managed by DataVolume`;
      await writeStatus(d, dv, { ...(dv.status ?? {}), phase: dv.status?.phase ?? Phase.Unset }, undefined, {
        type: 'Warning',
        reason: 'ErrResourceExists',
        message,
      });
      return;
    }
  } else {
    const desired = newPvcForDataVolume(
      dv,
      spec,
      config?.status?.preallocation ?? false,
      external ? { [Ann.externalPopulation]: 'true' } : undefined,
    );
    try {
      pvc = await d.kube.create(Res.pvc, desired);
      d.log.info('created PVC for DataVolume', {
        namespace,
        name,
        size: String(spec.resources?.requests?.['storage'] ?? ''),
      });
    } catch (e) {
      if (!isAlreadyExists(e)) {
        const quota = quotaRefusal(e);
        if (!quota) throw e;
        // said on the DataVolume (Bound False with the quota's words), and tried again now and then
        await writeStatus(
          d,
          dv,
          { ...(dv.status ?? {}), phase: dv.status?.phase || Phase.Pending },
          undefined,
          quota,
        );
        return { requeueAfterMs: QuotaRetryMs };
      }
      pvc = await d.kube.get<Pvc>(Res.pvc, name, namespace);
      if (!pvc) throw e;
    }
  }

  pvc = await advanceCheckpoints(d, dv, pvc);
  dv = await copyVddkInfo(d, dv, pvc);

  const wffc =
    honorWaitForFirstConsumer(config) &&
    isWaitForFirstConsumer(classes, pvc.spec?.storageClassName) &&
    pvc.status?.phase === 'Pending';
  const populationSupported =
    external && pvc.status?.phase === 'Bound' && dv.status?.phase !== Phase.Succeeded
      ? await externalPopulationSupported(d, classes, pvc)
      : undefined;
  const { status, event } = computePhase(dv, pvc, {
    waitForFirstConsumer: wffc,
    work: external ? 'external' : serves,
    ...(populationSupported !== undefined ? { populationSupported } : {}),
  });

  // Progress is read while the importer runs (upstream: only then); the scrape itself happens elsewhere.
  if (status.phase === Phase.ImportInProgress && pvc.metadata?.annotations?.[Ann.podPhase] === 'Running') {
    d.progress?.track({ key, ownerUID: dv.metadata.uid ?? '', namespace: namespace ?? '', pvcName: name });
    const v = d.progress?.progress(key);
    if (v !== undefined) status.progress = formatProgress(v);
  } else d.progress?.untrack(key);
  await writeStatus(d, dv, status, pvc, event, specEditNotice(dv));
}

/**
 * A multi-stage import whose checkpoint pod Succeeded: mark it copied and point the PVC at the next checkpoint (the
 * import controller then starts its pod), or, after the final one, mark the import done. Written with the
 * resourceVersion it was computed from.
 */
async function advanceCheckpoints(d: DvDeps, dv: DataVolume, pvc: Pvc): Promise<Pvc> {
  const a = pvc.metadata?.annotations ?? {};
  if (a[Ann.podPhase] !== 'Succeeded' || !isMultiStageInProgress(a)) return pvc;
  const changes = multiStageSucceeded(a, checkpointArgs(dv));
  if (!changes) return pvc;
  d.log.info('multi-stage import: checkpoint done', {
    namespace: pvc.metadata?.namespace,
    pvc: pvc.metadata?.name,
    checkpoint: a[Ann.currentCheckpoint],
    next: changes[Ann.currentCheckpoint] ?? (changes[Ann.multiStageDone] ? '(done)' : ''),
  });
  return d.kube.mergePatch<Pvc>(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
    metadata: { annotations: changes, resourceVersion: pvc.metadata?.resourceVersion },
  });
}

/**
 * upstream checkPopulationRequirements: a populator's claim needs a CSI driver behind its class (the CSIDriver object
 * named after the provisioner); a claim made from a PVC or a snapshot does not. Read from the API server, once per
 * bound claim.
 */
async function externalPopulationSupported(d: DvDeps, classes: StorageClass[], pvc: Pvc): Promise<boolean> {
  if (populatedFromVolume(pvc)) return true;
  const name = pvc.spec?.storageClassName;
  const sc = classes.find((c) => c.metadata?.name === name);
  if (!sc?.provisioner) return false;
  return (await d.kube.get(Res.csiDriver, sc.provisioner)) !== undefined;
}

/** upstream setVddkAnnotations: the VDDK version and ESX host the importer reported, on the DataVolume too. */
async function copyVddkInfo(d: DvDeps, dv: DataVolume, pvc: Pvc): Promise<DataVolume> {
  const a = pvc.metadata?.annotations ?? {};
  if (a[Ann.source] !== Source.vddk) return dv;
  const want: Record<string, string> = {};
  for (const k of [Ann.vddkHost, Ann.vddkVersion])
    if (a[k] && dv.metadata.annotations?.[k] !== a[k]) want[k] = a[k];
  if (Object.keys(want).length === 0) return dv;
  return d.kube.mergePatch<DataVolume>(Res.dataVolume, dv.metadata.name ?? '', dv.metadata.namespace, {
    metadata: { annotations: want },
  });
}

/** Conditions, then a status write only if something changed, then the events upstream would emit for it. */
export async function writeStatus(
  d: DvDeps,
  dv: DataVolume,
  status: NonNullable<DataVolume['status']>,
  pvc: Pvc | undefined,
  event: DvEvent | undefined,
  /** With a PVC: something the user must know that does not stop the import (a refused spec edit), on Ready. */
  notice?: { reason: string; message: string },
): Promise<void> {
  const original = dv.status?.conditions ?? [];
  const next = structuredClone(status);
  const now = kubeTime(d.now?.() ?? new Date());
  // Without a PVC the event's reason/message explain the Bound condition (upstream updateDataVolumeStatusPhaseWithEvent).
  const why = pvc
    ? (notice ?? { reason: '', message: '' })
    : { reason: event?.reason ?? '', message: event?.message ?? '' };
  updateConditions(next, pvc, why.reason, why.message, now);
  if (isDeepStrictEqual(next, dv.status ?? {})) return;
  // Conditional on the resourceVersion the status was computed from: a newer status (another writer, a newer
  // leader) is never overwritten with one computed from an older view; the write is refused and retried.
  await patchStatus(d.kube, Res.dataVolume, dv, next);
  const inv = involved(dv);
  if (event && (dv.status?.phase ?? '') !== next.phase)
    await d.recorder.record(inv, event.type, event.reason, event.message);
  if (event && !pvc && event.type === 'Warning' && (dv.status?.phase ?? '') === next.phase) {
    // A rendering error leaves the phase unchanged; say it once per new message.
    const prevMsg = original.find((c) => c.type === 'Bound')?.message;
    if (prevMsg !== event.message) await d.recorder.record(inv, event.type, event.reason, event.message);
  }
  for (const ev of conditionEvents(next.conditions ?? [], original))
    await d.recorder.record(inv, ev.type, ev.reason, ev.message);
  if (notice && original.find((c) => c.type === 'Ready')?.message !== notice.message)
    await d.recorder.record(inv, 'Warning', notice.reason, notice.message);
}
