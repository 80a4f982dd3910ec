// The DataImportCron controller (upstream pkg/controller/dataimportcron-controller.go, registry URL and PVC-less
// flow): keeps a golden image current. The poller (poller.ts, a CronJob in CDI's namespace) annotates the cron with
// the digest it found; a new digest makes a DataVolume `<managedDataSource>-<first 12 digest hex>` labelled
// `cdi.kubevirt.io/dataImportCron: <cron>` from spec.template, importing `<url without tag>@<digest>`; when it
// Succeeded, status.lastImportedPVC names it, the DataSource `managedDataSource` (created if missing, labelled with the
// cron) points to it, and garbage collection (garbageCollect Outdated, the default) keeps the newest importsToKeep
// (default 3) imports by their lastUseTime. Conditions Progressing and UpToDate with upstream's reasons, and the
// kubevirt_cdi_dataimportcron_outdated gauge. The cron has no status subresource (as upstream's CRD): the whole object
// is PUT with the resourceVersion read, so a write from a stale copy is refused and recomputed.
// The format (upstream getSourceFormat) is the StorageProfile's status.dataImportCronSourceFormat of the class the
// imports go to (the template's, else the default): with `snapshot`, a succeeded import is snapshotted under the same
// name, the DataVolume and PVC are deleted once the snapshot is readyToUse, and the DataSource names the snapshot.
// The class is recorded in the storage.import.storageClass annotation; when it changes (the default moved) the
// newest import on the old class is deleted and imported again on the new one (upstream handleStorageClassChange).
// Nothing polls: the cron's own changes (the poller's annotation), its DataVolumes, PVCs and VolumeSnapshots, its
// DataSource, its class's StorageProfile and a move of the default class wake it. Except for the sources the
// controller polls itself (upstream pollSourceDigest, poller.ts): `pvc` (the digest is the source PVC's uid) and
// registry `pullMethod: node` (a pod pulls the image on a node, every 3 s until its container status names the
// digest); they are polled when the storage.import.nextCronTime annotation is due, and requeued for the next one.
import { isDeepStrictEqual } from 'node:util';
import { resourceName } from '../../api/naming.ts';
import {
  kubeTime,
  setCondition,
  type KubeObject,
  type PersistentVolumeClaim as Pvc,
  type Pod as PodObj,
} from '../../kube/index.ts';
import { Ann as ApiAnn } from '../../api/constants.ts';
import type { ControllerMetrics } from '../../monitoring/metrics.ts';
import { Ann, ContentType, GroupVersion, Label, ManagedLabels, Phase } from '../shared/constants.ts';
import { isAlreadyExists, listOrNone, Res, type Kube, type Resource } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import { parseQuantity } from '../shared/quantity.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import { storageClassByName } from '../shared/storage.ts';
import { nextScheduleTime } from '../../api/schedule.ts';
import { canClone, CloneSourceKind, serviceAccountSubject, type AccessReview } from '../../token/clone.ts';
import type {
  CDIConfig,
  DataImportCron,
  DataSource,
  DataSourceSource,
  DataVolume,
  StorageClass,
  StorageProfile,
  VolumeSnapshot,
} from '../shared/types.ts';
import { copyAllowedLabels } from '../datasource/controller.ts';
import {
  CronLabel,
  containerImageDigest,
  cronJobDrift,
  desiredCronJob,
  desiredPollerPod,
  initialJob,
  isControllerPolledSource,
  isNodePull,
  isPvcSource,
  isUrlSource,
  pollerLabels,
  pollerPodName,
  pvcDigest,
  type CronJob,
  type PollerOptions,
} from './poller.ts';

export const CronAnn = {
  desiredDigest: ApiAnn.SourceDesiredDigest,
  lastCronTime: ApiAnn.LastCronTime,
  nextCronTime: ApiAnn.NextCronTime,
  lastUseTime: ApiAnn.LastUseTime,
  storageClass: ApiAnn.ImportStorageClass,
  sourceVolumeMode: ApiAnn.SourceVolumeMode,
  advisedRestoreSize: ApiAnn.AdvisedRestoreSize,
} as const;

export type SourceFormat = 'pvc' | 'snapshot';

export const CronReason = {
  noDigest: 'NoDigest',
  noImport: 'NoImport',
  outdated: 'Outdated',
  scheduled: 'ImportScheduled',
  inProgress: 'ImportProgressing',
  upToDate: 'UpToDate',
  alreadyManaged: 'ErrDataSourceAlreadyManaged',
  notAuthorized: 'NotAuthorized',
} as const;

/** upstream pollSourceDigest: a node-pull poller pod not done yet is looked at again after this. */
export const NodePullPollMs = 3000;
/** Longer waits are cut to this (a timer holds at most ~24.8 days); the wake-up early just waits again. */
const MaxRequeueMs = 24 * 3_600_000;

export const Progressing = 'Progressing';
export const UpToDate = 'UpToDate';
const DefaultImportsToKeep = 3;

export interface CronDeps {
  kube: Kube;
  log: Logger;
  recorder: Recorder;
  poller: PollerOptions;
  metrics?: ControllerMetrics;
  now?: () => Date;
}

