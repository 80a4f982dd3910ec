// How a rendered object reaches the cluster: server-side apply with the field manager `cdi-operator` (force: the
// operator owns every field it renders, whoever edited it since), owned by the CDI resource (controller reference,
// so garbage collection removes what an interrupted uninstall left) and labelled with the operator versions that
// created and last updated it. Whether an object needs applying is decided against the informer cache: the live
// object must contain every field of the rendered one (lists element for element, same length); defaults the API
// server adds are extra fields and do not count. So an edit or a removal of anything the operator renders is seen
// (the watch wakes the reconcile) and undone, and a steady state costs no request at all.
import {
  ApiError,
  apiVersionOf,
  controllerRef,
  type KubeClient,
  type KubeObject,
  type OwnerReference,
} from '../kube/index.ts';
import { ManagedBy, ManagedByLabel, type Obj } from '../deploy/common.ts';
import { Kinds, resourceOf } from './resources.ts';

export const FieldManager = 'cdi-operator';
export const CreateVersionLabel = 'operator.cdi.kubevirt.io/createVersion';
export const UpdateVersionLabel = 'operator.cdi.kubevirt.io/updateVersion';
/** Labels of the CDI resource copied onto everything it installs (upstream GetRecommendedLabelsFromCr). */
export const RecommendedLabels = ['app.kubernetes.io/part-of', 'app.kubernetes.io/version'] as const;

/** Kinds whose immutable fields (selector, roleRef) are changed by deleting and creating the object again. */
const Recreatable = new Set(['Deployment', 'RoleBinding', 'ClusterRoleBinding']);

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * True when `live` holds every field of `want`: objects key by key, lists of the same length element by element,
 * scalars equal. An empty object or list in `want` is satisfied by an absent field (the server drops some).
 */
export function covers(live: unknown, want: unknown): boolean {
  if (want === undefined) return true;
  if (live === undefined) return hollow(want);
  if (isObj(want)) {
    if (!isObj(live)) return false;
    return Object.entries(want).every(([k, v]) => covers(live[k], v));
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(live)) return false;
    return live.length === want.length && want.every((v, i) => covers(live[i], v));
  }
  return live === want;
}

/** {} or [] (or objects of only those): what an API server may drop. */
function hollow(v: unknown): boolean {
  if (Array.isArray(v)) return v.length === 0;
  if (isObj(v)) return Object.values(v).every(hollow);
  return false;
}

export interface Owner extends KubeObject {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
}

/** The rendered object as it is applied: owner reference, recommended and version labels. */
export function decorate(obj: Obj, owner: Owner, version: string, live?: KubeObject): Obj {
  const out = structuredClone(obj);
  const meta = (out['metadata'] ??= {}) as Obj;
  const labels: Record<string, string> = { ...(meta['labels'] as Record<string, string> | undefined) };
  for (const l of RecommendedLabels) {
    const v = owner.metadata.labels?.[l];
    if (v !== undefined) labels[l] = v;
  }
  // the operator finds what it installed by this label (cache.ts)
  labels[ManagedByLabel] = ManagedBy;
  labels[CreateVersionLabel] = live?.metadata?.labels?.[CreateVersionLabel] ?? version;
  labels[UpdateVersionLabel] = version;
  meta['labels'] = labels;
  meta['ownerReferences'] = [controllerRef(owner, Kinds.CDI)];
  if (String(out['kind']) === 'Deployment') {
    // the pods carry the recommended labels too (upstream setRecommendedLabels)
    const tpl = ((out['spec'] as Obj)['template'] as Obj)['metadata'] as Obj;
    const podLabels = { ...(tpl['labels'] as Record<string, string>) };
    for (const l of RecommendedLabels) if (labels[l] !== undefined) podLabels[l] = labels[l];
    tpl['labels'] = podLabels;
  }
  return out;
}

export type ApplyAction = 'created' | 'updated' | 'recreated' | 'unchanged';

/**
 * On a Deployment's pod template: the uid of the ServiceAccount its pods run as. A ServiceAccount deleted and
 * restored is a new one, and the pods' tokens name the old one (the API server refuses them): a new uid rolls the
 * pods so that they get tokens of the new one.
 */
export const ServiceAccountUidAnnotation = 'operator.cdi.kubevirt.io/serviceAccountUid';

/** Sets ServiceAccountUidAnnotation on a (decorated) Deployment. */
export function withServiceAccountUid(deployment: Obj, uid: string | undefined): Obj {
  if (!uid) return deployment;
  const tpl = ((deployment['spec'] as Obj)['template'] as Obj)['metadata'] as Obj;
  tpl['annotations'] = { ...(tpl['annotations'] as Obj | undefined), [ServiceAccountUidAnnotation]: uid };
  return deployment;
}

export function describe(obj: { kind?: unknown; metadata?: unknown }): string {
  const m = (obj.metadata ?? {}) as { name?: string; namespace?: string };
  return `${String(obj.kind)} ${m.namespace ? `${m.namespace}/` : ''}${m.name ?? ''}`;
}

const immutable = (e: unknown): boolean =>
  e instanceof ApiError && e.code === 422 && /immutable|cannot change roleRef/i.test(e.message);

/**
 * Applies `desired` (decorated) unless `live` already covers it. A change to an immutable field of a Deployment or
 * a binding is made by deleting the object and creating it again.
 */
export async function applyObject(
  kube: KubeClient,
  desired: Obj,
  live: KubeObject | undefined,
): Promise<{ action: ApplyAction; object: KubeObject | undefined }> {
  if (live && covers(live, desired)) return { action: 'unchanged', object: live };
  const res = resourceOf(desired);
  const body = { ...desired, apiVersion: apiVersionOf(res) } as KubeObject;
  try {
    const object = await kube.apply(res, body, { fieldManager: FieldManager, force: true });
    return { action: live ? 'updated' : 'created', object };
  } catch (e) {
    if (!live || !immutable(e) || !Recreatable.has(res.kind)) throw e;
    const name = live.metadata?.name ?? '';
    await kube.delete(res, name, {
      namespace: live.metadata?.namespace,
      propagationPolicy: 'Background',
      ...(live.metadata?.uid ? { uid: live.metadata.uid } : {}),
    });
    const object = await kube.apply(res, body, { fieldManager: FieldManager, force: true });
    return { action: 'recreated', object };
  }
}

/** True when `obj` is controlled by the CDI resource `owner`. */
export function ownedBy(obj: KubeObject, owner: { metadata?: { uid?: string } }): boolean {
  const ref: OwnerReference | undefined = obj.metadata?.ownerReferences?.find((o) => o.controller);
  return ref?.kind === 'CDI' && ref.uid === owner.metadata?.uid;
}

/**
 * JSON patch operations that set metadata.finalizers to `next` only if they are still `current`: a concurrent
 * change fails the `test` (409/422) and is retried with fresh data, without depending on a resourceVersion the
 * operator's own status writes keep moving.
 */
export function finalizerOps(
  current: string[] | undefined,
  next: string[],
): { op: string; path: string; value?: unknown }[] {
  return [
    { op: 'test', path: '/metadata/finalizers', value: current?.length ? current : null },
    { op: 'add', path: '/metadata/finalizers', value: next },
  ];
}
