// The import controller: for every PVC carrying storage.import.endpoint or storage.import.source (written by the DV
// controller, or by a user on a bare PVC), run pod importer-<pvc> and copy its state back onto the PVC
// (upstream pkg/controller/import-controller.go). Level-triggered and idempotent: deterministic names, AlreadyExists
// is success, the PVC annotations are the only memory, and reads come from the cache (the session's expectations keep
// a reconcile from acting on a cache that has not seen this key's own last writes). Nothing polls: the pod's, the
// PVC's and the pods-using-the-claim changes queue the PVC.
import {
  controllerOf,
  controllerRef,
  isControlledBy,
  type ConfigMap,
  type PersistentVolumeClaim as Pvc,
  type Pod as PodObj,
} from '../../kube/index.ts';
import { isDeepStrictEqual } from 'node:util';
import {
  Ann,
  CDIConfigName,
  Component,
  GroupVersion,
  ManagedLabels,
  Pod,
  Reason,
  Source,
} from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import { retryUnschedulablePod } from '../shared/pods.ts';
import { podsUsingClaim } from '../shared/claims.ts';
import type { Recorder } from '../shared/events.ts';
import { InvolvedUidIndex, isImportPvc, PvcEventsSelector } from '../shared/indexes.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import { filesystemOverheadFor, honorWaitForFirstConsumer } from '../shared/storage.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';
import {
  buildImportEnv,
  getVolumeMode,
  importPodName,
  makeImporterPod,
  proxyConfigMapName,
  requiresScratch,
  scratchPvcName,
  type ImporterPodOptions,
} from './pod.ts';
import { createScratchPvc } from './scratch.ts';
import { isMultiStageInProgress } from '../shared/checkpoints.ts';
import { podToPvcUpdate } from './termination.ts';

export interface ImportDeps {
  kube: Kube;
  recorder: Recorder;
  log: Logger;
  pod: Omit<ImporterPodOptions, 'resources' | 'imagePullSecrets'>;
  /** CDI's namespace, where CDIConfig's trusted proxy CA ConfigMap lives. */
  cdiNamespace?: string;
}

interface EventLike {
  reason?: string;
  message?: string;
  lastTimestamp?: string;
  eventTime?: string;
  firstTimestamp?: string;
}

const eventTime = (e: EventLike): number =>
  Date.parse(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? '') || 0;

/**
 * upstream UpdatePVCBoundConditionFromEvents: while the claim is Pending, its latest event (newest first; on a tie
 * the longer message) becomes the bound condition annotations (false, reason Pending, the event's message), which
 * the DataVolume shows as "target PVC <name> Pending and <message>". Once it is bound they are removed (but not the
 * CreatingScratchSpace ones this controller sets itself). Events are read from the cache: PVC events, not our own.
 */
export async function boundConditionFromEvents(d: Pick<ImportDeps, 'kube'>, pvc: Pvc): Promise<Pvc> {
  const a = anns(pvc);
  const name = pvc.metadata?.name ?? '';
  const ns = pvc.metadata?.namespace;
  const patch = (annotations: Record<string, string | null>): Promise<Pvc> =>
    d.kube.mergePatch<Pvc>(Res.pvc, name, ns, { metadata: { annotations } });
  if (pvc.status?.phase === 'Bound') {
    if (Ann.boundCondition in a && a[Ann.boundConditionReason] === Reason.Pending)
      return patch({
        [Ann.boundCondition]: null,
        [Ann.boundConditionReason]: null,
        [Ann.boundConditionMessage]: null,
      });
    return pvc;
  }
  if (pvc.status?.phase !== 'Pending') return pvc;
  const uid = pvc.metadata?.uid ?? '';
  const events = (
    await d.kube.list<EventLike>(Res.event, {
      namespace: ns ?? '',
      index: { name: InvolvedUidIndex, value: uid },
      fieldSelector: `${PvcEventsSelector(Component)},involvedObject.uid=${uid}`,
    })
  ).items;
  const latest = [...events].sort(
    (x, y) => eventTime(y) - eventTime(x) || (y.message ?? '').length - (x.message ?? '').length,
  )[0];
  if (!latest?.message) return pvc;
  if (
    a[Ann.boundCondition] === 'false' &&
    a[Ann.boundConditionReason] === Reason.Pending &&
    a[Ann.boundConditionMessage] === latest.message
  )
    return pvc;
  return patch({
    [Ann.boundCondition]: 'false',
    [Ann.boundConditionReason]: Reason.Pending,
    [Ann.boundConditionMessage]: latest.message,
  });
}

