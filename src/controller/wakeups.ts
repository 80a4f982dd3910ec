// What a change wakes. Each function maps one changed object to the keys of the reconciles it can affect, read from
// the cache's indexes: never "every object of a kind" (a StorageClass edit in a cluster with 10,000 PVCs wakes the
// few DataVolumes still waiting to render with that class).
import {
  keyOf,
  podClaims,
  type Cache,
  type KubeObject,
  type Pod,
  type PersistentVolumeClaim as Pvc,
} from '../kube/index.ts';
import { Res } from './shared/client.ts';
import { Ann as ApiAnn, Label as ApiLabel } from '../api/constants.ts';
import { Ann } from './shared/constants.ts';
import {
  Active,
  CronClassIndex,
  DsDataSourceIndex,
  DsPvcIndex,
  DsSnapshotIndex,
  DvActiveIndex,
  DvSourceRefIndex,
  DvClassIndex,
  DvCloneSourceIndex,
  HostCloneSourceIndex,
  ImportPvcIndex,
  PvcPopulatorSourceIndex,
  importInFlight,
  isCdiPod,
  isHostClonePvc,
  isImportPvc,
  isUploadPvc,
  uploadInFlight,
} from './shared/indexes.ts';
import type { StorageClass, StorageProfile } from './shared/types.ts';
import { LabelOwnedByUID } from './populators/clone.ts';

const keys = (items: KubeObject[]): string[] => items.map((x) => keyOf(x));

export function ownerKey(o: KubeObject, kind: string): string | undefined {
  const ref = o.metadata?.ownerReferences?.find((r) => r.controller === true && r.kind === kind);
  return ref && o.metadata?.namespace ? `${o.metadata.namespace}/${ref.name}` : undefined;
}

export const isDefaultClass = (sc: StorageClass | undefined): boolean =>
  sc?.metadata?.annotations?.[Ann.defaultStorageClass] === 'true' ||
  sc?.metadata?.annotations?.[Ann.defaultVirtStorageClass] === 'true';

/**
 * DataVolumes in flight that render with this class: those naming it, and, when it is or was a default class, those
 * naming none (the default decides for them).
 */
export function dvsForStorageClass(cache: Cache, sc: StorageClass, old?: StorageClass): string[] {
  const name = sc.metadata?.name ?? '';
  const byClass = (v: string): string[] =>
    keys(cache.list(Res.dataVolume, { index: { name: DvClassIndex, value: v } }));
  return [...byClass(name), ...(isDefaultClass(sc) || isDefaultClass(old) ? byClass('') : [])];
}

/** A StorageProfile is its class's: the same DataVolumes. */
export function dvsForStorageProfile(cache: Cache, profile: KubeObject): string[] {
  const name = profile.metadata?.name ?? '';
  const sc = cache.get<StorageClass & KubeObject>(Res.storageClass, name);
  return dvsForStorageClass(cache, sc ?? { metadata: { name }, provisioner: '' });
}

/** The CDIConfig feeds rendering (overhead, preallocation, WFFC): the DataVolumes not finished. */
export function dvsForConfig(cache: Cache): string[] {
  return keys(cache.list(Res.dataVolume, { index: { name: DvActiveIndex, value: Active } }));
}

/** ...and pod creation (resources, proxy, overhead): the imports not finished. */
export function importPvcsForConfig(cache: Cache): string[] {
  return keys(cache.list(Res.pvc, { index: { name: ImportPvcIndex, value: Active } }));
}

/** A pod wakes the PVC that owns it, and, for someone else's pod, the unfinished imports whose claim it mounts. */
export function importPvcsForPod(cache: Cache, pod: Pod): string[] {
  return pvcsForPod(cache, pod, importInFlight);
}

/** The same for uploads (a pod holding the claim keeps the upload server from starting). */
export function uploadPvcsForPod(cache: Cache, pod: Pod): string[] {
  return pvcsForPod(cache, pod, uploadInFlight);
}

function pvcsForPod(cache: Cache, pod: Pod, inFlight: (pvc: Pvc) => boolean): string[] {
  const owner = ownerKey(pod, 'PersistentVolumeClaim');
  const users = isCdiPod(pod)
    ? []
    : podClaims(pod).filter((k) => {
        const i = k.indexOf('/');
        const pvc = cache.get<Pvc>(Res.pvc, k.slice(i + 1), k.slice(0, i));
        return pvc !== undefined && inFlight(pvc);
      });
  return owner ? [owner, ...users] : users;
}

