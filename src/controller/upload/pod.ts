// The children of an upload PVC, as upstream's upload controller makes them (pkg/controller/upload-controller.go):
// pod `cdi-upload-<pvc>` running the upload server, its headless Service of the same name (port 8443, what
// cdi-uploadproxy forwards to), and the Secret of the same name with the pod's serving certificate and the client CA
// bundle, mounted at /etc/tls/. Pure: the reconciler decides when, these decide what.
import {
  controllerRef,
  kubeTime,
  Resources,
  type PersistentVolumeClaim as Pvc,
  type Pod as PodObj,
  type Secret,
  type Service,
} from '../../kube/index.ts';
import { Ann as ApiAnn, Label as ApiLabel, LabelValue } from '../../api/constants.ts';
import { uploadPodName, UploadServerPort } from '../../api/upload.ts';
import { serviceName } from '../../api/naming.ts';
import { Label, ManagedLabels, Pod } from '../shared/constants.ts';
import { stringQuantities } from '../shared/quantity.ts';
import type { ResourceRequirements } from '../shared/types.ts';
import { getVolumeMode, scratchPvcName, workerPlacement } from '../import/pod.ts';
import { isUploadPvc, uploadInFlight } from '../shared/indexes.ts';

type PodContainer = NonNullable<PodObj['spec']>['containers'][number];
type PodVolume = NonNullable<NonNullable<PodObj['spec']>['volumes']>[number];
type LocalRef = NonNullable<NonNullable<PodObj['spec']>['imagePullSecrets']>[number];

/** upstream's names and paths (certVolName, certMountPath, serverCertFile, ...). */
export const UploadPod = {
  container: LabelValue.UploadServer,
  certVolName: 'tls-config',
  certMountPath: '/etc/tls/',
  serverCertFile: '/etc/tls/tls.crt',
  serverKeyFile: '/etc/tls/tls.key',
  clientCertFile: '/etc/tls/ca.crt',
  /** upstream annCreatedByUpload, on the pod, the Service and the Secret */
  createdByUpload: ApiAnn.CreatedByUpload,
  /** upstream AnnUploadClientName (host-assisted clone targets name their source here) */
  clientNameAnn: ApiAnn.UploadClientName,
  /** The CN of the client certificate an upload server accepts (upstream uploadServerClientName). */
  clientName: 'client.upload-server.cdi.kubevirt.io',
  /** the label the Service selects its pod by (upstream UploadServerServiceLabel) */
  serviceLabel: 'service',
} as const;

export interface UploadPodOptions {
  image: string;
  pullPolicy: string;
  verbose?: string;
  resources?: ResourceRequirements;
  imagePullSecrets?: LocalRef[];
  nodeSelector?: Record<string, string>;
}

export interface UploadPodArgs {
  /** The pod, Service and Secret name (the PVC's storage.uploadPodName). */
  name: string;
  clientName: string;
  filesystemOverhead: string;
  preallocation: boolean;
  /** The server exits (deadlinePassed) at this moment, before its certificate is due for renewal. */
  deadline?: Date;
  /** A scratch PVC to mount at /scratch (upstream: every upload that is not a clone target). */
  scratchName?: string;
}

const anns = (pvc: Pvc): Record<string, string> => pvc.metadata?.annotations ?? {};

export { isUploadPvc, uploadInFlight };

/** upstream getUploadResourceNameFromPvc: the recorded pod name, else `cdi-upload-<pvc>`. */
export function uploadResourceName(pvc: Pvc): string {
  return anns(pvc)[ApiAnn.UploadPod] || uploadPodName(pvc.metadata?.name ?? '');
}

export function uploadScratchName(pvc: Pvc): string {
  return scratchPvcName(pvc);
}

/** upstream isPodReady: every container reports ready (none: not ready). */
export function isPodReady(pod: PodObj): boolean {
  const s = pod.status?.containerStatuses ?? [];
  return s.length > 0 && s.every((c) => c.ready);
}

/** The labels of what an upload makes (upstream CDILabelKey/CDIComponentLabel plus the recommended labels). */
function uploadLabels(): Record<string, string> {
  return { ...ManagedLabels, [Label.app]: Label.appValue, [Label.component]: LabelValue.UploadServer };
}

const pvcOwner = (pvc: Pvc): ReturnType<typeof controllerRef> =>
  controllerRef(pvc, Resources.PersistentVolumeClaim);

/** Upstream's env contract of the upload server (src/uploadserver/pod.ts reads it). */
export function uploadEnv(pvc: Pvc, args: UploadPodArgs): { name: string; value: string }[] {
  const env = [
    { name: 'TLS_KEY_FILE', value: UploadPod.serverKeyFile },
    { name: 'TLS_CERT_FILE', value: UploadPod.serverCertFile },
    { name: 'CLIENT_CERT_FILE', value: UploadPod.clientCertFile },
    { name: 'FILESYSTEM_OVERHEAD', value: args.filesystemOverhead },
    { name: 'UPLOAD_IMAGE_SIZE', value: String(pvc.spec?.resources?.requests?.['storage'] ?? '') },
    { name: 'CLIENT_NAME', value: args.clientName },
    { name: 'PREALLOCATION', value: String(args.preallocation) },
  ];
  if (args.deadline) env.push({ name: 'DEADLINE', value: kubeTime(args.deadline) });
  if (getVolumeMode(pvc) === 'Block') env.push({ name: 'DESTINATION', value: Pod.blockPath });
  return env;
}

