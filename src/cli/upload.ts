/**
 * `cdi upload dv|pvc NAME --image-path FILE`: what `virtctl image-upload` does (kubevirt pkg/virtctl/imageupload),
 * with its flags: create the DataVolume (or PVC) with an upload source, wait until its upload server is ready, get an
 * upload token (UploadTokenRequest, generateName token-for-virtctl-), probe for async with HEAD, send the file with a
 * progress bar, retry what can be retried, and wait until the volume is populated.
 *
 * Beyond virtctl (docs/upload.md): `--checksum algo:hex` is sent as x-cdi-checksum and checked by the upload server;
 * uploads are resumable (x-cdi-upload-id): after a broken connection only the bytes the server does not have are sent
 * again; x-cdi-upload-target names the PVC, so a token for another one is refused by the proxy.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { HttpMethod, KubeConfig } from '@kubernetes/client-node';
import { Ann, ContentType, Label, Phase } from '../api/constants.ts';
import { UploadHeader, UploadPath, UploadApiVersion, type UploadTokenRequest } from '../api/upload.ts';
import { parseChecksum, type Checksum } from '../importer/checksum.ts';
import { Progress } from '../importer/progress.ts';
import { parseSize } from '../importer/size.ts';
import {
  isNotFound,
  KubeClient,
  loadKubeConfig,
  Resources,
  type KubeObject,
  type Resource,
  type PersistentVolumeClaim,
} from '../kube/index.ts';
import { showProgress } from './progress-view.ts';

export interface UploadFlags {
  imagePath?: string;
  archivePath?: string;
  size?: string;
  storageClass?: string;
  accessMode?: string;
  volumeMode?: string;
  create: boolean;
  forceBind?: boolean;
  insecure?: boolean;
  uploadproxyUrl?: string;
  uploadproxyCa?: string;
  waitSecs: string;
  retry: string;
  namespace?: string;
  kubeconfig?: string;
  checksum?: string;
  resume: boolean;
  progress: boolean;
}

/** A failure the user should read as is (one line); `usage` for bad flags (exit 2). */
export class UploadCliError extends Error {
  override name = 'UploadCliError';
  readonly usage: boolean;
  constructor(message: string, usage = false) {
    super(message);
    this.usage = usage;
  }
}

