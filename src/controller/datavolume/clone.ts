// The DataVolume clone controller (upstream pkg/controller/datavolume/pvc-clone-controller.go and
// snapshot-clone-controller.go, with the planner's strategies, legacy non-populator flow): a DataVolume with
// `source.pvc` or `source.snapshot` gets its target PVC by one of three strategies (../clone/strategy.ts):
//
//   copy       the target PVC carries `k8s.io/CloneRequest: <ns>/<name>`; the host-assisted clone controller
//              (../clone/host.ts) runs the source and target pods; its PVC annotations become this DV's phase.
//   snapshot   VolumeSnapshot tmp-snapshot-<dv uid> of the source → a claim restored from it → the snapshot is deleted.
//   csi-clone  a claim with the source PVC as dataSource.
//
// A smart (snapshot, csi-clone) clone within one namespace restores straight into the target PVC. From another
// namespace the claim is made there (tmp-pvc-<dv uid>, beside the source, where the storage can see the source) and
// its volume is then moved to the target (upstream's rebind): the PV is set to Retain, pre-bound to the target PVC
// (created with spec.volumeName), the temporary claim deleted and the reclaim policy restored. The finalizer
// cdi.kubevirt.io/cloneTemporaries on the DataVolume keeps it until the temporaries in the other namespace are gone,
// on success and on deletion alike.
//
// A snapshot that cannot be restored into the target (another driver, volume mode, no expansion) is copied: restored
// beside itself into <dv uid>-host-assisted-source-pvc (upstream's legacy snapshot-clone-controller), the CloneRequest
// source of the target, which is made at the same time and copied into once that claim is bound; the same finalizer
// deletes it once the copy is done or the DataVolume deleted, and it is made again if it goes before. The events of
// the claims made beside the source (that one, a smart clone's tmp-pvc-<dv uid>) are copied to the target
// (../shared/copyevents.ts).
//
// The strategy is decided once and recorded on the DataVolume (cdi.kubevirt.io/cloneType, and
// cdi.kubevirt.io/cloneFallbackReason with a Warning event when copy replaces what the profile asked for).
import {
  controllerOf,
  type KubeObject,
  type PersistentVolumeClaim as Pvc,
  type PersistentVolume as Pv,
  type Pod as PodObj,
} from '../../kube/index.ts';
import type { V1PersistentVolumeClaimSpec } from '@kubernetes/client-node';
import { parseDataVolume } from '../../api/parse.ts';
import { Ann as ApiAnn, LabelValue } from '../../api/constants.ts';
import { extendCloneToken, verifyCloneGrant, type CloneSource } from '../../token/clone.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import {
  Ann,
  CDIConfigName,
  Finalizer,
  GroupVersion,
  Label,
  ManagedLabels,
  Phase,
  ProgressDone,
  Reason,
} from '../shared/constants.ts';
import type { Recorder } from '../shared/events.ts';
import { copyEvents } from '../shared/copyevents.ts';
import { sourcePodName } from '../clone/host.ts';
import { podsUsingClaim } from '../shared/claims.ts';
import { parseOverhead, parseQuantity, usableSpace } from '../shared/quantity.ts';
import { filesystemOverheadFor } from '../shared/storage.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type {
  CDIConfig,
  DataVolume,
  StorageClass,
  StorageProfile,
  VolumeSnapshot,
  VolumeSnapshotContent,
} from '../shared/types.ts';
import {
  chooseStrategy,
  CloneStrategy,
  planTempSourceClaim,
  tempSourceClaimName,
  type StrategyChoice,
} from '../clone/strategy.ts';
import { snapshotCutPending, SnapshotCutPollMs } from '../clone/snapshotcut.ts';
import type { TokenSource } from '../clone/tokens.ts';
import { QuotaRetryMs, quotaRefusal, writeStatus } from './controller.ts';
import { resolveSourceRef } from './sourceref.ts';
import { ClaimNotValidError, dvOwnerRef, newPvcForDataVolume, renderPvcSpec } from './render.ts';
import { checkSource, SourceController } from './sources.ts';
import type { DvEvent } from './status.ts';
import { formatProgress, type ProgressSource } from './progress.ts';

export interface CloneDvDeps {
  kube: Kube;
  /** The source pod's progress while a host-assisted clone runs (ProgressScraper). */
  progress?: ProgressSource;
  recorder: Recorder;
  log: Logger;
  tokens: TokenSource;
  now?: () => Date;
}

/** The PV's reclaim policy before a rebind set it to Retain (ours; removed when restored). */
const AnnRebindReclaimPolicy = 'cdi.kubevirt.io/storage.rebind.reclaimPolicy';

export const tmpSnapshotName = (dv: DataVolume): string => `tmp-snapshot-${dv.metadata.uid ?? ''}`;
export const tmpClaimName = (dv: DataVolume): string => `tmp-pvc-${dv.metadata.uid ?? ''}`;

const involved = (dv: DataVolume): DataVolume => ({ ...dv, apiVersion: GroupVersion, kind: 'DataVolume' });
const anns = (o: { metadata?: { annotations?: Record<string, string> } }): Record<string, string> =>
  o.metadata?.annotations ?? {};

