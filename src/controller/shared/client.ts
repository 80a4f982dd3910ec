// The narrow view of the cluster the reconcilers use. Reconcilers depend on the Kube interface only; ClusterKube
// implements it for the process and the integration tests alike:
// - reads of the kinds the cache watches (DataVolumes, PVCs, pods, StorageClasses, StorageProfiles, CDIConfig, PVC
//   events) come from the informer cache, with indexes; other kinds, and everything when reads are "api"
//   (CDI_READS=api, the scale bench's comparison), are read from the API server;
// - writes go to the API server. Each reconcile works through its own session (session(owner, signal)): what it
//   writes is recorded as an expectation, so the next reconcile of the same key waits until the cache shows it
//   (src/kube/expectations.ts); a conflict (the object changed since it was read) waits the same way for the cache to
//   show the newer version; a delete names the uid it means, so a stale read never deletes a newer incarnation; and
//   the session's signal (aborted when leadership is lost) cancels its requests, so a deposed leader writes nothing.
// - everything returned is frozen: cached objects are shared, and API answers are frozen too so that a reconciler
//   behaves the same in both modes. Clone before changing.
import {
  deepFreeze,
  isAlreadyExists,
  isConflict,
  isNotFound,
  keyOf,
  Resources,
  type Cache,
  type KubeClient,
  type KubeObject,
  type Resource,
} from '../../kube/index.ts';

export { isAlreadyExists, isConflict, isForbidden, isNotFound } from '../../kube/index.ts';
export type { Resource };

export const Res = {
  pvc: Resources.PersistentVolumeClaim,
  pv: Resources.PersistentVolume,
  pod: Resources.Pod,
  event: Resources.Event,
  configMap: Resources.ConfigMap,
  secret: Resources.Secret,
  service: Resources.Service,
  volumeSnapshotContent: {
    group: 'snapshot.storage.k8s.io',
    version: 'v1',
    kind: 'VolumeSnapshotContent',
    plural: 'volumesnapshotcontents',
    namespaced: false,
  },
  /** Not cached: asked for a csi-clone profile (is the clone smart?) and an externally populated claim. */
  csiDriver: {
    group: 'storage.k8s.io',
    version: 'v1',
    kind: 'CSIDriver',
    plural: 'csidrivers',
    namespaced: false,
  },
  cdi: Resources.CDI,
  namespace: Resources.Namespace,
  storageClass: Resources.StorageClass,
  lease: Resources.Lease,
  dataVolume: Resources.DataVolume,
  cdiConfig: Resources.CDIConfig,
  storageProfile: Resources.StorageProfile,
  dataSource: Resources.DataSource,
  dataImportCron: Resources.DataImportCron,
  volumeImportSource: Resources.VolumeImportSource,
  volumeUploadSource: Resources.VolumeUploadSource,
  volumeCloneSource: Resources.VolumeCloneSource,
  volumeSnapshot: Resources.VolumeSnapshot,
  cronJob: Resources.CronJob,
  job: Resources.Job,
} as const;

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  /** Objects with this value in a named index of the cache (see manager.ts); API reads filter a list with it. */
  index?: { name: string; value: string };
  /** Server-side narrowing for API reads only, given together with the equivalent index. */
  fieldSelector?: string;
  /**
   * Read from the API server even when the cache watches the kind (with fieldSelector, no index): for what the
   * cache leaves out, e.g. the events this controller records itself (the event cache holds only others').
   */
  live?: boolean;
}

export interface Kube {
  get<T>(r: Resource, name: string, namespace?: string): Promise<T | undefined>;
  list<T>(r: Resource, opts?: ListOptions): Promise<{ items: T[] }>;
  create<T>(r: Resource, obj: T): Promise<T>;
  /** PUT (optimistic: carries resourceVersion), optionally of the status subresource. */
  update<T>(r: Resource, obj: T, subresource?: 'status'): Promise<T>;
  /** A merge patch; one that carries metadata.resourceVersion is refused (409) if the object changed since. */
  mergePatch<T>(
    r: Resource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: 'status',
  ): Promise<T>;
  /** false when it was already gone. With `uid`, only that incarnation is deleted (a newer one is left alone). */
  delete(r: Resource, name: string, namespace?: string, uid?: string): Promise<boolean>;
}

/**
 * The items of a list, or none when the kind is not served (a 404 for the whole list: no CSI snapshotter installed,
 * so no VolumeSnapshots or VolumeSnapshotClasses).
 */
