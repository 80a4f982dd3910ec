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
// CSIClone, Rebind, Succeeded, Error), cdi.kubevirt.io/cloneError in Error, and storage.populator.progress 100.0%
// when done. What we make is owned by the target, so deleting the target mid-clone removes it (no finalizer needed,
// unlike upstream, whose temporaries are matched by a label).
import { Ann as ApiAnn } from '../../api/constants.ts';
import type { VolumeCloneSource } from '../../api/populators.ts';
import { controllerRef, type KubeObject, type PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { isAlreadyExists, Res } from '../shared/client.ts';
import { Ann, Reason } from '../shared/constants.ts';
import { podsUsingClaim } from '../shared/claims.ts';
import { parseQuantity } from '../shared/quantity.ts';
import type { Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { StorageClass, StorageProfile, VolumeSnapshot, VolumeSnapshotContent } from '../shared/types.ts';
import { chooseStrategy, CloneStrategy, type StrategyChoice } from '../clone/strategy.ts';
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

type Source = VolumeCloneSource & KubeObject;

const anns = (
  o: { metadata?: { annotations?: Record<string, string> } } | undefined,
): Record<string, string> => o?.metadata?.annotations ?? {};

export async function reconcileClonePopulator(d: PopulatorDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const pvc = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  if (!pvc || pvc.metadata?.deletionTimestamp || !isPopulatedBy(pvc, VolumeCloneSourceKind)) return;
  const a = anns(pvc);
  const tmp = await d.kube.get<Pvc>(Res.pvc, tmpClaimName(pvc), namespace);
  if (a[ApiAnn.ClonePhase] === ClonePhase.Succeeded) return cleanup(d, pvc, tmp);
  if (pvc.status?.phase === 'Bound') {
    // the volume is here: upstream desiredCloneAnnotations come along from the filled claim
    const ta = anns(tmp);
    return setPhase(d, pvc, ClonePhase.Succeeded, {
      [ApiAnn.PopulatorProgress]: '100.0%',
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
          ...(vcs.spec.preallocation !== undefined
            ? { [Ann.preallocationRequested]: String(vcs.spec.preallocation) }
            : {}),
          ...(vcs.spec.priorityClassName ? { [Ann.priorityClassName]: vcs.spec.priorityClassName } : {}),
        }),
      );
    return setPhase(d, pvc, ClonePhase.HostClone);
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
      labels: { app: 'containerized-data-importer' },
      ownerReferences: [controllerRef(pvc, Res.pvc)],
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

/** upstream reconcileDone: the Lost tmp-pvc and the snapshot go (unless retainAfterCompletion keeps them). */
async function cleanup(d: PopulatorDeps, pvc: Pvc, tmp: Pvc | undefined): Promise<void> {
  if (tmp && !(await removeLostClaim(d, tmp, pvc))) return;
  if (anns(pvc)[Ann.retainAfterCompletion] === 'true') return;
  if (anns(pvc)[Ann.cloneType] !== CloneStrategy.Snapshot) return;
  const ns = pvc.metadata?.namespace;
  const snap = await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, tmpSnapshotName(pvc), ns);
  if (snap && !snap.metadata?.deletionTimestamp)
    await d.kube.delete(Res.volumeSnapshot, tmpSnapshotName(pvc), ns, snap.metadata?.uid);
}
