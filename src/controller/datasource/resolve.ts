// What a DataSource points to, after following spec.source.dataSource: upstream's ResolveDataSourceChain
// (pkg/controller/common/util.go). A DataSource may point to one other DataSource in its own namespace, which must
// point to a PVC or a snapshot itself (depth 1); anything else is said in the Ready condition with upstream's reason.
import type { Kube } from '../shared/client.ts';
import { Res } from '../shared/client.ts';
import type { DataSource } from '../shared/types.ts';

export const DataSourceReason = {
  ready: 'Ready',
  noSource: 'NoSource',
  notFound: 'NotFound',
  maxDepth: 'MaxReferenceDepthReached',
  self: 'SelfReference',
  crossNamespace: 'CrossNamespaceReference',
  snapshotNotReady: 'SnapshotNotReady',
} as const;

export const DataSourceMessage = {
  maxDepth: 'DataSource reference chain exceeds maximum depth of 1',
  self: 'DataSource cannot self-reference',
  crossNamespace: 'DataSource cannot reference a DataSource in another namespace',
  ready: 'DataSource is ready to be consumed',
  noSource: 'No source PVC set',
  pvcNotFound: 'PVC not found',
  snapshotNotFound: 'Snapshot not found',
  snapshotNotReady: 'Snapshot phase is not ready',
} as const;

export type Resolution =
  | {
      ok: true;
      /** The DataSource whose spec.source is a PVC, a snapshot or nothing. */ resolved: DataSource;
    }
  | { ok: false; reason: string; message: string };

/** Follows spec.source.dataSource once; the refusals are upstream's errors, word for word. */
export async function resolveDataSourceChain(kube: Kube, ds: DataSource): Promise<Resolution> {
  const ref = ds.spec.source.dataSource;
  if (!ref) return { ok: true, resolved: ds };
  const ns = ref.namespace || ds.metadata.namespace || '';
  if (ns !== ds.metadata.namespace)
    return { ok: false, reason: DataSourceReason.crossNamespace, message: DataSourceMessage.crossNamespace };
  if (ref.name === ds.metadata.name)
    return { ok: false, reason: DataSourceReason.self, message: DataSourceMessage.self };
  const target = await kube.get<DataSource>(Res.dataSource, ref.name, ns);
  if (!target)
    return {
      ok: false,
      reason: DataSourceReason.notFound,
      message: `datasources.cdi.kubevirt.io "${ref.name}" not found`,
    };
  if (target.spec.source.dataSource)
    return { ok: false, reason: DataSourceReason.maxDepth, message: DataSourceMessage.maxDepth };
  return { ok: true, resolved: target };
}
