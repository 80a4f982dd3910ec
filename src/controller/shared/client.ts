// A small typed REST client for the API server: exactly the verbs the controllers use, nothing generic.
// It speaks JSON over node:https with the credentials of a kubeconfig (or the in-cluster service account).
// Why not @kubernetes/client-node's generated APIs: the controllers need the status subresource of custom resources,
// merge patches and raw watch streams with resourceVersion control, and a single error type carrying the HTTP status.
import https from 'node:https';
import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

export interface Resource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export const Res = {
  pvc: {
    group: '',
    version: 'v1',
    plural: 'persistentvolumeclaims',
    kind: 'PersistentVolumeClaim',
    namespaced: true,
  },
  pv: { group: '', version: 'v1', plural: 'persistentvolumes', kind: 'PersistentVolume', namespaced: false },
  pod: { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
  event: { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  configMap: { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  namespace: { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  storageClass: {
    group: 'storage.k8s.io',
    version: 'v1',
    plural: 'storageclasses',
    kind: 'StorageClass',
    namespaced: false,
  },
  lease: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  dataVolume: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    plural: 'datavolumes',
    kind: 'DataVolume',
    namespaced: true,
  },
  cdiConfig: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    plural: 'cdiconfigs',
    kind: 'CDIConfig',
    namespaced: false,
  },
  storageProfile: {
    group: 'cdi.kubevirt.io',
    version: 'v1beta1',
    plural: 'storageprofiles',
    kind: 'StorageProfile',
    namespaced: false,
  },
} as const satisfies Record<string, Resource>;

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}
export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.status === 404;
export const isAlreadyExists = (e: unknown): boolean =>
  e instanceof ApiError && e.status === 409 && e.reason === 'AlreadyExists';
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.status === 409;
export const isGone = (e: unknown): boolean => e instanceof ApiError && e.status === 410;

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}
export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

interface Obj {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/** The operations the controllers need; tests may pass the same client to drive a fake kubelet. */
export interface Kube {
  get<T>(r: Resource, name: string, namespace?: string): Promise<T | undefined>;
  list<T>(r: Resource, opts?: ListOptions): Promise<ListResult<T>>;
  create<T extends Obj>(r: Resource, obj: T): Promise<T>;
  update<T extends Obj>(r: Resource, obj: T, subresource?: 'status'): Promise<T>;
  mergePatch<T>(
    r: Resource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: 'status',
  ): Promise<T>;
  delete(r: Resource, name: string, namespace?: string, body?: unknown): Promise<boolean>;
  watch<T>(
    r: Resource,
    opts: ListOptions & { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export function resourcePath(r: Resource, namespace?: string, name?: string, sub?: string): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

function query(o: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export class RestKube implements Kube {
  private readonly server: URL;
  private readonly opts: https.RequestOptions;
  private readonly userAgent: string;

  private constructor(server: URL, opts: https.RequestOptions, userAgent: string) {
    this.server = server;
    this.opts = opts;
    this.userAgent = userAgent;
  }

  /** From a kubeconfig file path, or (with no path) $KUBECONFIG, ~/.kube/config or the in-cluster service account. */
  static async fromKubeconfig(path?: string, userAgent = 'cdi-controller'): Promise<RestKube> {
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
    const cluster = kc.getCurrentCluster();
    if (!cluster)
      throw new Error(
        'kubeconfig has no current cluster: set current-context or pass a kubeconfig with one cluster',
      );
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return new RestKube(new URL(cluster.server), opts, userAgent);
  }

  private request(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<{ status: number; res: http.IncomingMessage }> {
    const url = new URL(path, this.server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const mod = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          ...this.opts,
          method,
          headers: {
            ...(this.opts.headers as Record<string, string> | undefined),
            accept: 'application/json',
            'user-agent': this.userAgent,
            ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          },
        },
        (res) => resolve({ status: res.statusCode ?? 0, res }),
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  private async json<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const { status, res } = await this.request(method, path, body, contentType);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status >= 300) {
      const st = parsed as { reason?: string; message?: string } | undefined;
      throw new ApiError(
        status,
        st?.reason ?? '',
        `${method} ${path}: ${status} ${st?.message ?? text.slice(0, 200)}`,
      );
    }
    return parsed as T;
  }

  async get<T>(r: Resource, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.json<T>('GET', resourcePath(r, namespace, name));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async list<T>(r: Resource, opts: ListOptions = {}): Promise<ListResult<T>> {
    const l = await this.json<{ items: T[] | null; metadata: { resourceVersion: string } }>(
      'GET',
      resourcePath(r, opts.namespace) +
        query({ labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector }),
    );
    return { items: l.items ?? [], resourceVersion: l.metadata.resourceVersion };
  }

  create<T extends Obj>(r: Resource, obj: T): Promise<T> {
    return this.json<T>('POST', resourcePath(r, obj.metadata?.namespace), obj);
  }

  update<T extends Obj>(r: Resource, obj: T, subresource?: 'status'): Promise<T> {
    return this.json<T>(
      'PUT',
      resourcePath(r, obj.metadata?.namespace, obj.metadata?.name, subresource),
      obj,
    );
  }

  mergePatch<T>(
    r: Resource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: 'status',
  ): Promise<T> {
    return this.json<T>(
      'PATCH',
      resourcePath(r, namespace, name, subresource),
      patch,
      'application/merge-patch+json',
    );
  }

  async delete(r: Resource, name: string, namespace?: string, body?: unknown): Promise<boolean> {
    try {
      await this.json('DELETE', resourcePath(r, namespace, name), body);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async watch<T>(
    r: Resource,
    opts: ListOptions & { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const path =
      resourcePath(r, opts.namespace) +
      query({
        watch: 1,
        allowWatchBookmarks: true,
        resourceVersion: opts.resourceVersion,
        timeoutSeconds: opts.timeoutSeconds ?? 300,
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
      });
    const { status, res } = await this.request('GET', path);
    const onAbort = (): void => {
      res.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (status !== 200) {
        res.resume();
        throw new ApiError(status, status === 410 ? 'Expired' : '', `watch ${r.plural}: HTTP ${status}`);
      }
      let buf = '';
      for await (const chunk of res) {
        buf += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line) as WatchEvent<T>;
          if (ev.type === 'ERROR') {
            const st = ev.object as { code?: number; reason?: string; message?: string };
            throw new ApiError(
              st.code ?? 500,
              st.reason ?? '',
              `watch ${r.plural}: ${st.message ?? 'error'}`,
            );
          }
          onEvent(ev);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
