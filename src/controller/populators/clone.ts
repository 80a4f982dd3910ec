// The clone populator (upstream pkg/controller/populators/clone-populator.go with its planner's phases): a PVC whose
// spec.dataSourceRef names a VolumeCloneSource (spec.source: a PersistentVolumeClaim or VolumeSnapshot in the same
// namespace) is filled with a copy through `tmp-pvc-<pvc uid>` (upstream's name for the claim the planner fills),
// made by the clone machinery we already have:
//
//   copy       tmp-pvc carries `k8s.io/CloneRequest: <ns>/<source>`: the host-assisted clone controller
//              (../clone/host.ts) fills it; done when it says `k8s.io/CloneOf: "true"`.
//   snapshot   VolumeSnapshot `tmp-snapshot-<pvc uid>` of the source PVC (or the source snapshot itself), and tmp-pvc
//              restored from it by the storage.
//   csi-clone  tmp-pvc with the source PVC as its dataSource.
//
// The strategy is chosen once (../clone/strategy.ts, as the DataVolume clone controller chooses it) and recorded on
// the target (cdi.kubevirt.io/cloneType, cdi.kubevirt.io/cloneFallbackReason). Then tmp-pvc's PV is handed to the
// target (base.ts rebind), and once the target is Bound it says Succeeded, the Lost tmp-pvc and the snapshot are
// deleted. The target carries upstream's cdi.kubevirt.io/clonePhase (Pending, HostClone, Snapshot, SnapshotClone,
// CSIClone, Rebind, Succeeded, Error), cdi.kubevirt.io/cloneError in Error, and storage.populator.progress: the
// host-assisted copy's percentage while it runs (the source pod's metric, scraped off the reconcile path), 100.0% when
// done.
//
// Teardown (upstream's finalizer cdi.kubevirt.io/clonePopulator, put on the target with the strategy): tmp-pvc is
// owned by the target, the snapshot is not (label cdi.kubevirt.io/OwnedByUID, as upstream's planner labels it), so
// that neither the garbage collector nor a foreground deletion of the target deletes it behind our back while the
// storage is still cutting it: a VolumeSnapshotContent deleted during CreateSnapshot is left alone by csi-snapshotter
// (up to v8.7) until its 15-minute resync (kubernetes-csi/external-snapshotter#1258), and the snapshot stays
// Terminating. A deleted target waits for the storage's answer (../clone/snapshotcut.ts, the DataVolumes' rule: at
// most 2 minutes), then deletes the snapshot and tmp-pvc and lets go. On success the finalizer goes with the
// temporaries; retainAfterCompletion keeps them, and the finalizer, until the target is deleted.
import { Ann as ApiAnn } from '../../api/constants.ts';
import type { VolumeCloneSource } from '../../api/populators.ts';
import type { KubeObject, PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { isAlreadyExists, Res } from '../shared/client.ts';
import { Ann, ProgressDone, Reason } from '../shared/constants.ts';
import { podsUsingClaim } from '../shared/claims.ts';
import { copyEvents } from '../shared/copyevents.ts';
import { parseQuantity } from '../shared/quantity.ts';
import type { Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { StorageClass, StorageProfile, VolumeSnapshot, VolumeSnapshotContent } from '../shared/types.ts';
import { chooseStrategy, CloneStrategy, type StrategyChoice } from '../clone/strategy.ts';
import { snapshotCutPending, SnapshotCutPollMs } from '../clone/snapshotcut.ts';
import { formatProgress } from '../datavolume/progress.ts';
import {
  involved,
  isPopulatedBy,
  readyForPopulation,
  rebind,
  refOf,
  removeLostClaim,
  secondClaim,
  type PopulatorDeps,
} from './base.ts';

export const VolumeCloneSourceKind = 'VolumeCloneSource';
export const tmpClaimName = (pvc: Pvc): string => `tmp-pvc-${pvc.metadata?.uid ?? ''}`;
export const tmpSnapshotName = (pvc: Pvc): string => `tmp-snapshot-${pvc.metadata?.uid ?? ''}`;

/** upstream clone phase names (pkg/controller/clone: PendingPhaseName, HostClonePhaseName, ...). */
export const ClonePhase = {
  Pending: 'Pending',
  HostClone: 'HostClone',
  Snapshot: 'Snapshot',
  SnapshotClone: 'SnapshotClone',
  CSIClone: 'CSIClone',
  Rebind: 'Rebind',
  Succeeded: 'Succeeded',
  Error: 'Error',
} as const;

/** upstream AnnCloneError */
export const AnnCloneError = 'cdi.kubevirt.io/cloneError';
/** upstream cloneFinalizer: on the target from the strategy's choice until its temporaries are gone. */
export const ClonePopulatorFinalizer = 'cdi.kubevirt.io/clonePopulator';
/** upstream LabelOwnedByUID: the target's uid on the temporary snapshot, which the target does not own. */
export const LabelOwnedByUID = 'cdi.kubevirt.io/OwnedByUID';

type Source = VolumeCloneSource & KubeObject;

const anns = (
  o: { metadata?: { annotations?: Record<string, string> } } | undefined,
): Record<string, string> => o?.metadata?.annotations ?? {};

export async function reconcileClonePopulator(d: PopulatorDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const found = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  const pvc = found && isPopulatedBy(found, VolumeCloneSourceKind) ? found : undefined;
  const tmp = pvc ? await d.kube.get<Pvc>(Res.pvc, tmpClaimName(pvc), namespace) : undefined;
  const copying = pvc ? hostCopyRunning(pvc, tmp) : undefined;
  if (copying) d.progress?.track({ key, namespace: namespace ?? '', ...copying });
  else d.progress?.untrack(key);
  if (!pvc) return;
  if (pvc.metadata?.deletionTimestamp) return release(d, pvc, tmp);
  const a = anns(pvc);
  if (a[ApiAnn.ClonePhase] === ClonePhase.Succeeded) return cleanup(d, pvc, tmp);
  if (pvc.status?.phase === 'Bound') {
    // the volume is here: upstream desiredCloneAnnotations come along from the filled claim
    const ta = anns(tmp);
    return setPhase(d, pvc, ClonePhase.Succeeded, {
      [ApiAnn.PopulatorProgress]: ProgressDone,
      ...(ta[Ann.preallocationApplied] ? { [Ann.preallocationApplied]: ta[Ann.preallocationApplied] } : {}),
      ...(ta[Ann.cloneOf] ? { [Ann.cloneOf]: ta[Ann.cloneOf] } : {}),
    });
  }
  if (pvc.status?.phase === 'Lost') return;

  const ready = await readyForPopulation(d, pvc);
  if (ready.problem) return fail(d, pvc, Reason.CloneValidationFailed, ready.problem);
  if (!ready.ready) return setPhase(d, pvc, ClonePhase.Pending);
  const ref = refOf(pvc)!;
  if (ref.namespace && ref.namespace !== namespace)
    return fail(
      d,
      pvc,
      Reason.CloneValidationFailed,
      'cross-namespace with resource grants is not supported yet',
    );
  const vcs = await d.kube.get<Source>(Res.volumeCloneSource, ref.name ?? '', namespace);
  if (!vcs) return setPhase(d, pvc, ClonePhase.Pending); // its creation wakes the claim
  const kind = vcs.spec.source.kind;
  const sourceName = vcs.spec.source.name;
  if (kind !== 'PersistentVolumeClaim' && kind !== 'VolumeSnapshot')
    return fail(
      d,
      pvc,
      Reason.CloneValidationFailed,
      `VolumeCloneSource ${namespace}/${vcs.metadata?.name} names a ${kind}: the source must be a PersistentVolumeClaim or a VolumeSnapshot`,
    );

  const strategy = a[Ann.cloneType];
  if (
    strategy !== CloneStrategy.Copy &&
    strategy !== CloneStrategy.Snapshot &&
    strategy !== CloneStrategy.CsiClone
  )
    return choose(d, pvc, kind, sourceName);
  // a target whose strategy was chosen before the finalizer existed gets it before anything more is made
  if (!hasFinalizer(pvc)) return addFinalizer(d, pvc);
  // tmp-pvc's events (its provisioning, the host-assisted copy's) go onto the target, as upstream's phases copy them
  if (tmp) await copyEvents(d, tmp, pvc);

  if (
    tmp?.status?.phase === 'Bound' &&
    (strategy !== CloneStrategy.Copy || anns(tmp)[Ann.cloneOf] === 'true')
  ) {
    await rebind(d, tmp, pvc);
    return setPhase(d, pvc, ClonePhase.Rebind);
  }
  // its PV went to the target, which the PV controller is binding
  if (tmp?.status?.phase === 'Lost') return setPhase(d, pvc, ClonePhase.Rebind);

  const node = ready.node;
  if (strategy === CloneStrategy.Copy) {
    if (!tmp)
      await createOrKeep(
        d,
        pvc,
        secondClaim(pvc, tmpClaimName(pvc), node, {
          [ApiAnn.PopulatorKind]: VolumeCloneSourceKind,
          [Ann.cloneRequest]: `${namespace}/${sourceName}`,
          // upstream's host-clone phase: the source pod's progress metric is labelled with the target's uid
          [ApiAnn.OwnerUID]: pvc.metadata?.uid ?? '',
          ...(vcs.spec.preallocation !== undefined
            ? { [Ann.preallocationRequested]: String(vcs.spec.preallocation) }
            : {}),
          ...(vcs.spec.priorityClassName ? { [Ann.priorityClassName]: vcs.spec.priorityClassName } : {}),
        }),
      );
    const v = d.progress?.progress(key);
    return setPhase(
      d,
      pvc,
      ClonePhase.HostClone,
      v !== undefined ? { [ApiAnn.PopulatorProgress]: formatProgress(v) } : {},
    );
  }

  let snapshot = kind === 'VolumeSnapshot' ? sourceName : undefined;
  if (!tmp && strategy === CloneStrategy.Snapshot && kind === 'PersistentVolumeClaim') {
    const snap = await ensureSnapshot(d, pvc, sourceName);
    if (!snap.status?.readyToUse) {
      const err = snap.status?.error?.message;
      if (err)
        return fail(d, pvc, Reason.CloneFailed, `snapshot ${namespace}/${tmpSnapshotName(pvc)}: ${err}`);
      return setPhase(d, pvc, ClonePhase.Snapshot);
    }
    snapshot = snap.metadata?.name;
  }
  if (!tmp) {
    const claim = secondClaim(pvc, tmpClaimName(pvc), node, {
      [ApiAnn.PopulatorKind]: VolumeCloneSourceKind,
    });
    claim.spec = {
      ...claim.spec,
      dataSource: snapshot
        ? { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: snapshot }
        : { apiGroup: '', kind: 'PersistentVolumeClaim', name: sourceName },
    };
    await createOrKeep(d, pvc, claim);
  }
  return setPhase(
    d,
    pvc,
    strategy === CloneStrategy.CsiClone ? ClonePhase.CSIClone : ClonePhase.SnapshotClone,
  );
}

/** Decides the strategy once the source can be cloned, and records it on the target (its change wakes it again). */
async function choose(
  d: PopulatorDeps,
  pvc: Pvc,
  kind: 'PersistentVolumeClaim' | 'VolumeSnapshot',
  sourceName: string,
): Promise<void> {
  const namespace = pvc.metadata?.namespace ?? '';
  const [classes, profiles, cdi] = await Promise.all([
    d.kube.list<StorageClass>(Res.storageClass).then((l) => l.items),
    d.kube.list<StorageProfile>(Res.storageProfile).then((l) => l.items),
    d.kube.list<KubeObject & { spec?: { cloneStrategyOverride?: string } }>(Res.cdi).then((l) => l.items[0]),
  ]);
  const target = {
    storageClassName: pvc.spec?.storageClassName ?? '',
    volumeMode: pvc.spec?.volumeMode === 'Block' ? ('Block' as const) : ('Filesystem' as const),
    request: parseQuantity(String(pvc.spec?.resources?.requests?.['storage'] ?? '0')),
  };
  const common = {
    override: cdi?.spec?.cloneStrategyOverride,
    profile: profiles.find((p) => p.metadata.name === target.storageClassName),
    classes,
    target,
  };
  let choice: StrategyChoice;
  if (kind === 'PersistentVolumeClaim') {
    const src = await d.kube.get<Pvc>(Res.pvc, sourceName, namespace);
    if (!src || src.status?.phase !== 'Bound') return setPhase(d, pvc, ClonePhase.Pending); // its binding wakes us
    choice = chooseStrategy({
      ...common,
      source: {
        kind: 'pvc',
        ...(src.spec?.storageClassName ? { storageClassName: src.spec.storageClassName } : {}),
        volumeMode: src.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem',
        capacity: parseQuantity(
          String(src.status?.capacity?.['storage'] ?? src.spec?.resources?.requests?.['storage'] ?? '0'),
        ),
      },
    });
    if (choice.strategy !== CloneStrategy.Copy) {
      const users = await podsUsingClaim(d.kube, src, () => false);
      if (users.length > 0) {
        await d.recorder.record(
          involved(pvc),
          'Warning',
          Reason.CloneSourceInUse,
          `pod ${users.map((u) => `${u.metadata?.namespace}/${u.metadata?.name}`).join(', ')} using PersistentVolumeClaim ${sourceName}`,
        );
        return setPhase(d, pvc, ClonePhase.Pending);
      }
    }
  } else {
    const snap = await d.kube
      .get<VolumeSnapshot>(Res.volumeSnapshot, sourceName, namespace)
      .catch(() => undefined);
    if (!snap?.status?.readyToUse) return setPhase(d, pvc, ClonePhase.Pending); // the snapshot watch wakes us
    const cn = snap.status.boundVolumeSnapshotContentName;
    const content = cn ? await d.kube.get<VolumeSnapshotContent>(Res.volumeSnapshotContent, cn) : undefined;
    const size = snap.status.restoreSize;
    choice = chooseStrategy({
      ...common,
      source: {
        kind: 'snapshot',
        ...(content?.spec?.driver ? { driver: content.spec.driver } : {}),
        ...(content?.spec?.sourceVolumeMode ? { volumeMode: content.spec.sourceVolumeMode } : {}),
        ...(size !== undefined ? { restoreSize: parseQuantity(String(size)) } : {}),
      },
    });
    if (choice.strategy === CloneStrategy.Copy)
      return fail(
        d,
        pvc,
        Reason.CloneValidationFailed,
        `the snapshot ${namespace}/${sourceName} cannot be restored into this claim (${choice.fallback?.message ?? 'copy'}), and a host-assisted copy of a snapshot is not supported yet: use a StorageClass of the snapshot's driver and its volume mode`,
      );
  }
  await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', namespace, {
    metadata: {
      resourceVersion: pvc.metadata?.resourceVersion,
      finalizers: withFinalizer(pvc),
      annotations: {
        [Ann.cloneType]: choice.strategy,
        [ApiAnn.ClonePhase]: anns(pvc)[ApiAnn.ClonePhase] || ClonePhase.Pending,
        ...(choice.fallback ? { [Ann.cloneFallbackReason]: choice.fallback.message } : {}),
      },
    },
  });
  if (choice.fallback)
    await d.recorder.record(involved(pvc), 'Warning', choice.fallback.reason, choice.fallback.message);
}