/** upstream createDvName: the DataSource's name and the first 12 characters after `sha256:` (or `uid:`). */
export function importName(managedDataSource: string, digest: string): string | undefined {
  const prefix = digest.startsWith('sha256:') ? 'sha256:' : digest.startsWith('uid:') ? 'uid:' : undefined;
  if (!prefix || digest.length < prefix.length + 12) return undefined;
  return resourceName(managedDataSource, digest.slice(prefix.length, prefix.length + 12));
}

/**
 * The class the imports go to (upstream GetStorageClassByNameWithVirtFallback): the template's, else the default
 * (the default virt class first, unless the content is an archive). Undefined when there is none.
 */
export function cronStorageClass(
  cron: Pick<DataImportCron, 'spec'>,
  classes: StorageClass[],
): StorageClass | undefined {
  const spec = cron.spec.template.spec;
  const named = (spec?.storage ?? spec?.pvc)?.storageClassName ?? undefined;
  const content = spec?.contentType === ContentType.archive ? ContentType.archive : ContentType.kubevirt;
  return storageClassByName(classes, named, content);
}

/** upstream getSourceFormat: what the class's StorageProfile says; pvc without a class or a verdict. */
export function sourceFormatOf(profile: StorageProfile | undefined): SourceFormat {
  return profile?.status?.dataImportCronSourceFormat === 'snapshot' ? 'snapshot' : 'pvc';
}

/** upstream populateDataSource: the last import, as a PVC or as the snapshot of the same name. */
export function dataSourceSource(
  format: SourceFormat,
  last: { namespace: string; name: string } | undefined,
): DataSourceSource | undefined {
  if (!last) return undefined;
  return format === 'snapshot'
    ? { snapshot: { namespace: last.namespace, name: last.name } }
    : { pvc: { namespace: last.namespace, name: last.name } };
}

/**
 * upstream newSourceDataVolume: a profile annotated `cdi.kubevirt.io/useReadWriteOnceForDataImportCron: "true"` makes
 * the cron's imports ReadWriteOnce, where the template's `storage` names no access modes (a `pvc` template, or one
 * that names them, is left as written).
 */
export function applyReadWriteOnceDefault(
  spec: NonNullable<DataVolume['spec']>,
  profile: StorageProfile | undefined,
): void {
  if (profile?.metadata.annotations?.[ApiAnn.UseReadWriteOnceForDataImportCron] !== 'true') return;
  if (spec.storage && !spec.storage.accessModes?.length) spec.storage.accessModes = ['ReadWriteOnce'];
}

/** upstream getSnapshotClassForDataImportCron: the profile's snapshotClassForDataImportCron, else its snapshot class. */
export function cronSnapshotClass(profile: StorageProfile | undefined): string | undefined {
  return (
    profile?.metadata.annotations?.[ApiAnn.SnapshotClassForDataImportCron] || profile?.status?.snapshotClass
  );
}

const bytes = (q: string | number | undefined): bigint | undefined => {
  if (q === undefined || q === '') return undefined;
  try {
    return parseQuantity(String(q));
  } catch {
    return undefined;
  }
};

/**
 * upstream inferAdvisedRestoreSizeForSnapshot: the template's requested size, or `fallback` (the PVC's) when it asks
 * none, or the snapshot's restoreSize when that is larger. Undefined rather than upstream's "0" when nothing is known.
 */
export function advisedRestoreSize(
  cron: Pick<DataImportCron, 'spec'>,
  restoreSize: string | number | undefined,
  fallback?: string,
): string | undefined {
  const spec = cron.spec.template.spec;
  const asked = (spec?.storage ?? spec?.pvc)?.resources?.requests?.['storage'];
  const askedBytes = bytes(asked) ?? 0n;
  if (askedBytes === 0n && fallback) return fallback;
  const restore = bytes(restoreSize);
  if (restore !== undefined && askedBytes < restore) return String(restoreSize);
  return askedBytes > 0n ? String(asked) : undefined;
}

/**
 * upstream inferVolumeModeForSnapshot, for a snapshot made before it was annotated: the template's volume mode, else
 * what rendering would pick from the profile (its first claim property set offering the template's access modes).
 */
export function inferredVolumeMode(
  cron: Pick<DataImportCron, 'spec'>,
  profile: StorageProfile | undefined,
): string | undefined {
  const spec = cron.spec.template.spec;
  const storage = spec?.storage ?? spec?.pvc;
  if (storage?.volumeMode) return storage.volumeMode;
  const modes = storage?.accessModes ?? [];
  return profile?.status?.claimPropertySets?.find((s) =>
    modes.every((m) => s.accessModes?.includes(m as never)),
  )?.volumeMode;
}

/**
 * upstream handleSnapshot's desired VolumeSnapshot of an import's PVC: the same name, CDI's labels and the cron's,
 * the PVC's allowed labels, lastUseTime, advisedRestoreSize and the source's volume mode, the cron snapshot class.
 */