/** An event about a pending import PVC becomes its Bound condition. */
export function importPvcForEvent(cache: Cache, event: KubeObject): string | undefined {
  return pendingPvcForEvent(cache, event, isImportPvc);
}

/** ...and about a pending upload PVC. */
export function uploadPvcForEvent(cache: Cache, event: KubeObject): string | undefined {
  return pendingPvcForEvent(cache, event, isUploadPvc);
}

function pendingPvcForEvent(cache: Cache, event: KubeObject, is: (pvc: Pvc) => boolean): string | undefined {
  const inv = (event as { involvedObject?: { name?: string; namespace?: string } }).involvedObject;
  if (!inv?.name || !inv.namespace) return undefined;
  const pvc = cache.get<Pvc>(Res.pvc, inv.name, inv.namespace);
  return pvc && is(pvc) && pvc.status?.phase === 'Pending' ? keyOf(pvc) : undefined;
}

/**
 * An event about a claim that fills another (a populator's prime or tmp-pvc, a clone's temporary claim): the claim,
 * so that its event is copied to the target it fills (shared/copyevents.ts) while nothing else changes, e.g. a
 * ProvisioningFailed of a claim that stays Pending. Only other components' events reach here (the event cache).
 */
export function claimOfEvent(cache: Cache, event: KubeObject): Pvc | undefined {
  const inv = (event as { involvedObject?: { kind?: string; name?: string; namespace?: string } })
    .involvedObject;
  if (inv?.kind !== 'PersistentVolumeClaim' || !inv.name || !inv.namespace) return undefined;
  return cache.get<Pvc>(Res.pvc, inv.name, inv.namespace);
}

/** An event about a populator's prime or tmp-pvc: the target it fills. */
export function primeTargetOfEvent(cache: Cache, event: KubeObject, kind: string): string | undefined {
  const pvc = claimOfEvent(cache, event);
  return pvc?.metadata?.annotations?.[ApiAnn.PopulatorKind] === kind
    ? ownerKey(pvc, 'PersistentVolumeClaim')
    : undefined;
}

// ---- clones ----

const byIndex = (
  cache: Cache,
  r: typeof Res.pvc | typeof Res.dataVolume,
  name: string,
  value: string,
): string[] => keys(cache.list(r, { index: { name, value } }));

/** A clone's temporary object or pod names the target it works for (upstream AnnOwnerRef). */
const ownerRefKey = (o: KubeObject): string | undefined => o.metadata?.annotations?.[Ann.ownerRef];

/** An event about a clone's temporary claim (its annotation names the DataVolume): that DataVolume. */
export function cloneDvForClaimEvent(cache: Cache, event: KubeObject): string | undefined {
  const pvc = claimOfEvent(cache, event);
  return pvc ? ownerRefKey(pvc) : undefined;
}

/** A PVC wakes its DataVolume, the DataVolume a temporary claim works for, and the clones waiting for it as a source. */
export function cloneDvsForPvc(cache: Cache, pvc: Pvc): string[] {
  const out = [ownerKey(pvc, 'DataVolume'), ownerRefKey(pvc)].filter((k): k is string => k !== undefined);
  return [...out, ...byIndex(cache, Res.dataVolume, DvCloneSourceIndex, keyOf(pvc))];
}

/** Someone's pod that mounts a clone source: the smart clones waiting for it to go (CloneSourceInUse). */
export function cloneDvsForPod(cache: Cache, pod: Pod): string[] {
  if (isCdiPod(pod)) return [];
  return podClaims(pod).flatMap((k) => byIndex(cache, Res.dataVolume, DvCloneSourceIndex, k));
}

/** A volume being moved to its target: the DataVolume of the claim it is bound to. */
export function cloneDvsForPv(cache: Cache, pv: KubeObject): string[] {
  const ref = (pv as { spec?: { claimRef?: { namespace?: string; name?: string } } }).spec?.claimRef;
  if (!ref?.name || !ref.namespace) return [];
  const pvc = cache.get<Pvc>(Res.pvc, ref.name, ref.namespace);
  return pvc
    ? [ownerKey(pvc, 'DataVolume'), ownerRefKey(pvc)].filter((k): k is string => k !== undefined)
    : [];
}