async function setPhase(
  d: PopulatorDeps,
  pvc: Pvc,
  phase: string,
  extra: Record<string, string> = {},
  error?: string,
): Promise<void> {
  const a = anns(pvc);
  const want: Record<string, string | null> = { [ApiAnn.ClonePhase]: phase, ...extra };
  want[AnnCloneError] = error ?? null;
  const changed = Object.entries(want).some(([k, v]) => (v === null ? k in a : a[k] !== v));
  if (!changed) return;
  await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
    metadata: { resourceVersion: pvc.metadata?.resourceVersion, annotations: want },
  });
}

/** Error phase with the reason in cloneError, and a Warning event the first time this message is seen. */
async function fail(d: PopulatorDeps, pvc: Pvc, reason: string, message: string): Promise<void> {
  if (anns(pvc)[AnnCloneError] !== message)
    await d.recorder.record(involved(pvc), 'Warning', reason, message);
  return setPhase(d, pvc, ClonePhase.Error, {}, message);
}

async function createOrKeep(d: PopulatorDeps, target: Pvc, claim: Pvc): Promise<void> {
  try {
    await d.kube.create(Res.pvc, claim);
    d.log.info('created the claim a clone fills', {
      namespace: claim.metadata?.namespace,
      name: claim.metadata?.name,
      target: target.metadata?.name,
    });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}

async function ensureSnapshot(d: PopulatorDeps, pvc: Pvc, sourceName: string): Promise<VolumeSnapshot> {
  const namespace = pvc.metadata?.namespace ?? '';
  const name = tmpSnapshotName(pvc);
  const existing = await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, name, namespace);
  if (existing) return existing;
  const profile = await d.kube.get<StorageProfile>(Res.storageProfile, pvc.spec?.storageClassName ?? '');
  const snap = {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name,
      namespace,
      // not owned by the target: the finalizer deletes it once the storage has answered (header)
      labels: { app: 'containerized-data-importer', [LabelOwnedByUID]: pvc.metadata?.uid ?? '' },
    },
    spec: {
      source: { persistentVolumeClaimName: sourceName },
      ...(profile?.status?.snapshotClass ? { volumeSnapshotClassName: profile.status.snapshotClass } : {}),
    },
  };
  try {
    return await d.kube.create<VolumeSnapshot>(Res.volumeSnapshot, snap);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    return (await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, name, namespace)) ?? snap;
  }
}

