// What the CDI volume populators share (upstream pkg/controller/populators/populator-base.go). A PVC whose
// spec.dataSourceRef names a CDI populator source (apiGroup cdi.kubevirt.io) is never provisioned by the storage
// (external-provisioner leaves claims with a foreign dataSourceRef alone); the populator fills a second claim and then
// hands that claim's PV to the target by its claimRef (kube-controller-manager's PV controller binds the target to
// it). The second claim, left Lost, is deleted.
//
// The import and upload populators (import.ts, upload.ts) fill `prime-<pvc uid>`, which carries the annotations their
// controller acts on, and the target mirrors the prime's status annotations; reconcilePrimePopulator is their whole
// loop, each kind giving only its source, the prime's annotations and its event words. The clone populator
// (clone.ts) has a loop of its own (strategies, phases) and uses the readiness rule, rebind and cleanup from here.
//
// WaitForFirstConsumer: nothing starts until the scheduler chose a node for the target
// (volume.kubernetes.io/selected-node), which the second claim takes over, unless immediate binding is requested.
import { Ann as ApiAnn, Label as ApiLabel } from '../../api/constants.ts';
import { Ann, Label, ManagedLabels, ProgressDone, Reason } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import { copyEvents } from '../shared/copyevents.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { StorageClass } from '../shared/types.ts';
import { controllerRef, type KubeObject, type PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { copyAllowedLabels } from '../datasource/controller.ts';
import { formatProgress, type ProgressSource } from '../datavolume/progress.ts';
import { isDeepStrictEqual } from 'node:util';

export const primeName = (pvc: Pvc): string => `prime-${pvc.metadata?.uid ?? ''}`;

export const PopulatorEvent = {
  createdPrime: 'CreatedPVCPrimeSuccessfully',
  errCreatingPrime: 'ErrCreatingPVCPrime',
  retainedPrime: 'RetainedPVCPrime',
} as const;

/** The status annotations the target takes over from its prime (upstream desiredAnnotations). */
const Mirrored = [
  Ann.podPhase,
  Ann.podReady,
  Ann.podRestarts,
  Ann.preallocationRequested,
  Ann.preallocationApplied,
  Ann.currentCheckpoint,
  ApiAnn.MultiStageImportDone,
  Ann.runningCondition,
  Ann.runningConditionMessage,
  Ann.runningConditionReason,
  Ann.podSchedulable,
  Ann.fatalError,
];

export interface PopulatorDeps {
  kube: Kube;
  recorder: Recorder;
  log: Logger;
  /**
   * The running import's or host-assisted copy's progress, scraped beside the reconcilers (the DataVolumes'
   * ProgressScraper, in a key space of its own); without it the target shows progress only at the end.
   */
  progress?: ProgressSource;
  now?: () => Date;
}

export type DataSourceRef = { apiGroup?: string; kind?: string; name?: string; namespace?: string };
export const refOf = (pvc: Pvc): DataSourceRef | undefined =>
  (pvc.spec as { dataSourceRef?: DataSourceRef } | undefined)?.dataSourceRef;

export function isPopulatedBy(pvc: Pvc, kind: string): boolean {
  const r = refOf(pvc);
  return r?.apiGroup === 'cdi.kubevirt.io' && r.kind === kind && Boolean(r.name);
}

export const involved = (pvc: Pvc): KubeObject => ({
  ...pvc,
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
});
const anns = (
  o: { metadata?: { annotations?: Record<string, string> } } | undefined,
): Record<string, string> => o?.metadata?.annotations ?? {};

/** upstream claimReadyForPopulation: the class is known and usable, and for WaitForFirstConsumer a node is chosen. */
export async function readyForPopulation(
  d: PopulatorDeps,
  pvc: Pvc,
): Promise<{ ready: boolean; node?: string; problem?: string }> {
  const scName = pvc.spec?.storageClassName;
  if (scName === undefined || scName === null) return { ready: false }; // a default class may still be assigned
  if (scName === '')
    return {
      ready: false,
      problem: `PVC ${pvc.metadata?.namespace}/${pvc.metadata?.name} has empty storage class name`,
    };
  const sc = await d.kube.get<StorageClass>(Res.storageClass, scName);
  if (!sc) return { ready: false, problem: `storage class ${scName} not found` };
  if (sc.provisioner.startsWith('kubernetes.io/') && !anns(pvc)['pv.kubernetes.io/migrated-to'])
    return {
      ready: false,
      problem: `can't use populator for PVC ${pvc.metadata?.namespace}/${pvc.metadata?.name} with in-tree storage class ${sc.provisioner}`,
    };
  if (sc.volumeBindingMode === 'WaitForFirstConsumer') {
    const node = anns(pvc)[ApiAnn.SelectedNode] ?? '';
    const immediate = anns(pvc)[Ann.immediateBinding] !== undefined;
    if (!node && !immediate) return { ready: false };
    return { ready: true, ...(node ? { node } : {}) };
  }
  return { ready: true };
}

/**
 * The claim a populator fills for `pvc` (upstream createPVCPrime): the target's class, size, access and volume mode,
 * owned by the target, bound at once (the target's node for WaitForFirstConsumer), with `annotations` of the kind.
 */
export function secondClaim(
  pvc: Pvc,
  name: string,
  node: string | undefined,
  annotations: Record<string, string>,
): Pvc {
  const a = anns(pvc);
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: pvc.metadata?.namespace,
      labels: { [Label.app]: Label.appValue, [ApiLabel.ExcludeFromVeleroBackup]: 'true', ...ManagedLabels },
      annotations: {
        [Ann.immediateBinding]: '',
        ...(node ? { [ApiAnn.SelectedNode]: node } : {}),
        ...(a[Ann.retainAfterCompletion] !== undefined
          ? { [Ann.retainAfterCompletion]: a[Ann.retainAfterCompletion] }
          : {}),
        ...(a[Ann.vddkExtraArgs] ? { [Ann.vddkExtraArgs]: a[Ann.vddkExtraArgs] } : {}),
        ...annotations,
      },
      ownerReferences: [controllerRef(pvc, Res.pvc)],
    },
    spec: {
      ...(pvc.spec?.accessModes ? { accessModes: pvc.spec.accessModes } : {}),
      ...(pvc.spec?.resources ? { resources: pvc.spec.resources } : {}),
      ...(pvc.spec?.storageClassName !== undefined ? { storageClassName: pvc.spec.storageClassName } : {}),
      ...(pvc.spec?.volumeMode ? { volumeMode: pvc.spec.volumeMode } : {}),
    },
  };
}

