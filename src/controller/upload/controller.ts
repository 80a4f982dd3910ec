// The upload controller: for every PVC annotated cdi.kubevirt.io/storage.upload.target (written by the DataVolume
// controller for `source: upload`, or by a user on a bare PVC), run the upload server pod `cdi-upload-<pvc>` with its
// Service, certificate Secret and scratch PVC, and copy the pod's state onto the PVC (storage.pod.phase,
// storage.pod.ready, the Running condition, restarts) - upstream pkg/controller/upload-controller.go. After the
// upload succeeded the pod and the Service are removed (the Secret and the scratch PVC are the pod's: they go with it).
// Level-triggered and idempotent like the import controller: reads from the cache, deterministic names,
// AlreadyExists is success, the PVC annotations are the only memory. Changes of the PVC, of its pod and Service, and
// of pods mounting the claim queue the PVC.
import { isDeepStrictEqual } from 'node:util';
import {
  isControlledBy,
  type PersistentVolumeClaim as Pvc,
  type Pod as PodObj,
  type Service,
} from '../../kube/index.ts';
import { Ann as ApiAnn } from '../../api/constants.ts';
import { serviceName } from '../../api/naming.ts';
import { Ann, CDIConfigName, Reason } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import { podsUsingClaim } from '../shared/claims.ts';
import { retryUnschedulablePod } from '../shared/pods.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import { filesystemOverheadFor, honorWaitForFirstConsumer } from '../shared/storage.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';
import { boundConditionFromEvents } from '../import/controller.ts';
import { getVolumeMode } from '../import/pod.ts';
import { createScratchPvc } from '../import/scratch.ts';
import { parseTerminationMessage, setAnnotationsFromPod } from '../import/termination.ts';
import type { UploadCertSource, UploadPodCerts } from './certs.ts';
import {
  isPodReady,
  isUploadPvc,
  makeCertSecret,
  makeUploadPod,
  makeUploadService,
  uploadResourceName,
  uploadScratchName,
  UploadPod,
  type UploadPodOptions,
} from './pod.ts';

export interface UploadDeps {
  kube: Kube;
  recorder: Recorder;
  log: Logger;
  pod: Omit<UploadPodOptions, 'resources' | 'imagePullSecrets'>;
  certs: UploadCertSource;
}

const anns = (pvc: Pvc): Record<string, string> => pvc.metadata?.annotations ?? {};
const pvcRef = (pvc: Pvc): Pvc => ({ ...pvc, apiVersion: 'v1', kind: 'PersistentVolumeClaim' });

/** upstream shouldReconcile: an upload PVC, bound unless WaitForFirstConsumer is not honored (or bypassed). */
export function shouldReconcileUpload(pvc: Pvc, config: CDIConfig | undefined): boolean {
  if (!isUploadPvc(pvc)) return false;
  if (Ann.externalPopulation in anns(pvc)) return false;
  const honorWffc = honorWaitForFirstConsumer(config) && !(Ann.immediateBinding in anns(pvc));
  return honorWffc ? pvc.status?.phase === 'Bound' : true;
}