/** upstream reconcileDone: the Lost tmp-pvc and the snapshot go (unless retainAfterCompletion keeps them), then the finalizer. */
async function cleanup(d: PopulatorDeps, pvc: Pvc, tmp: Pvc | undefined): Promise<void> {
  // the events tmp-pvc had last (a restore's ProvisioningSucceeded can come after it is Bound) before it goes
  if (tmp && !tmp.metadata?.deletionTimestamp) await copyEvents(d, tmp, pvc);
  if (tmp && !(await removeLostClaim(d, tmp, pvc))) return;
  // kept for debugging: the finalizer stays, so that deleting the target still deletes the unowned snapshot
  if (anns(pvc)[Ann.retainAfterCompletion] === 'true') return;
  // done already (or a target from before the finalizer, whose temporaries it owns)
  if (!hasFinalizer(pvc)) return;
  const snap = await getTmpSnapshot(d, pvc);
  if (snap && !snap.metadata.deletionTimestamp) await deleteTmpSnapshot(d, pvc, snap);
  await dropFinalizer(d, pvc);
}

/** What a deleted target does with its finalizer (upstream reconcileDone on deletion, with the snapshot-cut wait). */
export type Teardown =
  | { step: 'none' }
  | { step: 'waitForCut' }
  | { step: 'release'; deleteSnapshot: boolean; deleteClaim: boolean };