export function desiredSnapshot(
  cron: DataImportCron,
  pvc: Pvc,
  profile: StorageProfile | undefined,
  now: Date,
): VolumeSnapshot {
  const name = pvc.metadata?.name ?? '';
  const labels = cronLabels(cron, { [Label.app]: Label.appValue, [Label.component]: '' });
  for (const [k, v] of Object.entries(copyAllowedLabels(pvc.metadata?.labels, {}))) labels[k] ??= v;
  const annotations: Record<string, string> = { [CronAnn.lastUseTime]: now.toISOString() };
  const requested = pvc.spec?.resources?.requests?.['storage'];
  const size = advisedRestoreSize(cron, undefined, requested === undefined ? undefined : String(requested));
  if (size) annotations[CronAnn.advisedRestoreSize] = size;
  if (pvc.spec?.volumeMode) annotations[CronAnn.sourceVolumeMode] = pvc.spec.volumeMode;
  const snapshotClass = cronSnapshotClass(profile);
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: { name, namespace: cron.metadata.namespace ?? '', labels, annotations },
    spec: {
      source: { persistentVolumeClaimName: name },
      ...(snapshotClass ? { volumeSnapshotClassName: snapshotClass } : {}),
    },
  };
}

/** upstream untagDigestedDockerURL: `docker://host/repo:tag` + `@digest` → `docker://host/repo@digest`. */
export function digestedUrl(url: string, digest: string): string {
  const m = /^([a-z-]+:\/\/)?(.*)$/.exec(url.split('@')[0]!)!;
  const scheme = m[1] ?? '';
  let rest = m[2] ?? '';
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  // a colon after the last slash starts a tag (a bare host:port names no image)
  if (colon > slash) rest = rest.slice(0, colon);
  return `${scheme}${rest}@${digest}`;
}

const cronLabels = (cron: DataImportCron, into: Record<string, string>): Record<string, string> => {
  Object.assign(into, ManagedLabels);
  copyAllowedLabels(cron.metadata.labels, into);
  into[CronLabel.cron] = cron.metadata.name ?? '';
  if (cron.spec.retentionPolicy === 'None') into[CronLabel.cleanup] = 'true';
  return into;
};

const involved = (cron: DataImportCron): KubeObject => ({
  ...cron,
  apiVersion: GroupVersion,
  kind: 'DataImportCron',
});

export async function reconcileDataImportCron(d: CronDeps, key: string): Promise<Result | void> {
  const { namespace = '', name } = splitKey(key);
  const cron = await d.kube.get<DataImportCron>(Res.dataImportCron, name, namespace);
  if (!cron || cron.metadata.deletionTimestamp) return cleanup(d, namespace, name);
  const now = d.now?.() ?? new Date();

  // A DataSource another cron manages is left alone (upstream shouldReconcileCron).
  const ds = await d.kube.get<DataSource>(Res.dataSource, cron.spec.managedDataSource, namespace);
  const owner = ds?.metadata.labels?.[CronLabel.cron];
  if (owner && owner !== name) {
    const other = await d.kube.get<DataImportCron>(Res.dataImportCron, owner, namespace);
    if (other?.spec.managedDataSource === cron.spec.managedDataSource) {
      await d.recorder.record(
        involved(cron),
        'Warning',
        CronReason.alreadyManaged,
        `DataSource ${cron.spec.managedDataSource} is already managed by DataImportCron ${owner}`,
      );
      return;
    }
  }

  const polled = isControllerPolledSource(cron);
  if (cron.spec.schedule && !polled && isUrlSource(cron)) await ensurePoller(d, cron);

  const next: DataImportCron = structuredClone(cron);
  const status = (next.status ??= {});
  const cond = (type: string, s: boolean, message: string, reason: string): void => {
    status.conditions = setCondition(
      status.conditions,
      { type, status: s ? 'True' : 'False', message, reason },
      now,
      { heartbeat: true },
    );
  };
  let imports = status.currentImports ?? [];
  const current = imports[0]?.DataVolumeName;
  const [dv, pvc, snapshot] = current
    ? await Promise.all([
        d.kube.get<DataVolume>(Res.dataVolume, current, namespace),
        d.kube.get<Pvc>(Res.pvc, current, namespace),
        d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, current, namespace),
      ])
    : [undefined, undefined, undefined];

  const sc = cronStorageClass(cron, (await d.kube.list<StorageClass>(Res.storageClass)).items);
  const profile = sc
    ? await d.kube.get<StorageProfile>(Res.storageProfile, sc.metadata.name ?? '')
    : undefined;
  if (sc && !profile) {
    // the storageprofile-controller makes one per class; its creation wakes the cron
    d.log.info('waiting for the StorageProfile of the import class', { cron: key, class: sc.metadata.name });
    return;
  }
  if (sc) {
    const desiredClass = sc.metadata.name ?? '';
    if (await deleteOutdatedPendingPvc(d, cron, pvc, desiredClass)) return;
    const recorded = cron.metadata.annotations?.[CronAnn.storageClass];
    if (recorded !== undefined && recorded !== desiredClass)
      return handleStorageClassChange(d, next, recorded, desiredClass);
    (next.metadata.annotations ??= {})[CronAnn.storageClass] = desiredClass;
  }
  const format = sourceFormatOf(profile);

  let succeeded = false;
  if (dv) {
    const phase = dv.status?.phase ?? '';
    if (phase === Phase.Succeeded) succeeded = true;
    else if (phase === Phase.ImportScheduled)
      cond(Progressing, false, 'Import is scheduled', CronReason.scheduled);
    else if (phase === Phase.ImportInProgress)
      cond(Progressing, true, 'Import is progressing', CronReason.inProgress);
    else cond(Progressing, false, `Import DataVolume phase ${phase}`, phase);
  } else if (pvc && pvc.status?.phase === 'Bound') succeeded = true;
  else if (snapshot) {
    if (format === 'pvc') {
      // the profile went back to pvc: the snapshot goes, and its deletion wakes the cron to import again
      d.log.info('deleting a snapshot import: the source format is pvc now', {
        cron: key,
        snapshot: current,
      });
      await d.kube.delete(Res.volumeSnapshot, current!, namespace, snapshot.metadata.uid);
      return;
    }
    if (await snapshotClassChanged(d, snapshot, profile)) return;
    await touchSnapshot(d, next, snapshot, ds, profile, now);
    succeeded = true;
  } else {
    if (imports.length > 0) imports = status.currentImports = imports.slice(1);
    cond(Progressing, false, 'No current import', CronReason.noImport);
  }

  if (succeeded) {
    if (pvc) {
      await touchSource(d, cron, Res.pvc, pvc, now);
      if (format === 'snapshot' && sc) await snapshotImport(d, next, pvc, sc, profile, now);
    }
    const last = { namespace, name: current! };
    if (!isDeepStrictEqual(status.lastImportedPVC, last)) {
      status.lastImportedPVC = last;
      status.lastImportTimestamp = kubeTime(now);
    }
    cond(Progressing, false, 'No current import', CronReason.noImport);
    await garbageCollect(d, next);
  }

  await updateDataSource(d, next, ds, format);

  // upstream: the sources the controller polls itself, when the schedule is due (a disabled schedule never polls)
  const result = polled && cron.spec.schedule ? await pollSourceDigest(d, next, now) : undefined;

  const desired = next.metadata.annotations?.[CronAnn.desiredDigest] ?? '';
  const digestUpdated = desired !== '' && (imports.length === 0 || desired !== imports[0]?.Digest);
  if (digestUpdated) {
    cond(UpToDate, false, 'Source digest updated since last import', CronReason.outdated);
    if (dv && (await deleteErroneous(d, dv))) status.currentImports = imports = [];
    if (succeeded || imports.length === 0)
      await createImport(d, next, desired, profile, now, () =>
        cond(Progressing, false, 'Not authorized to create DataVolume', CronReason.notAuthorized),
      );
  } else if (succeeded) {
    status.sourceFormat = format;
    // upstream updateDataImportCronSuccessCondition: a snapshot import is up to date once the snapshot is ready
    if (format === 'pvc' || snapshot?.status?.readyToUse)
      cond(UpToDate, true, 'Latest import is up to date', CronReason.upToDate);
    else if (snapshot)
      cond(UpToDate, false, 'Snapshot of imported data is progressing', CronReason.inProgress);
  } else if (imports.length > 0) cond(UpToDate, false, 'Import is progressing', CronReason.inProgress);
  else cond(UpToDate, false, 'No source digest', CronReason.noDigest);

  const lastCron = next.metadata.annotations?.[CronAnn.lastCronTime];
  if (lastCron) status.lastExecutionTimestamp = lastCron;

  const upToDate = status.conditions?.find((c) => c.type === UpToDate)?.status === 'True';
  const storage = cron.spec.template.spec?.storage ?? cron.spec.template.spec?.pvc;
  d.metrics?.setDataImportCronOutdated(
    namespace,
    name,
    !upToDate,
    !upToDate && !next.metadata.annotations?.[CronAnn.storageClass] && !storage?.storageClassName,
  );

  if (!isDeepStrictEqual(next, cron)) await d.kube.update(Res.dataImportCron, next);
  return result;
}

