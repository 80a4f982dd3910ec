// The upload server of a PVC: pod and Service `cdi-upload-<pvc>` and the Secret with its TLS material, as upstream's
// upload controller makes them (pkg/controller/upload-controller.go createUploadPod/createUploadService). One function
// for both users of that server: an upload target (the upload controller; clients come through cdi-uploadproxy with
// its client certificate) and a host-assisted clone target (the clone controller; the clone's source pod with a
// certificate of its own). They differ only in the client name the server accepts.
//
// The pod's contract is src/uploadserver/pod.ts: TLS_CERT_FILE/TLS_KEY_FILE (a server certificate for the Service,
// signed by cdi-uploadserver-signer), CLIENT_CERT_FILE (the cdi-uploadserver-client-signer bundle), CLIENT_NAME,
// UPLOAD_IMAGE_SIZE, FILESYSTEM_OVERHEAD, PREALLOCATION, DESTINATION (Block). Everything is owned by the PVC.
import type {
  ConfigMap,
  KubeObject,
  PersistentVolumeClaim as Pvc,
  Pod as PodObj,
  Secret,
} from '../../kube/index.ts';
import { controllerRef } from '../../kube/index.ts';
import { resourceName, serviceName } from '../../api/naming.ts';
import { BundleKey } from '../../certs/reconcile.ts';
import { issueServerCert, parseSigner, validityFrom, type Signer } from '../../certs/pki.ts';
import { Ann, Label, ManagedLabels, Pod } from './constants.ts';
import { isAlreadyExists, Res, type Kube, type Resource } from './client.ts';
import { workerSecurityContext } from './pods.ts';
import { stringQuantities } from './quantity.ts';
import type { ResourceRequirements } from './types.ts';

export const UploadServerSigner = 'cdi-uploadserver-signer';
export const UploadServerClientSignerBundle = 'cdi-uploadserver-client-signer-bundle';
export const UploadServerClientSigner = 'cdi-uploadserver-client-signer';
export const UploadServerSignerBundle = 'cdi-uploadserver-signer-bundle';
/** The upload server's port; its Service answers on 443. */
export const UploadServerPort = 8443;
const TlsDir = '/etc/cdi-upload-server';
/** Server certificates of upload pods: upstream's 24 h (a pod lives for one transfer). */
const ServerCertLifetimeMs = 24 * 3600_000;

/** `cdi-upload-<pvc>`: the pod, its Secret, and (as a DNS label) its Service. */
export function uploadServerName(pvcName: string): string {
  return resourceName('cdi-upload', pvcName);
}

export function uploadServiceName(pvcName: string): string {
  return serviceName(uploadServerName(pvcName));
}

/** Where a client in the cluster reaches the server (the clone source pod's UPLOAD_URL). */
export function uploadServerUrl(pvc: Pvc): string {
  return `https://${uploadServiceName(pvc.metadata?.name ?? '')}.${pvc.metadata?.namespace ?? ''}.svc/v1beta1/upload`;
}

