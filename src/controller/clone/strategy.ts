// Which way a clone goes (upstream pkg/controller/clone/planner.go ChooseStrategy, v1.66): CDI.spec.cloneStrategyOverride,
// then the target class's StorageProfile.status.cloneStrategy, then snapshot. An efficient strategy (snapshot,
// csi-clone) falls back to host-assisted copy, with upstream's reason and message, when the storage cannot do it for
// this pair: no VolumeSnapshotClass, different provisioners, different volume modes, or a larger target on a class
// that cannot expand. Pure: the caller reads the objects, this decides.
import { EventReason } from '../../api/constants.ts';
import type { StorageClass, StorageProfile } from '../shared/types.ts';

export const CloneStrategy = { Copy: 'copy', Snapshot: 'snapshot', CsiClone: 'csi-clone' } as const;
export type CloneStrategy = (typeof CloneStrategy)[keyof typeof CloneStrategy];

/** upstream planner.go's fallback reasons (event reasons) and messages, exact. */
export const Fallback = {
  NoVolumeSnapshotClass: {
    reason: EventReason.NoVolumeSnapshotClass,
    message: 'No compatible volumesnapshotclass found',
  },
  IncompatibleVolumeModes: {
    reason: EventReason.IncompatibleVolumeModes,
    message: 'The volume modes of source and target are incompatible',
  },
  NoVolumeExpansion: { reason: EventReason.NoVolumeExpansion, message: 'No volume expansion is possible' },
  NoProvisionerMatch: {
    reason: EventReason.NoProvisionerMatch,
    message: 'The storageclass provisioner does not match the volumesnapshotcontent driver',
  },
  IncompatibleProvisioners: {
    reason: EventReason.IncompatibleProvisioners,
    message: 'Provisioners are incompatible',
  },
} as const;
export type FallbackReason = (typeof Fallback)[keyof typeof Fallback];

export interface StrategyChoice {
  strategy: CloneStrategy;
  /** Set when an efficient strategy was wanted and copy is used instead. */
  fallback?: FallbackReason;
}

export interface TargetClaim {
  storageClassName: string;
  volumeMode: 'Filesystem' | 'Block';
  /** The requested size in bytes. */
  request: bigint;
}

export interface PvcSource {
  kind: 'pvc';
  storageClassName?: string;
  volumeMode: 'Filesystem' | 'Block';
  /** status.capacity.storage of the source claim, in bytes. */
  capacity: bigint;
}

export interface SnapshotSource {
  kind: 'snapshot';
  /** The VolumeSnapshotContent's driver. */
  driver?: string;
  /** VolumeSnapshotContent.spec.sourceVolumeMode (unset: Filesystem, as Kubernetes defaults it). */
  volumeMode?: 'Filesystem' | 'Block';
  /** status.restoreSize, in bytes. */
  restoreSize?: bigint;
}

export interface StrategyInput {
  override?: string | undefined;
  /** The target class's profile. */
  profile?: StorageProfile | undefined;
  classes: readonly StorageClass[];
  source: PvcSource | SnapshotSource;
  target: TargetClaim;
}

const isStrategy = (s: unknown): s is CloneStrategy =>
  s === CloneStrategy.Copy || s === CloneStrategy.Snapshot || s === CloneStrategy.CsiClone;

const copy = (fallback: FallbackReason): StrategyChoice => ({ strategy: CloneStrategy.Copy, fallback });

export function chooseStrategy(i: StrategyInput): StrategyChoice {
  const targetClass = i.classes.find((c) => c.metadata.name === i.target.storageClassName);
  const canExpand = targetClass?.allowVolumeExpansion === true;
  if (i.source.kind === 'snapshot') {
    // upstream computeStrategyForSourceSnapshot: a snapshot is restored where the storage allows it, whatever the override
    const s = i.source;
    if (!targetClass || !s.driver || s.driver !== targetClass.provisioner)
      return copy(Fallback.NoProvisionerMatch);
    if (s.restoreSize !== undefined && i.target.request > s.restoreSize && !canExpand)
      return copy(Fallback.NoVolumeExpansion);
    if ((s.volumeMode ?? 'Filesystem') !== i.target.volumeMode) return copy(Fallback.IncompatibleVolumeModes);
    return { strategy: CloneStrategy.Snapshot };
  }
  const src = i.source;
  const profiled = i.profile?.status?.cloneStrategy;
  const strategy: CloneStrategy = isStrategy(i.override)
    ? i.override
    : isStrategy(profiled)
      ? profiled
      : CloneStrategy.Snapshot;
  if (strategy === CloneStrategy.Copy) return { strategy };
  if (strategy === CloneStrategy.Snapshot && !i.profile?.status?.snapshotClass)
    return copy(Fallback.NoVolumeSnapshotClass);
  const sourceClass = i.classes.find((c) => c.metadata.name === src.storageClassName);
  if (!sourceClass || !targetClass || sourceClass.provisioner !== targetClass.provisioner)
    return copy(Fallback.IncompatibleProvisioners);
  if (src.volumeMode !== i.target.volumeMode) return copy(Fallback.IncompatibleVolumeModes);
  if (src.capacity < i.target.request && !canExpand) return copy(Fallback.NoVolumeExpansion);
  return { strategy };
}