/** One prime-filled populator kind: its source, what the prime carries, and its event words. */
export interface PrimeKind<S extends KubeObject> {
  /** The dataSourceRef kind (VolumeImportSource, VolumeUploadSource). */
  kind: string;
  resource: (typeof Res)[keyof typeof Res];
  /** false: this source is not for this claim (e.g. a VolumeImportSource's targetClaim names another). */
  accepts?: (source: S, pvc: Pvc) => boolean;
  /** The annotations that make the kind's controller fill the prime. */
  primeAnnotations: (source: S, preallocation: boolean) => Record<string, string>;
  /** upstream updateUploadAnnotations: the upload populator drops storage.populator.pvcPrime once done. */
  dropPrimeNameWhenDone?: boolean;
  /**
   * upstream updateImportProgress: the running pod's progress goes onto the target. Only the import populator's: the
   * upload server serves no progress metric, and upstream's upload populator reports none.
   */
  runningProgress?: boolean;
  failed: { reason: string; message: (pvc: string) => string };
  succeeded: { reason: string; message: (pvc: string) => string };
}

/** upstream ReconcilerBase.reconcile with the import and upload populators' reconcileTargetPVC. */
export async function reconcilePrimePopulator<S extends KubeObject>(
  d: PopulatorDeps,
  k: PrimeKind<S>,
  key: string,
): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const found = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  // a live target of this kind; anything else only stops being scraped
  const pvc = found && !found.metadata?.deletionTimestamp && isPopulatedBy(found, k.kind) ? found : undefined;
  const prime = pvc ? await d.kube.get<Pvc>(Res.pvc, primeName(pvc), namespace) : undefined;
  if (k.runningProgress && pvc && prime && anns(prime)[Ann.podPhase] === 'Running')
    // the importer pod's metric is labelled with the prime's owner: the target
    d.progress?.track({
      key,
      ownerUID: pvc.metadata?.uid ?? '',
      namespace: namespace ?? '',
      pvcName: prime.metadata?.name ?? '',
    });
  else d.progress?.untrack(key);
  const ref = pvc ? refOf(pvc) : undefined;
  if (!pvc || !ref) return;
  if (ref.namespace && ref.namespace !== namespace) return; // upstream: cross-namespace dataSourceRef not supported yet
  if (!prime) return startPopulation(d, k, pvc, ref.name ?? '');
  const bound = pvc.status?.phase === 'Bound';
  // the prime's events (its provisioning, its importer's) go onto the target as long as the prime is there, the last
  // of them too, written just before the prime was rebound (upstream CopyEvents); the newest is the Pending target's
  // Bound condition (upstream UpdatePVCBoundConditionFromEvents)
  const newest = await copyEvents(d, prime, pvc);
  const latest = bound ? undefined : newest;

  // the target mirrors the prime's state
  const pa = anns(prime);
  const have = anns(pvc);
  const annotations: Record<string, string | null> = boundConditionPatch(pvc, latest?.message);
  for (const a of Mirrored) {
    if (pa[a] !== undefined && have[a] !== pa[a]) annotations[a] = pa[a];
    else if (pa[a] === undefined && have[a] !== undefined) annotations[a] = null;
  }
  const phase = pa[Ann.podPhase];
  const succeeded = phase === 'Succeeded';
  const primeRef = succeeded && k.dropPrimeNameWhenDone ? undefined : prime.metadata?.name;
  if (have[ApiAnn.PVCPrimeName] !== primeRef) annotations[ApiAnn.PVCPrimeName] = primeRef ?? null;
  const progress = k.runningProgress
    ? primeProgress(have[ApiAnn.PopulatorProgress], prime, d.progress?.progress(key))
    : succeeded
      ? ProgressDone
      : have[ApiAnn.PopulatorProgress];
  if (progress !== undefined && have[ApiAnn.PopulatorProgress] !== progress)
    annotations[ApiAnn.PopulatorProgress] = progress;
  const labels =
    succeeded && !bound
      ? copyAllowedLabels(prime.metadata?.labels, { ...(pvc.metadata?.labels ?? {}) })
      : (pvc.metadata?.labels ?? {});

  if (Object.keys(annotations).length > 0 || !isDeepStrictEqual(labels, pvc.metadata?.labels ?? {})) {
    await d.kube.mergePatch(Res.pvc, name, namespace, {
      metadata: { resourceVersion: pvc.metadata?.resourceVersion, annotations, labels },
    });
    if (phase === 'Failed' && have[Ann.podPhase] !== 'Failed')
      await d.recorder.record(involved(pvc), 'Warning', k.failed.reason, k.failed.message(name));
    if (succeeded && have[Ann.podPhase] !== 'Succeeded')
      await d.recorder.record(involved(pvc), 'Normal', k.succeeded.reason, k.succeeded.message(name));
    return; // the next step reads the written target (its own change wakes it)
  }

  if (succeeded && !bound) return rebind(d, prime, pvc);
  if (succeeded && bound) await removeLostClaim(d, prime, pvc);
}

