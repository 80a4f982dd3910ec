/**
 * cdi-apiserver on the host, registered with the cluster's aggregation layer: a Service without a selector, hand-made
 * Endpoints/EndpointSlice pointing at 10.99.0.1:<port> (the API server routes to endpoints), and the APIService
 * v1beta1.upload.cdi.kubevirt.io with our CA. `cleanup()` removes the APIService first: an unavailable APIService
 * breaks discovery for every other test.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ann } from '../../../src/api/constants.ts';
import { UploadProxy } from '../../../src/uploadproxy/proxy.ts';
import {
  killUploadPods,
  makeUploadPki,
  startUploadPod,
  type UploadPki,
  type UploadPod,
} from '../../support/upload.ts';
import type { Admitter } from '../../../src/apiserver/admission.ts';
import { readAuthConfig } from '../../../src/apiserver/authn.ts';
import { CdiApiServer } from '../../../src/apiserver/server.ts';
import { createCA, issueServerCert, validityFrom, type Signer } from '../../../src/certs/pki.ts';
import { serviceHostnames } from '../../../src/certs/reconcile.ts';
import {
  isNotFound,
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Resource,
} from '../../../src/kube/index.ts';
import { getOrCreateSigningKey } from '../../../src/token/keys.ts';
import { TokenGenerator, TokenValidator, UploadTokenIssuer } from '../../../src/token/token.ts';
import { after, before } from 'node:test';
import { clusterClient, createNamespace, eventually, installCrds } from '../kube/cluster.ts';

export const HOST_IP = '10.99.0.1';
export const APISERVICE = 'v1beta1.upload.cdi.kubevirt.io';

export const R = {
  APIService: {
    group: 'apiregistration.k8s.io',
    version: 'v1',
    kind: 'APIService',
    plural: 'apiservices',
    namespaced: false,
  },
  Endpoints: { group: '', version: 'v1', kind: 'Endpoints', plural: 'endpoints', namespaced: true },
  EndpointSlice: {
    group: 'discovery.k8s.io',
    version: 'v1',
    kind: 'EndpointSlice',
    plural: 'endpointslices',
    namespaced: true,
  },
  Role: {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'Role',
    plural: 'roles',
    namespaced: true,
  },
  RoleBinding: {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'RoleBinding',
    plural: 'rolebindings',
    namespaced: true,
  },
  Validating: {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'ValidatingWebhookConfiguration',
    plural: 'validatingwebhookconfigurations',
    namespaced: false,
  },
  Mutating: {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'MutatingWebhookConfiguration',
    plural: 'mutatingwebhookconfigurations',
    namespaced: false,
  },
} as const satisfies Record<string, Resource>;

export async function deleteIfExists(
  kube: KubeClient,
  r: Resource,
  name: string,
  namespace?: string,
): Promise<void> {
  try {
    await kube.delete(r, name, { ...(namespace ? { namespace } : {}) });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

export interface AggregatedApiServer {
  /** The "CDI namespace" of the test: signing key Secret, Service cdi-api. */
  cdiNs: string;
  port: number;
  ca: Signer;
  validator: TokenValidator;
  server: CdiApiServer;
  cleanup: () => Promise<void>;
}

const LOCK = path.join(tmpdir(), 'cdi-ts-upload-apiservice.lock');

