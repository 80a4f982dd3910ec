// The manifests of the upload path's long-running parts, as upstream's operator installs them (pkg/operator/resources
// namespaced/apiserver.go, uploadproxy.go, cluster/apiserver.go): cdi-apiserver (Deployment, Service cdi-api) and
// cdi-uploadproxy (Deployment, Service cdi-uploadproxy), each with its ServiceAccount and least-privilege RBAC. The
// operator installs them (src/operator); `npm run gen` writes what it installs into deploy/cdi/ for review.
//
// Certificates come from src/certs (the operator reconciles them): the pods mount Secrets cdi-apiserver-server-cert,
// cdi-uploadproxy-server-cert and cdi-uploadserver-client-cert. The APIService v1beta1.upload.cdi.kubevirt.io is
// made only with the CA bundle (as upstream's "dynamic" resources): an APIService the kube-apiserver cannot verify is
// unavailable and breaks discovery for every client of the cluster.
import { UploadGroup, UploadVersion } from '../api/upload.ts';
import { BundleKey } from '../certs/reconcile.ts';
import { Resources, type ConfigMap, type KubeClient, type KubeObject, type Resource } from '../kube/index.ts';
import {
  AllowClusterServicesLabel,
  CDILabel,
  clusterRole,
  clusterRoleBinding,
  componentDeployment,
  labelsOf,
  role,
  roleBinding,
  serviceAccount,
  type ComponentOptions,
  type Obj,
} from './common.ts';

export const ApiServerName = 'cdi-apiserver';
export const ApiServiceName = 'cdi-api';
export const UploadProxyName = 'cdi-uploadproxy';

export interface UploadDeployOptions extends ComponentOptions {
  apiServerImage: string;
  uploadProxyImage: string;
  /** CDI.spec.infra.apiServerReplicas */
  apiServerReplicas: number;
  /** CDI.spec.infra.uploadProxyReplicas */
  uploadProxyReplicas: number;
}

export const defaultUploadDeployOptions: UploadDeployOptions = {
  namespace: 'cdi',
  apiServerImage: 'localhost:5000/cdi-apiserver:dev',
  uploadProxyImage: 'localhost:5000/cdi-uploadproxy:dev',
  pullPolicy: 'Always',
  apiServerReplicas: 1,
  uploadProxyReplicas: 1,
};

function secretVolume(name: string, secret: string): Obj {
  return {
    name,
    secret: {
      secretName: secret,
      items: [
        { key: 'tls.crt', path: 'tls.crt' },
        { key: 'tls.key', path: 'tls.key' },
      ],
      defaultMode: 0o644, // 420 in the YAML, as upstream: readable by the non-root server (uid 107)
    },
  };
}

function serverDeployment(
  o: UploadDeployOptions,
  name: string,
  image: string,
  replicas: number,
  env: Obj[],
  mounts: Obj[],
  volumes: Obj[],
): Obj {
  return componentDeployment(o, {
    name,
    serviceAccount: name,
    replicas,
    labels: { [AllowClusterServicesLabel]: 'true' },
    container: {
      name,
      image,
      env: [
        { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        ...(o.verbosity !== undefined ? [{ name: 'VERBOSITY', value: o.verbosity }] : []),
        ...env,
      ],
      ports: [{ name, containerPort: 8443, protocol: 'TCP' }],
      readinessProbe: {
        httpGet: { path: '/healthz', port: 8443, scheme: 'HTTPS' },
        initialDelaySeconds: 2,
        periodSeconds: 5,
        failureThreshold: 3,
        successThreshold: 1,
        timeoutSeconds: 1,
      },
      resources: { requests: { cpu: '100m', memory: '150Mi' }, limits: { memory: '512Mi' } },
      volumeMounts: mounts,
    },
    volumes,
  });
}

function service(o: UploadDeployOptions, name: string, selectorName: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: o.namespace, labels: labelsOf(selectorName) },
    spec: {
      type: 'ClusterIP',
      selector: { [CDILabel]: selectorName },
      ports: [{ port: 443, targetPort: 8443, protocol: 'TCP' }],
    },
  };
}

function rbac(o: UploadDeployOptions, name: string, clusterRules: Obj[], nsRules: Obj[]): Obj[] {
  const sa = { name, namespace: o.namespace };
  return [
    serviceAccount(o.namespace, name, name),
    clusterRole(name, clusterRules, name),
    clusterRoleBinding(name, name, sa, name),
    role(o.namespace, name, nsRules, name),
    roleBinding(o.namespace, name, { kind: 'Role', name }, sa, name),
  ];
}

