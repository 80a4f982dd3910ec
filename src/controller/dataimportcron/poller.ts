// The digest poller of a DataImportCron with a registry URL source (upstream InitPollerPod / initCronJob): a CronJob
// in CDI's namespace, on the cron's schedule, whose pod runs the importer image's cdi-source-update-poller
// (src/cmd/source-update-poller.ts). The pod reads the manifest digest of the URL and annotates the DataImportCron
// with it (storage.import.sourceDesiredDigest, and lastCronTime); that annotation change wakes the controller. An
// initial Job of the same template polls at once when the CronJob is first made.
// The sources the controller polls itself (upstream isControllerPolledSource) get no CronJob: a `pvc` source's
// "digest" is `uid:<the source PVC's uid>`, and `pullMethod: node` runs the pod poller-<cron>-<uid8> below in the
// cron's namespace, whose container status names the digest the kubelet pulled.
import { Label, LabelValue } from '../../api/constants.ts';
import { resourceName } from '../../api/naming.ts';
import { NodePull, nodePullProbeCommand } from '../../api/nodepull.ts';
import type { KubeObject, Pod as PodObj } from '../../kube/index.ts';
import { GroupVersion, ManagedLabels, Pod } from '../shared/constants.ts';
import { workerSecurityContext } from '../shared/pods.ts';
import type { CDIConfig, DataImportCron } from '../shared/types.ts';

export const CronLabel = {
  cron: Label.DataImportCron,
  cronNamespace: Label.DataImportCronNamespace,
  poller: Label.DataImportCronPoller,
  cleanup: Label.DataImportCronCleanup,
} as const;

/** upstream CronJobServiceAccountName: the poller's identity (may get and patch DataImportCrons, nothing else). */
export const CronJobServiceAccount = 'cdi-cronjob';
export const PollerContainer = 'cdi-source-update-poller';
/** Where the poller entry point lives in the importer image (upstream: /usr/bin/cdi-source-update-poller). */
export const PollerCommand = ['/usr/local/bin/node', '/app/src/cmd/source-update-poller.ts'];

export interface PollerOptions {
  image: string;
  pullPolicy: string;
  cdiNamespace: string;
  nodeSelector?: Record<string, string>;
}

export interface CronJob extends KubeObject {
  spec: {
    schedule: string;
    concurrencyPolicy?: string;
    successfulJobsHistoryLimit?: number;
    failedJobsHistoryLimit?: number;
    jobTemplate: { spec: JobSpec };
  };
}
interface JobSpec {
  backoffLimit?: number;
  ttlSecondsAfterFinished?: number;
  template: { metadata?: { labels?: Record<string, string> }; spec: Record<string, unknown> };
}

export const cronJobName = (cron: DataImportCron): string =>
  resourceName(cron.metadata.name ?? '', (cron.metadata.uid ?? '').slice(0, 8));
export const initialJobName = (cron: DataImportCron): string =>
  resourceName('initial-job', cronJobName(cron));

export function isUrlSource(cron: DataImportCron): boolean {
  return Boolean(cron.spec.template.spec?.source?.registry?.url);
}

/** upstream isNodePull: a registry source with `pullMethod: node`. */
export function isNodePull(cron: DataImportCron): boolean {
  return cron.spec.template.spec?.source?.registry?.pullMethod === NodePull.method;
}

/** upstream isPvcSource: the cron clones a PVC. */
export function isPvcSource(cron: DataImportCron): boolean {
  return Boolean(cron.spec.template.spec?.source?.pvc);
}

/**
 * upstream isControllerPolledSource (less ImageStreams, which are not supported here): the controller finds the
 * digest itself, on the schedule, and no CronJob is made.
 */
export function isControllerPolledSource(cron: DataImportCron): boolean {
  return isPvcSource(cron) || isNodePull(cron);
}

/** upstream updatePvcDesiredDigest: a PVC source's digest is its uid, so a replaced PVC is imported again. */
export function pvcDigest(uid: string | undefined): string | undefined {
  return uid ? `uid:${uid}` : undefined;
}

