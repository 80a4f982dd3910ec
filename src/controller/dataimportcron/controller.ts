// The DataImportCron controller (upstream pkg/controller/dataimportcron-controller.go, registry URL and PVC-less
// flow): keeps a golden image current. The poller (poller.ts, a CronJob in CDI's namespace) annotates the cron with
// the digest it found; a new digest makes a DataVolume `<managedDataSource>-<first 12 digest hex>` labelled
// `cdi.kubevirt.io/dataImportCron: <cron>` from spec.template, importing `<url without tag>@<digest>`; when it
// Succeeded, status.lastImportedPVC names it, the DataSource `managedDataSource` (created if missing, labelled with the
// cron) points to it, and garbage collection (garbageCollect Outdated, the default) keeps the newest importsToKeep
// (default 3) imports by their lastUseTime. Conditions Progressing and UpToDate with upstream's reasons, and the
// kubevirt_cdi_dataimportcron_outdated gauge. The cron has no status subresource (as upstream's CRD): the whole object
// is PUT with the resourceVersion read, so a write from a stale copy is refused and recomputed. Nothing polls: the
// cron's own changes (the poller's annotation), its DataVolumes and PVCs, and its DataSource wake it.
import { isDeepStrictEqual } from 'node:util';
import { resourceName } from '../../api/naming.ts';
import {
  kubeTime,
  setCondition,
  type KubeObject,
  type PersistentVolumeClaim as Pvc,
} from '../../kube/index.ts';
import { Ann as ApiAnn } from '../../api/constants.ts';
import type { ControllerMetrics } from '../../monitoring/metrics.ts';
import { Ann, GroupVersion, ManagedLabels, Phase } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { CDIConfig, DataImportCron, DataSource, DataVolume } from '../shared/types.ts';
import { copyAllowedLabels } from '../datasource/controller.ts';
import {
  CronLabel,
  cronJobDrift,
  desiredCronJob,
  initialJob,
  isUrlSource,
  pollerLabels,
  type CronJob,
  type PollerOptions,
} from './poller.ts';

export const CronAnn = {
  desiredDigest: ApiAnn.SourceDesiredDigest,
  lastCronTime: ApiAnn.LastCronTime,
  lastUseTime: ApiAnn.LastUseTime,
  storageClass: ApiAnn.ImportStorageClass,
} as const;