type DataVolume = KubeObject & {
  spec?: Record<string, unknown>;
  status?: {
    phase?: string;
    claimName?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
};
type CDIConfig = KubeObject & {
  spec?: { uploadProxyURLOverride?: string };
  status?: { uploadProxyURL?: string; uploadProxyCA?: string };
};

const say = (line: string): void => void process.stdout.write(line + '\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isTrue = (v: string | undefined): boolean => ['true', 'True', 'TRUE', '1', 't', 'T'].includes(v ?? '');

interface Plan {
  kind: 'dv' | 'pvc';
  name: string;
  file: string;
  size: number;
  archive: boolean;
  checksum: Checksum | undefined;
  waitMs: number;
  retries: number;
}

function plan(kind: string, name: string, f: UploadFlags): Plan {
  const k = kind.toLowerCase();
  if (k !== 'dv' && k !== 'pvc')
    throw new UploadCliError(`invalid resource type ${kind}: use dv or pvc`, true);
  if (!f.imagePath && !f.archivePath)
    throw new UploadCliError('either --image-path or --archive-path must be given', true);
  if (f.imagePath && f.archivePath)
    throw new UploadCliError('give only one of --image-path and --archive-path', true);
  const vm = f.volumeMode;
  if (vm !== undefined && vm !== 'block' && vm !== 'filesystem') {
    throw new UploadCliError(`invalid --volume-mode '${vm}': use block or filesystem`, true);
  }
  if (f.archivePath && vm === 'block')
    throw new UploadCliError('an archive upload needs --volume-mode filesystem', true);
  if (f.accessMode === 'ReadOnlyMany') {
    throw new UploadCliError('cannot upload to a read-only volume: use ReadWriteOnce or ReadWriteMany', true);
  }
  const int = (v: string, flag: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new UploadCliError(`${flag} must be a whole number, not ${v}`, true);
    return n;
  };
  return {
    kind: k,
    name,
    file: (f.imagePath ?? f.archivePath)!,
    size: 0,
    archive: f.archivePath !== undefined,
    checksum: f.checksum ? checksumFlag(f.checksum) : undefined,
    waitMs: int(f.waitSecs, '--wait-secs') * 1000,
    retries: Math.max(1, int(f.retry, '--retry')),
  };
}

function checksumFlag(v: string): Checksum {
  try {
    return parseChecksum(v);
  } catch (e) {
    throw new UploadCliError(`--checksum: ${(e as Error).message}`, true);
  }
}

function kubeConfig(f: UploadFlags): KubeConfig {
  const path = f.kubeconfig ?? process.env.KUBECONFIG;
  if (path) return loadKubeConfig(path.split(':')[0]!);
  // client-node's loadFromDefault falls back to http://localhost:8080 when there is no ~/.kube/config and no
  // in-cluster service account, which then fails with a TLS message that names neither: say what is missing.
  const home = join(homedir(), '.kube', 'config');
  if (!existsSync(home) && !process.env.KUBERNETES_SERVICE_HOST)
    throw new UploadCliError(`no kubeconfig: ${home} does not exist; pass --kubeconfig or set KUBECONFIG`);
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw new UploadCliError(`no usable kubeconfig: ${(e as Error).message}; pass --kubeconfig`);
  }
  if (!kc.getCurrentCluster()) throw new UploadCliError('no kubeconfig: pass --kubeconfig or set KUBECONFIG');
  return kc;
}

export async function runUpload(kind: string, name: string, f: UploadFlags): Promise<number> {
  const p = plan(kind, name, f);
  const st = await stat(p.file).catch(() => undefined);
  if (!st?.isFile()) throw new UploadCliError(`${p.file} is not a readable file`);
  p.size = st.size;
  await (await open(p.file, 'r')).close();
  const kc = kubeConfig(f);
  const kube = new KubeClient(kc);
  const ns = f.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';

  await ensureTarget(kube, ns, p, f);
  if (p.kind === 'pvc') await waitPvcReady(kube, ns, p);
  else await waitDvReady(kube, ns, p, f.forceBind === true);

  const config = await kube.getOrUndefined<CDIConfig>(Resources.CDIConfig, 'config').catch(() => undefined);
  let proxyUrl = f.uploadproxyUrl ?? config?.spec?.uploadProxyURLOverride ?? config?.status?.uploadProxyURL;
  if (!proxyUrl) {
    throw new UploadCliError(
      'the upload proxy URL is not known: pass --uploadproxy-url, or set CDIConfig spec.uploadProxyURLOverride',
    );
  }
  if (!/^[a-z]+:\/\//i.test(proxyUrl)) proxyUrl = `https://${proxyUrl}`;
  const ca = f.uploadproxyCa
    ? await readFile(f.uploadproxyCa, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new UploadCliError(`cannot read --uploadproxy-ca ${f.uploadproxyCa}: ${e.code ?? e.message}`);
      })
    : config?.status?.uploadProxyCA || undefined;
  say(`Uploading data to ${proxyUrl}`);
  const client = new ProxyClient(proxyUrl, { ...(ca ? { ca } : {}), insecure: f.insecure === true });
  let token = await getToken(kube, ns, p.name);
  const path = (await client.probeAsync(token)) ? UploadPath.Async : UploadPath.Sync;

  const progress = new Progress();
  progress.total = p.size;
  progress.setPhase('uploading');
  const stop = f.progress ? showProgress(progress, process.stderr, process.stderr.isTTY === true) : () => {};
  const id = f.resume ? randomBytes(12).toString('hex') : undefined;
  try {
    await sendWithRetries(
      client,
      p,
      ns,
      path,
      id,
      progress,
      () => token,
      async () => (token = await getToken(kube, ns, p.name)),
    );
  } finally {
    stop();
  }
  say(
    'Uploading data completed successfully, waiting for processing to complete, you can hit ctrl-c without interrupting the progress',
  );
  if (p.kind === 'pvc') await waitPvcSucceeded(kube, ns, p.name);
  else await waitDvSucceeded(kube, ns, p.name);
  say('Processing completed successfully');
  say(`Uploading ${p.file} completed successfully`);
  return 0;
}

// ---- the DataVolume / PVC ----

async function ensureTarget(kube: KubeClient, ns: string, p: Plan, f: UploadFlags): Promise<void> {
  const pvc = await kube.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, p.name, ns);
  if (p.kind === 'dv') {
    const dv = await kube.getOrUndefined<DataVolume>(Resources.DataVolume, p.name, ns);
    if (dv) {
      if (!dv.spec?.['source'] || !(dv.spec['source'] as Record<string, unknown>)['upload']) {
        throw new UploadCliError(`DataVolume ${ns}/${p.name} exists and its source is not upload`);
      }
      if (dv.status?.phase === Phase.Succeeded)
        throw new UploadCliError(`DataVolume ${ns}/${p.name} already succeeded`);
      say(`Using existing DataVolume ${ns}/${p.name}`);
      return;
    }
    if (pvc) throw new UploadCliError(`No DataVolume is associated with the existing PVC ${ns}/${p.name}`);
    if (!f.create)
      throw new UploadCliError(`DataVolume ${ns}/${p.name} does not exist (and --no-create was given)`);
    await create(kube, ns, p, f);
    return;
  }
  if (pvc) {
    const a = pvc.metadata?.annotations ?? {};
    if (a[Ann.PodPhase] === 'Succeeded') {
      throw new UploadCliError(`PVC ${p.name} already successfully imported/cloned/updated`);
    }
    const ref = pvc.spec?.dataSourceRef;
    if (ref?.apiGroup === 'cdi.kubevirt.io' && ref.kind === 'VolumeUploadSource') {
      // the upload populator's target: the upload goes to its prime claim (the proxy follows it there), and the
      // target mirrors the prime's readiness and phase; it must not become an upload target itself
      say(`Using existing PVC ${ns}/${p.name} (populated from VolumeUploadSource ${ref.name})`);
      return;
    }
    if (f.create && !(Ann.UploadRequest in a))
      throw new UploadCliError(`PVC ${p.name} not available for upload`);
    if (p.archive && a[Ann.ContentType] !== ContentType.Archive) {
      throw new UploadCliError(`PVC ${p.name} doesn't have archive contentType annotation`);
    }
    if (!(Ann.UploadRequest in a)) {
      await kube.mergePatch(
        Resources.PersistentVolumeClaim,
        p.name,
        { metadata: { annotations: { [Ann.UploadRequest]: '' } } },
        { namespace: ns },
      );
    }
    say(`Using existing PVC ${ns}/${p.name}`);
    return;
  }
  if (!f.create) throw new UploadCliError(`PVC ${ns}/${p.name} not found (and --no-create was given)`);
  await create(kube, ns, p, f);
}