const anns = (pvc: Pvc): Record<string, string> => pvc.metadata?.annotations ?? {};

export { isImportPvc };

/** upstream shouldReconcilePVC (no multi-stage yet): an incomplete import PVC, bound unless WFFC is not honored. */
export function shouldReconcile(pvc: Pvc, config: CDIConfig | undefined): boolean {
  const a = anns(pvc);
  if (Ann.externalPopulation in a) return false;
  // a multi-stage import goes on after each checkpoint's pod Succeeded (upstream IsMultiStageImportInProgress)
  if (a[Ann.podPhase] === 'Succeeded' && !isMultiStageInProgress(a)) return false;
  if (!isImportPvc(pvc)) return false;
  const honorWffc = honorWaitForFirstConsumer(config) && !(Ann.immediateBinding in a);
  return honorWffc ? pvc.status?.phase === 'Bound' : true;
}

export async function reconcileImport(d: ImportDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const found = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  if (!found) return;
  // "Pending" always says why: the claim's latest event (ProvisioningFailed, WaitForFirstConsumer, ...).
  const pvc = isImportPvc(found) ? await boundConditionFromEvents(d, found) : found;
  const config = await d.kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName);
  if (!shouldReconcile(pvc, config)) {
    await cleanupAfterCompletion(d, pvc);
    return;
  }

  const podName = importPodName(pvc);
  const pod = await d.kube.get<PodObj>(Res.pod, podName, namespace);
  if (pod && !isControlledBy(pod, pvc)) {
    throw new Error(
      `pod ${namespace}/${podName} exists and is not owned by PVC ${name}: delete or rename it`,
    );
  }
  // A pod on its way out is not the importer any more, and its successor cannot be created under its name until it
  // is gone: its deletion queues this PVC again.
  if (pod?.metadata?.deletionTimestamp) return;

  if (!pod) {
    const a = anns(pvc);
    if (a[Ann.fatalError] === 'true' || pvc.metadata?.deletionTimestamp) return;
    // a checkpoint is in: the DataVolume controller points the PVC at the next one (and that change queues us)
    if (a[Ann.podPhase] === 'Succeeded') return;
    const users = await podsUsingClaim(d.kube, pvc);
    if (users.length > 0) {
      for (const u of users) {
        await d.recorder.record(
          { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: pvc.metadata },
          'Warning',
          Reason.ImportTargetInUse,
          `pod ${u.metadata?.namespace}/${u.metadata?.name} using PersistentVolumeClaim ${name}`,
        );
      }
      return; // a change of those pods (finished, deleted) queues this PVC
    }
    if (Ann.importPod in a) await createImporterPod(d, pvc, config);
    else {
      // First sight: record the pod name (and whether scratch is needed) before creating anything, as upstream does,
      // then go on with the written claim in the same pass. Upstream waits for the update to come back through the
      // queue; with hundreds of new claims that second trip through a deep queue delayed every pod by minutes. The
      // pod's name is deterministic, so a retry after a stale read meets AlreadyExists, never a second pod.
      const annotations: Record<string, string> = { [Ann.importPod]: importPodName(pvc) };
      if (requiresScratch(pvc)) annotations[Ann.requiresScratch] = 'true';
      const written = await d.kube.mergePatch<Pvc>(Res.pvc, name, namespace, { metadata: { annotations } });
      await createImporterPod(d, written, config);
    }
  } else if (pvc.metadata?.deletionTimestamp) {
    await d.kube.delete(Res.pod, podName, namespace, pod.metadata?.uid);
  } else {
    await ensureProxyCa(d, pvc, pod, config);
    await updatePvcFromPod(d, pvc, pod, config);
    return retryUnschedulablePod(d.kube, pod);
  }
}