function cloneSourceOf(dv: DataVolume): CloneSource | undefined {
  const s = dv.spec.source;
  const ns = dv.metadata.namespace ?? '';
  if (s?.pvc) return { kind: 'pvc', namespace: s.pvc.namespace || ns, name: s.pvc.name };
  if (s?.snapshot) return { kind: 'snapshot', namespace: s.snapshot.namespace || ns, name: s.snapshot.name };
  return undefined;
}

export async function reconcileCloneDataVolume(d: CloneDvDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const stored = await d.kube.get<DataVolume>(Res.dataVolume, name, namespace);
  if (!stored) return;
  // sourceRef → the DataSource's pvc or snapshot (the import reconciler says why when it cannot be resolved); only
  // metadata and status are written below, so the resolved source never reaches the stored spec
  const ref = await resolveSourceRef(d.kube, stored);
  if (!ref.ok) return;
  const dv = ref.dv;
  let served = false;
  try {
    parseDataVolume(dv);
    const c = checkSource(dv);
    served = c.ok && SourceController[c.kind] === 'clone';
  } catch {
    served = false; // the import DataVolume controller says what is wrong with it
  }
  const source = cloneSourceOf(dv);
  if (!served || !source) return;
  if (dv.metadata.deletionTimestamp) {
    if (await snapshotBeingCut(d, dv, source)) return { requeueAfterMs: SnapshotCutPollMs };
    await removeTemporaries(d, dv, source);
    return;
  }
  const pvc = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  if (pvc && !controlledBy(pvc, dv)) {
    return status(d, dv, undefined, Phase.Pending, {
      type: 'Warning',
      reason: Reason.ErrResourceExists,
      message: `Resource "${name}" already exists and is not managed by DataVolume`,
    });
  }

  if (source.namespace !== namespace && !(await granted(d, dv, source))) return;

  const strategy = anns(dv)[Ann.cloneType];
  if (pvc && strategy === CloneStrategy.Copy) return copyStatus(d, dv, pvc, source);
  if (pvc && (strategy === CloneStrategy.Snapshot || strategy === CloneStrategy.CsiClone)) {
    if (pvc.status?.phase === 'Bound') {
      if (!(await removeTemporaries(d, dv, source))) return;
      return status(d, dv, pvc, Phase.Succeeded, {
        type: 'Normal',
        reason: Reason.CloneSucceeded,
        message: `Successfully cloned from ${source.namespace}/${source.name} into ${namespace}/${name}`,
      });
    }
    if (source.namespace !== namespace) return rebind(d, dv, source, pvc);
    return status(d, dv, pvc, progressPhase(strategy, source), undefined);
  }
  // from another namespace: once the claim beside the source exists, its volume is what the target gets
  if (
    !pvc &&
    source.namespace !== namespace &&
    (strategy === CloneStrategy.Snapshot || strategy === CloneStrategy.CsiClone) &&
    (await d.kube.get<Pvc>(Res.pvc, tmpClaimName(dv), source.namespace))
  )
    return rebind(d, dv, source, undefined);

  // Nothing made yet: find the source, size the target, pick the strategy.
  const [classes, profiles, config] = await Promise.all([
    d.kube.list<StorageClass>(Res.storageClass).then((l) => l.items),
    d.kube.list<StorageProfile>(Res.storageProfile).then((l) => l.items),
    d.kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName),
  ]);
  const src = await readSource(d.kube, source);
  if (!src) {
    return status(d, dv, undefined, Phase.Pending, {
      type: 'Warning',
      reason: Reason.CloneWithoutSource,
      message: `The source ${source.kind} ${source.name} doesn't exist (in namespace ${source.namespace}); the clone starts once it does`,
    });
  }
  const waiting = sourceNotReady(src);
  if (waiting)
    return status(d, dv, undefined, Phase.CloneScheduled, {
      type: 'Normal',
      reason: Reason.CloneScheduled,
      message: waiting,
    });

  let spec: V1PersistentVolumeClaimSpec;
  try {
    spec = renderPvcSpec(dv, undefined, {
      storageClasses: classes,
      storageProfile: (n) => profiles.find((p) => p.metadata.name === n),
      config,
    });
  } catch (e) {
    if (!(e instanceof ClaimNotValidError)) throw e;
    return status(d, dv, undefined, dv.status?.phase ?? Phase.Pending, {
      type: 'Warning',
      reason: Reason.ErrClaimNotValid,
      message: e.message,
    });
  }
  const sourceSize = src.size;
  if (spec.resources?.requests?.['storage'] === undefined) {
    if (sourceSize === undefined)
      return status(d, dv, undefined, Phase.Pending, {
        type: 'Warning',
        reason: Reason.ErrClaimNotValid,
        message: `the size of ${source.kind} ${source.namespace}/${source.name} is not known yet: set spec.storage.resources.requests.storage`,
      });
    spec.resources = {
      ...(spec.resources ?? {}),
      requests: { ...(spec.resources?.requests ?? {}), storage: sourceSize.toString() },
    };
  }
  if (!spec.storageClassName) {
    const def = classes.find((c) => c.metadata.annotations?.[Ann.defaultStorageClass] === 'true');
    if (def?.metadata.name) spec.storageClassName = def.metadata.name;
  }
  const request = parseQuantity(String(spec.resources?.requests?.['storage']));
  if (
    sourceSize !== undefined &&
    anns(dv)[Ann.permissiveClone] === undefined &&
    tooSmall(dv, src, sourceSize, spec, request, config, classes)
  ) {
    return status(d, dv, undefined, Phase.Pending, {
      type: 'Warning',
      reason: Reason.ErrIncompatiblePVC,
      message: `target resources requests storage size (${request}) is smaller than the source (${sourceSize}): request at least the source's size`,
    });
  }

  let choice: StrategyChoice;
  if (
    strategy === CloneStrategy.Copy ||
    strategy === CloneStrategy.Snapshot ||
    strategy === CloneStrategy.CsiClone
  ) {
    choice = { strategy };
  } else {
    const cdi = (await d.kube.list<KubeObject & { spec?: { cloneStrategyOverride?: string } }>(Res.cdi))
      .items[0];
    choice = chooseStrategy({
      override: cdi?.spec?.cloneStrategyOverride,
      profile: profiles.find((p) => p.metadata.name === spec.storageClassName),
      classes,
      source:
        src.kind === 'pvc'
          ? {
              kind: 'pvc',
              ...(src.pvc.spec?.storageClassName ? { storageClassName: src.pvc.spec.storageClassName } : {}),
              volumeMode: src.pvc.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem',
              capacity: src.size ?? 0n,
            }
          : {
              kind: 'snapshot',
              ...(src.content?.spec?.driver ? { driver: src.content.spec.driver } : {}),
              ...(src.content?.spec?.sourceVolumeMode
                ? { volumeMode: src.content.spec.sourceVolumeMode }
                : {}),
              ...(src.size !== undefined ? { restoreSize: src.size } : {}),
            },
      target: {
        storageClassName: spec.storageClassName ?? '',
        volumeMode: spec.volumeMode === 'Block' ? 'Block' : 'Filesystem',
        request,
      },
    });
    await d.kube.mergePatch(Res.dataVolume, name, namespace, {
      metadata: {
        resourceVersion: dv.metadata.resourceVersion,
        annotations: {
          [Ann.cloneType]: choice.strategy,
          [Ann.usePopulator]: 'false',
          ...(choice.fallback ? { [Ann.cloneFallbackReason]: choice.fallback.message } : {}),
        },
        // temporaries beside the source: a smart clone's from another namespace, a snapshot copy's restored claim
        ...((source.namespace !== namespace && choice.strategy !== CloneStrategy.Copy) ||
        (source.kind === 'snapshot' && choice.strategy === CloneStrategy.Copy)
          ? { finalizers: [...(dv.metadata.finalizers ?? []), Finalizer.cloneTemporaries] }
          : {}),
      },
    });
    if (choice.fallback)
      await d.recorder.record(involved(dv), 'Warning', choice.fallback.reason, choice.fallback.message);
    return; // the DataVolume's change queues it again
  }

  if (choice.strategy !== CloneStrategy.Copy) {
    const users = src.kind === 'pvc' ? await podsUsingClaim(d.kube, src.pvc, () => false) : [];
    if (users.length > 0) {
      return status(d, dv, undefined, Phase.CloneScheduled, {
        type: 'Warning',
        reason: Reason.CloneSourceInUse,
        message: `pod ${users.map((u) => `${u.metadata?.namespace}/${u.metadata?.name}`).join(', ')} using PersistentVolumeClaim ${source.name}`,
      });
    }
  }

  const desired = newPvcForDataVolume(dv, spec, config?.status?.preallocation ?? false, {});
  const a = desired.metadata!.annotations!;
  if (choice.strategy === CloneStrategy.Copy) {
    let from = source.name;
    if (src.kind === 'snapshot') {
      // the snapshot is restored beside itself first, and the target made at once (upstream's legacy order), so that
      // the restored claim's events have a claim to go to; its copy waits for that claim to be bound
      const tmp = await ensureTempSourceClaim(d, dv, source, src, classes, spec, request);
      if (!tmp) return { requeueAfterMs: QuotaRetryMs };
      from = tempSourceClaimName(dv.metadata.uid ?? '');
    }
    a[Ann.cloneRequest] = `${source.namespace}/${from}`;
    const made = await createTarget(d, dv, desired);
    if (!made) return { requeueAfterMs: QuotaRetryMs };
    return copyStatus(d, dv, made, source);
  }

  // smart: into the target here, or into a temporary claim beside the source
  let snapshotName = source.kind === 'snapshot' ? source.name : undefined;
  if (choice.strategy === CloneStrategy.Snapshot && source.kind === 'pvc') {
    const snap = await ensureSnapshot(
      d,
      dv,
      source,
      profiles.find((p) => p.metadata.name === spec.storageClassName),
    );
    if (!snap.status?.readyToUse) {
      const err = snap.status?.error?.message;
      return status(
        d,
        dv,
        undefined,
        Phase.SnapshotForSmartCloneInProgress,
        err
          ? {
              type: 'Warning',
              reason: Reason.CloneFailed,
              message: `snapshot ${source.namespace}/${tmpSnapshotName(dv)}: ${err}`,
            }
          : undefined,
      );
    }
    snapshotName = snap.metadata?.name;
  }
  const dataSource = snapshotName
    ? { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: snapshotName }
    : { apiGroup: '', kind: 'PersistentVolumeClaim', name: source.name };
  if (source.namespace === namespace) {
    desired.spec = { ...desired.spec, dataSource };
    const made = await createTarget(d, dv, desired);
    if (!made) return { requeueAfterMs: QuotaRetryMs };
    return status(d, dv, made, progressPhase(choice.strategy, source), undefined);
  }
  const tmp: Pvc = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: tmpClaimName(dv),
      namespace: source.namespace,
      labels: { [Label.app]: Label.appValue },
      annotations: { [Ann.ownerRef]: key, [Ann.createdForDataVolume]: dv.metadata.uid ?? '' },
    },
    spec: { ...spec, dataSource },
  };
  await createOrGet(d.kube, tmp);
  // the target is made (pre-bound to the volume) once the temporary claim is bound: see rebind()
  return status(d, dv, undefined, progressPhase(choice.strategy, source), undefined);
}

