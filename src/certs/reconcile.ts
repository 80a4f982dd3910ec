/**
 * The CAs, bundles and certificates of cdi-upstream.md §6, kept in the CDI namespace: one reconcile function the
 * controller (and later the operator) calls on start and on a timer. Each signer lives in a TLS Secret, each bundle in
 * a ConfigMap (`ca-bundle.crt`), each fixed leaf in a TLS Secret; the annotations are library-go's, so an upstream
 * operator taking these objects over reads them the same way. Private keys are only ever written to these Secrets.
 *
 *   signer Secret                     bundle ConfigMap                          leaf Secret
 *   cdi-apiserver-signer              cdi-apiserver-signer-bundle               cdi-apiserver-server-cert (svc cdi-api)
 *   cdi-uploadproxy-signer            cdi-uploadproxy-signer-bundle             cdi-uploadproxy-server-cert (svc cdi-uploadproxy)
 *   cdi-uploadserver-signer           cdi-uploadserver-signer-bundle            (per upload pod, by the upload controller)
 *   cdi-uploadserver-client-signer    cdi-uploadserver-client-signer-bundle     cdi-uploadserver-client-cert (CN client.upload-server.cdi.kubevirt.io)
 */
import { X509Certificate } from 'node:crypto';
import {
  isNotFound,
  kubeTime,
  Resources,
  type ConfigMap,
  type KubeClient,
  type OwnerReference,
  type Secret,
} from '../kube/index.ts';
import {
  caName,
  commonName,
  createCA,
  issueClientCert,
  issueServerCert,
  parseBundle,
  parseSigner,
  validityFrom,
  type KeyPair,
  type Signer,
} from './pki.ts';
import {
  bundlePem,
  checkCertConfig,
  DefaultCertConfig,
  leafSignerReason,
  mergeBundle,
  refreshAt,
  renewalReason,
  type CertConfig,
  type CertsConfig,
} from './rotation.ts';

/** The client name upload servers accept (upstream's uploadServerClientName). */
export const UploadServerClientName = 'client.upload-server.cdi.kubevirt.io';

export const CertAnn = {
  NotAfter: 'auth.openshift.io/certificate-not-after',
  NotBefore: 'auth.openshift.io/certificate-not-before',
  Issuer: 'auth.openshift.io/certificate-issuer',
  Hostnames: 'auth.openshift.io/certificate-hostnames',
  /** upstream CDI: the {lifetime, refresh} the object was made with; a change forces a new one */
  CertConfig: 'operator.cdi.kubevirt.io/certConfig',
} as const;

export const BundleKey = 'ca-bundle.crt';

export interface CertDefinition {
  signerSecret: string;
  bundleConfigMap: string;
  /** The fixed leaf this CA signs, if any (upload servers get theirs per pod). */
  target?: { secret: string; service: string } | { secret: string; user: string };
}

export const CertDefinitions: readonly CertDefinition[] = [
  {
    signerSecret: 'cdi-apiserver-signer',
    bundleConfigMap: 'cdi-apiserver-signer-bundle',
    target: { secret: 'cdi-apiserver-server-cert', service: 'cdi-api' },
  },
  {
    signerSecret: 'cdi-uploadproxy-signer',
    bundleConfigMap: 'cdi-uploadproxy-signer-bundle',
    target: { secret: 'cdi-uploadproxy-server-cert', service: 'cdi-uploadproxy' },
  },
  { signerSecret: 'cdi-uploadserver-signer', bundleConfigMap: 'cdi-uploadserver-signer-bundle' },
  {
    signerSecret: 'cdi-uploadserver-client-signer',
    bundleConfigMap: 'cdi-uploadserver-client-signer-bundle',
    target: { secret: 'cdi-uploadserver-client-cert', user: UploadServerClientName },
  },
];