/** The APIService is cluster-wide: test files that register it take turns (a lock file holding the owner's pid). */
async function lockApiService(): Promise<() => Promise<void>> {
  for (;;) {
    try {
      const fh = await open(LOCK, 'wx');
      await fh.write(String(process.pid));
      await fh.close();
      return () => rm(LOCK, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(await readFile(LOCK, 'utf8').catch(() => ''));
      let alive = false;
      try {
        alive = owner > 0 && process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (!alive) await rm(LOCK, { force: true });
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function startAggregatedApiServer(
  kube: KubeClient,
  webhooks: { path: string; admit: Admitter }[] = [],
): Promise<AggregatedApiServer> {
  const unlock = await lockApiService();
  try {
    return await registerApiServer(kube, webhooks, unlock);
  } catch (e) {
    await unlock();
    throw e;
  }
}

async function registerApiServer(
  kube: KubeClient,
  webhooks: { path: string; admit: Admitter }[],
  unlock: () => Promise<void>,
): Promise<AggregatedApiServer> {
  const auth = await readAuthConfig(kube);
  if (!auth.requestHeaderCa) {
    throw new Error(
      'the cluster has no requestheader-client-ca-file in kube-system/extension-apiserver-authentication: its kube-apiserver runs without the aggregation flags (restart it from a checkout that has them)',
    );
  }
  const ns = await createNamespace(kube, 'cdi-test-upload-cdi');
  const cleanups: (() => Promise<void>)[] = [unlock, ns.cleanup];
  const cdiNs = ns.name;
  const v = validityFrom(new Date(), 3600_000);
  const ca = await createCA(`test-cdi-apiserver-signer-${randomBytes(2).toString('hex')}`, v);
  const serving = await issueServerCert(ca, [...serviceHostnames('cdi-api', cdiNs), HOST_IP], v);
  const key = await getOrCreateSigningKey(kube, cdiNs);
  const server = new CdiApiServer({
    kube,
    tokens: new TokenGenerator(UploadTokenIssuer, key.privateKey, 300_000),
    authConfig: () => auth,
    tls: { cert: serving.certPem, key: serving.keyPem },
    webhooks,
    log: (l) => {
      if (process.env.CDI_TEST_VERBOSE) process.stderr.write(`cdi-apiserver: ${l}\n`);
    },
  });
  const port = await server.listen(0, HOST_IP);
  cleanups.push(() => server.close());
  await kube.create(Resources.Service, {
    metadata: { name: 'cdi-api', namespace: cdiNs },
    spec: { ports: [{ name: 'https', port: 443, targetPort: port, protocol: 'TCP' }] },
  });
  await kube.create(R.Endpoints, {
    metadata: { name: 'cdi-api', namespace: cdiNs },
    subsets: [{ addresses: [{ ip: HOST_IP }], ports: [{ name: 'https', port, protocol: 'TCP' }] }],
  } as KubeObject);
  await kube.create(R.EndpointSlice, {
    metadata: { name: 'cdi-api-host', namespace: cdiNs, labels: { 'kubernetes.io/service-name': 'cdi-api' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [HOST_IP], conditions: { ready: true } }],
    ports: [{ name: 'https', port, protocol: 'TCP' }],
  } as KubeObject);
  await deleteIfExists(kube, R.APIService, APISERVICE);
  cleanups.push(() => deleteIfExists(kube, R.APIService, APISERVICE));
  await kube.create(R.APIService, {
    metadata: { name: APISERVICE },
    spec: {
      group: 'upload.cdi.kubevirt.io',
      version: 'v1beta1',
      service: { namespace: cdiNs, name: 'cdi-api', port: 443 },
      caBundle: Buffer.from(ca.certPem).toString('base64'),
      groupPriorityMinimum: 1000,
      versionPriority: 15,
    },
  } as KubeObject);
  await eventually('the APIService to be Available', async () => {
    const s = await kube.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
      R.APIService,
      APISERVICE,
    );
    return s.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True');
  });
  return {
    cdiNs,
    port,
    ca,
    validator: new TokenValidator(UploadTokenIssuer, key.publicKey, 10_000),
    server,
    cleanup: async () => {
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    },
  };
}

export interface UploadStack {
  proxyPort: number;
  /** The proxy's CA (what clients trust). */
  caFile: string;
  pki: UploadPki;
  /** The upload server started for each PVC, by name. */
  pods: Map<string, UploadPod>;
  close: () => Promise<void>;
}

/**
 * cdi-uploadproxy on loopback in front of upload server pods that a stand-in for the upload controller starts: for
 * every upload PVC in `ns` it starts the upload server entrypoint, sets the annotations the controller would
 * (pod ready, phase Running), and Succeeded when the server exits 0 (restarts and the message otherwise). The real
 * controller starts pods, which need a kubelet; it is tested on the full cluster (test/e2e/upload.test.ts). The
 * proxy's URL resolver points at these servers.
 */
export async function startUploadStack(
  kube: KubeClient,
  ns: string,
  dir: string,
  validator: TokenValidator,
): Promise<UploadStack> {
  const pki = await makeUploadPki();
  const pods = new Map<string, UploadPod>();
  const v = validityFrom(new Date(), 3600_000);
  const proxyCa = await createCA('test-uploadproxy-signer', v);
  const caFile = path.join(dir, 'proxy-ca.crt');
  await writeFile(caFile, proxyCa.certPem);
  const serving = await issueServerCert(proxyCa, ['127.0.0.1'], v);
  const proxy = new UploadProxy({
    validator,
    getPvc: (n, name) => kube.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, n),
    resolveUrl: (_n, pvc, p) => `https://127.0.0.1:${pods.get(pvc)?.port ?? 1}${p}`,
    clientTls: () =>
      Promise.resolve({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.serverCa.certPem }),
    tls: { cert: serving.certPem, key: serving.keyPem },
    log: (l) => {
      if (process.env.CDI_TEST_VERBOSE) process.stderr.write(`cdi-uploadproxy: ${l}\n`);
    },
  });
  const proxyPort = await proxy.listen(0, '127.0.0.1');
  const busy = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = async (): Promise<void> => {
    const list = await kube.list<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, { namespace: ns });
    for (const pvc of list.items) {
      const name = pvc.metadata?.name ?? '';
      const a = pvc.metadata?.annotations ?? {};
      if (!(Ann.UploadRequest in a) || busy.has(name) || a[Ann.PodPhase] === 'Succeeded') continue;
      busy.add(name);
      const size = pvc.spec?.resources?.requests?.['storage'] ?? '8Mi';
      const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: String(size) });
      pods.set(name, pod);
      const annotate = (x: Record<string, string>): Promise<unknown> =>
        kube.mergePatch(
          Resources.PersistentVolumeClaim,
          name,
          { metadata: { annotations: x } },
          { namespace: ns },
        );
      await annotate({
        [Ann.PodReady]: 'true',
        [Ann.PodPhase]: 'Running',
        [Ann.UploadPod]: `cdi-upload-${name}`,
      });
      void pod.exited.then((code) =>
        annotate(
          code === 0
            ? { [Ann.PodReady]: 'false', [Ann.PodPhase]: 'Succeeded' }
            : {
                [Ann.PodReady]: 'false',
                [Ann.PodRestarts]: '1',
                [Ann.RunningConditionMessage]: pod.log().slice(-200),
              },
        ).catch(() => undefined),
      );
    }
  };
  const loop = (): void => {
    if (stopped) return;
    timer = setTimeout(
      () =>
        void tick()
          .catch(() => undefined)
          .finally(loop),
      200,
    );
  };
  loop();
  return {
    proxyPort,
    caFile,
    pki,
    pods,
    close: async () => {
      stopped = true;
      clearTimeout(timer);
      killUploadPods();
      await proxy.close();
    },
  };
}