export async function reconcileUpload(d: UploadDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const found = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  if (!found || !isUploadPvc(found)) return;
  if (ApiAnn.CloneRequest in anns(found)) {
    // upstream refuses both; host-assisted clone targets are the clone controller's
    d.log.info('PVC has both clone and upload annotations; not uploading', { namespace, pvc: name });
    return;
  }
  const pvc = await boundConditionFromEvents(d, found);
  const config = await d.kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName);
  if (
    !shouldReconcileUpload(pvc, config) ||
    anns(pvc)[Ann.podPhase] === 'Succeeded' ||
    pvc.metadata?.deletionTimestamp
  ) {
    await removeUploadServer(d, pvc);
    return;
  }

  const podName = uploadResourceName(pvc);
  let pod = await d.kube.get<PodObj>(Res.pod, podName, namespace);
  if (pod && !isControlledBy(pod, pvc))
    throw new Error(`${podName} pod not controlled by pvc ${name}: delete or rename it`);
  if (pod?.metadata?.deletionTimestamp) return; // its deletion queues the PVC; the successor waits for the name

  if (!pod) {
    const users = await podsUsingClaim(d.kube, pvc);
    if (users.length > 0) {
      for (const u of users)
        await d.recorder.record(
          pvcRef(pvc),
          'Warning',
          Reason.UploadTargetInUse,
          `pod ${u.metadata?.namespace}/${u.metadata?.name} using PersistentVolumeClaim ${name}`,
        );
      return; // those pods' changes queue this PVC
    }
    if (!anns(pvc)[ApiAnn.UploadPod]) {
      // First sight: record the pod name before making anything, as upstream does.
      await d.kube.mergePatch(Res.pvc, name, namespace, {
        metadata: { annotations: { [ApiAnn.UploadPod]: podName } },
      });
      return;
    }
    if (!config)
      throw new Error(`CDIConfig ${CDIConfigName} does not exist yet; the config controller creates it`);
    pod = await createUploadPod(d, pvc, podName, config, {
      clientName: anns(pvc)[UploadPod.clientNameAnn] || UploadPod.clientName,
      certs: await d.certs.forPod(serviceName(podName), pvc.metadata?.namespace ?? ''),
      scratchName: uploadScratchName(pvc),
    });
  }

  const next: Record<string, string> = { ...anns(pvc) };
  const scratch = (pod.spec?.volumes ?? []).find((v) => v.name === 'cdi-scratch-vol')?.persistentVolumeClaim
    ?.claimName;
  if (scratch) await ensureScratch(d, pvc, pod, scratch, config, next);
  await ensureUploadService(d, pvc, serviceName(podName));

  const termMsg = uploadTermination(pod);
  if (termMsg?.deadlinePassed) {
    await replaceAtDeadline(d, pod);
    next[Ann.podPhase] = '';
    next[Ann.podReady] = 'false';
  } else {
    next[Ann.podPhase] = pod.status?.phase ?? '';
    next[Ann.podReady] = String(isPodReady(pod));
  }
  setAnnotationsFromPod(next, pod, termMsg);
  if (pod.status?.phase !== 'Pending' && next[Ann.boundConditionReason] === Reason.CreatingScratchSpace) {
    delete next[Ann.boundCondition];
    delete next[Ann.boundConditionMessage];
    delete next[Ann.boundConditionReason];
  }

  const retry = await retryUnschedulablePod(d.kube, pod);
  const before = anns(pvc);
  if (isDeepStrictEqual(next, before)) return retry;
  const patch: Record<string, string | null> = { ...next };
  for (const k of Object.keys(before)) if (!(k in next)) patch[k] = null;
  await d.kube.mergePatch(Res.pvc, name, namespace, {
    metadata: { annotations: patch, resourceVersion: pvc.metadata?.resourceVersion },
  });
  if (next[Ann.podPhase] === 'Succeeded' && before[Ann.podPhase] !== 'Succeeded') {
    d.log.info('upload succeeded', { namespace, pvc: name });
    await d.recorder.record(pvcRef(pvc), 'Normal', Reason.UploadSucceeded, 'Upload Successful');
  }
  return retry;
}

/** The upload server pod's termination message, if it has a readable one. */
export function uploadTermination(pod: PodObj): ReturnType<typeof parseTerminationMessage> {
  try {
    return parseTerminationMessage(pod);
  } catch {
    return undefined;
  }
}

/** The server stopped at its deadline, before its certificate is due: it goes, and its successor gets fresh ones. */
export async function replaceAtDeadline(d: Pick<UploadDeps, 'kube' | 'log'>, pod: PodObj): Promise<void> {
  if (pod.metadata?.deletionTimestamp) return;
  const { name, namespace } = pod.metadata ?? {};
  d.log.info('upload server reached its deadline; replacing the pod', { namespace, pod: name });
  await d.kube.delete(Res.pod, name ?? '', namespace, pod.metadata?.uid);
  await d.kube.delete(Res.secret, name ?? '', namespace);
}

/** upstream cleanup: the Service goes; the pod too, unless the PVC asks to retain it. */
export async function removeUploadServer(d: Pick<UploadDeps, 'kube'>, pvc: Pvc): Promise<void> {
  const ns = pvc.metadata?.namespace;
  const podName = uploadResourceName(pvc);
  const svcName = serviceName(podName);
  const svc = await d.kube.get<Service>(Res.service, svcName, ns);
  if (svc && isControlledBy(svc, pvc) && !svc.metadata?.deletionTimestamp)
    await d.kube.delete(Res.service, svcName, ns, svc.metadata?.uid);
  const pod = await d.kube.get<PodObj>(Res.pod, podName, ns);
  if (
    pod &&
    isControlledBy(pod, pvc) &&
    !pod.metadata?.deletionTimestamp &&
    anns(pvc)[Ann.retainAfterCompletion] !== 'true'
  )
    await d.kube.delete(Res.pod, podName, ns, pod.metadata?.uid);
}