/** The names a Service answers to inside the cluster: what a server certificate for it covers. */
export function serviceHostnames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`];
}

export interface CertChange {
  kind: 'Secret' | 'ConfigMap';
  name: string;
  action: 'created' | 'rotated' | 'updated';
  reason: string;
}

export interface ReconcileCertsOptions {
  namespace: string;
  config?: Partial<CertsConfig>;
  now?: () => Date;
  labels?: Record<string, string>;
  /** Written on every Secret and ConfigMap made (the operator: its CDI resource, for garbage collection). */
  ownerReferences?: OwnerReference[];
  definitions?: readonly CertDefinition[];
  /**
   * After a CA rotation, how long its leaves keep the previous CA's signature (the previous CA is still in the
   * bundle) before they are re-issued by the new one: the time the new bundle needs to reach every client (webhook
   * and APIService caBundles, mounted ConfigMaps). 0: at once.
   */
  leafGraceMs?: number;
  /** Called with every future moment at which something will be due (refresh times, grace ends). */
  schedule?: (at: Date) => void;
}

const defaultLabels = {
  'cdi.kubevirt.io': '',
  'app.kubernetes.io/component': 'storage',
  'app.kubernetes.io/managed-by': 'cdi-ts',
};

/** Go's time.Duration.String() for whole seconds ("48h0m0s"), which upstream writes in the certConfig annotation. */
export function goDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s === 0) return '0s';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

function certConfigAnnotation(c: CertConfig): string {
  return JSON.stringify({
    lifetime: goDuration(c.duration),
    refresh: goDuration(c.duration - c.renewBefore),
  });
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

function tlsData(secret: Secret | undefined): { certPem: string; keyPem: string } {
  return { certPem: unb64(secret?.data?.['tls.crt']), keyPem: unb64(secret?.data?.['tls.key']) };
}

function certOf(pem: string): X509Certificate | undefined {
  try {
    return pem ? new X509Certificate(pem) : undefined;
  } catch {
    return undefined;
  }
}

/** What every object written gets, and where due times are reported. */
interface WriteContext {
  labels: Record<string, string>;
  ownerReferences: OwnerReference[] | undefined;
  leafGraceMs: number;
  schedule: (at: Date) => void;
}

const ownerRefs = (w: WriteContext): { ownerReferences?: OwnerReference[] } =>
  w.ownerReferences?.length ? { ownerReferences: w.ownerReferences } : {};

/** Creates or replaces a TLS Secret with `pair`; the annotations record validity, issuer and config. */
async function writeTlsSecret(
  kube: KubeClient,
  existing: Secret | undefined,
  name: string,
  namespace: string,
  pair: KeyPair,
  annotations: Record<string, string>,
  w: WriteContext,
): Promise<void> {
  const cert = new X509Certificate(pair.certPem);
  const meta = {
    name,
    namespace,
    labels: { ...existing?.metadata?.labels, ...w.labels },
    annotations: {
      ...existing?.metadata?.annotations,
      [CertAnn.NotAfter]: kubeTime(new Date(cert.validTo)),
      [CertAnn.NotBefore]: kubeTime(new Date(cert.validFrom)),
      [CertAnn.Issuer]: commonName(cert.issuer) ?? cert.issuer,
      ...annotations,
    },
    ...ownerRefs(w),
    ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
  };
  const body: Secret = {
    metadata: meta,
    type: 'kubernetes.io/tls',
    data: { ...existing?.data, 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem) },
  };
  if (existing) await kube.replace<Secret>(Resources.Secret, body);
  else await kube.create<Secret>(Resources.Secret, body);
}

/**
 * Makes every signer, bundle and fixed leaf exist and be current. Idempotent: a second call with nothing due changes
 * nothing. A conflict (someone else wrote the object meanwhile) is thrown; the caller retries with fresh reads.
 */
export async function reconcileCertificates(
  kube: KubeClient,
  o: ReconcileCertsOptions,
): Promise<CertChange[]> {
  const now = o.now ?? (() => new Date());
  const config: CertsConfig = { ...DefaultCertConfig, ...o.config };
  checkCertConfig('certConfig.ca', config.ca);
  checkCertConfig('certConfig.server', config.server);
  checkCertConfig('certConfig.client', config.client);
  const w: WriteContext = {
    labels: o.labels ?? defaultLabels,
    ownerReferences: o.ownerReferences,
    leafGraceMs: o.leafGraceMs ?? 0,
    schedule: o.schedule ?? (() => {}),
  };
  const changes: CertChange[] = [];
  for (const def of o.definitions ?? CertDefinitions) {
    const signer = await ensureSigner(kube, o.namespace, def, config.ca, now(), w, changes);
    w.schedule(refreshAt(signer.cert, config.ca));
    const bundle = await ensureBundle(kube, o.namespace, def, signer, now(), w, changes);
    if (def.target) await ensureTarget(kube, o.namespace, def, signer, bundle, config, now(), w, changes);
  }
  return changes;
}

async function ensureSigner(
  kube: KubeClient,
  namespace: string,
  def: CertDefinition,
  config: CertConfig,
  now: Date,
  w: WriteContext,
  changes: CertChange[],
): Promise<Signer> {
  const existing = await kube.getOrUndefined<Secret>(Resources.Secret, def.signerSecret, namespace);
  const { certPem, keyPem } = tlsData(existing);
  let signer: Signer | undefined;
  let reason: string | undefined;
  try {
    signer = existing ? parseSigner(certPem, keyPem) : undefined;
  } catch (e) {
    reason = (e as Error).message;
  }
  reason ??= renewalReason(signer?.cert, config, now);
  const wanted = certConfigAnnotation(config);
  if (!reason && existing?.metadata?.annotations?.[CertAnn.CertConfig] !== wanted)
    reason = 'the cert config changed';
  if (!reason && signer) return signer;
  const fresh = await createCA(caName(namespace, def.signerSecret, now), validityFrom(now, config.duration));
  await writeTlsSecret(
    kube,
    existing,
    def.signerSecret,
    namespace,
    fresh,
    { [CertAnn.CertConfig]: wanted },
    w,
  );
  changes.push({
    kind: 'Secret',
    name: def.signerSecret,
    action: existing ? 'rotated' : 'created',
    reason: reason ?? 'missing',
  });
  return fresh;
}

async function ensureBundle(
  kube: KubeClient,
  namespace: string,
  def: CertDefinition,
  signer: Signer,
  now: Date,
  w: WriteContext,
  changes: CertChange[],
): Promise<X509Certificate[]> {
  const existing = await kube.getOrUndefined<ConfigMap>(Resources.ConfigMap, def.bundleConfigMap, namespace);
  const had = existing?.data?.[BundleKey];
  const certs = mergeBundle(parseBundle(had), signer.cert, now);
  // an older CA leaves the bundle when it expires
  for (const c of certs.slice(1)) w.schedule(new Date(c.validTo));
  const pem = bundlePem(certs);
  if (had === pem) return certs;
  const body: ConfigMap = {
    metadata: {
      name: def.bundleConfigMap,
      namespace,
      labels: { ...existing?.metadata?.labels, ...w.labels },
      ...(existing?.metadata?.annotations ? { annotations: existing.metadata.annotations } : {}),
      ...ownerRefs(w),
      ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
    },
    data: { ...existing?.data, [BundleKey]: pem },
  };
  if (existing) await kube.replace<ConfigMap>(Resources.ConfigMap, body);
  else await kube.create<ConfigMap>(Resources.ConfigMap, body);
  changes.push({
    kind: 'ConfigMap',
    name: def.bundleConfigMap,
    action: existing ? 'updated' : 'created',
    reason: `${certs.length} CA certificate(s)`,
  });
  return certs;
}

const issuedBy = (leaf: X509Certificate, ca: X509Certificate): boolean =>
  leaf.checkIssued(ca) && leaf.verify(ca.publicKey);

async function ensureTarget(
  kube: KubeClient,
  namespace: string,
  def: CertDefinition,
  signer: Signer,
  bundle: X509Certificate[],
  config: CertsConfig,
  now: Date,
  w: WriteContext,
  changes: CertChange[],
): Promise<void> {
  const target = def.target!;
  const isServer = 'service' in target;
  const leafConfig = isServer ? config.server : config.client;
  const hostnames = isServer ? serviceHostnames(target.service, namespace) : [];
  const existing = await kube.getOrUndefined<Secret>(Resources.Secret, target.secret, namespace);
  const { certPem, keyPem } = tlsData(existing);
  const cert = certOf(certPem);
  const ann = existing?.metadata?.annotations ?? {};
  const wanted = certConfigAnnotation(leafConfig);
  let reason = renewalReason(cert, leafConfig, now);
  if (!reason && cert && !keyPem) reason = 'the key is missing';
  if (!reason && cert) {
    const signerReason = leafSignerReason(cert, signer.cert, bundle);
    // signed by the previous CA, still in the bundle: re-issued once the new bundle had time to reach the clients
    const graceEnd = new Date(new Date(signer.cert.validFrom).getTime() + w.leafGraceMs);
    const previousTrusted = bundle.some((ca) => issuedBy(cert, ca));
    if (signerReason && previousTrusted && now < graceEnd) w.schedule(graceEnd);
    else reason = signerReason;
  }
  if (!reason && ann[CertAnn.CertConfig] !== wanted) reason = 'the cert config changed';
  if (!reason && isServer && ann[CertAnn.Hostnames] !== hostnames.join(',')) reason = 'the hostnames changed';
  if (!reason) {
    if (cert) w.schedule(refreshAt(cert, leafConfig));
    return;
  }
  const validity = validityFrom(now, leafConfig.duration);
  const pair = isServer
    ? await issueServerCert(signer, hostnames, validity)
    : await issueClientCert(signer, target.user, [], validity);
  await writeTlsSecret(
    kube,
    existing,
    target.secret,
    namespace,
    pair,
    { [CertAnn.CertConfig]: wanted, ...(isServer ? { [CertAnn.Hostnames]: hostnames.join(',') } : {}) },
    w,
  );
  w.schedule(refreshAt(new X509Certificate(pair.certPem), leafConfig));
  changes.push({ kind: 'Secret', name: target.secret, action: existing ? 'rotated' : 'created', reason });
}

/** The current CA of a signer Secret (for the upload controller, which signs one server certificate per pod). */
export async function loadSigner(kube: KubeClient, namespace: string, secretName: string): Promise<Signer> {
  const s = await kube.getOrUndefined<Secret>(Resources.Secret, secretName, namespace);
  if (!s)
    throw new Error(
      `the CA Secret ${namespace}/${secretName} does not exist yet (the certificates are not reconciled)`,
    );
  const { certPem, keyPem } = tlsData(s);
  try {
    return parseSigner(certPem, keyPem);
  } catch (e) {
    throw new Error(`the CA Secret ${namespace}/${secretName} is not usable: ${(e as Error).message}`);
  }
}

/** The PEM of a CA bundle ConfigMap (what clients of that CA trust). */
export async function loadBundle(kube: KubeClient, namespace: string, configMap: string): Promise<string> {
  try {
    const cm = await kube.get<ConfigMap>(Resources.ConfigMap, configMap, namespace);
    const pem = cm.data?.[BundleKey];
    if (!pem) throw new Error(`the ConfigMap ${namespace}/${configMap} has no ${BundleKey}`);
    return pem;
  } catch (e) {
    if (isNotFound(e))
      throw new Error(`the CA bundle ConfigMap ${namespace}/${configMap} does not exist yet`);
    throw e;
  }
}

/** Upload pods: a server certificate for Service `service` in `namespace`, signed by the upload server CA. */
export function issueUploadServerCert(
  signer: Signer,
  service: string,
  namespace: string,
  config: CertConfig,
  now: Date,
): Promise<KeyPair> {
  return issueServerCert(signer, serviceHostnames(service, namespace), validityFrom(now, config.duration));
}