/** upstream getPollerPodName: `poller-<cron>-<first 8 of uid>`. */
export const pollerPodName = (cron: DataImportCron): string =>
  resourceName(`poller-${cron.metadata.name ?? ''}`, (cron.metadata.uid ?? '').slice(0, 8));

/**
 * upstream updateContainerImageDesiredDigest's pod, in the cron's namespace and owned by it: the `init` container
 * (the importer image) copies our image server into the shared emptyDir, and `image-container` runs the user's
 * image (always pulled) with it and `-h`, which exits at once. The workload node selector, and
 * `kubernetes.io/arch` for a platform architecture (the kubelet pulls for its own); restricted security context,
 * no fsGroup.
 */
export function desiredPollerPod(cron: DataImportCron, o: PollerOptions): PodObj {
  const reg = cron.spec.template.spec?.source?.registry ?? {};
  const arch = reg.platform?.architecture || undefined;
  const nodeSelector = {
    ...(o.nodeSelector ?? {}),
    ...(arch ? { 'kubernetes.io/arch': arch } : {}),
  };
  const shared = [{ name: NodePull.sharedVolName, mountPath: NodePull.sharedDir }];
  const securityContext = workerSecurityContext();
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pollerPodName(cron),
      namespace: cron.metadata.namespace ?? '',
      // upstream's pod has no labels; the app label keeps it whole in our pod cache (trimPod), status included
      labels: {
        ...ManagedLabels,
        [Label.App]: LabelValue.App,
        [CronLabel.cron]: cron.metadata.name ?? '',
      },
      ownerReferences: [
        {
          apiVersion: GroupVersion,
          kind: 'DataImportCron',
          name: cron.metadata.name ?? '',
          uid: cron.metadata.uid ?? '',
          blockOwnerDeletion: true,
          controller: true,
        },
      ],
    },
    spec: {
      terminationGracePeriodSeconds: 0,
      restartPolicy: 'Never',
      ...(Object.keys(nodeSelector).length > 0 ? { nodeSelector } : {}),
      volumes: [{ name: NodePull.sharedVolName, emptyDir: {} }],
      initContainers: [
        {
          name: 'init',
          image: o.image,
          imagePullPolicy: o.pullPolicy,
          command: [...NodePull.installCommand],
          volumeMounts: shared,
          terminationMessagePolicy: 'FallbackToLogsOnError',
          securityContext,
        },
      ],
      containers: [
        {
          name: 'image-container',
          image: (reg.url ?? '').replace(/^docker:\/\//, ''),
          imagePullPolicy: 'Always',
          command: nodePullProbeCommand(arch),
          volumeMounts: shared,
          terminationMessagePolicy: 'FallbackToLogsOnError',
          securityContext,
        },
      ],
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    },
  };
}

/** The kubelet could not pull the image (upstream common.ImagePullFailureText). */
export class ImagePullError extends Error {
  override name = 'ImagePullError';
}

/**
 * upstream fetchContainerImageDigest: the `sha256:` digest in the first container's imageID once it terminated;
 * undefined while it has not (poll again); an ImagePullError when the kubelet cannot pull it.
 */
export function containerImageDigest(pod: PodObj): string | undefined {
  const status = pod.status?.containerStatuses?.[0];
  if (!status) return undefined;
  const waiting = status.state?.waiting?.reason;
  if (waiting === 'ImagePullBackOff' || waiting === 'ErrImagePull' || waiting === 'InvalidImageName')
    throw new ImagePullError(`failed to pull image ${status.image}: ${waiting}`);
  if (!status.state?.terminated) return undefined;
  const id = status.imageID ?? '';
  if (!id) throw new Error('Container has no imageID');
  const i = id.indexOf('sha256:');
  if (i < 0) throw new Error(`Container image ${status.image} ID has no digest: ${id}`);
  return id.slice(i);
}