/**
 * The deleted target's next step: nothing without the finalizer; wait while its temporary snapshot is still being cut
 * (snapshotCutPending, at most SnapshotCutWaitMs after the deletion); else delete what is left of the snapshot and
 * tmp-pvc (retainAfterCompletion does not keep them past the target) and let go.
 */
export function teardown(
  pvc: Pvc,
  tmp: Pvc | undefined,
  snap: VolumeSnapshot | undefined,
  content: VolumeSnapshotContent | undefined,
  now: Date,
): Teardown {
  if (!hasFinalizer(pvc)) return { step: 'none' };
  if (snapshotCutPending(pvc.metadata?.deletionTimestamp, snap, content, now)) return { step: 'waitForCut' };
  return {
    step: 'release',
    deleteSnapshot: snap !== undefined && !snap.metadata.deletionTimestamp,
    deleteClaim: tmp !== undefined && !tmp.metadata?.deletionTimestamp,
  };
}

async function release(d: PopulatorDeps, pvc: Pvc, tmp: Pvc | undefined): Promise<Result | void> {
  if (!hasFinalizer(pvc)) return;
  const snap = await getTmpSnapshot(d, pvc);
  const contentName = snap?.status?.boundVolumeSnapshotContentName;
  const content = contentName
    ? await d.kube.get<VolumeSnapshotContent>(Res.volumeSnapshotContent, contentName)
    : undefined;
  const t = teardown(pvc, tmp, snap, content, d.now?.() ?? new Date());
  if (t.step === 'none') return;
  if (t.step === 'waitForCut') return { requeueAfterMs: SnapshotCutPollMs }; // the content's changes wake nothing
  if (t.deleteSnapshot && snap) await deleteTmpSnapshot(d, pvc, snap);
  if (t.deleteClaim && tmp)
    await d.kube.delete(Res.pvc, tmp.metadata?.name ?? '', tmp.metadata?.namespace, tmp.metadata?.uid);
  await dropFinalizer(d, pvc);
}