/**
 * A host-assisted copy's target exists. For a snapshot's copy, the claim the snapshot is restored into comes first:
 * while the copy is not done it is made again if it went (deleted by hand), its events are copied to the target
 * (a provisioning failure says there why the DataVolume stays in CloneFromSnapshotSourceInProgress), and the
 * DataVolume stays in that phase until it is bound. Once the target is done, that claim goes before Succeeded is said.
 */
async function copyStatus(
  d: CloneDvDeps,
  dv: DataVolume,
  pvc: Pvc,
  source: CloneSource,
): Promise<Result | void> {
  if (source.kind === 'snapshot') {
    if (anns(pvc)[Ann.cloneOf] === 'true') {
      if (!(await removeTemporaries(d, dv, source))) return;
    } else {
      const tmp = await restoredClaim(d, dv, source, pvc);
      if ('result' in tmp) return tmp.result;
      if (tmp.claim) await copyEvents(d, tmp.claim, pvc);
      if (tmp.claim && tmp.claim.status?.phase !== 'Bound')
        return status(d, dv, pvc, Phase.CloneFromSnapshotSourceInProgress, {
          type: 'Normal',
          reason: Reason.CloneFromSnapshotSourceInProgress,
          message: `Creating PVC from snapshot source is in progress (for snapshot ${source.namespace}/${source.name})`,
        });
    }
  }
  return hostStatus(d, dv, pvc, source);
}