/** A completed import whose pod deletion failed half-way still gets its pod removed (unless asked to retain it). */
async function cleanupAfterCompletion(d: ImportDeps, pvc: Pvc): Promise<void> {
  const a = anns(pvc);
  const podName = a[Ann.importPod];
  if (a[Ann.podPhase] !== 'Succeeded' || !podName || a[Ann.retainAfterCompletion] === 'true') return;
  const pod = await d.kube.get<PodObj>(Res.pod, podName, pvc.metadata?.namespace);
  if (pod && isControlledBy(pod, pvc) && !pod.metadata?.deletionTimestamp) {
    await d.kube.delete(Res.pod, podName, pvc.metadata?.namespace, pod.metadata?.uid);
  }
}

async function createImporterPod(d: ImportDeps, pvc: Pvc, config: CDIConfig | undefined): Promise<void> {
  if (!config)
    throw new Error(`CDIConfig ${CDIConfigName} does not exist yet; the config controller creates it`);
  const classes = (await d.kube.list<StorageClass>(Res.storageClass)).items;
  const overhead = filesystemOverheadFor(config, classes, pvc.spec?.storageClassName, getVolumeMode(pvc));
  const env = buildImportEnv(pvc, config, overhead);
  if (env.source === Source.vddk && !env.vddkInitImage) env.vddkInitImage = await vddkInitImage(d, pvc);
  const scratch = requiresScratch(pvc) ? scratchPvcName(pvc) : undefined;
  const desired = makeImporterPod(
    pvc,
    env,
    {
      ...d.pod,
      resources: config.status?.defaultPodResourceRequirements,
      imagePullSecrets: config.status?.imagePullSecrets,
    },
    scratch,
  );
  let pod: PodObj;
  try {
    pod = await d.kube.create(Res.pod, desired);
    d.log.info('created importer pod', {
      namespace: pvc.metadata?.namespace,
      pod: desired.metadata?.name,
      scratch: scratch ?? '',
    });
  } catch (e) {
    if (!isAlreadyExists(e)) {
      await d.recorder.record(
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: pvc.metadata },
        'Warning',
        Reason.ErrImportFailed,
        `could not create importer pod ${desired.metadata?.name}: ${(e as Error).message}`,
      );
      throw e;
    }
    const existing = await d.kube.get<PodObj>(Res.pod, desired.metadata?.name ?? '', pvc.metadata?.namespace);
    if (!existing) throw e;
    pod = existing;
  }
  if (scratch) await ensureScratch(d, pvc, pod, config, classes);
}

/**
 * upstream getVddkImageName: the cluster's VDDK init image, from ConfigMap v2v-vmware (key vddk-init-image) in CDI's
 * namespace, when the PVC names none. Without either the claim says what it waits for (Bound reason AwaitingVDDK)
 * and the key is retried with back-off (ConfigMaps are not watched).
 */
async function vddkInitImage(d: ImportDeps, pvc: Pvc): Promise<string> {
  const cdiNs = d.cdiNamespace ?? 'cdi';
  const cm = await d.kube.get<ConfigMap>(Res.configMap, Pod.vddkConfigMap, cdiNs);
  const image = cm?.data?.[Pod.vddkConfigKey];
  if (image) return image;
  const message = `waiting for ${Pod.vddkConfigMap} configmap or ${Ann.vddkInitImageURL} annotation for VDDK image`;
  const a = anns(pvc);
  if (a[Ann.boundConditionMessage] !== message)
    await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
      metadata: {
        annotations: {
          [Ann.boundCondition]: 'false',
          [Ann.boundConditionMessage]: message,
          [Ann.boundConditionReason]: Reason.AwaitingVDDK,
        },
      },
    });
  throw new Error(
    `${message}: create ConfigMap ${cdiNs}/${Pod.vddkConfigMap} with key ${Pod.vddkConfigKey}, or set spec.source.vddk.initImageURL`,
  );
}