/** A VolumeSnapshot: the DataVolume a temporary one works for, and those cloning from it. */
export function cloneDvsForSnapshot(cache: Cache, snap: KubeObject): string[] {
  const own = ownerRefKey(snap);
  return [
    ...(own ? [own] : []),
    ...byIndex(cache, Res.dataVolume, DvCloneSourceIndex, `snapshot:${keyOf(snap)}`),
  ];
}

/** The upload server wakes its PVC, a source pod its target, someone's pod the clones of the claims it mounts. */
export function hostClonesForPod(cache: Cache, pod: Pod): string[] {
  if (isCdiPod(pod)) {
    const own = ownerRefKey(pod);
    if (own) return [own];
    const owner = ownerKey(pod, 'PersistentVolumeClaim');
    const pvc = owner
      ? cache.get<Pvc>(Res.pvc, owner.slice(owner.indexOf('/') + 1), pod.metadata?.namespace)
      : undefined;
    return pvc && isHostClonePvc(pvc) ? [keyOf(pvc)] : [];
  }
  return podClaims(pod).flatMap((k) => byIndex(cache, Res.pvc, HostCloneSourceIndex, k));
}

/** A clone target PVC itself, and the clones waiting for this PVC as their source. */
export function hostClonesForPvc(cache: Cache, pvc: Pvc): string[] {
  return [
    ...(isHostClonePvc(pvc) ? [keyOf(pvc)] : []),
    ...byIndex(cache, Res.pvc, HostCloneSourceIndex, keyOf(pvc)),
  ];
}

/** A DataVolume holds its claim's clone grant: its change wakes that claim. */
export function hostCloneForDv(cache: Cache, dv: KubeObject): string | undefined {
  const pvc = cache.get<Pvc>(Res.pvc, dv.metadata?.name ?? '', dv.metadata?.namespace);
  return pvc && isHostClonePvc(pvc) ? keyOf(pvc) : undefined;
}

/** A PVC or DataVolume wakes the DataSources that name it (source.pvc names both, as upstream). */
export function dataSourcesForClaim(cache: Cache, o: KubeObject): string[] {
  return keys(cache.list(Res.dataSource, { index: { name: DsPvcIndex, value: keyOf(o) } }));
}

/** A DataSource wakes itself and the DataSources that point to it. */
export function dataSourcesForDataSource(cache: Cache, ds: KubeObject): string[] {
  return [
    keyOf(ds),
    ...keys(cache.list(Res.dataSource, { index: { name: DsDataSourceIndex, value: keyOf(ds) } })),
  ];
}

/** A VolumeSnapshot wakes the DataSources that name it. */
export function dataSourcesForSnapshot(cache: Cache, snap: KubeObject): string[] {
  return keys(cache.list(Res.dataSource, { index: { name: DsSnapshotIndex, value: keyOf(snap) } }));
}

/** A DataSource wakes the DataVolumes in flight whose sourceRef names it. */
export function dvsForDataSource(cache: Cache, ds: KubeObject): string[] {
  return keys(cache.list(Res.dataVolume, { index: { name: DvSourceRefIndex, value: keyOf(ds) } }));
}

/** What a DataImportCron made (its DataVolumes, their PVCs, its snapshots, its DataSource) wakes it, by its label. */
export function cronOf(o: KubeObject): string | undefined {
  const cron = o.metadata?.labels?.[ApiLabel.DataImportCron];
  return cron && o.metadata?.namespace ? `${o.metadata.namespace}/${cron}` : undefined;
}

const cronsByClass = (cache: Cache, sc: string): string[] =>
  keys(cache.list(Res.dataImportCron, { index: { name: CronClassIndex, value: sc } }));

/**
 * A StorageProfile wakes the DataImportCrons importing to its class (those naming it, and when it is the default
 * those naming none): when it appears, and when what the cron reads of it changes (upstream
 * dicRelevantFieldsChanged: the source format, the cron snapshot class; and the snapshot class).
 */
export function cronsForStorageProfile(cache: Cache, sp: KubeObject, old?: KubeObject): string[] {
  const cronReads = (o: KubeObject): unknown[] => {
    const p = o as Partial<StorageProfile>;
    return [
      p.status?.dataImportCronSourceFormat,
      p.status?.snapshotClass,
      o.metadata?.annotations?.[ApiAnn.SnapshotClassForDataImportCron],
      o.metadata?.annotations?.[ApiAnn.UseReadWriteOnceForDataImportCron],
    ];
  };
  if (old && cronReads(old).every((v, i) => v === cronReads(sp)[i])) return [];
  const name = sp.metadata?.name ?? '';
  const sc = cache.get<StorageClass & KubeObject>(Res.storageClass, name);
  return [...cronsByClass(cache, name), ...(isDefaultClass(sc) ? cronsByClass(cache, '') : [])];
}

