// The DataSource controller (upstream pkg/controller/datasource-controller.go): resolves what a DataSource points to
// (a PVC, a VolumeSnapshot, or another DataSource that points to one of those) and says in Ready whether it can be
// cloned: a PVC is ready when it exists and the DataVolume of the same name, if any, Succeeded; a snapshot when it is
// readyToUse. status.source is the resolved source while Ready is True, and empty otherwise. DataSources have no
// status subresource (as upstream's), so the write is a PUT of the whole object with the resourceVersion it read:
// computed from a stale copy, it is refused and recomputed. Labels under *.kubevirt.io/ of the source (its DataVolume,
// PVC or snapshot) are copied onto the DataSource, as upstream does for instance-type hints.
import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { setCondition } from '../../kube/index.ts';
import { isDeepStrictEqual } from 'node:util';
import { Phase } from '../shared/constants.ts';
import { Res, type Kube } from '../shared/client.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { DataSource, DataSourceSource, DataVolume, VolumeSnapshot } from '../shared/types.ts';
import { DataSourceMessage, DataSourceReason, resolveDataSourceChain } from './resolve.ts';

export interface DataSourceDeps {
  kube: Kube;
  log: Logger;
  now?: () => Date;
}

export const ReadyCondition = 'Ready';

/** upstream validLabelsMatch: the labels a DataSource takes over from what it points to. */
const AllowedLabel = /^([\w.]+\.kubevirt.io|kubevirt.io)\/[\w.-]+$/;

export function copyAllowedLabels(
  from: Record<string, string> | undefined,
  to: Record<string, string>,
): Record<string, string> {
  for (const [k, v] of Object.entries(from ?? {})) if (AllowedLabel.test(k)) to[k] = v;
  return to;
}

interface Verdict {
  ready: boolean;
  reason: string;
  message: string;
  /** Labels of the source to copy (only when ready). */
  labels?: Record<string, string>[];
}

async function pvcVerdict(
  kube: Kube,
  ref: NonNullable<DataSourceSource['pvc']>,
  ownNs: string,
): Promise<Verdict> {
  const ns = ref.namespace || ownNs;
  const [pvc, dv] = await Promise.all([
    kube.get<Pvc>(Res.pvc, ref.name, ns),
    kube.get<DataVolume>(Res.dataVolume, ref.name, ns),
  ]);
  if (dv && dv.status?.phase !== Phase.Succeeded) {
    const phase = dv.status?.phase ?? '';
    return { ready: false, reason: phase, message: `Import DataVolume phase ${phase}` };
  }
  if (!dv && !pvc)
    return { ready: false, reason: DataSourceReason.notFound, message: DataSourceMessage.pvcNotFound };
  return {
    ready: true,
    reason: DataSourceReason.ready,
    message: DataSourceMessage.ready,
    labels: [dv?.metadata.labels ?? {}, pvc?.metadata?.labels ?? {}],
  };
}

async function snapshotVerdict(
  kube: Kube,
  ref: NonNullable<DataSourceSource['snapshot']>,
  ownNs: string,
): Promise<Verdict> {
  const snap = await kube.get<VolumeSnapshot>(Res.volumeSnapshot, ref.name, ref.namespace || ownNs);
  if (!snap)
    return { ready: false, reason: DataSourceReason.notFound, message: DataSourceMessage.snapshotNotFound };
  if (snap.status?.readyToUse !== true)
    return {
      ready: false,
      reason: DataSourceReason.snapshotNotReady,
      message: DataSourceMessage.snapshotNotReady,
    };
  return {
    ready: true,
    reason: DataSourceReason.ready,
    message: DataSourceMessage.ready,
    labels: [snap.metadata.labels ?? {}],
  };
}

/** The Ready verdict and status.source of a DataSource, from what it points to. */
export async function computeDataSource(
  kube: Kube,
  ds: DataSource,
): Promise<{ verdict: Verdict; source: DataSourceSource }> {
  const own = ds.metadata.namespace ?? '';
  const r = await resolveDataSourceChain(kube, ds);
  if (!r.ok) return { verdict: { ready: false, reason: r.reason, message: r.message }, source: {} };
  const src = r.resolved.spec.source;
  // a resolved DataSource's own namespace is the one its PVC or snapshot defaults to (it is ours: same namespace)
  let verdict: Verdict;
  if (src.pvc) verdict = await pvcVerdict(kube, src.pvc, own);
  else if (src.snapshot) verdict = await snapshotVerdict(kube, src.snapshot, own);
  else verdict = { ready: false, reason: DataSourceReason.noSource, message: DataSourceMessage.noSource };
  return { verdict, source: verdict.ready ? structuredClone(src) : {} };
}

export async function reconcileDataSource(d: DataSourceDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const ds = await d.kube.get<DataSource>(Res.dataSource, name, namespace);
  if (!ds || ds.metadata.deletionTimestamp) return;
  const { verdict, source } = await computeDataSource(d.kube, ds);

  const next: DataSource = structuredClone(ds);
  if (verdict.ready && verdict.labels) {
    const labels = { ...(next.metadata.labels ?? {}) };
    for (const l of verdict.labels) copyAllowedLabels(l, labels);
    if (Object.keys(labels).length > 0) next.metadata.labels = labels;
  }
  next.status = {
    ...(next.status ?? {}),
    source,
    conditions: setCondition(
      ds.status?.conditions,
      {
        type: ReadyCondition,
        status: verdict.ready ? 'True' : 'False',
        reason: verdict.reason,
        message: verdict.message,
      },
      d.now?.() ?? new Date(),
      { heartbeat: true },
    ),
  };
  if (isDeepStrictEqual(next, ds)) return;
  await d.kube.update(Res.dataSource, next);
  d.log.info('DataSource updated', {
    namespace,
    name,
    ready: verdict.ready,
    reason: verdict.reason,
  });
}
