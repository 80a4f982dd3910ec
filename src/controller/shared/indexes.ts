// The cache's indexes and trims for CDI's controllers: which objects a change affects, found without a scan, and the
// parts of other people's objects we never read dropped before they are cached (memory at scale).
import {
  ControllerUidIndex,
  controllerUid,
  InvolvedUidIndex,
  involvedUid,
  PodClaimIndex,
  podClaims,
  type Cache,
  type KubeObject,
  type Pod,
  type PersistentVolumeClaim as Pvc,
} from '../../kube/index.ts';
import { Ann, Finalizer, Label, Phase } from './constants.ts';
import { Res } from './client.ts';
import type { DataImportCron, DataSource, DataSourceSource, DataVolume } from './types.ts';
import { isMultiStageInProgress } from './checkpoints.ts';

export { ControllerUidIndex, InvolvedUidIndex, PodClaimIndex };

/** DataVolumes still in flight by the storage class they ask for ("" = the default class). */
export const DvClassIndex = 'dv-storage-class';
/** DataVolumes still in flight (not Succeeded or Failed), under the single value "active". */
export const DvActiveIndex = 'dv-active';
/** PVCs with an import that has not finished (no pod phase Succeeded, no fatal error), under "active". */
export const ImportPvcIndex = 'import-pvc-active';
/** PVCs with an upload that has not finished (no pod phase Succeeded), under "active". */
export const UploadPvcIndex = 'upload-pvc-active';
export const Active = 'active';
/** DataVolumes in flight by what they clone from: `<ns>/<pvc>` or `snapshot:<ns>/<snapshot>`. */
export const DvCloneSourceIndex = 'dv-clone-source';
/** Host-assisted clone PVCs in flight by their source `<ns>/<pvc>` (the k8s.io/CloneRequest value). */
export const HostCloneSourceIndex = 'host-clone-source';
/** DataSources by the "ns/name" of the PVC (and DataVolume), snapshot or DataSource their spec.source names. */
export const DsPvcIndex = 'datasource-pvc';
export const DsSnapshotIndex = 'datasource-snapshot';
export const DsDataSourceIndex = 'datasource-datasource';
/** DataImportCrons by the storage class their template names ("" = the default class). */
export const CronClassIndex = 'dataimportcron-storage-class';
/** "ns/name" of what a source names (namespace defaulted to the DataSource's), for the cache's indexes. */
export function sourceKeys(ds: { metadata?: { namespace?: string }; spec?: { source?: DataSourceSource } }): {
  pvc?: string;
  snapshot?: string;
  dataSource?: string;
} {
  const own = ds.metadata?.namespace ?? '';
  const s = ds.spec?.source ?? {};
  const key = (r: { namespace?: string; name: string } | undefined): string | undefined =>
    r ? `${r.namespace || own}/${r.name}` : undefined;
  const pvc = key(s.pvc);
  const snapshot = key(s.snapshot);
  const dataSource = key(s.dataSource);
  return {
    ...(pvc ? { pvc } : {}),
    ...(snapshot ? { snapshot } : {}),
    ...(dataSource ? { dataSource } : {}),
  };
}

/** PVCs by the "<group>/<kind>/<ns>/<name>" of the CDI populator source their spec.dataSourceRef names. */
export const PvcPopulatorSourceIndex = 'pvc-populator-source';

export function populatorSourceKey(pvc: Pvc): string | undefined {
  const r = (
    pvc.spec as { dataSourceRef?: { apiGroup?: string; kind?: string; name?: string; namespace?: string } }
  )?.dataSourceRef;
  if (!r?.kind || !r.name || r.apiGroup !== 'cdi.kubevirt.io') return undefined;
  return `${r.apiGroup}/${r.kind}/${r.namespace || pvc.metadata?.namespace || ''}/${r.name}`;
}

/** DataVolumes in flight by the "ns/name" of the DataSource their sourceRef names. */
export const DvSourceRefIndex = 'dv-sourceref';

/** "ns/name" of the DataSource a DataVolume's sourceRef names (its namespace defaults to the DataVolume's). */
export function dvSourceRefKey(dv: DataVolume): string | undefined {
  const ref = dv.spec?.sourceRef;
  if (!ref || ref.kind !== 'DataSource' || !ref.name) return undefined;
  return `${ref.namespace || dv.metadata?.namespace || ''}/${ref.name}`;
}