/**
 * What cdi-apiserver does, rule by rule:
 * - subjectaccessreviews: may the user create the PVC an upload token is asked for; may a DataVolume's user clone
 *   its source (datavolume-mutate, pvc-clone-mutate)
 * - persistentvolumeclaims get: datavolume-validate refuses a DataVolume whose claim exists already, and
 *   objecttransfer-validate a transfer whose target PVC exists
 * - namespaces get: the clone webhooks check that a clone source's namespace exists
 * - datasources get: a sourceRef's clone source (datavolume-mutate)
 * - datavolumes list: cdi-validate counts them (BlockUninstallIfWorkloadsExist); get: objecttransfer-validate refuses
 *   a transfer whose target DataVolume exists
 * - cdiconfigs get: the feature gates (claim adoption), pvc-mutate's filesystem overhead
 * - storageprofiles, storageclasses get/list: pvc-mutate completes a PVC from its StorageProfile
 * - secrets in its namespace: its token signing key (created on first start)
 * - the front-proxy settings: the built-in extension-apiserver-authentication-reader Role in kube-system
 */
export function apiServerClusterRules(): Obj[] {
  return [
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['list', 'get'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datasources'], verbs: ['get'] },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['cdiconfigs', 'storageprofiles'], verbs: ['get', 'list'] },
    { apiGroups: ['storage.k8s.io'], resources: ['storageclasses'], verbs: ['get', 'list'] },
  ];
}

export function apiServerManifests(o: UploadDeployOptions = defaultUploadDeployOptions): Obj[] {
  const name = ApiServerName;
  return [
    ...rbac(o, name, apiServerClusterRules(), [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] }]),
    roleBinding(
      'kube-system',
      `${name}-auth-reader`,
      { kind: 'Role', name: 'extension-apiserver-authentication-reader' },
      { name, namespace: o.namespace },
      name,
    ),
    serverDeployment(
      o,
      name,
      o.apiServerImage,
      o.apiServerReplicas,
      [
        { name: 'CERT_FILE', value: '/var/run/certs/cdi-apiserver-server-cert/tls.crt' },
        { name: 'KEY_FILE', value: '/var/run/certs/cdi-apiserver-server-cert/tls.key' },
      ],
      [{ name: 'server-cert', mountPath: '/var/run/certs/cdi-apiserver-server-cert', readOnly: true }],
      [secretVolume('server-cert', 'cdi-apiserver-server-cert')],
    ),
    service(o, ApiServiceName, name),
  ];
}

export const ApiServiceResource: Resource = {
  group: 'apiregistration.k8s.io',
  version: 'v1',
  kind: 'APIService',
  plural: 'apiservices',
  namespaced: false,
};

export const UploadApiServiceName = `${UploadVersion}.${UploadGroup}`;

/** The APIService of the upload token API, trusting `caBundlePem` for cdi-api's serving certificate. */
export function uploadApiService(namespace: string, caBundlePem: string): KubeObject & Obj & { spec: Obj } {
  return {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: UploadApiServiceName, labels: labelsOf(ApiServiceName) },
    spec: {
      service: { namespace, name: ApiServiceName, port: 443 },
      group: UploadGroup,
      version: UploadVersion,
      groupPriorityMinimum: 1000,
      versionPriority: 15,
      caBundle: Buffer.from(caBundlePem).toString('base64'),
    },
  };
}

/**
 * Applies the APIService with the current cdi-apiserver CA bundle (tests that run the upload stack without the
 * operator; the operator renders the APIService with the rest).
 */
export async function reconcileUploadApiService(kube: KubeClient, namespace: string): Promise<void> {
  const cm = await kube.get<ConfigMap>(Resources.ConfigMap, 'cdi-apiserver-signer-bundle', namespace);
  const pem = cm.data?.[BundleKey];
  if (!pem) throw new Error(`ConfigMap ${namespace}/cdi-apiserver-signer-bundle has no ${BundleKey} yet`);
  await kube.apply(ApiServiceResource, uploadApiService(namespace, pem), { fieldManager: 'cdi-ts', force: true });
}

/** cdi-uploadproxy may read PVCs (readiness) and, in its namespace, the upload-server CA bundle ConfigMap. */
export function uploadProxyManifests(o: UploadDeployOptions = defaultUploadDeployOptions): Obj[] {
  const name = UploadProxyName;
  return [
    ...rbac(
      o,
      name,
      [{ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] }],
      [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    ),
    serverDeployment(
      o,
      name,
      o.uploadProxyImage,
      o.uploadProxyReplicas,
      [
        {
          name: 'APISERVER_PUBLIC_KEY',
          valueFrom: { secretKeyRef: { name: 'cdi-api-signing-key', key: 'id_rsa.pub' } },
        },
      ],
      [
        { name: 'server-cert', mountPath: '/var/run/certs/cdi-uploadproxy-server-cert', readOnly: true },
        { name: 'client-cert', mountPath: '/var/run/certs/cdi-uploadserver-client-cert', readOnly: true },
      ],
      [
        secretVolume('server-cert', 'cdi-uploadproxy-server-cert'),
        secretVolume('client-cert', 'cdi-uploadserver-client-cert'),
      ],
    ),
    service(o, name, name),
  ];
}