/**
 * The claim a snapshot is restored into for the copy into `target`, made again when it is gone and the copy is not
 * done. Gone mid-copy means no pod held it any more: the kube-controller-manager's pvc-protection keeps a claim that a
 * pod (the source pod, restarted on failure) uses until that pod is deleted, so a deletion during the stream waits
 * for the copy to end. If the source pod has Succeeded the stream is complete and nothing is made again; otherwise the
 * new claim, restored from the same snapshot, is the source of the stream that the host-assisted clone controller
 * starts once it is bound (no source pod had used the old one, or none is left that did). No claim and no result:
 * the stream is complete.
 */
async function restoredClaim(
  d: CloneDvDeps,
  dv: DataVolume,
  source: CloneSource,
  target: Pvc,
): Promise<{ claim?: Pvc } | { result: Result | void }> {
  const name = tempSourceClaimName(dv.metadata.uid ?? '');
  const existing = await d.kube.get<Pvc>(Res.pvc, name, source.namespace);
  if (existing) return { claim: existing };
  const sourcePod = await d.kube.get<PodObj>(Res.pod, sourcePodName(target), source.namespace);
  if (sourcePod?.status?.phase === 'Succeeded') return {};
  const src = await readSource(d.kube, source);
  if (src?.kind !== 'snapshot')
    return {
      result: await status(d, dv, target, Phase.CloneFromSnapshotSourceInProgress, {
        type: 'Warning',
        reason: Reason.CloneWithoutSource,
        message: `The source snapshot ${source.name} doesn't exist (in namespace ${source.namespace}), and the claim ${name} restored from it is gone: the clone goes on once the snapshot exists`,
      }),
    };
  const classes = (await d.kube.list<StorageClass>(Res.storageClass)).items;
  const spec = target.spec ?? {};
  const request = parseQuantity(String(spec.resources?.requests?.['storage'] ?? '0'));
  const made = await ensureTempSourceClaim(d, dv, source, src, classes, spec, request);
  if (!made) return { result: { requeueAfterMs: QuotaRetryMs } };
  d.log.warn(
    'the claim a snapshot is restored into for a copy was gone before the copy finished: made it again',
    {
      namespace: source.namespace,
      claim: name,
      target: `${target.metadata?.namespace}/${target.metadata?.name}`,
    },
  );
  return { claim: made };
}

function progressPhase(strategy: string, source: CloneSource): string {
  if (strategy === CloneStrategy.CsiClone) return Phase.CSICloneInProgress;
  return source.kind === 'snapshot' ? Phase.CloneFromSnapshotSourceInProgress : Phase.SmartClonePVCInProgress;
}