/**
 * upstream copyImportProxyConfigMap: CDIConfig's importProxy.trustedCAProxy names a ConfigMap in CDI's namespace; the
 * importer pod mounts a copy of it in its own namespace (import-proxy-cm-<pvc>, owned by the pod, so it goes with
 * it). The pod cannot start without it, so the copy is made while the pod is Pending (AlreadyExists is success: the
 * controller may read ConfigMaps only in CDI's namespace).
 */
async function ensureProxyCa(
  d: ImportDeps,
  pvc: Pvc,
  pod: PodObj,
  config: CDIConfig | undefined,
): Promise<void> {
  const source = config?.status?.importProxy?.trustedCAProxy;
  if (!source || pod.status?.phase !== 'Pending') return;
  if (!(pod.spec?.volumes ?? []).some((v) => v.name === Pod.proxyCertVolName)) return; // made before it was set
  const ns = pvc.metadata?.namespace ?? '';
  const name = proxyConfigMapName(pvc);
  const cdiNs = d.cdiNamespace ?? 'cdi';
  const src = await d.kube.get<ConfigMap>(Res.configMap, source, cdiNs);
  if (!src) {
    const message = `the trusted proxy CA ConfigMap ${cdiNs}/${source} (CDIConfig importProxy.trustedCAProxy) does not exist: create it with the CA as ca.crt, or clear the setting`;
    await d.recorder.record(
      { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: pvc.metadata },
      'Warning',
      Reason.ErrImportFailed,
      message,
    );
    throw new Error(message);
  }
  try {
    await d.kube.create<ConfigMap>(Res.configMap, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: ns,
        labels: { ...ManagedLabels },
        ownerReferences: [controllerRef(pod, Res.pod)],
      },
      ...(src.data ? { data: src.data } : {}),
    });
    d.log.info('copied the trusted proxy CA', { namespace: ns, configMap: name, from: `${cdiNs}/${source}` });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}

/** Creates the scratch PVC if missing; returns the annotations to set on the target PVC. */
async function ensureScratch(
  d: ImportDeps,
  pvc: Pvc,
  pod: PodObj,
  config: CDIConfig | undefined,
  classes: StorageClass[],
): Promise<Record<string, string | null>> {
  const scratchName = (pod.spec?.volumes ?? []).find((v) => v.name === 'cdi-scratch-vol')
    ?.persistentVolumeClaim?.claimName;
  if (!scratchName)
    throw new Error(`importer pod ${pod.metadata?.name} has no scratch volume; it will be recreated`);
  const ns = pvc.metadata?.namespace;
  const existing = await d.kube.get<Pvc>(Res.pvc, scratchName, ns);
  const out: Record<string, string | null> = {};
  if (!existing) {
    await createScratchPvc(d, pvc, pod, scratchName, config, classes);
    out[Ann.boundCondition] = 'false';
    out[Ann.boundConditionMessage] = 'Creating scratch space';
    out[Ann.boundConditionReason] = Reason.CreatingScratchSpace;
  } else if (existing.metadata?.deletionTimestamp) {
    await d.kube.delete(Res.pod, pod.metadata?.name ?? '', ns, pod.metadata?.uid);
    throw new Error(`terminating scratch space found, deleting pod ${pod.metadata?.name}`);
  }
  out[Ann.requiresScratch] = 'false';
  return out;
}