/**
 * upstream pollSourceDigest: when storage.import.nextCronTime is due (or unset: a new cron polls at once), the
 * digest of a pvc or node-pull source is read into storage.import.sourceDesiredDigest and lastCronTime, and the
 * next firing of the schedule recorded and waited for. A node-pull pod still pulling is looked at again in 3 s.
 * Upstream recomputes nextCronTime at every reconcile before it is due; here a due time in the future is kept (so a
 * second reconcile writes nothing, also for `@every`), and waited for.
 */
async function pollSourceDigest(d: CronDeps, cron: DataImportCron, now: Date): Promise<Result | undefined> {
  const anns = (cron.metadata.annotations ??= {});
  const at = anns[CronAnn.nextCronTime];
  const due = at ? Date.parse(at) : now.getTime();
  if (Number.isNaN(due)) throw new Error(`annotation ${CronAnn.nextCronTime} is not an RFC 3339 time: ${at}`);
  if (due > now.getTime()) return { requeueAfterMs: Math.min(due - now.getTime(), MaxRequeueMs) };
  if (isPvcSource(cron)) await updatePvcDesiredDigest(d, cron, now);
  else if (isNodePull(cron) && !(await updateContainerImageDesiredDigest(d, cron, now)))
    return { requeueAfterMs: NodePullPollMs };
  const next = nextScheduleTime(cron.spec.schedule, now);
  if (!next) {
    delete anns[CronAnn.nextCronTime];
    return undefined;
  }
  anns[CronAnn.nextCronTime] = kubeTime(next);
  return { requeueAfterMs: Math.min(Math.max(next.getTime() - now.getTime(), 1000), MaxRequeueMs) };
}

