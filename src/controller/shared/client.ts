// The narrow view of the API server the reconcilers use. Reconcilers depend on this interface only, so they can be
// driven by src/kube's KubeClient in the process and in the integration tests alike.
import { Resources, type KubeClient, type KubeObject, type Resource } from '../../kube/index.ts';

export { isAlreadyExists, isConflict, isNotFound } from '../../kube/index.ts';
export type { Resource };

export const Res = {
  pvc: Resources.PersistentVolumeClaim,
  pv: Resources.PersistentVolume,
  pod: Resources.Pod,
  event: Resources.Event,
  configMap: Resources.ConfigMap,
  namespace: Resources.Namespace,
  storageClass: Resources.StorageClass,
  lease: Resources.Lease,
  dataVolume: Resources.DataVolume,
  cdiConfig: Resources.CDIConfig,
  storageProfile: Resources.StorageProfile,
} as const;

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface Kube {
  get<T>(r: Resource, name: string, namespace?: string): Promise<T | undefined>;
  list<T>(r: Resource, opts?: ListOptions): Promise<{ items: T[] }>;
  create<T>(r: Resource, obj: T): Promise<T>;
  /** PUT (optimistic: carries resourceVersion), optionally of the status subresource. */
  update<T>(r: Resource, obj: T, subresource?: 'status'): Promise<T>;
  mergePatch<T>(
    r: Resource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: 'status',
  ): Promise<T>;
  /** false when it was already gone. */
  delete(r: Resource, name: string, namespace?: string): Promise<boolean>;
}

export class ClientKube implements Kube {
  private readonly c: KubeClient;
  constructor(client: KubeClient) {
    this.c = client;
  }
  get<T>(r: Resource, name: string, namespace?: string): Promise<T | undefined> {
    return this.c.getOrUndefined<KubeObject>(r, name, namespace) as Promise<T | undefined>;
  }
  async list<T>(r: Resource, opts: ListOptions = {}): Promise<{ items: T[] }> {
    const l = await this.c.listAll<KubeObject>(r, opts);
    return { items: (l.items ?? []) as T[] };
  }
  create<T>(r: Resource, obj: T): Promise<T> {
    return this.c.create<KubeObject>(r, obj as KubeObject) as Promise<T>;
  }
  update<T>(r: Resource, obj: T, subresource?: 'status'): Promise<T> {
    return this.c.replace<KubeObject>(r, obj as KubeObject, subresource ? { subresource } : {}) as Promise<T>;
  }
  mergePatch<T>(
    r: Resource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: 'status',
  ): Promise<T> {
    return this.c.mergePatch<KubeObject>(r, name, patch, {
      ...(namespace ? { namespace } : {}),
      ...(subresource ? { subresource } : {}),
    }) as Promise<T>;
  }
  delete(r: Resource, name: string, namespace?: string): Promise<boolean> {
    return this.c.delete(r, name, namespace ? { namespace } : {});
  }
}