const controlledBy = (pvc: Pvc, dv: DataVolume): boolean =>
  (pvc.metadata?.ownerReferences ?? []).some((o) => o.controller === true && o.uid === dv.metadata.uid);

/** The target claim; undefined when a ResourceQuota refused it (said on the DataVolume, tried again later). */
async function createTarget(d: CloneDvDeps, dv: DataVolume, obj: Pvc): Promise<Pvc | undefined> {
  try {
    return await createOrGet(d.kube, obj);
  } catch (e) {
    const quota = quotaRefusal(e);
    if (!quota) throw e;
    await status(d, dv, undefined, Phase.Pending, quota);
    return undefined;
  }
}

async function createOrGet(kube: Kube, obj: Pvc): Promise<Pvc> {
  try {
    return await kube.create(Res.pvc, obj);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    const got = await kube.get<Pvc>(Res.pvc, obj.metadata?.name ?? '', obj.metadata?.namespace);
    if (!got) throw e;
    return got;
  }
}

async function status(
  d: CloneDvDeps,
  dv: DataVolume,
  pvc: Pvc | undefined,
  phase: string,
  event: DvEvent | undefined,
  progress?: number,
): Promise<void> {
  const next = structuredClone(dv.status ?? {});
  next.phase = phase;
  if (pvc) next.claimName = pvc.metadata?.name;
  if (phase === Phase.Succeeded) next.progress = ProgressDone;
  else if (progress !== undefined) next.progress = formatProgress(progress);
  else if (!next.progress) next.progress = 'N/A';
  const restarts = Number.parseInt(anns(pvc ?? {})[Ann.podRestarts] ?? '', 10);
  if (Number.isInteger(restarts) && restarts >= 0) next.restartCount = restarts;
  await writeStatus(
    { kube: d.kube, recorder: d.recorder, log: d.log, ...(d.now ? { now: d.now } : {}) },
    dv,
    next,
    pvc,
    event,
  );
}

/**
 * The host-assisted clone's state (copied onto the PVC by ../clone/host.ts) as the DataVolume's phase. Its events name
 * the DataVolume's source (a snapshot's, not the claim it was restored into), as upstream's.
 */
async function hostStatus(d: CloneDvDeps, dv: DataVolume, pvc: Pvc, source: CloneSource): Promise<void> {
  const a = anns(pvc);
  const name = pvc.metadata?.name ?? '';
  const key = `${dv.metadata.namespace}/${dv.metadata.name}`;
  const what = `from ${source.namespace}/${source.name} into ${pvc.metadata?.namespace}/${name}`;
  if (a[Ann.podPhase] === 'Running' && a[Ann.cloneOf] !== 'true') {
    // the source pod's kubevirt_cdi_clone_progress_total, read beside the reconcilers
    d.progress?.track({
      key,
      ownerUID: dv.metadata.uid ?? '',
      namespace: pvc.metadata?.namespace ?? '',
      pvcName: name,
    });
    const event = {
      type: 'Normal' as const,
      reason: Reason.CloneInProgress,
      message: `Cloning ${what} in progress`,
    };
    return status(d, dv, pvc, Phase.CloneInProgress, event, d.progress?.progress(key));
  }
  d.progress?.untrack(key);
  if (a[Ann.cloneOf] === 'true')
    return status(d, dv, pvc, Phase.Succeeded, {
      type: 'Normal',
      reason: Reason.CloneSucceeded,
      message: `Successfully cloned ${what}`,
    });
  return status(d, dv, pvc, Phase.CloneScheduled, {
    type: 'Normal',
    reason: Reason.CloneScheduled,
    message: `Cloning ${what} scheduled`,
  });
}

/** A short token from the webhook is exchanged for a long-term one (upstream); then the long one must grant this clone. */
async function granted(d: CloneDvDeps, dv: DataVolume, source: CloneSource): Promise<boolean> {
  const a = anns(dv);
  const target = {
    namespace: dv.metadata.namespace ?? '',
    name: dv.metadata.name ?? '',
    uid: dv.metadata.uid ?? '',
  };
  try {
    const tokens = await d.tokens(d.kube);
    const short = a[Ann.cloneToken];
    if (!a[Ann.extendedCloneToken] && short) {
      const long = await extendCloneToken(tokens, short, source, target);
      await d.kube.mergePatch(Res.dataVolume, target.name, target.namespace, {
        metadata: {
          resourceVersion: dv.metadata.resourceVersion,
          annotations: { [Ann.extendedCloneToken]: long, [Ann.cloneToken]: null },
        },
      });
      return false; // the change queues it again
    }
    const long = a[Ann.extendedCloneToken];
    await verifyCloneGrant(tokens, long ? { long } : {}, source, target);
    return true;
  } catch (e) {
    await status(d, dv, undefined, dv.status?.phase || Phase.Pending, {
      type: 'Warning',
      reason: Reason.NotAuthorized,
      message: `not authorized to clone ${source.kind} ${source.namespace}/${source.name}: ${(e as Error).message}`,
    });
    return false;
  }
}

type ReadSource =
  | { kind: 'pvc'; pvc: Pvc; size: bigint | undefined }
  | {
      kind: 'snapshot';
      snapshot: VolumeSnapshot;
      content: VolumeSnapshotContent | undefined;
      size: bigint | undefined;
    };