/** upstream makeUploadPodSpec: restricted, owned by the PVC, HTTPS readiness probe on /healthz. */
export function makeUploadPod(pvc: Pvc, args: UploadPodArgs, opts: UploadPodOptions): PodObj {
  const pvcName = pvc.metadata?.name ?? '';
  const block = getVolumeMode(pvc) === 'Block';
  const mounts: NonNullable<PodContainer['volumeMounts']> = [
    { name: UploadPod.certVolName, mountPath: UploadPod.certMountPath },
  ];
  const volumes: PodVolume[] = [
    { name: UploadPod.certVolName, secret: { secretName: args.name } },
    { name: Pod.dataVolName, persistentVolumeClaim: { claimName: pvcName, readOnly: false } },
  ];
  const container: PodContainer = {
    name: UploadPod.container,
    image: opts.image,
    imagePullPolicy: opts.pullPolicy,
    ...(opts.verbose ? { args: [`-v=${opts.verbose}`] } : {}),
    env: uploadEnv(pvc, args),
    ports: [{ name: 'uploadserver', containerPort: UploadServerPort, protocol: 'TCP' }],
    readinessProbe: {
      httpGet: { path: '/healthz', port: UploadServerPort, scheme: 'HTTPS' },
      initialDelaySeconds: 2,
      periodSeconds: 5,
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
    ...(opts.resources ? { resources: stringQuantities(opts.resources) } : {}),
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      runAsNonRoot: true,
      runAsUser: Pod.qemuUid,
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  if (block) container.volumeDevices = [{ name: Pod.dataVolName, devicePath: Pod.blockPath }];
  else mounts.push({ name: Pod.dataVolName, mountPath: Pod.dataDir });
  if (args.scratchName) {
    mounts.push({ name: Pod.scratchVolName, mountPath: Pod.scratchDir });
    volumes.push({
      name: Pod.scratchVolName,
      persistentVolumeClaim: { claimName: args.scratchName, readOnly: false },
    });
  }
  container.volumeMounts = mounts;

  const a = anns(pvc);
  const annotations: Record<string, string> = {
    [UploadPod.createdByUpload]: 'yes',
    'k8s.ovn.org/open-default-ports': `[{"protocol":"tcp","port":${UploadServerPort}}]`,
  };
  // upstream CopyAllowedAnnotations
  for (const k of ['k8s.v1.cni.cncf.io/networks', 'v1.multus-cni.io/default-network']) {
    if (a[k]) annotations[k] = a[k];
  }
  annotations['sidecar.istio.io/inject'] = a['sidecar.istio.io/inject'] ?? 'false';
  annotations['linkerd.io/inject'] = a['linkerd.io/inject'] ?? 'disabled';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: args.name,
      namespace: pvc.metadata?.namespace,
      annotations,
      labels: {
        ...uploadLabels(),
        [UploadPod.serviceLabel]: serviceName(args.name),
        [ApiLabel.UploadTarget]: pvc.metadata?.uid ?? '',
      },
      ownerReferences: [pvcOwner(pvc)],
    },
    spec: {
      containers: [container],
      volumes,
      restartPolicy: 'OnFailure',
      enableServiceLinks: false,
      // the upload server never talks to the API server
      automountServiceAccountToken: false,
      ...workerPlacement(a, opts),
      securityContext: { seccompProfile: { type: 'RuntimeDefault' }, fsGroup: Pod.qemuUid },
    },
  };
}

/** upstream makeUploadServiceSpec: headless, selecting the pod by its `service` label, owned by the PVC. */
export function makeUploadService(pvc: Pvc, name: string): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: pvc.metadata?.namespace,
      annotations: { [UploadPod.createdByUpload]: 'yes' },
      labels: uploadLabels(),
      ownerReferences: [pvcOwner(pvc)],
    },
    spec: {
      clusterIP: 'None',
      ports: [{ protocol: 'TCP', port: UploadServerPort, targetPort: UploadServerPort }],
      selector: { [UploadPod.serviceLabel]: name },
    },
  };
}

/** upstream ensureCertSecret: the pod's key pair and the client CA, owned by the pod (it goes with the pod). */
export function makeCertSecret(
  pod: PodObj,
  pair: { certPem: string; keyPem: string },
  clientCaPem: string,
): Secret {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: pod.metadata?.name ?? '',
      namespace: pod.metadata?.namespace,
      annotations: { [UploadPod.createdByUpload]: 'yes' },
      labels: uploadLabels(),
      ownerReferences: [controllerRef(pod, Resources.Pod)],
    },
    data: { 'tls.key': b64(pair.keyPem), 'tls.crt': b64(pair.certPem), 'ca.crt': b64(clientCaPem) },
  };
}

export { uploadPodName };