/** A default class appearing, going or moving wakes the DataImportCrons that name no class (the default decides). */
export function cronsForStorageClass(cache: Cache, sc: StorageClass, old?: StorageClass): string[] {
  const defaults = (c: StorageClass | undefined): unknown[] => [
    c?.metadata?.annotations?.[Ann.defaultStorageClass],
    c?.metadata?.annotations?.[Ann.defaultVirtStorageClass],
  ];
  const moved = old ? defaults(old).some((v, i) => v !== defaults(sc)[i]) : isDefaultClass(sc);
  return moved ? cronsByClass(cache, '') : [];
}

/** A populator source (VolumeImportSource, ...) wakes the PVCs whose dataSourceRef names it. */
export function pvcsForPopulatorSource(cache: Cache, kind: string, source: KubeObject): string[] {
  const value = `cdi.kubevirt.io/${kind}/${source.metadata?.namespace ?? ''}/${source.metadata?.name ?? ''}`;
  return keys(cache.list(Res.pvc, { index: { name: PvcPopulatorSourceIndex, value } }));
}

/** A populated PVC wakes itself; its prime (annotated with the populator kind) wakes the target that owns it. */
export function populatorTargetOf(pvc: Pvc, kind: string): string | undefined {
  const ref = (pvc.spec as { dataSourceRef?: { apiGroup?: string; kind?: string } } | undefined)
    ?.dataSourceRef;
  if (ref?.apiGroup === 'cdi.kubevirt.io' && ref.kind === kind) return keyOf(pvc);
  if (pvc.metadata?.annotations?.[ApiAnn.PopulatorKind] === kind)
    return ownerKey(pvc, 'PersistentVolumeClaim');
  return undefined;
}

/** The clone populator's targets whose VolumeCloneSource names this source (a PersistentVolumeClaim or VolumeSnapshot). */
function cloneTargetsOfSource(
  cache: Cache,
  kind: string,
  sourceKind: string,
  ns: string,
  name: string,
): string[] {
  const out: string[] = [];
  for (const vcs of cache.list<KubeObject & { spec?: { source?: { kind?: string; name?: string } } }>(
    Res.volumeCloneSource,
    { namespace: ns },
  ))
    if (vcs.spec?.source?.kind === sourceKind && vcs.spec.source.name === name)
      out.push(...pvcsForPopulatorSource(cache, kind, vcs));
  return out;
}

/** A clone-populated PVC and its tmp-pvc wake the target; a claim named as a clone source wakes the targets. */
export function clonePopulatorTargetsForPvc(cache: Cache, pvc: Pvc, kind: string): string[] {
  const own = populatorTargetOf(pvc, kind);
  const ns = pvc.metadata?.namespace ?? '';
  const asSource = cloneTargetsOfSource(cache, kind, 'PersistentVolumeClaim', ns, pvc.metadata?.name ?? '');
  return own ? [own, ...asSource] : asSource;
}

/** A pod using a clone source (smart clones wait for it to go) wakes the targets. */
export function clonePopulatorTargetsForPod(cache: Cache, pod: Pod, kind: string): string[] {
  return podClaims(pod).flatMap((k) => {
    const [ns = '', name = ''] = k.split('/');
    return cloneTargetsOfSource(cache, kind, 'PersistentVolumeClaim', ns, name);
  });
}

/**
 * A snapshot named as a clone source, or a clone's tmp-snapshot (labelled with its target's uid; owned by it when made
 * before the populator's finalizer), wakes the targets.
 */
export function clonePopulatorTargetsForSnapshot(cache: Cache, snap: KubeObject, kind: string): string[] {
  const ns = snap.metadata?.namespace ?? '';
  const uid = snap.metadata?.labels?.[LabelOwnedByUID];
  const labelled = uid
    ? cache.list<Pvc>(Res.pvc, { namespace: ns }).find((p) => p.metadata?.uid === uid)
    : undefined;
  const owner = labelled ? keyOf(labelled) : ownerKey(snap, 'PersistentVolumeClaim');
  const asSource = cloneTargetsOfSource(cache, kind, 'VolumeSnapshot', ns, snap.metadata?.name ?? '');
  return owner ? [owner, ...asSource] : asSource;
}
