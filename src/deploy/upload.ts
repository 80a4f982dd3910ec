// The manifests of the upload path's long-running parts, as upstream's operator installs them (pkg/operator/resources
// namespaced/apiserver.go, uploadproxy.go, cluster/apiserver.go): cdi-apiserver (Deployment, Service cdi-api) and
// cdi-uploadproxy (Deployment, Service cdi-uploadproxy), each with its ServiceAccount and least-privilege RBAC.
// Rendered into deploy/upload/30-upload.yaml (npm run gen), snapshot-tested; a directory of its own until the
// controller reconciles the certificates these pods mount (then it can join deploy/cdi/).
//
// Certificates come from src/certs (reconcileCertificates): the pods mount Secrets cdi-apiserver-server-cert,
// cdi-uploadproxy-server-cert and cdi-uploadserver-client-cert, which exist once the certificates were reconciled.
// The APIService v1beta1.upload.cdi.kubevirt.io is not in the static files: as upstream's operator does ("dynamic"
// resources), it is applied at run time with the CA bundle (reconcileUploadApiService), because an APIService the
// kube-apiserver cannot verify is unavailable and breaks discovery for every client of the cluster.
import YAML from 'yaml';
import { UploadGroup, UploadVersion } from '../api/upload.ts';
import { BundleKey } from '../certs/reconcile.ts';
import { Resources, type ConfigMap, type KubeClient, type KubeObject, type Resource } from '../kube/index.ts';

export interface UploadDeployOptions {
  namespace: string;
  apiServerImage: string;
  uploadProxyImage: string;
  pullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  apiServerReplicas: number;
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

type Obj = Record<string, unknown>;

const common = { 'app.kubernetes.io/component': 'storage', 'app.kubernetes.io/managed-by': 'cdi-ts' };
const labelsOf = (name: string): Record<string, string> => ({ ...common, 'cdi.kubevirt.io': name });

const restricted = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  seccompProfile: { type: 'RuntimeDefault' },
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
      defaultMode: 0o420,
    },
  };
}

function deployment(
  o: UploadDeployOptions,
  name: string,
  image: string,
  replicas: number,
  env: Obj[],
  mounts: Obj[],
  volumes: Obj[],
): Obj {
  const selector = { 'cdi.kubevirt.io': name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: o.namespace, labels: labelsOf(name) },
    spec: {
      replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...labelsOf(name), 'np.kubevirt.io/allow-access-cluster-services': 'true' } },
        spec: {
          serviceAccountName: name,
          securityContext: { runAsNonRoot: true, runAsUser: 107, runAsGroup: 107, seccompProfile: { type: 'RuntimeDefault' } },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 1,
                  podAffinityTerm: {
                    labelSelector: { matchExpressions: [{ key: 'cdi.kubevirt.io', operator: 'In', values: [name] }] },
                    topologyKey: 'kubernetes.io/hostname',
                  },
                },
              ],
            },
          },
          containers: [
            {
              name,
              image,
              imagePullPolicy: o.pullPolicy,
              env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }, ...env],
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
              securityContext: restricted,
              terminationMessagePolicy: 'FallbackToLogsOnError',
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
}

function service(o: UploadDeployOptions, name: string, selectorName: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: o.namespace, labels: labelsOf(selectorName) },
    spec: {
      type: 'ClusterIP',
      selector: { 'cdi.kubevirt.io': selectorName },
      ports: [{ port: 443, targetPort: 8443, protocol: 'TCP' }],
    },
  };
}

function rbac(o: UploadDeployOptions, name: string, clusterRules: Obj[], nsRules: Obj[]): Obj[] {
  const sa = { kind: 'ServiceAccount', name, namespace: o.namespace };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: o.namespace, labels: labelsOf(name) } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels: labelsOf(name) }, rules: clusterRules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels: labelsOf(name) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [sa],
    },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: o.namespace, labels: labelsOf(name) }, rules: nsRules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: o.namespace, labels: labelsOf(name) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [sa],
    },
  ];
}

/**
 * cdi-apiserver may: review access (SubjectAccessReview), read the front-proxy settings (the built-in
 * extension-apiserver-authentication-reader Role in kube-system), and get/create its signing key Secret.
 * Webhooks that need more add rules with them: the clone webhooks read namespaces (does the clone source's exist),
 * DataSources (a sourceRef's clone source), and datavolume-validate PVCs (one of the DataVolume's name) and CDIConfig
 * (the DataVolumeClaimAdoption gate).
 */
export function apiServerManifests(o: UploadDeployOptions = defaultUploadDeployOptions): Obj[] {
  const name = 'cdi-apiserver';
  return [
    ...rbac(
      o,
      name,
      [
        { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
        { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] },
        { apiGroups: ['cdi.kubevirt.io'], resources: ['datasources', 'cdiconfigs'], verbs: ['get'] },
      ],
      [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] }],
    ),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: `${name}-auth-reader`, namespace: 'kube-system', labels: labelsOf(name) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'extension-apiserver-authentication-reader' },
      subjects: [{ kind: 'ServiceAccount', name, namespace: o.namespace }],
    },
    deployment(
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
    service(o, 'cdi-api', name),
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
export function uploadApiService(namespace: string, caBundlePem: string): KubeObject & { spec: Obj } {
  return {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: UploadApiServiceName, labels: labelsOf('cdi-api') },
    spec: {
      service: { namespace, name: 'cdi-api', port: 443 },
      group: UploadGroup,
      version: UploadVersion,
      groupPriorityMinimum: 1000,
      versionPriority: 15,
      caBundle: Buffer.from(caBundlePem).toString('base64'),
    },
  };
}

/**
 * Applies the APIService with the current cdi-apiserver CA bundle (after reconcileCertificates; again whenever the
 * bundle changes). The controller calls it until the operator exists.
 */
export async function reconcileUploadApiService(kube: KubeClient, namespace: string): Promise<void> {
  const cm = await kube.get<ConfigMap>(Resources.ConfigMap, 'cdi-apiserver-signer-bundle', namespace);
  const pem = cm.data?.[BundleKey];
  if (!pem) throw new Error(`ConfigMap ${namespace}/cdi-apiserver-signer-bundle has no ${BundleKey} yet`);
  await kube.apply(ApiServiceResource, uploadApiService(namespace, pem), { fieldManager: 'cdi-ts', force: true });
}

/** cdi-uploadproxy may read PVCs (readiness) and, in its namespace, the upload-server CA bundle ConfigMap. */
export function uploadProxyManifests(o: UploadDeployOptions = defaultUploadDeployOptions): Obj[] {
  const name = 'cdi-uploadproxy';
  return [
    ...rbac(
      o,
      name,
      [{ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] }],
      [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    ),
    deployment(
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

const header = '# Generated by hack/gen-manifests.ts from src/deploy/upload.ts; do not edit (npm run gen).\n';

/** deploy/upload/<file> → YAML text. */
export function renderUploadDeployFiles(o: UploadDeployOptions = defaultUploadDeployOptions): Record<string, string> {
  const objs = [...apiServerManifests(o), ...uploadProxyManifests(o)];
  return { '30-upload.yaml': header + objs.map((x) => YAML.stringify(x, { lineWidth: 0 })).join('---\n') };
}