async function create(kube: KubeClient, ns: string, p: Plan, f: UploadFlags): Promise<void> {
  if (!f.size)
    throw new UploadCliError('when creating a resource, the size must be specified (--size)', true);
  try {
    parseSize(f.size);
  } catch (e) {
    throw new UploadCliError(`--size: ${(e as Error).message}`, true);
  }
  const size = f.size;
  if (f.storageClass) {
    const sc = await kube.getOrUndefined(Resources.StorageClass, f.storageClass);
    if (!sc) throw new UploadCliError(`storage class ${f.storageClass} does not exist`);
  }
  const volumeMode =
    f.volumeMode === 'block' ? 'Block' : f.volumeMode === 'filesystem' ? 'Filesystem' : undefined;
  const contentType = p.archive ? ContentType.Archive : ContentType.KubeVirt;
  const bind: Record<string, string> = f.forceBind ? { [Ann.ImmediateBinding]: '' } : {};
  if (p.kind === 'dv') {
    await kube.create<DataVolume>(Resources.DataVolume, {
      metadata: { name: p.name, namespace: ns, annotations: bind },
      spec: {
        source: { upload: {} },
        contentType,
        storage: {
          resources: { requests: { storage: size } },
          ...(f.storageClass ? { storageClassName: f.storageClass } : {}),
          ...(f.accessMode ? { accessModes: [f.accessMode] } : {}),
          ...(volumeMode ? { volumeMode } : {}),
        },
      },
    });
    say(`DataVolume ${ns}/${p.name} created`);
    return;
  }
  await kube.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: {
      name: p.name,
      namespace: ns,
      annotations: { [Ann.UploadRequest]: '', [Ann.ContentType]: contentType, ...bind },
      labels: { [Label.ApplyStorageProfile]: 'true' },
    },
    spec: {
      accessModes: [f.accessMode ?? 'ReadWriteOnce'],
      resources: { requests: { storage: size } },
      ...(f.storageClass ? { storageClassName: f.storageClass } : {}),
      ...(volumeMode ? { volumeMode } : {}),
    },
  });
  say(`PersistentVolumeClaim ${ns}/${p.name} created`);
}