/** upstream updatePvcDesiredDigest: the digest of a pvc source is `uid:<the PVC's uid>`. */
async function updatePvcDesiredDigest(d: CronDeps, cron: DataImportCron, now: Date): Promise<void> {
  const src = cron.spec.template.spec?.source?.pvc;
  if (!src) return;
  const ns = src.namespace || (cron.metadata.namespace ?? '');
  const pvc = await d.kube.get<Pvc>(Res.pvc, src.name, ns);
  // upstream returns the lookup's error: the cron is retried with back-off until the PVC exists
  if (!pvc)
    throw new Error(
      `the source PVC ${ns}/${src.name} of DataImportCron ${cron.metadata.namespace}/${cron.metadata.name} does not exist`,
    );
  setDigest(d, cron, pvcDigest(pvc.metadata?.uid), now);
}

const setDigest = (d: CronDeps, cron: DataImportCron, digest: string | undefined, now: Date): void => {
  const anns = (cron.metadata.annotations ??= {});
  anns[CronAnn.lastCronTime] = kubeTime(now);
  if (digest && anns[CronAnn.desiredDigest] !== digest) {
    d.log.info('updating the desired digest', { cron: cron.metadata.name, digest });
    anns[CronAnn.desiredDigest] = digest;
  }
};

/**
 * upstream updateContainerImageDesiredDigest: the pod poller-<cron>-<uid8> runs the image on a node; once its
 * container terminated, the digest in its imageID becomes the desired one and the pod is deleted (true). Until then
 * false (created now, or still pulling); a pull the kubelet gave up on is an error (retried with back-off, the pod
 * left to the kubelet's own retries).
 */
async function updateContainerImageDesiredDigest(
  d: CronDeps,
  cron: DataImportCron,
  now: Date,
): Promise<boolean> {
  const ns = cron.metadata.namespace ?? '';
  const name = pollerPodName(cron);
  const pod = await d.kube.get<PodObj>(Res.pod, name, ns);
  if (pod) {
    if (pod.metadata?.deletionTimestamp) return false;
    const digest = containerImageDigest(pod);
    if (!digest) return false;
    setDigest(d, cron, digest, now);
    await d.kube.delete(Res.pod, name, ns, pod.metadata?.uid);
    return true;
  }
  try {
    await d.kube.create(Res.pod, desiredPollerPod(cron, d.poller));
    d.log.info('created the node-pull poller pod', { cron: cron.metadata.name, pod: `${ns}/${name}` });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
  return false;
}

interface SubjectAccessReview {
  apiVersion: string;
  kind: string;
  spec: { user: string; groups?: string[]; resourceAttributes: object };
  status?: { allowed?: boolean };
}
const SubjectAccessReviews: Resource = {
  group: 'authorization.k8s.io',
  version: 'v1',
  kind: 'SubjectAccessReview',
  plural: 'subjectaccessreviews',
  namespaced: false,
};

/**
 * upstream authorizeCloneDataVolume: a pvc source is cloned only if the cron's service account (spec
 * serviceAccountName, else `default`) may clone it into the cron's namespace (docs/clone.md's rule).
 */
async function mayCloneSource(d: CronDeps, cron: DataImportCron): Promise<boolean> {
  const src = cron.spec.template.spec?.source?.pvc;
  if (!src) return true;
  const ns = cron.metadata.namespace ?? '';
  const sa = cron.spec.serviceAccountName || 'default';
  const review: AccessReview = async (who, attrs) => {
    const r = await d.kube.create<SubjectAccessReview>(SubjectAccessReviews, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: { user: who.user, groups: who.groups, resourceAttributes: attrs },
    });
    return r.status?.allowed === true;
  };
  const decision = await canClone(
    review,
    serviceAccountSubject(ns, sa),
    { kind: CloneSourceKind.Pvc, namespace: src.namespace || ns, name: src.name },
    ns,
  );
  if (!decision.allowed)
    d.log.info('not authorized to create DataVolume', { cron: cron.metadata.name, reason: decision.reason });
  return decision.allowed;
}

/**
 * upstream deleteOutdatedPendingPvc: an import's PVC still Pending on a class that is no longer the one imports go
 * to (the default moved before it bound) is deleted, so that its DataVolume renders it again on the new class.
 */
async function deleteOutdatedPendingPvc(
  d: CronDeps,
  cron: DataImportCron,
  pvc: Pvc | undefined,
  desiredClass: string,
): Promise<boolean> {
  if (pvc?.status?.phase !== 'Pending' || pvc.metadata?.labels?.[CronLabel.cron] !== cron.metadata.name)
    return false;
  const sc = pvc.spec?.storageClassName;
  if (!sc || sc === desiredClass) return false;
  d.log.info('deleting a pending import on the previous class', { pvc: pvc.metadata?.name, class: sc });
  await d.kube.delete(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, pvc.metadata?.uid);
  return true;
}

/**
 * upstream handleStorageClassChange: the import of the desired digest (snapshot, DataVolume, PVC) on the previous
 * class is deleted; once all are gone the new class is recorded, and the next reconcile imports again on it.
 */
