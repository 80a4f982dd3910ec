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
import { Ann } from './shared/constants.ts';
import {
  Active,
  DsDataSourceIndex,
  DsPvcIndex,
  DsSnapshotIndex,
  DvActiveIndex,
  DvSourceRefIndex,
  DvClassIndex,
  ImportPvcIndex,
  PvcPopulatorSourceIndex,
  importInFlight,
  isCdiPod,
  isImportPvc,
} from './shared/indexes.ts';
import type { StorageClass } from './shared/types.ts';

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
  const owner = ownerKey(pod, 'PersistentVolumeClaim');
  const users = isCdiPod(pod)
    ? []
    : podClaims(pod).filter((k) => {
        const i = k.indexOf('/');
        const pvc = cache.get<Pvc>(Res.pvc, k.slice(i + 1), k.slice(0, i));
        return pvc !== undefined && importInFlight(pvc);
      });
  return owner ? [owner, ...users] : users;
}

/** An event about a pending import PVC becomes its Bound condition. */
export function importPvcForEvent(cache: Cache, event: KubeObject): string | undefined {
  const inv = (event as { involvedObject?: { name?: string; namespace?: string } }).involvedObject;
  if (!inv?.name || !inv.namespace) return undefined;
  const pvc = cache.get<Pvc>(Res.pvc, inv.name, inv.namespace);
  return pvc && isImportPvc(pvc) && pvc.status?.phase === 'Pending' ? keyOf(pvc) : undefined;
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

/** What a DataImportCron made (its DataVolumes, their PVCs, its DataSource) wakes it, by its label. */
export function cronOf(o: KubeObject): string | undefined {
  const cron = o.metadata?.labels?.['cdi.kubevirt.io/dataImportCron'];
  return cron && o.metadata?.namespace ? `${o.metadata.namespace}/${cron}` : undefined;
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
  if (pvc.metadata?.annotations?.['cdi.kubevirt.io/storage.populator.kind'] === kind)
    return ownerKey(pvc, 'PersistentVolumeClaim');
  return undefined;
}