async function eventErrors(kube: KubeClient, ns: string, pvcUid?: string, dvUid?: string): Promise<void> {
  const events = await kube.list<
    KubeObject & { involvedObject?: { kind?: string; uid?: string }; reason?: string; message?: string }
  >(Resources.Event, { namespace: ns });
  for (const e of events.items) {
    const io = e.involvedObject;
    if (
      io?.kind === 'PersistentVolumeClaim' &&
      pvcUid &&
      io.uid === pvcUid &&
      e.reason === 'ProvisioningFailed'
    ) {
      if (!e.message?.includes('the object has been modified'))
        throw new UploadCliError(`Provisioning failed: ${e.message ?? ''}`);
    }
    if (io?.kind === 'DataVolume' && dvUid && io.uid === dvUid && e.reason === 'ErrClaimNotValid') {
      throw new UploadCliError(`Claim not valid: ${e.message ?? ''}`);
    }
  }
}

async function waitPvcReady(kube: KubeClient, ns: string, p: Plan): Promise<void> {
  const deadline = Date.now() + p.waitMs;
  let logged = false;
  for (;;) {
    const pvc = await kube.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, p.name, ns);
    if (pvc && isTrue(pvc.metadata?.annotations?.[Ann.PodReady])) break;
    if (pvc) await eventErrors(kube, ns, pvc.metadata?.uid);
    if (!logged) say(`Waiting for PVC ${p.name} upload pod to be ready...`);
    logged = true;
    if (Date.now() > deadline) {
      throw new UploadCliError(
        `timed out after ${p.waitMs / 1000}s waiting for the upload server of PVC ${ns}/${p.name} (annotation ${Ann.PodReady} is ${pvc?.metadata?.annotations?.[Ann.PodReady] ?? 'unset'}); is CDI running?`,
      );
    }
    await sleep(2000);
  }
  if (logged) say('Pod now ready');
}

async function waitDvReady(kube: KubeClient, ns: string, p: Plan, forceBind: boolean): Promise<void> {
  const deadline = Date.now() + p.waitMs;
  let logged = false;
  for (;;) {
    const dv = await kube.getOrUndefined<DataVolume>(Resources.DataVolume, p.name, ns);
    const phase = dv?.status?.phase;
    if (phase === Phase.UploadReady) break;
    if ((phase === Phase.WaitForFirstConsumer || phase === Phase.PendingPopulation) && !forceBind) {
      throw new UploadCliError(
        `cannot upload to DataVolume in ${phase} phase, make sure the PVC is Bound, or use --force-bind`,
      );
    }
    if (phase === Phase.Failed)
      throw new UploadCliError(`DataVolume ${ns}/${p.name} failed: ${conditionText(dv)}`);
    if (dv) {
      const pvc = await kube.getOrUndefined<PersistentVolumeClaim>(
        Resources.PersistentVolumeClaim,
        dv.status?.claimName ?? p.name,
        ns,
      );
      await eventErrors(kube, ns, pvc?.metadata?.uid, dv.metadata?.uid);
    }
    if (!logged) say(`Waiting for PVC ${p.name} upload pod to be ready...`);
    logged = true;
    if (Date.now() > deadline) {
      throw new UploadCliError(
        `timed out after ${p.waitMs / 1000}s waiting for DataVolume ${ns}/${p.name} to be UploadReady (phase ${phase || 'unset'}${dv ? `; ${conditionText(dv)}` : ''})`,
      );
    }
    await sleep(2000);
  }
  if (logged) say('Pod now ready');
}

function conditionText(dv: DataVolume | undefined): string {
  const c = dv?.status?.conditions?.filter((x) => x.message).map((x) => `${x.type}: ${x.message}`) ?? [];
  return c.length ? c.join('; ') : 'no condition message';
}

async function waitPvcSucceeded(kube: KubeClient, ns: string, name: string): Promise<void> {
  let restarts: string | undefined;
  await watchUntil<PersistentVolumeClaim>(kube, Resources.PersistentVolumeClaim, ns, name, (pvc) => {
    const a = pvc.metadata?.annotations ?? {};
    if (a[Ann.PodPhase] === 'Succeeded') return true;
    restarts ??= a[Ann.PodRestarts] ?? '0';
    if ((a[Ann.PodRestarts] ?? '0') !== restarts || a[Ann.PodPhase] === 'Failed') {
      throw new UploadCliError(
        `the upload server of PVC ${ns}/${name} failed after taking the data: ${a[Ann.RunningConditionMessage] ?? 'see its pod log'}; upload again`,
      );
    }
    return false;
  });
}