async function handleStorageClassChange(
  d: CronDeps,
  next: DataImportCron,
  recorded: string,
  desiredClass: string,
): Promise<void> {
  const ns = next.metadata.namespace ?? '';
  const digest = next.metadata.annotations?.[CronAnn.desiredDigest];
  const n = digest ? importName(next.spec.managedDataSource, digest) : undefined;
  if (n) {
    d.log.info('the import class changed: deleting the newest import on the previous one', {
      cron: next.metadata.name,
      from: recorded,
      to: desiredClass,
      name: n,
    });
    const kinds = [Res.volumeSnapshot, Res.dataVolume, Res.pvc];
    for (const r of kinds) await d.kube.delete(r, n, ns); // false when already gone
    const left = await Promise.all([
      d.kube.get(Res.volumeSnapshot, n, ns),
      d.kube.get(Res.dataVolume, n, ns),
      d.kube.get(Res.pvc, n, ns),
    ]);
    // their deletion wakes the cron (it watches what carries its label)
    if (left.some((o) => o !== undefined)) return;
  }
  (next.metadata.annotations ??= {})[CronAnn.storageClass] = desiredClass;
  await d.kube.update(Res.dataImportCron, next);
}

/** upstream handleSnapshotClassChange: a snapshot of another class than the profile's cron class is deleted. */
async function snapshotClassChanged(
  d: CronDeps,
  snap: VolumeSnapshot,
  profile: StorageProfile | undefined,
): Promise<boolean> {
  const want = cronSnapshotClass(profile);
  const have = snap.spec?.volumeSnapshotClassName ?? '';
  if (!want || want === have) return false;
  d.log.info('the snapshot class changed: deleting the snapshot import', {
    snapshot: snap.metadata.name,
    from: have,
    to: want,
  });
  await d.kube.delete(
    Res.volumeSnapshot,
    snap.metadata.name ?? '',
    snap.metadata.namespace,
    snap.metadata.uid,
  );
  return true;
}

/**
 * upstream handleSnapshot: a succeeded import on the desired class is snapshotted under its name; once the snapshot
 * is readyToUse, the DataVolume (which owns the PVC) or the PVC is deleted.
 */
async function snapshotImport(
  d: CronDeps,
  cron: DataImportCron,
  pvc: Pvc,
  sc: StorageClass,
  profile: StorageProfile | undefined,
  now: Date,
): Promise<void> {
  const name = pvc.metadata?.name ?? '';
  const ns = cron.metadata.namespace ?? '';
  const pvcClass = pvc.spec?.storageClassName;
  if (pvcClass && pvcClass !== sc.metadata.name) {
    d.log.info('not snapshotting an import on the previous class', { pvc: name, class: pvcClass });
    return;
  }
  const have = await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, name, ns);
  if (!have) {
    try {
      await d.kube.create(Res.volumeSnapshot, desiredSnapshot(cron, pvc, profile, now));
      d.log.info('created the snapshot of an import', { cron: cron.metadata.name, snapshot: name });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    return;
  }
  if (!have.status?.readyToUse) return; // its readiness wakes the cron
  d.log.info('the snapshot is ready: deleting the import it was cut from', { snapshot: name });
  if (!(await d.kube.delete(Res.dataVolume, name, ns)))
    await d.kube.delete(Res.pvc, name, ns, pvc.metadata?.uid);
}

/**
 * upstream's snapshot branch of update(): a snapshot import carries the cron's labels (and the DataSource's allowed
 * ones), a lastUseTime, and the volume mode and advised restore size when it was made without them.
 */
async function touchSnapshot(
  d: CronDeps,
  cron: DataImportCron,
  snap: VolumeSnapshot,
  ds: DataSource | undefined,
  profile: StorageProfile | undefined,
  now: Date,
): Promise<void> {
  const have = snap.metadata.annotations ?? {};
  const annotations: Record<string, string> = {};
  if (have[CronAnn.sourceVolumeMode] === undefined) {
    const mode = inferredVolumeMode(cron, profile);
    if (mode) annotations[CronAnn.sourceVolumeMode] = mode;
  }
  if (have[CronAnn.advisedRestoreSize] === undefined) {
    const size = advisedRestoreSize(cron, snap.status?.restoreSize);
    if (size) annotations[CronAnn.advisedRestoreSize] = size;
  }
  // the DataSource's instance-type labels, onto a snapshot made before they were copied (upgrades)
  const ours = ds !== undefined && ds.metadata.labels?.[CronLabel.cron] === cron.metadata.name;
  const extraLabels = ours ? copyAllowedLabels(ds.metadata.labels, {}) : {};
  await touchSource(d, cron, Res.volumeSnapshot, snap, now, false, { labels: extraLabels, annotations });
}