export interface UploadEnv {
  kube: KubeClient;
  api: AggregatedApiServer;
  stack: UploadStack;
  /** The namespace the uploads go to. */
  ns: string;
  /** A temporary directory, removed after the tests. */
  dir: string;
}

/**
 * The whole upload stack for a test file, set up before its tests and removed after them: cdi-apiserver registered
 * with the aggregation layer, a namespace, the proxy with the stand-in upload controller. `prepare` runs first (to
 * make images in `dir`); `skip` (a reason) sets nothing up.
 */
export function useUploadEnv(
  prefix: string,
  o: { crds?: boolean; skip?: string | false; prepare?: (dir: string) => Promise<void> } = {},
): UploadEnv {
  const env = {} as UploadEnv;
  let cleanupNs: (() => Promise<void>) | undefined;
  before(async () => {
    if (o.skip) return;
    env.dir = await mkdtemp(path.join(tmpdir(), `${prefix}-`));
    await o.prepare?.(env.dir);
    env.kube = clusterClient();
    if (o.crds) await installCrds(env.kube);
    env.api = await startAggregatedApiServer(env.kube);
    const n = await createNamespace(env.kube, prefix);
    env.ns = n.name;
    cleanupNs = n.cleanup;
    env.stack = await startUploadStack(env.kube, env.ns, env.dir, env.api.validator);
  });
  after(async () => {
    await env.stack?.close();
    await cleanupNs?.();
    await env.api?.cleanup();
    if (env.dir) await rm(env.dir, { recursive: true, force: true });
  });
  return env;
}