const sizeOf = (q: string | number | undefined): bigint | undefined => {
  if (q === undefined) return undefined;
  try {
    return parseQuantity(String(q));
  } catch {
    return undefined;
  }
};

async function readSource(kube: Kube, s: CloneSource): Promise<ReadSource | undefined> {
  if (s.kind === 'pvc') {
    const pvc = await kube.get<Pvc>(Res.pvc, s.name, s.namespace);
    if (!pvc) return undefined;
    return {
      kind: 'pvc',
      pvc,
      size: sizeOf(pvc.spec?.resources?.requests?.['storage'] ?? pvc.status?.capacity?.['storage']),
    };
  }
  const snapshot = await kube
    .get<VolumeSnapshot>(Res.volumeSnapshot, s.name, s.namespace)
    .catch(() => undefined);
  if (!snapshot) return undefined;
  const cn = snapshot.status?.boundVolumeSnapshotContentName;
  const content = cn ? await kube.get<VolumeSnapshotContent>(Res.volumeSnapshotContent, cn) : undefined;
  return { kind: 'snapshot', snapshot, content, size: sizeOf(snapshot.status?.restoreSize) };
}

/** Why the source cannot be cloned yet: a claim not bound, or still being filled by its own DataVolume. */
function sourceNotReady(src: ReadSource): string | undefined {
  if (src.kind === 'snapshot') {
    return src.snapshot.status?.readyToUse
      ? undefined
      : `the snapshot ${src.snapshot.metadata?.namespace}/${src.snapshot.metadata?.name} is not ready to use yet`;
  }
  const p = src.pvc;
  const where = `${p.metadata?.namespace}/${p.metadata?.name}`;
  if (p.status?.phase !== 'Bound') return `the source claim ${where} is not bound yet`;
  const owner = controllerOf(p);
  const a = anns(p);
  if (
    owner?.kind === 'DataVolume' &&
    (Ann.endpoint in a || Ann.source in a) &&
    a[Ann.podPhase] !== 'Succeeded'
  )
    return `the source claim ${where} is still being populated by its DataVolume`;
  if (Ann.cloneRequest in a && a[Ann.cloneOf] !== 'true')
    return `the source claim ${where} is itself still being cloned`;
  return undefined;
}

/**
 * Is the target too small for the source? As upstream: the explicit `pvc` API and Block sources compare the requests
 * (ValidateRequestedCloneSize); otherwise the usable space of each side (the request less its class's filesystem
 * overhead where it is a Filesystem volume: the host-assisted clone controller's rule), so that a Filesystem source
 * of 64Mi (requested with its overhead) fits a Block target of 64Mi.
 */
function tooSmall(
  dv: DataVolume,
  src: ReadSource,
  sourceSize: bigint,
  target: V1PersistentVolumeClaimSpec,
  request: bigint,
  config: CDIConfig | undefined,
  classes: StorageClass[],
): boolean {
  const sourceMode = src.kind === 'pvc' ? src.pvc.spec?.volumeMode : src.content?.spec?.sourceVolumeMode;
  if (dv.spec.pvc || sourceMode === 'Block') return request < sourceSize;
  const usable = (size: bigint, sc: string | undefined, mode: string | undefined): bigint =>
    usableSpace(parseOverhead(filesystemOverheadFor(config, classes, sc, mode ?? 'Filesystem')), size);
  const sourceClass = src.kind === 'pvc' ? (src.pvc.spec?.storageClassName ?? undefined) : undefined;
  return (
    usable(sourceSize, sourceClass, sourceMode) > usable(request, target.storageClassName, target.volumeMode)
  );
}

async function ensureSnapshot(
  d: CloneDvDeps,
  dv: DataVolume,
  source: CloneSource,
  profile: StorageProfile | undefined,
): Promise<VolumeSnapshot> {
  const name = tmpSnapshotName(dv);
  const existing = await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, name, source.namespace);
  if (existing) return existing;
  const same = source.namespace === dv.metadata.namespace;
  const snap: VolumeSnapshot = {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name,
      namespace: source.namespace,
      labels: { [Label.app]: Label.appValue },
      annotations: { [Ann.ownerRef]: `${dv.metadata.namespace}/${dv.metadata.name}` },
      ...(same
        ? {
            ownerReferences: [dvOwnerRef(dv)],
          }
        : {}),
    },
    spec: {
      source: { persistentVolumeClaimName: source.name },
      ...(profile?.status?.snapshotClass ? { volumeSnapshotClassName: profile.status.snapshotClass } : {}),
    },
  };
  try {
    const made = await d.kube.create<VolumeSnapshot>(Res.volumeSnapshot, snap);
    d.log.info('created snapshot for a smart clone', { namespace: source.namespace, snapshot: name });
    return made;
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    return (await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, name, source.namespace)) ?? snap;
  }
}