async function waitDvSucceeded(kube: KubeClient, ns: string, name: string): Promise<void> {
  await watchUntil<DataVolume>(kube, Resources.DataVolume, ns, name, (dv) => {
    if (dv.status?.phase === Phase.Succeeded) return true;
    if (dv.status?.phase === Phase.Failed)
      throw new UploadCliError(`DataVolume ${ns}/${name} failed: ${conditionText(dv)}`);
    return false;
  });
}

/**
 * Reads the object, then watches it until `done` says so (or throws). A watch, not polling: the upload's last step
 * (the pod's exit, the controller's status write) is seen the moment it happens; polling every 2 s added a second
 * on average to every upload (docs/upload.md "Measured"). A watch that ends or fails is started again from a fresh
 * read.
 */
async function watchUntil<T extends KubeObject>(
  kube: KubeClient,
  r: Resource,
  ns: string,
  name: string,
  done: (o: T) => boolean,
): Promise<void> {
  for (;;) {
    const o = await kube.get<T>(r, name, ns);
    if (done(o)) return;
    try {
      for await (const ev of kube.watch<T>(r, {
        namespace: ns,
        fieldSelector: `metadata.name=${name}`,
        ...(o.metadata?.resourceVersion ? { resourceVersion: o.metadata.resourceVersion } : {}),
        timeoutSeconds: 60,
      })) {
        if (ev.type === 'DELETED') throw new UploadCliError(`${r.kind} ${ns}/${name} was deleted`);
        if ((ev.type === 'ADDED' || ev.type === 'MODIFIED') && done(ev.object)) return;
      }
    } catch (e) {
      if (e instanceof UploadCliError) throw e;
      await sleep(1000); // the watch failed (e.g. 410 Gone): read again
    }
  }
}

async function getToken(kube: KubeClient, ns: string, pvc: string): Promise<string> {
  const body: UploadTokenRequest = {
    apiVersion: UploadApiVersion,
    kind: 'UploadTokenRequest',
    metadata: { generateName: 'token-for-virtctl-', namespace: ns },
    spec: { pvcName: pvc },
  };
  try {
    const r = await kube.request<UploadTokenRequest>(
      HttpMethod.POST,
      `/apis/${UploadApiVersion}/namespaces/${ns}/uploadtokenrequests`,
      { body },
    );
    if (!r?.status?.token) throw new UploadCliError('the UploadTokenRequest came back without a token');
    return r.status.token;
  } catch (e) {
    if (isNotFound(e)) {
      throw new UploadCliError(
        'the cluster does not serve upload.cdi.kubevirt.io (is cdi-apiserver installed and its APIService available?)',
      );
    }
    throw new UploadCliError(`cannot get an upload token: ${(e as Error).message}`);
  }
}

// ---- talking to the upload proxy ----

interface Answer {
  status: number;
  body: string;
  headers: IncomingMessage['headers'];
}

class TransportError extends Error {
  override name = 'TransportError';
}

export class ProxyClient {
  private readonly base: URL;
  private readonly tls: https.RequestOptions;
  constructor(url: string, o: { ca?: string; insecure: boolean }) {
    this.base = new URL(url);
    this.tls = o.insecure ? { rejectUnauthorized: false } : o.ca ? { ca: o.ca } : {};
  }

  private url(path: string): URL {
    const u = new URL(this.base.toString());
    u.pathname = (u.pathname.replace(/\/+$/, '') + path).replace(/\/{2,}/g, '/');
    return u;
  }

  request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: NodeJS.ReadableStream,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = https.request(this.url(path), { method, headers, agent: false, ...this.tls }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text = (text + d).slice(0, 64 << 10)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        res.on('error', (e) => reject(new TransportError(e.message)));
      });
      req.on('error', (e) => reject(new TransportError(`${this.base.host}: ${e.message}`)));
      if (body) {
        body.on('error', (e: Error) => req.destroy(e));
        body.pipe(req);
      } else req.end();
    });
  }

  /** upstream: HEAD on the async path; 200 means the server answers as soon as it has the bytes. */
  async probeAsync(token: string): Promise<boolean> {
    try {
      return (
        (await this.request('HEAD', UploadPath.Async, { authorization: `Bearer ${token}` })).status === 200
      );
    } catch {
      return false;
    }
  }
}

