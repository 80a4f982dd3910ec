/**
 * What the two clone-authorizing webhooks (datavolume-mutate, pvc-clone-mutate) share: finding the clone source of
 * a DataVolume, asking the kube-apiserver whether the requesting user may clone it (src/token/clone.ts, the rule),
 * and the JSON patch that puts the short clone token on the object.
 */
import { Ann } from '../../api/constants.ts';
import type { DataSource } from '../../api/datasource.ts';
import type { DataVolume } from '../../api/datavolume.ts';
import type { KubeClient, Resource } from '../../kube/index.ts';
import {
  canClone,
  clonePayload,
  CloneSourceKind,
  type AccessReview,
  type CloneDecision,
  type CloneSource,
  type Subject,
} from '../../token/clone.ts';
import type { TokenGenerator } from '../../token/token.ts';
import { pointerEscape, type AdmissionRequest, type JsonPatchOp } from '../admission.ts';
import { subjectAccessReview } from '../authz.ts';

export const DataSourceResource: Resource = {
  group: 'cdi.kubevirt.io',
  version: 'v1beta1',
  kind: 'DataSource',
  plural: 'datasources',
  namespaced: true,
};

/** A DataSource could not be read: refuse with this message (upstream answers the lookup's error). */
export class SourceLookupError extends Error {
  override name = 'SourceLookupError';
}

/**
 * The PVC or VolumeSnapshot a DataVolume clones (source.pvc, source.snapshot, or sourceRef → DataSource, whose
 * status is used when it points to another DataSource), or undefined when it clones nothing. A source namespace left
 * empty is the DataVolume's own.
 */
export async function cloneSourceOf(
  dv: DataVolume,
  namespace: string,
  getDataSource: (namespace: string, name: string) => Promise<DataSource | undefined>,
): Promise<CloneSource | undefined> {
  let pvc = dv.spec.source?.pvc;
  let snapshot = dv.spec.source?.snapshot;
  const ref = dv.spec.sourceRef;
  if (!dv.spec.source && ref && ref.kind === 'DataSource') {
    const ns = ref.namespace || namespace;
    const ds = await getDataSource(ns, ref.name);
    if (!ds) throw new SourceLookupError(`datasources.cdi.kubevirt.io "${ref.name}" not found in ${ns}`);
    const s = ds.spec.source.dataSource ? ds.status?.source : ds.spec.source;
    pvc = s?.pvc;
    snapshot = s?.snapshot;
  }
  if (pvc) return { kind: CloneSourceKind.Pvc, namespace: pvc.namespace || namespace, name: pvc.name };
  if (snapshot)
    return {
      kind: CloneSourceKind.Snapshot,
      namespace: snapshot.namespace || namespace,
      name: snapshot.name,
    };
  return undefined;
}

export function subjectOf(r: AdmissionRequest): Subject {
  return {
    user: r.userInfo.username ?? '',
    groups: r.userInfo.groups ?? [],
    extra: r.userInfo.extra ?? {},
    ...(r.userInfo.uid ? { uid: r.userInfo.uid } : {}),
  };
}

export function accessReview(kube: KubeClient): AccessReview {
  return async (who, attrs) =>
    (
      await subjectAccessReview(
        kube,
        { user: who.user, groups: who.groups ?? [], extra: who.extra ?? {} },
        { ...attrs, version: attrs.group === 'cdi.kubevirt.io' ? 'v1beta1' : 'v1' },
      )
    ).allowed;
}

export interface CloneAuthDeps {
  kube: KubeClient;
  cloneTokens: TokenGenerator;
}

/** Upstream: a source namespace that does not exist is refused with the lookup's message. */
export async function sourceNamespaceExists(kube: KubeClient, namespace: string): Promise<boolean> {
  return (
    (await kube.getOrUndefined(
      { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
      namespace,
    )) !== undefined
  );
}

/** The decision for the user of `r`; the SubjectAccessReviews go to the kube-apiserver. */
export function decide(
  deps: CloneAuthDeps,
  r: AdmissionRequest,
  source: CloneSource,
  targetNamespace: string,
): Promise<CloneDecision> {
  return canClone(accessReview(deps.kube), subjectOf(r), source, targetNamespace);
}

/** The patch that sets the short clone token on an object (replacing one the creator may have put there). */
export async function tokenPatch(
  deps: CloneAuthDeps,
  object: { metadata?: { annotations?: Record<string, string> } },
  source: CloneSource,
  target: { namespace: string; name: string },
): Promise<JsonPatchOp[]> {
  const token = await deps.cloneTokens.generate(clonePayload(source, target));
  if (!object.metadata?.annotations) {
    return [{ op: 'add', path: '/metadata/annotations', value: { [Ann.CloneToken]: token } }];
  }
  return [{ op: 'add', path: `/metadata/annotations/${pointerEscape(Ann.CloneToken)}`, value: token }];
}