/**
 * The target's Bound condition annotations (upstream UpdatePVCBoundConditionFromEvents with a prime): false, Pending
 * and the prime's newest event while the target is Pending (the annotations a DataVolume's Bound condition reads);
 * removed once it is Bound.
 */
export function boundConditionPatch(pvc: Pvc, message: string | undefined): Record<string, string | null> {
  const a = anns(pvc);
  if (pvc.status?.phase === 'Bound')
    return Ann.boundCondition in a && a[Ann.boundConditionReason] === Reason.Pending
      ? { [Ann.boundCondition]: null, [Ann.boundConditionReason]: null, [Ann.boundConditionMessage]: null }
      : {};
  if (pvc.status?.phase !== 'Pending' || !message) return {};
  if (
    a[Ann.boundCondition] === 'false' &&
    a[Ann.boundConditionReason] === Reason.Pending &&
    a[Ann.boundConditionMessage] === message
  )
    return {};
  return {
    [Ann.boundCondition]: 'false',
    [Ann.boundConditionReason]: Reason.Pending,
    [Ann.boundConditionMessage]: message,
  };
}

/**
 * The target's storage.populator.progress while its prime is filled (upstream updateImportProgress): 100.0% once the
 * pod Succeeded; the running pod's scraped value as NN.NN%, except 100 (it does not count the conversion and resize
 * that follow, so it waits for Succeeded); N/A once the prime is Bound and nothing was reported yet; else as it is.
 */