/** The target's tmp-snapshot, when its strategy made one (snapshots are read from the API server, not cached). */
async function getTmpSnapshot(d: PopulatorDeps, pvc: Pvc): Promise<VolumeSnapshot | undefined> {
  if (anns(pvc)[Ann.cloneType] !== CloneStrategy.Snapshot) return undefined;
  // (a 404, also for a kind not served, reads as none)
  const snap = await d.kube.get<VolumeSnapshot>(
    Res.volumeSnapshot,
    tmpSnapshotName(pvc),
    pvc.metadata?.namespace,
  );
  // ours: named by and labelled with the target's uid
  return snap?.metadata.labels?.[LabelOwnedByUID] === pvc.metadata?.uid || isOwnedBy(snap, pvc)
    ? snap
    : undefined;
}

const isOwnedBy = (o: VolumeSnapshot | undefined, pvc: Pvc): boolean =>
  (o?.metadata.ownerReferences ?? []).some((r) => r.uid === pvc.metadata?.uid);

async function deleteTmpSnapshot(d: PopulatorDeps, pvc: Pvc, snap: VolumeSnapshot): Promise<void> {
  await d.kube.delete(
    Res.volumeSnapshot,
    snap.metadata.name ?? '',
    snap.metadata.namespace,
    snap.metadata.uid,
  );
  d.log.info('deleted the temporary snapshot of a clone', {
    namespace: pvc.metadata?.namespace,
    snapshot: snap.metadata.name,
    target: pvc.metadata?.name,
  });
}