async function updatePvcFromPod(
  d: ImportDeps,
  pvc: Pvc,
  pod: PodObj,
  config: CDIConfig | undefined,
): Promise<void> {
  const u = podToPvcUpdate(anns(pvc), pvc.metadata?.labels ?? {}, pod);
  const annotations = u.annotations;
  if (
    pod.status?.phase === 'Pending' &&
    requiresScratch({ ...pvc, metadata: { ...pvc.metadata, annotations } })
  ) {
    const classes = (await d.kube.list<StorageClass>(Res.storageClass)).items;
    const extra = await ensureScratch(d, pvc, pod, config, classes);
    for (const [k, v] of Object.entries(extra)) if (v !== null) annotations[k] = v;
  } else if (annotations[Ann.boundConditionReason] === Reason.CreatingScratchSpace) {
    delete annotations[Ann.boundCondition];
    delete annotations[Ann.boundConditionMessage];
    delete annotations[Ann.boundConditionReason];
  }

  const before = anns(pvc);
  if (!isDeepStrictEqual(annotations, before) || !isDeepStrictEqual(u.labels, pvc.metadata?.labels ?? {})) {
    const patchAnn: Record<string, string | null> = { ...annotations };
    for (const k of Object.keys(before)) if (!(k in annotations)) patchAnn[k] = null;
    // resourceVersion makes the merge patch conditional: a concurrent writer (or a stale cache) makes us re-read
    // instead of clobber
    await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
      metadata: { annotations: patchAnn, labels: u.labels, resourceVersion: pvc.metadata?.resourceVersion },
    });
    d.log.info('updated PVC from pod', {
      namespace: pvc.metadata?.namespace,
      pvc: pvc.metadata?.name,
      phase: annotations[Ann.podPhase],
      restarts: annotations[Ann.podRestarts],
    });
  }
  const involved = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: pvc.metadata };
  // Events describe a change: emit them only when this reconcile changed what the PVC says.
  if (
    annotations[Ann.podPhase] !== before[Ann.podPhase] ||
    annotations[Ann.runningConditionMessage] !== before[Ann.runningConditionMessage]
  ) {
    for (const ev of u.events) await d.recorder.record(involved, ev.type, ev.reason, ev.message);
  }

  const podName = pod.metadata?.name ?? '';
  const ns = pvc.metadata?.namespace;
  if (u.fatal) {
    d.log.info('deleting importer pod after a fatal error', { namespace: ns, pod: podName });
    await d.kube.delete(Res.pod, podName, ns, pod.metadata?.uid);
    return;
  }
  if (u.complete || u.podModificationsNeeded) {
    if (!u.podModificationsNeeded && before[Ann.podPhase] !== 'Succeeded') {
      await d.recorder.record(involved, 'Normal', Reason.ImportSucceeded, 'Import Successful');
      // what the importer wants the user to know (e.g. the content did not look like a disk image): on the PVC and,
      // where the user looks, on its DataVolume
      const owner = controllerOf(pvc);
      for (const w of u.warnings) {
        await d.recorder.record(involved, 'Warning', Reason.ImportWarning, w);
        if (owner?.kind === 'DataVolume')
          await d.recorder.record(
            {
              apiVersion: GroupVersion,
              kind: 'DataVolume',
              metadata: { name: owner.name, namespace: pvc.metadata?.namespace, uid: owner.uid },
            },
            'Warning',
            Reason.ImportWarning,
            w,
          );
      }
    }
    const retain = annotations[Ann.retainAfterCompletion] === 'true';
    if (
      !retain ||
      annotations[Ann.requiresScratch] === 'true' ||
      annotations[Ann.requiresDirectIo] === 'true'
    ) {
      d.log.info('deleting importer pod', {
        namespace: ns,
        pod: podName,
        reason: u.podModificationsNeeded ? 'restart with changes' : 'complete',
      });
      await d.kube.delete(Res.pod, podName, ns, pod.metadata?.uid);
    }
  }
}