export interface UploadServerOptions {
  image: string;
  pullPolicy: string;
  verbose?: string;
  /** The CN a client certificate must have. */
  clientName: string;
  /** CDI's namespace, where the CAs live. */
  cdiNamespace: string;
  filesystemOverhead: string;
  preallocation: boolean;
  resources?: ResourceRequirements | undefined;
  nodeSelector?: Record<string, string>;
  now?: () => Date;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** A CA of CDI's namespace, read through the reconcile's view; the error says what is missing. */
export async function readSigner(kube: Kube, namespace: string, name: string): Promise<Signer> {
  const s = await kube.get<Secret>(Res.secret, name, namespace);
  if (!s)
    throw new Error(
      `the CA Secret ${namespace}/${name} does not exist: the certificates are not reconciled yet (the operator makes them)`,
    );
  return parseSigner(unb64(s.data?.['tls.crt']), unb64(s.data?.['tls.key']));
}

export async function readBundle(kube: Kube, namespace: string, name: string): Promise<string> {
  const cm = await kube.get<ConfigMap>(Res.configMap, name, namespace);
  const pem = cm?.data?.[BundleKey];
  if (!pem)
    throw new Error(
      `the CA bundle ConfigMap ${namespace}/${name} does not exist or has no ${BundleKey}: the certificates are not reconciled yet`,
    );
  return pem;
}

const ownedLabels = (pvc: Pvc): Record<string, string> => ({
  ...ManagedLabels,
  [Label.app]: Label.appValue,
  [Label.component]: 'cdi-upload-server',
  service: uploadServiceName(pvc.metadata?.name ?? ''),
});

async function createOrExisting<T extends KubeObject>(kube: Kube, r: Resource, obj: T): Promise<T> {
  try {
    return await kube.create<T>(r, obj);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    const got = await kube.get<T>(r, obj.metadata?.name ?? '', obj.metadata?.namespace);
    if (!got) throw e;
    return got;
  }
}

/** The Secret of the server's TLS material: a server certificate for its Service and the client CA bundle. */
async function serverSecret(kube: Kube, pvc: Pvc, o: UploadServerOptions): Promise<void> {
  const name = uploadServerName(pvc.metadata?.name ?? '');
  const ns = pvc.metadata?.namespace ?? '';
  const signer = await readSigner(kube, o.cdiNamespace, UploadServerSigner);
  const clientBundle = await readBundle(kube, o.cdiNamespace, UploadServerClientSignerBundle);
  const svc = uploadServiceName(pvc.metadata?.name ?? '');
  const pair = await issueServerCert(
    signer,
    [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`],
    validityFrom(o.now?.() ?? new Date(), ServerCertLifetimeMs),
  );
  // created, never read: the controller may not read Secrets outside CDI's namespace (AlreadyExists: made before)
  try {
    await kube.create<Secret>(Res.secret, {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name,
        namespace: ns,
        labels: ownedLabels(pvc),
        ownerReferences: [controllerRef(pvc, Res.pvc)],
      },
      data: { 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem), 'ca.crt': b64(clientBundle) },
    });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}

export function makeUploadServerPod(pvc: Pvc, o: UploadServerOptions): PodObj {
  const pvcName = pvc.metadata?.name ?? '';
  const name = uploadServerName(pvcName);
  const block = pvc.spec?.volumeMode === 'Block';
  const a = pvc.metadata?.annotations ?? {};
  const env = [
    { name: 'TLS_CERT_FILE', value: `${TlsDir}/tls.crt` },
    { name: 'TLS_KEY_FILE', value: `${TlsDir}/tls.key` },
    { name: 'CLIENT_CERT_FILE', value: `${TlsDir}/ca.crt` },
    { name: 'CLIENT_NAME', value: o.clientName },
    { name: 'UPLOAD_IMAGE_SIZE', value: String(pvc.spec?.resources?.requests?.['storage'] ?? '') },
    { name: 'FILESYSTEM_OVERHEAD', value: o.filesystemOverhead },
    { name: 'PREALLOCATION', value: String(o.preallocation) },
    ...(block ? [{ name: 'DESTINATION', value: Pod.blockPath }] : []),
  ];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: pvc.metadata?.namespace,
      annotations: { [Ann.createdBy]: 'yes' },
      labels: { ...ownedLabels(pvc), [Label.prometheus]: Label.prometheusValue },
      ownerReferences: [controllerRef(pvc, Res.pvc)],
    },
    spec: {
      containers: [
        {
          name: 'cdi-upload-server',
          image: o.image,
          imagePullPolicy: o.pullPolicy,
          ...(o.verbose ? { args: [`-v=${o.verbose}`] } : {}),
          env,
          ports: [{ name: 'uploadserver', containerPort: UploadServerPort, protocol: 'TCP' }],
          readinessProbe: {
            httpGet: { path: '/healthz', port: UploadServerPort, scheme: 'HTTPS' },
            initialDelaySeconds: 2,
            periodSeconds: 5,
          },
          terminationMessagePolicy: 'FallbackToLogsOnError',
          ...(o.resources ? { resources: stringQuantities(o.resources) } : {}),
          volumeMounts: [
            { name: 'tls', mountPath: TlsDir, readOnly: true },
            ...(block ? [] : [{ name: Pod.dataVolName, mountPath: Pod.dataDir }]),
          ],
          ...(block ? { volumeDevices: [{ name: Pod.dataVolName, devicePath: Pod.blockPath }] } : {}),
          securityContext: workerSecurityContext(),
        },
      ],
      volumes: [
        { name: Pod.dataVolName, persistentVolumeClaim: { claimName: pvcName, readOnly: false } },
        { name: 'tls', secret: { secretName: name, defaultMode: 0o440 } },
      ],
      restartPolicy: 'OnFailure',
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      ...(a[Ann.priorityClassName] ? { priorityClassName: a[Ann.priorityClassName] } : {}),
      ...(o.nodeSelector && Object.keys(o.nodeSelector).length
        ? { nodeSelector: { ...o.nodeSelector } }
        : {}),
      securityContext: { seccompProfile: { type: 'RuntimeDefault' }, fsGroup: Pod.qemuUid },
    },
  };
}

/**
 * Makes sure the PVC's upload server exists (Secret, Service, pod; AlreadyExists is success) and returns its pod.
 * A server certificate is issued only when the Secret is made; it outlives the one transfer the pod serves.
 */
export async function ensureUploadServer(kube: Kube, pvc: Pvc, o: UploadServerOptions): Promise<PodObj> {
  const name = uploadServerName(pvc.metadata?.name ?? '');
  const ns = pvc.metadata?.namespace ?? '';
  const existing = await kube.get<PodObj>(Res.pod, name, ns);
  if (existing) return existing;
  await serverSecret(kube, pvc, o);
  const svc = uploadServiceName(pvc.metadata?.name ?? '');
  if (!(await kube.get<KubeObject>(Res.service, svc, ns)))
    await createOrExisting<KubeObject>(kube, Res.service, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: svc,
        namespace: ns,
        labels: ownedLabels(pvc),
        ownerReferences: [controllerRef(pvc, Res.pvc)],
      },
      spec: {
        selector: { service: svc },
        ports: [{ name: 'uploadserver', protocol: 'TCP', port: 443, targetPort: UploadServerPort }],
      },
    } as KubeObject);
  return createOrExisting<PodObj>(kube, Res.pod, makeUploadServerPod(pvc, o));
}

/** Removes the server once its transfer is done (the Service and Secret go too; the PVC stays). */
export async function deleteUploadServer(kube: Kube, pvc: Pvc): Promise<void> {
  const ns = pvc.metadata?.namespace ?? '';
  const name = uploadServerName(pvc.metadata?.name ?? '');
  await kube.delete(Res.pod, name, ns);
  await kube.delete(Res.service, uploadServiceName(pvc.metadata?.name ?? ''), ns);
  await kube.delete(Res.secret, name, ns);
}