const hasFinalizer = (pvc: Pvc): boolean =>
  (pvc.metadata?.finalizers ?? []).includes(ClonePopulatorFinalizer);
const withFinalizer = (pvc: Pvc): string[] => [
  ...(pvc.metadata?.finalizers ?? []).filter((f) => f !== ClonePopulatorFinalizer),
  ClonePopulatorFinalizer,
];

async function addFinalizer(d: PopulatorDeps, pvc: Pvc): Promise<void> {
  await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
    metadata: { resourceVersion: pvc.metadata?.resourceVersion, finalizers: withFinalizer(pvc) },
  });
}

async function dropFinalizer(d: PopulatorDeps, pvc: Pvc): Promise<void> {
  await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
    metadata: {
      resourceVersion: pvc.metadata?.resourceVersion,
      finalizers: (pvc.metadata?.finalizers ?? []).filter((f) => f !== ClonePopulatorFinalizer),
    },
  });
}

/**
 * The host-assisted copy into tmp-pvc, while it runs: what the progress scraper reads (the source pod
 * `<tmp uid>-source-pod` of tmp-pvc, its metric labelled with the OWNER_UID the clone controller gave it: the target's
 * uid from cdi.kubevirt.io/ownerUID, or tmp-pvc's own for a claim made before it carried one).
 */
export function hostCopyRunning(
  pvc: Pvc,
  tmp: Pvc | undefined,
): { ownerUID: string; pvcName: string } | undefined {
  const a = anns(pvc);
  if (pvc.metadata?.deletionTimestamp || a[ApiAnn.ClonePhase] === ClonePhase.Succeeded) return undefined;
  if (a[Ann.cloneType] !== CloneStrategy.Copy || !tmp || tmp.metadata?.deletionTimestamp) return undefined;
  const ta = anns(tmp);
  if (!ta[Ann.cloneRequest] || ta[Ann.cloneOf] === 'true') return undefined;
  return { ownerUID: ta[ApiAnn.OwnerUID] || (tmp.metadata?.uid ?? ''), pvcName: tmp.metadata?.name ?? '' };
}