/** The CronJob exists with the desired schedule and pod; when it is first made, an initial Job polls at once. */
async function ensurePoller(d: CronDeps, cron: DataImportCron): Promise<void> {
  const config = await d.kube.get<CDIConfig>(Res.cdiConfig, 'config');
  const desired = desiredCronJob(cron, d.poller, config);
  const name = desired.metadata?.name ?? '';
  const existing = await d.kube.get<CronJob>(Res.cronJob, name, d.poller.cdiNamespace);
  if (existing) {
    if (cronJobDrift(existing, desired))
      await d.kube.update(Res.cronJob, {
        ...existing,
        metadata: { ...existing.metadata, labels: desired.metadata?.labels },
        spec: { ...existing.spec, ...desired.spec },
      });
    return;
  }
  try {
    await d.kube.create(Res.cronJob, desired);
  } catch (e) {
    if (isAlreadyExists(e)) return;
    throw e;
  }
  try {
    await d.kube.create(Res.job, initialJob(desired, cron));
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
  d.log.info('created the digest poller', {
    cronJob: `${d.poller.cdiNamespace}/${name}`,
    schedule: cron.spec.schedule,
  });
}

/**
 * upstream updateSource: the import's PVC (or snapshot) carries the cron's labels and a lastUseTime (garbage
 * collection's order). Upstream stamps the time at every reconcile; here it is kept once set, so a second reconcile
 * writes nothing.
 */
async function touchSource(
  d: CronDeps,
  cron: DataImportCron,
  r: Resource,
  o: KubeObject,
  now: Date,
  /** In use again (its digest came back): it becomes the newest for garbage collection. */
  refresh = false,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): Promise<void> {
  const labels = cronLabels(cron, { ...(o.metadata?.labels ?? {}), ...extra.labels });
  const has = refresh ? undefined : o.metadata?.annotations?.[CronAnn.lastUseTime];
  const annotations = extra.annotations ?? {};
  if (has && isDeepStrictEqual(labels, o.metadata?.labels ?? {}) && Object.keys(annotations).length === 0)
    return;
  await d.kube.mergePatch(r, o.metadata?.name ?? '', o.metadata?.namespace, {
    metadata: {
      resourceVersion: o.metadata?.resourceVersion,
      labels,
      annotations: { ...annotations, [CronAnn.lastUseTime]: has ?? now.toISOString() },
    },
  });
}

/** A DataVolume whose import failed for good (Running False with Error or ImagePullFailed) is deleted to retry. */
async function deleteErroneous(d: CronDeps, dv: DataVolume): Promise<boolean> {
  const running = dv.status?.conditions?.find((c) => c.type === 'Running');
  if (running?.status !== 'False' || (running.reason !== 'Error' && running.reason !== 'ImagePullFailed'))
    return false;
  d.log.info('deleting a failed import to retry the new digest', {
    dv: dv.metadata.name,
    message: running.message,
  });
  await d.kube.delete(Res.dataVolume, dv.metadata.name ?? '', dv.metadata.namespace, dv.metadata.uid);
  return true;
}

async function createImport(
  d: CronDeps,
  cron: DataImportCron,
  digest: string,
  profile: StorageProfile | undefined,
  now: Date,
  notAuthorized: () => void,
): Promise<void> {
  const ns = cron.metadata.namespace ?? '';
  const status = (cron.status ??= {});
  const name = importName(cron.spec.managedDataSource, digest);
  if (!name) {
    d.log.warn('the poller wrote a digest without sha256: or uid:', { cron: cron.metadata.name, digest });
    return;
  }
  // imported before (the digest went back): its snapshot or PVC is used again (upstream createImportDataVolume)
  // (a 404, also for a kind not served, reads as none)
  const snap = await d.kube.get<VolumeSnapshot>(Res.volumeSnapshot, name, ns);
  const pvc = snap ? undefined : await d.kube.get<Pvc>(Res.pvc, name, ns);
  if (snap || pvc) {
    await touchSource(d, cron, snap ? Res.volumeSnapshot : Res.pvc, (snap ?? pvc) as KubeObject, now, true);
    status.currentImports = [{ DataVolumeName: name, Digest: digest }];
    return;
  }
  const tpl = structuredClone(cron.spec.template);
  const spec = tpl.spec ?? {};
  const reg = spec.source?.registry;
  if (reg?.url) reg.url = digestedUrl(reg.url, digest);
  applyReadWriteOnceDefault(spec, profile);
  if (!(await mayCloneSource(d, cron))) return notAuthorized();
  const annotations: Record<string, string> = {
    [Ann.immediateBinding]: 'true',
    [CronAnn.lastUseTime]: now.toISOString(),
  };
  const retain = cron.metadata.annotations?.[Ann.retainAfterCompletion];
  if (retain) annotations[Ann.retainAfterCompletion] = retain;
  const dv: DataVolume = {
    apiVersion: GroupVersion,
    kind: 'DataVolume',
    metadata: { name, namespace: ns, labels: cronLabels(cron, {}), annotations },
    spec,
  };
  try {
    await d.kube.create(Res.dataVolume, dv);
    d.log.info('created an import for a new digest', { cron: cron.metadata.name, dv: name, digest });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
  status.currentImports = [{ DataVolumeName: name, Digest: digest }];
}

/**
 * upstream updateDataSource: created if missing; points to the last import once there is one, as `pvc` or, for the
 * snapshot format, `snapshot`.
 */
async function updateDataSource(
  d: CronDeps,
  cron: DataImportCron,
  ds: DataSource | undefined,
  format: SourceFormat,
): Promise<void> {
  const ns = cron.metadata.namespace ?? '';
  const name = cron.spec.managedDataSource;
  const source = dataSourceSource(format, cron.status?.lastImportedPVC);
  if (!ds) {
    const created: DataSource = {
      apiVersion: GroupVersion,
      kind: 'DataSource',
      metadata: { name, namespace: ns, labels: cronLabels(cron, {}) },
      spec: { source: source ?? {} },
    };
    try {
      await d.kube.create(Res.dataSource, created);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    return;
  }
  if (ds.metadata.labels?.[CronLabel.cron] !== cron.metadata.name) return; // not ours (upstream ErrNotManagedByCron)
  const next: DataSource = structuredClone(ds);
  next.metadata.labels = cronLabels(cron, { ...(ds.metadata.labels ?? {}) });
  if (source) next.spec.source = source;
  if (!isDeepStrictEqual(next, ds)) await d.kube.update(Res.dataSource, next);
}

/**
 * upstream garbageCollectPVCs and garbageCollectSnapshots: keep the importsToKeep newest imports (by lastUseTime),
 * delete the rest. An import is a DataVolume labelled with the cron and its PVC, or a PVC whose DataVolume is gone
 * (deleting the DataVolume deletes its PVC: it owns it); snapshots labelled with the cron are counted on their own.
 */
async function garbageCollect(d: CronDeps, cron: DataImportCron): Promise<void> {
  if (cron.spec.garbageCollect && cron.spec.garbageCollect !== 'Outdated') return;
  const keep =
    cron.spec.importsToKeep !== undefined && cron.spec.importsToKeep >= 0
      ? cron.spec.importsToKeep
      : DefaultImportsToKeep;
  await garbageCollectSnapshots(d, cron, keep);
  const ns = cron.metadata.namespace ?? '';
  const labelSelector = `${CronLabel.cron}=${cron.metadata.name ?? ''}`;
  const [dvs, pvcs] = await Promise.all([
    d.kube.list<DataVolume>(Res.dataVolume, { namespace: ns, labelSelector }),
    d.kube.list<Pvc>(Res.pvc, { namespace: ns, labelSelector }),
  ]);
  const imports = new Map<string, { used: string; dv?: DataVolume; pvc?: Pvc }>();
  for (const dv of dvs.items) imports.set(dv.metadata.name ?? '', { used: used(dv), dv });
  for (const pvc of pvcs.items) {
    const n = pvc.metadata?.name ?? '';
    const had = imports.get(n);
    const u = used(pvc);
    imports.set(n, { ...had, pvc, used: had && had.used > u ? had.used : u });
  }
  if (imports.size <= keep) return;
  const current = cron.status?.lastImportedPVC?.name;
  const old = [...imports.entries()]
    .sort(([, a], [, b]) => (a.used < b.used ? 1 : a.used > b.used ? -1 : 0))
    .slice(keep)
    .filter(([n, i]) => n !== current && !(i.dv ?? i.pvc)?.metadata?.deletionTimestamp);
  for (const [n, i] of old) {
    d.log.info('garbage-collecting an old import', { cron: cron.metadata.name, name: n });
    if (i.dv) await d.kube.delete(Res.dataVolume, n, ns, i.dv.metadata.uid);
    else await d.kube.delete(Res.pvc, n, ns, i.pvc?.metadata?.uid);
  }
}

const used = (o: KubeObject): string =>
  o.metadata?.annotations?.[CronAnn.lastUseTime] ?? o.metadata?.creationTimestamp ?? '';

async function garbageCollectSnapshots(d: CronDeps, cron: DataImportCron, keep: number): Promise<void> {
  const ns = cron.metadata.namespace ?? '';
  const labelSelector = `${CronLabel.cron}=${cron.metadata.name ?? ''}`;
  const snaps = await listOrNone<VolumeSnapshot>(d.kube, Res.volumeSnapshot, {
    namespace: ns,
    labelSelector,
  });
  if (snaps.length <= keep) return;
  const current = cron.status?.lastImportedPVC?.name;
  const old = [...snaps]
    .sort((a, b) => (used(a) < used(b) ? 1 : used(a) > used(b) ? -1 : 0))
    .slice(keep)
    .filter((s) => s.metadata.name !== current && !s.metadata.deletionTimestamp);
  for (const s of old) {
    d.log.info('garbage-collecting an old snapshot import', {
      cron: cron.metadata.name,
      name: s.metadata.name,
    });
    await d.kube.delete(Res.volumeSnapshot, s.metadata.name ?? '', ns, s.metadata.uid);
  }
}

/** The cron is gone: its poller goes, its gauge goes, and with retentionPolicy None what it made. */
async function cleanup(d: CronDeps, namespace: string, name: string): Promise<void> {
  d.metrics?.deleteDataImportCronOutdated(namespace, name);
  const pollerSel = Object.entries(pollerLabels({ metadata: { name, namespace } } as DataImportCron))
    .filter(([k]) => k === CronLabel.cron || k === CronLabel.cronNamespace)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  for (const r of [Res.cronJob, Res.job]) {
    const l = await d.kube.list<KubeObject>(r, {
      namespace: d.poller.cdiNamespace,
      labelSelector: pollerSel,
    });
    for (const o of l.items)
      await d.kube.delete(r, o.metadata?.name ?? '', d.poller.cdiNamespace, o.metadata?.uid);
  }
  const sel = `${CronLabel.cron}=${name},${CronLabel.cleanup}=true`;
  for (const r of [Res.dataSource, Res.dataVolume, Res.pvc, Res.volumeSnapshot]) {
    // VolumeSnapshots may not be served (no CSI snapshotter): then there are none
    const items =
      r === Res.volumeSnapshot
        ? await listOrNone<KubeObject>(d.kube, r, { namespace, labelSelector: sel })
        : (await d.kube.list<KubeObject>(r, { namespace, labelSelector: sel })).items;
    for (const o of items) await d.kube.delete(r, o.metadata?.name ?? '', namespace, o.metadata?.uid);
  }
}