export function primeProgress(
  current: string | undefined,
  prime: Pvc,
  scraped: number | undefined,
): string | undefined {
  if (anns(prime)[Ann.podPhase] === 'Succeeded') return ProgressDone;
  if (scraped !== undefined && scraped < 100) return formatProgress(scraped);
  if (current === undefined && prime.status?.phase === 'Bound') return 'N/A';
  return current;
}

async function startPopulation<S extends KubeObject>(
  d: PopulatorDeps,
  k: PrimeKind<S>,
  pvc: Pvc,
  sourceName: string,
): Promise<void> {
  const ns = pvc.metadata?.namespace ?? '';
  const source = await d.kube.get<S>(k.resource, sourceName, ns);
  if (!source) return; // its creation wakes the PVC
  if (k.accepts && !k.accepts(source, pvc)) return;
  if (pvc.status?.phase === 'Bound' || pvc.status?.phase === 'Lost') return;
  const r = await readyForPopulation(d, pvc);
  if (r.problem) {
    await d.recorder.record(involved(pvc), 'Warning', PopulatorEvent.errCreatingPrime, r.problem);
    return;
  }
  if (!r.ready) return;
  const config = await d.kube.get<{ status?: { preallocation?: boolean } }>(Res.cdiConfig, 'config');
  const prime = secondClaim(pvc, primeName(pvc), r.node, {
    [ApiAnn.PopulatorKind]: k.kind,
    ...k.primeAnnotations(source, config?.status?.preallocation ?? false),
  });
  try {
    await d.kube.create(Res.pvc, prime);
  } catch (e) {
    if (isAlreadyExists(e)) return;
    await d.recorder.record(involved(pvc), 'Warning', PopulatorEvent.errCreatingPrime, (e as Error).message);
    throw e;
  }
  await d.recorder.record(
    involved(pvc),
    'Normal',
    PopulatorEvent.createdPrime,
    'PVC Prime created successfully',
  );
}

/** upstream cc.Rebind: the filled claim's PV is handed to the target by its claimRef. */
export async function rebind(d: PopulatorDeps, filled: Pvc, target: Pvc): Promise<void> {
  const pvName = filled.spec?.volumeName;
  if (!pvName) return; // not bound yet: its binding wakes us
  const pv = await d.kube.get<
    KubeObject & { spec?: { claimRef?: { name?: string; namespace?: string; uid?: string } } }
  >(Res.pv, pvName);
  const ref = pv?.spec?.claimRef;
  if (!pv || !ref)
    throw new Error(
      `PV ${pvName} of ${filled.metadata?.name} has no claimRef; cannot hand it to ${target.metadata?.name}`,
    );
  if (ref.uid === target.metadata?.uid) return; // done: the PV controller binds the target
  if (ref.uid !== filled.metadata?.uid)
    throw new Error(
      `PV ${pvName} is bound to an unexpected claim ${ref.namespace}/${ref.name}; not rebinding it to ${target.metadata?.name}`,
    );
  const next = structuredClone(pv);
  next.spec = {
    ...next.spec,
    claimRef: {
      namespace: target.metadata?.namespace ?? '',
      name: target.metadata?.name ?? '',
      uid: target.metadata?.uid ?? '',
      resourceVersion: target.metadata?.resourceVersion ?? '',
    } as never,
  };
  await d.kube.update(Res.pv, next);
  d.log.info('rebound the populated volume to its target', {
    pv: pvName,
    target: `${target.metadata?.namespace}/${target.metadata?.name}`,
  });
}

/**
 * upstream reconcileCleanup: once the target holds the volume, the claim that was filled (Lost: its PV went to the
 * target) is deleted, unless the target asked to keep it for debugging (retainAfterCompletion). True when it is gone
 * or going.
 */
export async function removeLostClaim(d: PopulatorDeps, filled: Pvc, target: Pvc): Promise<boolean> {
  if (filled.status?.phase !== 'Lost') return false;
  if (anns(filled)[Ann.retainAfterCompletion] === 'true') {
    if (!filled.metadata?.deletionTimestamp)
      d.log.info('PVC prime retained for debugging (retainAfterCompletion)', {
        namespace: target.metadata?.namespace,
        name: filled.metadata?.name,
      });
    return false;
  }
  if (!filled.metadata?.deletionTimestamp)
    await d.kube.delete(
      Res.pvc,
      filled.metadata?.name ?? '',
      filled.metadata?.namespace,
      filled.metadata?.uid,
    );
  return true;
}