const finished = (dv: DataVolume): boolean =>
  dv.status?.phase === Phase.Succeeded || dv.status?.phase === Phase.Failed;

export function dvRequestedClass(dv: DataVolume): string {
  return dv.spec?.storage?.storageClassName ?? dv.spec?.pvc?.storageClassName ?? '';
}

/** `<ns>/<name>` a DataVolume clones from (snapshots prefixed `snapshot:`), or undefined for other sources. */
export function cloneSourceKey(dv: DataVolume): string | undefined {
  const s = dv.spec?.source;
  const ns = dv.metadata?.namespace ?? '';
  if (s?.pvc) return `${s.pvc.namespace || ns}/${s.pvc.name}`;
  if (s?.snapshot) return `snapshot:${s.snapshot.namespace || ns}/${s.snapshot.name}`;
  return undefined;
}

export function isHostClonePvc(pvc: Pvc): boolean {
  return Ann.cloneRequest in (pvc.metadata?.annotations ?? {});
}

/** A host-assisted clone target not finished (or not cleaned up) yet. */
export function hostCloneInFlight(pvc: Pvc): boolean {
  const a = pvc.metadata?.annotations ?? {};
  return (
    Ann.cloneRequest in a &&
    (a[Ann.cloneOf] !== 'true' || (pvc.metadata?.finalizers ?? []).includes(Finalizer.cloneSource))
  );
}

export function isImportPvc(pvc: Pvc): boolean {
  const a = pvc.metadata?.annotations ?? {};
  return Ann.endpoint in a || Ann.source in a;
}

export function importInFlight(pvc: Pvc): boolean {
  const a = pvc.metadata?.annotations ?? {};
  return (
    isImportPvc(pvc) &&
    (a[Ann.podPhase] !== 'Succeeded' || isMultiStageInProgress(a)) &&
    a[Ann.fatalError] !== 'true'
  );
}

/** A PVC the upload controller serves: annotated cdi.kubevirt.io/storage.upload.target. */
export function isUploadPvc(pvc: Pvc): boolean {
  return Ann.uploadRequest in (pvc.metadata?.annotations ?? {});
}

export function uploadInFlight(pvc: Pvc): boolean {
  return isUploadPvc(pvc) && pvc.metadata?.annotations?.[Ann.podPhase] !== 'Succeeded';
}

/** A pod CDI made (importer, and later upload and clone workers): kept whole in the cache. */
export function isCdiPod(p: Pod): boolean {
  return p.metadata?.labels?.[Label.app] === Label.appValue;
}

/** What a trimmed object keeps of its metadata in any case. */
function identity(m: NonNullable<KubeObject['metadata']>): NonNullable<KubeObject['metadata']> {
  return {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
  };
}

/**
 * Other pods are cached only for "who mounts this claim" and "is it still running": metadata without annotations, the
 * PVC volumes and the phase. Their containers, env and status details (most of a pod's size) are dropped.
 */