export async function listOrNone<T>(kube: Kube, r: Resource, opts?: ListOptions): Promise<T[]> {
  try {
    return (await kube.list<T>(r, opts)).items;
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/** A write refused because the object changed since it was read; the key is retried once the cache shows the change. */
export class StaleReadError extends Error {
  override name = 'StaleReadError';
}

export type Reads = 'cache' | 'api';

export class ClusterKube implements Kube {
  private readonly client: KubeClient;
  private readonly cache: Cache | undefined;
  private readonly reads: Reads;
  private readonly owner: string | undefined;
  private readonly signal: AbortSignal | undefined;

  /** Without a cache every read goes to the API server; with one, reads of the kinds it watches unless reads is "api". */
  constructor(
    client: KubeClient,
    opts: { cache?: Cache; reads?: Reads; owner?: string; signal?: AbortSignal } = {},
  ) {
    this.client = client;
    this.cache = opts.cache;
    this.reads = opts.reads ?? 'cache';
    this.owner = opts.owner;
    this.signal = opts.signal;
  }

  /** The Kube one reconcile uses: its writes are expected under `owner`, its requests end with `signal`. */
  session(owner: string, signal?: AbortSignal): ClusterKube {
    return new ClusterKube(this.client, {
      ...(this.cache ? { cache: this.cache } : {}),
      reads: this.reads,
      owner,
      ...(signal ? { signal } : {}),
    });
  }

  private cached(r: Resource): Cache | undefined {
    return this.reads === 'cache' && this.cache?.has(r) ? this.cache : undefined;
  }

  private live(): void {
    if (this.signal?.aborted)
      throw new Error('stopped (leadership lost or shutting down): nothing more is written');
  }

  get<T>(r: Resource, name: string, namespace?: string): Promise<T | undefined> {
    const c = this.cached(r);
    if (c) return Promise.resolve(c.get<KubeObject>(r, name, namespace) as T | undefined);
    return this.client
      .getOrUndefined<KubeObject>(r, name, namespace, this.signal)
      .then((o) => deepFreeze(o) as T | undefined);
  }

  async list<T>(r: Resource, opts: ListOptions = {}): Promise<{ items: T[] }> {
    const c = opts.live ? undefined : this.cached(r);
    if (c) {
      if (opts.fieldSelector && !opts.index)
        throw new Error(`a cached list of ${r.plural} cannot use a field selector; give an index`);
      return {
        items: c.list<KubeObject>(r, {
          ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
          ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
          ...(opts.index ? { index: opts.index } : {}),
        }) as T[],
      };
    }
    const l = await this.client.listAll<KubeObject>(r, {
      ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
      ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
      ...(opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {}),
      ...(this.signal ? { signal: this.signal } : {}),
    });
    let items = l.items ?? [];
    if (opts.index) {
      if (!this.cache)
        throw new Error(`listing ${r.plural} by index ${opts.index.name} needs the cache's index`);
      const fn = this.cache.indexFunc(r, opts.index.name);
      const value = opts.index.value;
      items = items.filter((o) => fn(o).includes(value));
    }
    return { items: deepFreeze(items) as T[] };
  }

  async create<T>(r: Resource, obj: T): Promise<T> {
    this.live();
    try {
      const created = await this.client.create<KubeObject>(r, obj as KubeObject, this.writeOpts());
      this.expectWrite(r, created);
      return deepFreeze(created) as T;
    } catch (e) {
      // It exists (deterministic name): whoever reads it next from the cache waits until the cache has it.
      if (isAlreadyExists(e) && this.owner && this.cache?.has(r))
        this.cache.expectations.expectPresent(this.owner, r, keyOf(obj as KubeObject));
      throw e;
    }
  }

  async update<T>(r: Resource, obj: T, subresource?: 'status'): Promise<T> {
    this.live();
    try {
      const updated = await this.client.replace<KubeObject>(r, obj as KubeObject, {
        ...this.writeOpts(),
        ...(subresource ? { subresource } : {}),
      });
      this.expectWrite(r, updated);
      return deepFreeze(updated) as T;
    } catch (e) {
      throw await this.onConflict(
        e,
        r,
        (obj as KubeObject).metadata?.name ?? '',
        (obj as KubeObject).metadata?.namespace,
      );
    }
  }

  async mergePatch<T>(
    r: Resource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: 'status',
  ): Promise<T> {
    this.live();
    try {
      const patched = await this.client.mergePatch<KubeObject>(r, name, patch, {
        ...this.writeOpts(),
        ...(namespace ? { namespace } : {}),
        ...(subresource ? { subresource } : {}),
      });
      this.expectWrite(r, patched);
      return deepFreeze(patched) as T;
    } catch (e) {
      throw await this.onConflict(e, r, name, namespace);
    }
  }

  async delete(r: Resource, name: string, namespace?: string, uid?: string): Promise<boolean> {
    this.live();
    const key = namespace && r.namespaced ? `${namespace}/${name}` : name;
    const target = uid ?? this.cached(r)?.get<KubeObject>(r, name, namespace)?.metadata?.uid;
    let deleted: boolean;
    try {
      deleted = await this.client.delete(r, name, {
        ...(namespace ? { namespace } : {}),
        ...(target ? { uid: target } : {}),
        // dependents are collected (a Job's pods too: batch/v1 would orphan them by default)
        propagationPolicy: 'Background',
        ...(this.signal ? { signal: this.signal } : {}),
      });
    } catch (e) {
      // the uid precondition failed: the name now holds a newer object, which is not ours to delete
      if (target && isConflict(e)) return false;
      throw e;
    }
    if (this.owner && this.cache?.has(r)) this.cache.expectations.expectGone(this.owner, r, key, target);
    return deleted;
  }

  private writeOpts(): { signal?: AbortSignal } {
    return this.signal ? { signal: this.signal } : {};
  }

  private expectWrite(r: Resource, written: KubeObject | undefined): void {
    if (!this.owner || !this.cache?.has(r) || !written?.metadata) return;
    this.cache.expectations.expectWrite(this.owner, r, keyOf(written), written.metadata.resourceVersion);
  }

  /**
   * A 409 on a write that carried a resourceVersion: the object changed since it was read (a newer status from
   * another writer, or our cache is behind). Wait for the cache to show the current version, then reconcile again.
   */
  private async onConflict(
    e: unknown,
    r: Resource,
    name: string,
    namespace: string | undefined,
  ): Promise<unknown> {
    if (!isConflict(e)) return e;
    let current: KubeObject | undefined;
    try {
      current = await this.client.getOrUndefined<KubeObject>(r, name, namespace, this.signal);
    } catch {
      current = undefined;
    }
    this.expectWrite(r, current);
    const version = current?.metadata?.resourceVersion;
    return new StaleReadError(
      `${r.kind} ${namespace ? `${namespace}/` : ''}${name} changed since it was read${version ? ` (now at resourceVersion ${version})` : ''}; reconciling again with the newer version`,
      { cause: e },
    );
  }
}
