// Object types as they travel on the wire. client-node's model classes type timestamps as `Date`, but our
// client returns parsed JSON, where they are RFC 3339 strings; Wire<> makes the types say so.
import type {
  CoreV1Event,
  V1ConfigMap,
  V1Lease,
  V1Namespace,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1Service,
  V1ObjectMeta,
} from '@kubernetes/client-node';

export type Wire<T> = T extends Date
  ? string
  : T extends (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

export type ObjectMeta = Wire<V1ObjectMeta>;
export type Pod = Wire<V1Pod>;
export type PersistentVolumeClaim = Wire<V1PersistentVolumeClaim>;
export type PersistentVolume = Wire<V1PersistentVolume>;
export type Secret = Wire<V1Secret>;
export type ConfigMap = Wire<V1ConfigMap>;
export type Service = Wire<V1Service>;
export type Namespace = Wire<V1Namespace>;
export type Event = Wire<CoreV1Event>;
export type Lease = Wire<V1Lease>;

/** The least every Kubernetes object has. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: { [key: string]: string };
    annotations?: { [key: string]: string };
    deletionTimestamp?: string;
    creationTimestamp?: string;
    ownerReferences?: OwnerReference[];
    finalizers?: string[];
  };
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
}

export interface ObjectList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

/** Where a kind lives in the REST API. */
export interface Resource {
  /** "" for the core group. */
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const Resources = {
  Pod: { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  PersistentVolumeClaim: {
    group: '',
    version: 'v1',
    kind: 'PersistentVolumeClaim',
    plural: 'persistentvolumeclaims',
    namespaced: true,
  },
  PersistentVolume: {
    group: '',
    version: 'v1',
    kind: 'PersistentVolume',
    plural: 'persistentvolumes',
    namespaced: false,
  },
  Secret: { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  ConfigMap: { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  Service: { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  Namespace: { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
  Event: { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true },
  StorageClass: {
    group: 'storage.k8s.io',
    version: 'v1',
    kind: 'StorageClass',
    plural: 'storageclasses',
    namespaced: false,
  },
  Lease: { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true },
  CustomResourceDefinition: {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    kind: 'CustomResourceDefinition',
    plural: 'customresourcedefinitions',
    namespaced: false,
  },
  DataVolume: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'DataVolume',
    plural: 'datavolumes',
    namespaced: true,
  },
  CDIConfig: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'CDIConfig',
    plural: 'cdiconfigs',
    namespaced: false,
  },
  StorageProfile: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'StorageProfile',
    plural: 'storageprofiles',
    namespaced: false,
  },
  CDI: { group: 'cdi.kubevirt.io', version: 'v1beta1', kind: 'CDI', plural: 'cdis', namespaced: false },
  DataSource: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'DataSource',
    plural: 'datasources',
    namespaced: true,
  },
  DataImportCron: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'DataImportCron',
    plural: 'dataimportcrons',
    namespaced: true,
  },
  VolumeImportSource: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'VolumeImportSource',
    plural: 'volumeimportsources',
    namespaced: true,
  },
  VolumeUploadSource: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'VolumeUploadSource',
    plural: 'volumeuploadsources',
    namespaced: true,
  },
  VolumeCloneSource: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    kind: 'VolumeCloneSource',
    plural: 'volumeclonesources',
    namespaced: true,
  },
  VolumeSnapshot: {
    group: 'snapshot.storage.k8s.io',
    version: 'v1',
    kind: 'VolumeSnapshot',
    plural: 'volumesnapshots',
    namespaced: true,
  },
  CronJob: { group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs', namespaced: true },
  Job: { group: 'batch', version: 'v1', kind: 'Job', plural: 'jobs', namespaced: true },
} as const satisfies Record<string, Resource>;

export function apiVersionOf(r: Resource): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/** The cache and queue key of an object: "namespace/name", or "name" for cluster-scoped objects. */
export function keyOf(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by keyOf. */
export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** metav1.Time: RFC 3339, second precision. */
export function kubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits, as Lease and events.k8s.io need. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** The owner reference that makes `owner` the controller of a child (garbage collection and adoption). */
export function controllerRef(owner: KubeObject, r: Resource): OwnerReference {
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!name || !uid)
    throw new Error(
      `cannot own a child: the ${r.kind} has no name or uid yet (use the object the server returned)`,
    );
  return { apiVersion: apiVersionOf(r), kind: r.kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/** The controller owner reference of an object, if any. */
export function controllerOf(obj: KubeObject): OwnerReference | undefined {
  return obj.metadata?.ownerReferences?.find((o) => o.controller === true);
}

/** True when `owner` (by uid) is the controller of `obj`. */
export function isControlledBy(obj: KubeObject, owner: KubeObject): boolean {
  const ref = controllerOf(obj);
  return ref !== undefined && ref.uid === owner.metadata?.uid;
}