/**
 * upstream createUploadPodForPvc: the pod with its server certificate `certs` (fresh, from UploadCertSource), then its
 * Secret (owned by the pod). For upload targets (a scratch claim) and host-assisted clone targets (none).
 */
export async function createUploadPod(
  d: Pick<UploadDeps, 'kube' | 'recorder' | 'log' | 'pod'>,
  pvc: Pvc,
  podName: string,
  config: CDIConfig,
  o: { clientName: string; certs: UploadPodCerts; scratchName?: string },
): Promise<PodObj> {
  const ns = pvc.metadata?.namespace ?? '';
  const classes = (await d.kube.list<StorageClass>(Res.storageClass)).items;
  const { pair, clientCa, deadline } = o.certs;
  const desired = makeUploadPod(
    pvc,
    {
      name: podName,
      clientName: o.clientName,
      filesystemOverhead: filesystemOverheadFor(
        config,
        classes,
        pvc.spec?.storageClassName,
        getVolumeMode(pvc),
      ),
      preallocation: anns(pvc)[Ann.preallocationRequested] === 'true',
      deadline,
      ...(o.scratchName ? { scratchName: o.scratchName } : {}),
    },
    {
      ...d.pod,
      ...(config.status?.defaultPodResourceRequirements
        ? { resources: config.status.defaultPodResourceRequirements }
        : {}),
      ...(config.status?.imagePullSecrets ? { imagePullSecrets: config.status.imagePullSecrets } : {}),
    },
  );
  let pod: PodObj;
  try {
    pod = await d.kube.create(Res.pod, desired);
    d.log.info('created upload server pod', { namespace: ns, pod: podName });
  } catch (e) {
    if (!isAlreadyExists(e)) {
      await d.recorder.record(
        pvcRef(pvc),
        'Warning',
        Reason.ErrStartingPod,
        `could not create upload server pod ${podName}: ${(e as Error).message}`,
      );
      throw e;
    }
    const existing = await d.kube.get<PodObj>(Res.pod, podName, ns);
    if (!existing) throw e;
    pod = existing;
  }
  // The pod waits for its Secret volume; once it runs, the Secret has done its work (upstream ensureCertSecret).
  if (pod.status?.phase !== 'Running') {
    try {
      await d.kube.create(Res.secret, makeCertSecret(pod, pair, clientCa));
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  }
  return pod;
}

export async function ensureUploadService(
  d: Pick<UploadDeps, 'kube' | 'log'>,
  pvc: Pvc,
  name: string,
): Promise<void> {
  const ns = pvc.metadata?.namespace;
  const svc = await d.kube.get<Service>(Res.service, name, ns);
  if (svc) {
    if (!isControlledBy(svc, pvc))
      throw new Error(`${name} service not controlled by pvc ${pvc.metadata?.name}: delete or rename it`);
    return;
  }
  try {
    await d.kube.create(Res.service, makeUploadService(pvc, name));
    d.log.info('created upload service', { namespace: ns, service: name });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}

/** The scratch PVC the pod mounts, owned by the pod (qcow2 and the other formats convert through it). */
async function ensureScratch(
  d: UploadDeps,
  pvc: Pvc,
  pod: PodObj,
  name: string,
  config: CDIConfig | undefined,
  next: Record<string, string>,
): Promise<void> {
  const ns = pvc.metadata?.namespace;
  const existing = await d.kube.get<Pvc>(Res.pvc, name, ns);
  if (existing) {
    if (!isControlledBy(existing, pod))
      throw new Error(`${name} scratch PVC not controlled by pod ${pod.metadata?.name}`);
    return;
  }
  const classes = (await d.kube.list<StorageClass>(Res.storageClass)).items;
  await createScratchPvc(d, pvc, pod, name, config, classes);
  next[Ann.boundCondition] = 'false';
  next[Ann.boundConditionMessage] = 'Creating scratch space';
  next[Ann.boundConditionReason] = Reason.CreatingScratchSpace;
}