/**
 * The claim a snapshot that cannot be restored into its target is restored into, beside the snapshot, for the
 * host-assisted copy (upstream's legacy createTempHostAssistedSourcePvc, with its planner's class, volume mode,
 * access mode and size: ../clone/strategy.ts planTempSourceClaim). No owner reference, as upstream: the DataVolume's
 * finalizer cdi.kubevirt.io/cloneTemporaries removes it, on success and on deletion. Undefined, with the reason on the
 * DataVolume, when it cannot be made (no class of the driver, a ResourceQuota).
 */
async function ensureTempSourceClaim(
  d: CloneDvDeps,
  dv: DataVolume,
  source: CloneSource,
  src: Extract<ReadSource, { kind: 'snapshot' }>,
  classes: StorageClass[],
  target: V1PersistentVolumeClaimSpec,
  request: bigint,
): Promise<Pvc | undefined> {
  const name = tempSourceClaimName(dv.metadata.uid ?? '');
  const existing = await d.kube.get<Pvc>(Res.pvc, name, source.namespace);
  if (existing) return existing;
  const annotated = anns(src.snapshot)[ApiAnn.SourceVolumeMode];
  const plan = planTempSourceClaim({
    classes,
    driver: src.content?.spec?.driver,
    sourceVolumeMode:
      src.content?.spec?.sourceVolumeMode ??
      (annotated === 'Block' || annotated === 'Filesystem' ? annotated : undefined),
    restoreSize: src.size,
    target: {
      storageClassName: target.storageClassName ?? '',
      volumeMode: target.volumeMode === 'Block' ? 'Block' : 'Filesystem',
      request,
    },
  });
  if (!plan.ok) {
    await status(d, dv, undefined, Phase.Pending, {
      type: 'Warning',
      reason: Reason.CloneValidationFailed,
      message: `The clone doesn't meet the validation requirements: ${plan.message}`,
    });
    return undefined;
  }
  const tmp: Pvc = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: source.namespace,
      labels: {
        ...ManagedLabels,
        [Label.app]: Label.appValue,
        [Label.component]: LabelValue.CloneFromSnapshotFallbackPvc,
        [Label.excludeFromVelero]: 'true',
        ...(plan.volumeMode === 'Filesystem' ? { [Label.fillingUp]: Label.fillingUpValue } : {}),
      },
      annotations: {
        [ApiAnn.OwnedByDataVolume]: `${dv.metadata.namespace}/${dv.metadata.name}`,
        [ApiAnn.OwnerUID]: dv.metadata.uid ?? '',
        [Ann.ownerRef]: `${dv.metadata.namespace}/${dv.metadata.name}`,
      },
    },
    spec: {
      storageClassName: plan.storageClassName,
      // upstream: ReadWriteOnce is what every CSI driver offers, and some refuse a read-only Block claim
      accessModes: ['ReadWriteOnce'],
      volumeMode: plan.volumeMode,
      resources: { requests: { storage: plan.request.toString() } },
      dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: source.name },
    },
  };
  try {
    const made = await createOrGet(d.kube, tmp);
    d.log.info('restoring a snapshot into a claim for a host-assisted copy', {
      namespace: source.namespace,
      snapshot: source.name,
      claim: name,
      storageClass: plan.storageClassName,
    });
    return made;
  } catch (e) {
    const quota = quotaRefusal(e);
    if (!quota) throw e;
    await status(d, dv, undefined, Phase.Pending, quota);
    return undefined;
  }
}

/**
 * Moves the volume of the temporary claim beside the source to the target PVC: Retain, the target PVC pre-bound to
 * the volume, the volume's claimRef to the target; the PV controller binds them, and the next reconcile (target
 * Bound) removes the temporaries.
 */
async function rebind(
  d: CloneDvDeps,
  dv: DataVolume,
  source: CloneSource,
  target: Pvc | undefined,
): Promise<void> {
  const key = `${dv.metadata.namespace}/${dv.metadata.name}`;
  const strategy = anns(dv)[Ann.cloneType] ?? CloneStrategy.Snapshot;
  const tmp = await d.kube.get<Pvc>(Res.pvc, tmpClaimName(dv), source.namespace);
  // its events (the restore or clone by the storage) go onto the target once there is one (upstream CopyEvents)
  if (tmp && target) await copyEvents(d, tmp, target);
  const pvName = target?.spec?.volumeName || tmp?.spec?.volumeName;
  if (!tmp || tmp.status?.phase !== 'Bound' || !pvName) {
    if (!tmp && !target)
      throw new Error(
        `the temporary claim ${source.namespace}/${tmpClaimName(dv)} is gone before its volume was moved: delete and recreate the DataVolume ${key}`,
      );
    return status(d, dv, target, progressPhase(strategy, source), undefined);
  }
  const pv = await d.kube.get<Pv>(Res.pv, pvName);
  if (!pv) throw new Error(`volume ${pvName} of ${source.namespace}/${tmpClaimName(dv)} does not exist`);
  if (pv.spec?.persistentVolumeReclaimPolicy !== 'Retain') {
    await d.kube.mergePatch(Res.pv, pvName, undefined, {
      metadata: {
        resourceVersion: pv.metadata?.resourceVersion,
        annotations: { [AnnRebindReclaimPolicy]: pv.spec?.persistentVolumeReclaimPolicy ?? 'Delete' },
      },
      spec: { persistentVolumeReclaimPolicy: 'Retain' },
    });
    return;
  }
  let pvc = target;
  if (!pvc) {
    const desired: Pvc = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name: dv.metadata.name,
        namespace: dv.metadata.namespace,
        labels: { ...(tmp.metadata?.labels ?? {}), ...(dv.metadata.labels ?? {}) },
        annotations: { [Ann.createdForDataVolume]: dv.metadata.uid ?? '', [Ann.cloneType]: strategy },
        ownerReferences: [dvOwnerRef(dv)],
      },
      spec: {
        ...(tmp.spec?.accessModes ? { accessModes: tmp.spec.accessModes } : {}),
        ...(tmp.spec?.resources ? { resources: tmp.spec.resources } : {}),
        ...(tmp.spec?.volumeMode ? { volumeMode: tmp.spec.volumeMode } : {}),
        storageClassName: tmp.spec?.storageClassName ?? '',
        volumeName: pvName,
      },
    };
    pvc = await createOrGet(d.kube, desired);
  }
  const ref = pv.spec?.claimRef;
  if (ref?.uid !== pvc.metadata?.uid) {
    await d.kube.mergePatch(Res.pv, pvName, undefined, {
      metadata: { resourceVersion: pv.metadata?.resourceVersion },
      spec: {
        claimRef: {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          namespace: pvc.metadata?.namespace,
          name: pvc.metadata?.name,
          uid: pvc.metadata?.uid,
          resourceVersion: null,
        },
      },
    });
    d.log.info('moved a cloned volume to its target claim', {
      pv: pvName,
      from: `${source.namespace}/${tmpClaimName(dv)}`,
      to: key,
    });
  }
  return status(d, dv, pvc, Phase.RebindInProgress, undefined);
}