export function trimPod(o: KubeObject): KubeObject {
  const p = o as Pod;
  if (isCdiPod(p)) return o;
  const m = p.metadata ?? {};
  const trimmed: Pod = {
    apiVersion: p.apiVersion,
    kind: p.kind,
    metadata: {
      ...identity(m),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: {
      containers: [],
      volumes: (p.spec?.volumes ?? [])
        .filter((v) => v.persistentVolumeClaim)
        .map((v) => ({ name: v.name, persistentVolumeClaim: v.persistentVolumeClaim })),
      ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    },
    status: { ...(p.status?.phase ? { phase: p.status.phase } : {}) },
  };
  return trimmed;
}

/** Services are cached for "does the upload Service exist, and whose is it": metadata only. */
export function trimService(o: KubeObject): KubeObject {
  const m = o.metadata ?? {};
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: {
      ...identity(m),
      ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
  };
}

/** Events about PVCs: only what the Bound condition reads. */
export function trimEvent(o: KubeObject): KubeObject {
  const e = o as KubeObject & {
    involvedObject?: { kind?: string; name?: string; namespace?: string; uid?: string };
    reason?: string;
    message?: string;
    type?: string;
    lastTimestamp?: string;
    eventTime?: string;
    firstTimestamp?: string;
    count?: number;
  };
  const m = e.metadata ?? {};
  return {
    apiVersion: e.apiVersion,
    kind: e.kind,
    metadata: identity(m),
    involvedObject: {
      kind: e.involvedObject?.kind,
      name: e.involvedObject?.name,
      namespace: e.involvedObject?.namespace,
      uid: e.involvedObject?.uid,
    },
    reason: e.reason,
    message: e.message,
    type: e.type,
    ...(e.lastTimestamp ? { lastTimestamp: e.lastTimestamp } : {}),
    ...(e.eventTime ? { eventTime: e.eventTime } : {}),
    ...(e.firstTimestamp ? { firstTimestamp: e.firstTimestamp } : {}),
    ...(e.count !== undefined ? { count: e.count } : {}),
  } as KubeObject;
}

/** The events the Bound condition reads: about PVCs, not our own (the PV controller's and the provisioner's). */
export const PvcEventsSelector = (ownComponent: string): string =>
  `involvedObject.kind=PersistentVolumeClaim,source!=${ownComponent}`;

/** Registers the informers and indexes every CDI controller reads from. */
export function registerCdiCache(cache: Cache, ownComponent: string): void {
  cache.informer(Res.dataVolume);
  cache.informer(Res.pvc);
  cache.informer(Res.pod, { transform: trimPod });
  cache.informer(Res.storageClass);
  cache.informer(Res.storageProfile);
  cache.informer(Res.cdiConfig);
  cache.informer(Res.dataSource);
  cache.informer(Res.dataImportCron);
  cache.informer(Res.volumeImportSource);
  cache.informer(Res.volumeUploadSource);
  cache.informer(Res.volumeCloneSource);
  cache.informer(Res.pv); // the StorageProfile controller's claim property sets of no-provisioner classes
  cache.informer(Res.service, { transform: trimService }); // the upload controller's Services
  cache.informer(Res.event, { fieldSelector: PvcEventsSelector(ownComponent), transform: trimEvent });

  cache.addIndex(Res.pod, ControllerUidIndex, controllerUid);
  cache.addIndex(Res.pod, PodClaimIndex, podClaims);
  cache.addIndex(Res.pvc, ControllerUidIndex, controllerUid);
  cache.addIndex<Pvc>(Res.pvc, PvcPopulatorSourceIndex, (p) => {
    const k = populatorSourceKey(p);
    return k ? [k] : [];
  });
  cache.addIndex<Pvc>(Res.pvc, ImportPvcIndex, (p) => (importInFlight(p) ? [Active] : []));
  cache.addIndex<Pvc>(Res.pvc, UploadPvcIndex, (p) => (uploadInFlight(p) ? [Active] : []));
  cache.addIndex(Res.event, InvolvedUidIndex, involvedUid);
  cache.addIndex<DataVolume>(Res.dataVolume, DvClassIndex, (dv) =>
    finished(dv) ? [] : [dvRequestedClass(dv)],
  );
  cache.addIndex<DataVolume>(Res.dataVolume, DvActiveIndex, (dv) => (finished(dv) ? [] : [Active]));
  cache.addIndex<DataVolume>(Res.dataVolume, DvCloneSourceIndex, (dv) => {
    const k = finished(dv) ? undefined : cloneSourceKey(dv);
    return k ? [k] : [];
  });
  cache.addIndex<Pvc>(Res.pvc, HostCloneSourceIndex, (p) =>
    hostCloneInFlight(p) ? [p.metadata?.annotations?.[Ann.cloneRequest] ?? ''] : [],
  );
  cache.addIndex<DataVolume>(Res.dataVolume, DvSourceRefIndex, (dv) => {
    const k = dvSourceRefKey(dv);
    return k && !finished(dv) ? [k] : [];
  });
  const byKey = (k: string | undefined): string[] => (k ? [k] : []);
  cache.addIndex<DataSource & KubeObject>(Res.dataSource, DsPvcIndex, (ds) => byKey(sourceKeys(ds).pvc));
  cache.addIndex<DataSource & KubeObject>(Res.dataSource, DsSnapshotIndex, (ds) =>
    byKey(sourceKeys(ds).snapshot),
  );
  cache.addIndex<DataSource & KubeObject>(Res.dataSource, DsDataSourceIndex, (ds) =>
    byKey(sourceKeys(ds).dataSource),
  );
  cache.addIndex<DataImportCron & KubeObject>(Res.dataImportCron, CronClassIndex, (c) => {
    const spec = c.spec?.template?.spec;
    return [(spec?.storage ?? spec?.pvc)?.storageClassName ?? ''];
  });
}
