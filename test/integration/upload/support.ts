/**
 * cdi-apiserver on the host, registered with the cluster's aggregation layer: a Service without a selector, hand-made
 * Endpoints/EndpointSlice pointing at 10.99.0.1:<port> (the API server routes to endpoints), and the APIService
 * v1beta1.upload.cdi.kubevirt.io with our CA. `cleanup()` removes the APIService first: an unavailable APIService
 * breaks discovery for every other test.
 */
import { randomBytes } from 'node:crypto';
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
  type Resource,
} from '../../../src/kube/index.ts';
import { getOrCreateSigningKey } from '../../../src/token/keys.ts';
import { TokenGenerator, TokenValidator, UploadTokenIssuer } from '../../../src/token/token.ts';
import { createNamespace, eventually } from '../kube/cluster.ts';

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

export async function startAggregatedApiServer(
  kube: KubeClient,
  webhooks: { path: string; admit: Admitter }[] = [],
): Promise<AggregatedApiServer> {
  const auth = await readAuthConfig(kube);
  if (!auth.requestHeaderCa) {
    throw new Error(
      'the cluster has no requestheader-client-ca-file in kube-system/extension-apiserver-authentication: its kube-apiserver runs without the aggregation flags (restart it from a checkout that has them)',
    );
  }
  const ns = await createNamespace(kube, 'cdi-test-upload-cdi');
  const cleanups: (() => Promise<void>)[] = [ns.cleanup];
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