async function snapshotBeingCut(d: CloneDvDeps, dv: DataVolume, source: CloneSource): Promise<boolean> {
  if (anns(dv)[Ann.cloneType] !== CloneStrategy.Snapshot || source.kind !== 'pvc') return false;
  const snap = await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, tmpSnapshotName(dv), source.namespace);
  const contentName = snap?.status?.boundVolumeSnapshotContentName;
  const content = contentName
    ? await d.kube.get<VolumeSnapshotContent>(Res.volumeSnapshotContent, contentName)
    : undefined;
  return snapshotCutPending(dv.metadata.deletionTimestamp, snap, content, d.now?.() ?? new Date());
}

/**
 * The temporaries of a smart clone: the snapshot, the claim beside a source in another namespace, the Retain of a
 * moved volume; of a snapshot's copy: the claim it was restored into; then the finalizer. True when nothing is left.
 */
async function removeTemporaries(d: CloneDvDeps, dv: DataVolume, source: CloneSource): Promise<boolean> {
  const strategy = anns(dv)[Ann.cloneType];
  if (strategy === CloneStrategy.Copy && source.kind === 'snapshot') {
    const name = tempSourceClaimName(dv.metadata.uid ?? '');
    const tmp = await d.kube.get<Pvc>(Res.pvc, name, source.namespace);
    // only the claim made for this DataVolume (upstream cleanupHostAssistedSnapshotClone checks the same)
    if (tmp && anns(tmp)[ApiAnn.OwnerUID] === dv.metadata.uid && !tmp.metadata?.deletionTimestamp)
      await d.kube.delete(Res.pvc, name, source.namespace, tmp.metadata?.uid);
  }
  if (strategy === CloneStrategy.Snapshot && source.kind === 'pvc')
    await d.kube.delete(Res.volumeSnapshot, tmpSnapshotName(dv), source.namespace).catch((e: unknown) => {
      if ((e as { code?: number }).code !== 404) throw e;
    });
  if (source.namespace !== dv.metadata.namespace) {
    const tmp = await d.kube.get<Pvc>(Res.pvc, tmpClaimName(dv), source.namespace);
    const target = await d.kube.get<Pvc>(Res.pvc, dv.metadata.name ?? '', dv.metadata.namespace);
    const pvName = target?.spec?.volumeName || tmp?.spec?.volumeName;
    if (tmp) await d.kube.delete(Res.pvc, tmpClaimName(dv), source.namespace, tmp.metadata?.uid);
    if (pvName) {
      const pv = await d.kube.get<Pv>(Res.pv, pvName);
      const before = pv ? anns(pv)[AnnRebindReclaimPolicy] : undefined;
      if (pv && before) {
        await d.kube.mergePatch(Res.pv, pvName, undefined, {
          metadata: {
            resourceVersion: pv.metadata?.resourceVersion,
            annotations: { [AnnRebindReclaimPolicy]: null },
          },
          spec: { persistentVolumeReclaimPolicy: before },
        });
        return false; // the next reconcile sees the restored volume
      }
    }
  }
  const finalizers = dv.metadata.finalizers ?? [];
  if (finalizers.includes(Finalizer.cloneTemporaries)) {
    await d.kube.mergePatch(Res.dataVolume, dv.metadata.name ?? '', dv.metadata.namespace, {
      metadata: {
        resourceVersion: dv.metadata.resourceVersion,
        finalizers: finalizers.filter((f) => f !== Finalizer.cloneTemporaries),
      },
    });
    return false;
  }
  return true;
}
