// DataVolume.spec.sourceRef: {kind: DataSource, name, namespace} names a DataSource; the DataVolume clones what that
// DataSource points to now (upstream populateSourceIfSourceRef, clone-controller-base.go). Every DataVolume
// controller resolves it first, so that the clone path sees a plain `source.pvc` or `source.snapshot` (and the
// source controller table, datavolume/sources.ts, decides who serves it). The DataSource is read from the cache, and
// its changes wake the DataVolumes that name it (wakeups.ts dvsForDataSource): a DataVolume created before its
// golden image exists starts once the DataSource is Ready.
import { Res, type Kube } from '../shared/client.ts';
import type { DataSource, DataVolume } from '../shared/types.ts';

export const SourceRefReason = {
  /** The DataSource does not exist (yet). */
  notFound: 'DataSourceNotFound',
  /** It exists but names no PVC or snapshot (yet): a DataImportCron's first import is still running. */
  notReady: 'DataSourceNotReady',
  invalid: 'ErrInvalidDataVolume',
} as const;

export type SourceRefResolution =
  { ok: true; dv: DataVolume } | { ok: false; reason: string; message: string };

/**
 * The DataVolume as the clone path sees it: sourceRef replaced by the DataSource's `pvc` or `snapshot` (a DataSource
 * that points to another DataSource contributes its resolved status.source), with the source namespace defaulted to
 * the DataSource's. A DataVolume without sourceRef, or with both source and sourceRef (which checkSource refuses),
 * is returned as it is. Nothing here changes the stored DataVolume.
 */
export async function resolveSourceRef(kube: Kube, dv: DataVolume): Promise<SourceRefResolution> {
  const ref = dv.spec.sourceRef;
  if (!ref || dv.spec.source) return { ok: true, dv };
  if (ref.kind !== 'DataSource')
    return {
      ok: false,
      reason: SourceRefReason.invalid,
      message: `Unsupported sourceRef kind ${ref.kind}, currently only DataSource is supported`,
    };
  const ns = ref.namespace || dv.metadata.namespace || '';
  const ds = await kube.get<DataSource>(Res.dataSource, ref.name, ns);
  if (!ds)
    return {
      ok: false,
      reason: SourceRefReason.notFound,
      message: `DataSource ${ns}/${ref.name} not found: create it, or point spec.sourceRef at an existing DataSource`,
    };
  const src = ds.spec.source.dataSource ? (ds.status?.source ?? {}) : ds.spec.source;
  const { sourceRef: _ref, ...spec } = dv.spec;
  if (src.pvc)
    return {
      ok: true,
      dv: {
        ...dv,
        spec: { ...spec, source: { pvc: { name: src.pvc.name, namespace: src.pvc.namespace || ns } } },
      },
    };
  if (src.snapshot)
    return {
      ok: true,
      dv: {
        ...dv,
        spec: {
          ...spec,
          source: { snapshot: { name: src.snapshot.name, namespace: src.snapshot.namespace || ns } },
        },
      },
    };
  return {
    ok: false,
    reason: SourceRefReason.notReady,
    message: `Empty source field in '${ref.name}'. DataSource may not be ready yet`,
  };
}