/** upstream IsInsecureTLS: the registry's host is listed in CDIConfig spec.insecureRegistries. */
export function insecureRegistry(url: string, config: CDIConfig | undefined): boolean {
  try {
    return (config?.spec?.insecureRegistries ?? []).includes(new URL(url).host);
  } catch {
    return false;
  }
}

export function pollerLabels(cron: DataImportCron): Record<string, string> {
  return {
    ...ManagedLabels,
    [CronLabel.cronNamespace]: cron.metadata.namespace ?? '',
    [CronLabel.cron]: cron.metadata.name ?? '',
  };
}

function jobSpec(cron: DataImportCron, o: PollerOptions, config: CDIConfig | undefined): JobSpec {
  const reg = cron.spec.template.spec?.source?.registry ?? {};
  const url = reg.url ?? '';
  const command = [
    ...PollerCommand,
    '-ns',
    cron.metadata.namespace ?? '',
    '-cron',
    cron.metadata.name ?? '',
    '-url',
    url,
  ];
  const volumes: unknown[] = [];
  const mounts: unknown[] = [];
  if (reg.certConfigMap) {
    volumes.push({ name: Pod.certVolName, configMap: { name: reg.certConfigMap } });
    mounts.push({ name: Pod.certVolName, mountPath: Pod.certDir });
    command.push('-certdir', Pod.certDir);
  }
  const env: unknown[] = [];
  if (reg.secretRef) {
    for (const [name, key] of [
      ['IMPORTER_ACCESS_KEY_ID', Pod.keyAccess],
      ['IMPORTER_SECRET_KEY', Pod.keySecret],
    ] as const)
      env.push({ name, valueFrom: { secretKeyRef: { name: reg.secretRef, key } } });
  }
  if (insecureRegistry(url, config)) env.push({ name: 'INSECURE_TLS', value: 'true' });
  return {
    backoffLimit: 2,
    ttlSecondsAfterFinished: 10,
    template: {
      metadata: { labels: { [CronLabel.poller]: '' } },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 0,
        serviceAccountName: CronJobServiceAccount,
        securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
        ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
        containers: [
          {
            name: PollerContainer,
            image: o.image,
            imagePullPolicy: o.pullPolicy,
            command,
            ...(env.length ? { env } : {}),
            ...(mounts.length ? { volumeMounts: mounts } : {}),
            terminationMessagePolicy: 'FallbackToLogsOnError',
            securityContext: {
              allowPrivilegeEscalation: false,
              capabilities: { drop: ['ALL'] },
              runAsNonRoot: true,
            },
          },
        ],
        ...(volumes.length ? { volumes } : {}),
      },
    },
  };
}

export function desiredCronJob(
  cron: DataImportCron,
  o: PollerOptions,
  config: CDIConfig | undefined,
): CronJob {
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: cronJobName(cron), namespace: o.cdiNamespace, labels: pollerLabels(cron) },
    spec: {
      schedule: cron.spec.schedule,
      concurrencyPolicy: 'Forbid',
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 1,
      jobTemplate: { spec: jobSpec(cron, o, config) },
    },
  };
}

export function initialJob(cronJob: CronJob, cron: DataImportCron): KubeObject {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: initialJobName(cron),
      namespace: cronJob.metadata?.namespace ?? '',
      labels: pollerLabels(cron),
    },
    spec: cronJob.spec.jobTemplate.spec,
  } as KubeObject;
}

/** What the controller keeps equal between the desired and the existing CronJob (the API server defaults the rest). */
export function cronJobDrift(existing: CronJob, desired: CronJob): boolean {
  const c = (j: CronJob) => {
    const ct = (
      j.spec.jobTemplate.spec.template.spec['containers'] as Record<string, unknown>[] | undefined
    )?.[0];
    return JSON.stringify([j.spec.schedule, ct?.['image'], ct?.['command'], ct?.['env'] ?? []]);
  };
  return c(existing) !== c(desired);
}