export const CronReason = {
  noDigest: 'NoDigest',
  noImport: 'NoImport',
  outdated: 'Outdated',
  scheduled: 'ImportScheduled',
  inProgress: 'ImportProgressing',
  upToDate: 'UpToDate',
  alreadyManaged: 'ErrDataSourceAlreadyManaged',
} as const;

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

  if (cron.spec.schedule && isUrlSource(cron)) await ensurePoller(d, cron);

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
  const [dv, pvc] = current
    ? await Promise.all([
        d.kube.get<DataVolume>(Res.dataVolume, current, namespace),
        d.kube.get<Pvc>(Res.pvc, current, namespace),
      ])
    : [undefined, undefined];

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
  else {
    if (imports.length > 0) imports = status.currentImports = imports.slice(1);
    cond(Progressing, false, 'No current import', CronReason.noImport);
  }

  if (succeeded) {
    if (pvc) await touchSource(d, cron, pvc, now);
    const last = { namespace, name: current! };
    if (!isDeepStrictEqual(status.lastImportedPVC, last)) {
      status.lastImportedPVC = last;
      status.lastImportTimestamp = kubeTime(now);
    }
    cond(Progressing, false, 'No current import', CronReason.noImport);
    await garbageCollect(d, next);
  }

  await updateDataSource(d, next, ds);

  const desired = next.metadata.annotations?.[CronAnn.desiredDigest] ?? '';
  const digestUpdated = desired !== '' && (imports.length === 0 || desired !== imports[0]?.Digest);
  if (digestUpdated) {
    cond(UpToDate, false, 'Source digest updated since last import', CronReason.outdated);
    if (dv && (await deleteErroneous(d, dv))) status.currentImports = imports = [];
    if (succeeded || imports.length === 0) await createImport(d, next, desired, now);
  } else if (succeeded) {
    status.sourceFormat = 'pvc';
    cond(UpToDate, true, 'Latest import is up to date', CronReason.upToDate);
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

  if (isDeepStrictEqual(next, cron)) return;
  await d.kube.update(Res.dataImportCron, next);
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

/** upstream updateSource: the import's PVC carries the cron's labels and a lastUseTime (garbage collection's order). */
async function touchSource(
  d: CronDeps,
  cron: DataImportCron,
  pvc: Pvc,
  now: Date,
  /** In use again (its digest came back): it becomes the newest for garbage collection. */
  refresh = false,
): Promise<void> {
  const labels = cronLabels(cron, { ...(pvc.metadata?.labels ?? {}) });
  const has = refresh ? undefined : pvc.metadata?.annotations?.[CronAnn.lastUseTime];
  if (has && isDeepStrictEqual(labels, pvc.metadata?.labels ?? {})) return;
  await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
    metadata: {
      resourceVersion: pvc.metadata?.resourceVersion,
      labels,
      annotations: { [CronAnn.lastUseTime]: has ?? now.toISOString() },
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

async function createImport(d: CronDeps, cron: DataImportCron, digest: string, now: Date): Promise<void> {
  const ns = cron.metadata.namespace ?? '';
  const status = (cron.status ??= {});
  const name = importName(cron.spec.managedDataSource, digest);
  if (!name) {
    d.log.warn('the poller wrote a digest without sha256: or uid:', { cron: cron.metadata.name, digest });
    return;
  }
  const pvc = await d.kube.get<Pvc>(Res.pvc, name, ns);
  if (pvc) {
    // imported before (the digest went back): use it again
    await touchSource(d, cron, pvc, now, true);
    status.currentImports = [{ DataVolumeName: name, Digest: digest }];
    return;
  }
  const tpl = structuredClone(cron.spec.template);
  const spec = tpl.spec ?? {};
  const reg = spec.source?.registry;
  if (reg?.url) reg.url = digestedUrl(reg.url, digest);
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

/** upstream updateDataSource: created if missing; points to the last import once there is one. */
async function updateDataSource(
  d: CronDeps,
  cron: DataImportCron,
  ds: DataSource | undefined,
): Promise<void> {
  const ns = cron.metadata.namespace ?? '';
  const name = cron.spec.managedDataSource;
  const last = cron.status?.lastImportedPVC;
  if (!ds) {
    const created: DataSource = {
      apiVersion: GroupVersion,
      kind: 'DataSource',
      metadata: { name, namespace: ns, labels: cronLabels(cron, {}) },
      spec: { source: last ? { pvc: { ...last } } : {} },
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
  if (last) next.spec.source = { pvc: { ...last } };
  if (!isDeepStrictEqual(next, ds)) await d.kube.update(Res.dataSource, next);
}

/**
 * upstream garbageCollectPVCs: keep the importsToKeep newest imports (by lastUseTime), delete the rest. An import is
 * a DataVolume labelled with the cron and its PVC, or a PVC whose DataVolume is gone; deleting the DataVolume deletes
 * its PVC (it owns it).
 */
async function garbageCollect(d: CronDeps, cron: DataImportCron): Promise<void> {
  if (cron.spec.garbageCollect && cron.spec.garbageCollect !== 'Outdated') return;
  const keep =
    cron.spec.importsToKeep !== undefined && cron.spec.importsToKeep >= 0
      ? cron.spec.importsToKeep
      : DefaultImportsToKeep;
  const ns = cron.metadata.namespace ?? '';
  const labelSelector = `${CronLabel.cron}=${cron.metadata.name ?? ''}`;
  const [dvs, pvcs] = await Promise.all([
    d.kube.list<DataVolume>(Res.dataVolume, { namespace: ns, labelSelector }),
    d.kube.list<Pvc>(Res.pvc, { namespace: ns, labelSelector }),
  ]);
  const imports = new Map<string, { used: string; dv?: DataVolume; pvc?: Pvc }>();
  const used = (o: KubeObject): string =>
    o.metadata?.annotations?.[CronAnn.lastUseTime] ?? o.metadata?.creationTimestamp ?? '';
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
  for (const r of [Res.dataSource, Res.dataVolume, Res.pvc]) {
    const l = await d.kube.list<KubeObject>(r, { namespace, labelSelector: sel });
    for (const o of l.items) await d.kube.delete(r, o.metadata?.name ?? '', namespace, o.metadata?.uid);
  }
}