/** Plain text of an error answer (the proxy and server escape HTML; undo the entities for the terminal). */
function answerText(a: Answer): string {
  const t = (a.body || String(a.headers[UploadHeader.UploadError] ?? '')).trim();
  return t
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#34;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

async function sendWithRetries(
  client: ProxyClient,
  p: Plan,
  ns: string,
  path: string,
  id: string | undefined,
  progress: Progress,
  token: () => string,
  refreshToken: () => Promise<string>,
): Promise<void> {
  let offset = 0;
  let refreshes = 3;
  let lastError = '';
  for (let attempt = 0; attempt < p.retries; attempt++) {
    if (attempt > 0) {
      // jittered back-off: 0.5 s, 1 s, 2 s ... (at most 8 s), each 50-100%
      const base = Math.min(8000, 500 * 2 ** (attempt - 1));
      await sleep(base / 2 + Math.random() * (base / 2));
      if (id) offset = await resumeOffset(client, id, token(), ns, p);
      if (offset === p.size) {
        // the server took every byte before the connection went: it is processing them
        progress.set(1);
        return;
      }
      if (offset > 0) process.stderr.write(`cdi: resuming the upload at byte ${offset} of ${p.size}\n`);
    }
    progress.done = offset;
    const headers: Record<string, string> = {
      authorization: `Bearer ${token()}`,
      'content-type': 'application/octet-stream',
      'content-length': String(p.size - offset),
      [UploadHeader.UploadTarget]: `${ns}/${p.name}`,
      ...(p.checksum ? { [UploadHeader.Checksum]: `${p.checksum.algorithm}:${p.checksum.hex}` } : {}),
      ...(id ? { [UploadHeader.UploadId]: id } : {}),
      ...(offset > 0 ? { [UploadHeader.UploadOffset]: String(offset) } : {}),
    };
    const body = createReadStream(p.file, { start: offset, highWaterMark: 1 << 20 }).pipe(progress.counter());
    let a: Answer;
    try {
      a = await client.request('POST', path, headers, body);
    } catch (e) {
      lastError = (e as Error).message;
      process.stderr.write(`cdi: the upload broke off (${lastError}); retrying\n`);
      continue;
    }
    if (a.status === 200) {
      progress.set(1);
      return;
    }
    const text = answerText(a);
    if (a.status === 401) {
      if (attempt === 0 || refreshes === 0)
        throw new UploadCliError(`authentication failed: ${a.status} ${text}`);
      refreshes--;
      await refreshToken();
      lastError = `${a.status} ${text}`;
      continue;
    }
    if (a.status === 412 && a.headers[UploadHeader.UploadOffset] !== undefined) {
      // the server holds a different amount than we thought: go on from there (no back-off needed)
      offset = Number(a.headers[UploadHeader.UploadOffset]);
      attempt--;
      continue;
    }
    if (a.status === 502 || a.status === 503 || a.status === 504) {
      lastError = `${a.status} ${text}`;
      process.stderr.write(`cdi: the upload proxy answered ${lastError}; retrying\n`);
      continue;
    }
    if (a.status === 409)
      throw new UploadCliError(`the upload server already took an upload for PVC ${ns}/${p.name} (409)`);
    throw new UploadCliError(`the upload was refused: ${a.status} ${text}`);
  }
  throw new UploadCliError(`error uploading image after ${p.retries} attempts: ${lastError}`);
}

/** Where to continue: the server's offset for our upload id, or 0 when it has none (start again). */
async function resumeOffset(
  client: ProxyClient,
  id: string,
  token: string,
  ns: string,
  p: Plan,
): Promise<number> {
  let a: Answer;
  try {
    a = await client.request('HEAD', UploadPath.Sync, {
      authorization: `Bearer ${token}`,
      [UploadHeader.UploadId]: id,
      [UploadHeader.UploadTarget]: `${ns}/${p.name}`,
    });
  } catch {
    return 0;
  }
  if (a.status === 200) {
    const n = Number(a.headers[UploadHeader.UploadOffset]);
    return Number.isSafeInteger(n) && n >= 0 && n <= p.size ? n : 0;
  }
  if (a.status === 400 || a.status === 500) {
    throw new UploadCliError(`the upload server gave up on this upload: ${answerText(a)}`);
  }
  return 0;
}
