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

/**
 * A snapshot that cannot be restored into the target (copy chosen for a snapshot source) is restored into a claim
 * beside it first, and that claim is copied host-assisted into the target (upstream's legacy
 * snapshot-clone-controller; its planner does the same through tmp-source-pvc-<uid> on the populator path).
 */
export const tempSourceClaimName = (dvUid: string): string => `${dvUid}-host-assisted-source-pvc`;

export interface TempSourceClaimInput {
  classes: readonly StorageClass[];
  /** The VolumeSnapshotContent's driver. */
  driver?: string | undefined;
  /** The snapshotted claim's volume mode: VolumeSnapshotContent.spec.sourceVolumeMode, else the snapshot's annotation. */
  sourceVolumeMode?: 'Filesystem' | 'Block' | undefined;
  /** status.restoreSize, in bytes. */
  restoreSize?: bigint | undefined;
  target: TargetClaim;
}

export type TempSourceClaim =
  | { ok: true; storageClassName: string; volumeMode: 'Filesystem' | 'Block'; request: bigint }
  | { ok: false; message: string };

/**
 * The claim the snapshot is restored into, as upstream's createTempSourceClaim makes it: a class of the snapshot's
 * driver (the first by name), the snapshotted claim's volume mode (the target's where it is not recorded), the restore
 * size (the target's request where the driver reports 0). Of the driver's classes one that binds at once is taken
 * before one that waits for a consumer: nothing but the copy's source pod ever consumes this claim, and that pod is
 * placed on the target's node, which a WaitForFirstConsumer claim nobody has selected a node for never binds to.
 */
export function planTempSourceClaim(i: TempSourceClaimInput): TempSourceClaim {
  const driver = i.driver;
  if (!driver)
    return {
      ok: false,
      message:
        'the snapshot has no bound VolumeSnapshotContent with a driver yet, so no class can restore it: wait for the snapshot to be ready',
    };
  const ofDriver = i.classes
    .filter((c) => c.provisioner === driver)
    .map((c) => ({ name: c.metadata.name ?? '', wffc: c.volumeBindingMode === 'WaitForFirstConsumer' }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const chosen = ofDriver.find((c) => !c.wffc);
  if (!chosen)
    return {
      ok: false,
      message:
        ofDriver.length === 0
          ? `no StorageClass has the snapshot's driver ${driver} as its provisioner, and the host-assisted copy restores the snapshot through such a class first: create one (volumeBindingMode Immediate)`
          : `the StorageClasses of the snapshot's driver ${driver} (${ofDriver.map((c) => c.name).join(', ')}) all wait for a first consumer, and the claim restored from the snapshot for the host-assisted copy would not bind: create one of that provisioner with volumeBindingMode Immediate`,
    };
  const request = i.restoreSize !== undefined && i.restoreSize > 0n ? i.restoreSize : i.target.request;
  return {
    ok: true,
    storageClassName: chosen.name,
    volumeMode: i.sourceVolumeMode ?? i.target.volumeMode,
    request,
  };
}
