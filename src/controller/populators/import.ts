// The import populator (upstream pkg/controller/populators/import-populator.go and populator-base.go): a PVC whose
// spec.dataSourceRef names a VolumeImportSource is filled through a second claim, `prime-<pvc uid>`, that carries the
// import annotations of the source; the import controller imports into it like into any annotated PVC. Once the
// prime's import Succeeded, its PV is rebound to the target (the PV's claimRef names the target; kube-controller-
// manager's PV controller then binds the target to it), the prime, left Lost, is deleted, and the target keeps the
// import's annotations (pod phase, restarts, running condition, preallocation) and `storage.populator.progress`
// 100.0%. WaitForFirstConsumer: nothing starts until the scheduler chose a node for the target
// (volume.kubernetes.io/selected-node), which the prime takes over, unless immediate binding is requested.
import { Ann as ApiAnn, Label as ApiLabel } from '../../api/constants.ts';
import { Ann, Label, ManagedLabels } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { StorageClass } from '../shared/types.ts';
import { controllerRef, type KubeObject, type PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import type { VolumeImportSource } from '../../api/populators.ts';
import { importSourceAnnotations } from '../datavolume/render.ts';
import { copyAllowedLabels } from '../datasource/controller.ts';
import { isDeepStrictEqual } from 'node:util';

export const VolumeImportSourceKind = 'VolumeImportSource';
export const primeName = (pvc: Pvc): string => `prime-${pvc.metadata?.uid ?? ''}`;

export const PopulatorEvent = {
  createdPrime: 'CreatedPVCPrimeSuccessfully',
  errCreatingPrime: 'ErrCreatingPVCPrime',
  importFailed: 'ImportFailed',
  importSucceeded: 'ImportSucceeded',
  retainedPrime: 'RetainedPVCPrime',
} as const;

/** The import annotations the target takes over from its prime (upstream desiredAnnotations). */
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
}

type DataSourceRef = { apiGroup?: string; kind?: string; name?: string; namespace?: string };
const refOf = (pvc: Pvc): DataSourceRef | undefined =>
  (pvc.spec as { dataSourceRef?: DataSourceRef } | undefined)?.dataSourceRef;

export function isPopulatedBy(pvc: Pvc, kind: string): boolean {
  const r = refOf(pvc);
  return r?.apiGroup === 'cdi.kubevirt.io' && r.kind === kind && Boolean(r.name);
}

const involved = (pvc: Pvc): KubeObject => ({ ...pvc, apiVersion: 'v1', kind: 'PersistentVolumeClaim' });

/** upstream claimReadyForPopulation: the class is known and usable, and for WaitForFirstConsumer a node is chosen. */
async function readyForPopulation(
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
  if (
    sc.provisioner.startsWith('kubernetes.io/') &&
    !pvc.metadata?.annotations?.['pv.kubernetes.io/migrated-to']
  )
    return {
      ready: false,
      problem: `can't use populator for PVC ${pvc.metadata?.namespace}/${pvc.metadata?.name} with in-tree storage class ${sc.provisioner}`,
    };
  if (sc.volumeBindingMode === 'WaitForFirstConsumer') {
    const node = pvc.metadata?.annotations?.[ApiAnn.SelectedNode] ?? '';
    const immediate = pvc.metadata?.annotations?.[Ann.immediateBinding] !== undefined;
    if (!node && !immediate) return { ready: false };
    return { ready: true, ...(node ? { node } : {}) };
  }
  return { ready: true };
}

function newPrime(
  pvc: Pvc,
  source: VolumeImportSource & KubeObject,
  node: string | undefined,
  preallocation: boolean,
): Pvc {
  const a = pvc.metadata?.annotations ?? {};
  const annotations: Record<string, string> = {
    [Ann.immediateBinding]: '',
    ...(node ? { [ApiAnn.SelectedNode]: node } : {}),
    ...(a[Ann.retainAfterCompletion] !== undefined
      ? { [Ann.retainAfterCompletion]: a[Ann.retainAfterCompletion] }
      : {}),
    [ApiAnn.PopulatorKind]: VolumeImportSourceKind,
    [Ann.contentType]: source.spec.contentType === 'archive' ? 'archive' : 'kubevirt',
    [Ann.preallocationRequested]: String(source.spec.preallocation ?? preallocation),
    ...(source.spec.source ? importSourceAnnotations(source.spec.source) : {}),
  };
  if (!annotations[Ann.source]) annotations[Ann.source] = 'none';
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: primeName(pvc),
      namespace: pvc.metadata?.namespace,
      labels: { [Label.app]: Label.appValue, [ApiLabel.ExcludeFromVeleroBackup]: 'true', ...ManagedLabels },
      annotations,
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

export async function reconcileImportPopulator(d: PopulatorDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const pvc = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  if (!pvc || pvc.metadata?.deletionTimestamp || !isPopulatedBy(pvc, VolumeImportSourceKind)) return;
  const ref = refOf(pvc)!;
  if (ref.namespace && ref.namespace !== namespace) return; // upstream: cross-namespace dataSourceRef not supported yet
  const prime = await d.kube.get<Pvc>(Res.pvc, primeName(pvc), namespace);
  if (!prime) return startPopulation(d, pvc, ref.name ?? '');

  // the target mirrors the prime's import state
  const pa = prime.metadata?.annotations ?? {};
  const annotations: Record<string, string | null> = {};
  const have = pvc.metadata?.annotations ?? {};
  for (const k of Mirrored) {
    if (pa[k] !== undefined && have[k] !== pa[k]) annotations[k] = pa[k];
    else if (pa[k] === undefined && have[k] !== undefined) annotations[k] = null;
  }
  if (have[ApiAnn.PVCPrimeName] !== prime.metadata?.name)
    annotations[ApiAnn.PVCPrimeName] = prime.metadata?.name ?? '';
  const phase = pa[Ann.podPhase];
  const succeeded = phase === 'Succeeded';
  if (succeeded && have[ApiAnn.PopulatorProgress] !== '100.0%')
    annotations[ApiAnn.PopulatorProgress] = '100.0%';
  const bound = pvc.status?.phase === 'Bound';
  const labels =
    succeeded && !bound
      ? copyAllowedLabels(prime.metadata?.labels, { ...(pvc.metadata?.labels ?? {}) })
      : (pvc.metadata?.labels ?? {});

  if (Object.keys(annotations).length > 0 || !isDeepStrictEqual(labels, pvc.metadata?.labels ?? {})) {
    await d.kube.mergePatch(Res.pvc, name, namespace, {
      metadata: { resourceVersion: pvc.metadata?.resourceVersion, annotations, labels },
    });
    if (phase === 'Failed' && have[Ann.podPhase] !== 'Failed')
      await d.recorder.record(
        involved(pvc),
        'Warning',
        PopulatorEvent.importFailed,
        `Failed to import into PVC ${name}`,
      );
    if (succeeded && have[Ann.podPhase] !== 'Succeeded')
      await d.recorder.record(
        involved(pvc),
        'Normal',
        PopulatorEvent.importSucceeded,
        `Successfully imported into PVC ${name}`,
      );
    return; // the next step reads the written target (its own change wakes it)
  }

  if (succeeded && !bound) return rebind(d, prime, pvc);
  // done: the target holds the volume; the prime, whose PV went to the target, is Lost
  if (succeeded && bound && prime.status?.phase === 'Lost') {
    if (pa[Ann.retainAfterCompletion] === 'true') {
      if (have[ApiAnn.PVCPrimeName] === prime.metadata?.name && !prime.metadata?.deletionTimestamp)
        d.log.info('PVC prime retained for debugging (retainAfterCompletion)', {
          namespace,
          name: prime.metadata?.name,
        });
      return;
    }
    if (!prime.metadata?.deletionTimestamp)
      await d.kube.delete(Res.pvc, prime.metadata?.name ?? '', namespace, prime.metadata?.uid);
  }
}

async function startPopulation(d: PopulatorDeps, pvc: Pvc, sourceName: string): Promise<void> {
  const ns = pvc.metadata?.namespace ?? '';
  const source = await d.kube.get<VolumeImportSource & KubeObject>(Res.volumeImportSource, sourceName, ns);
  if (!source) return; // its creation wakes the PVC
  if (source.spec.targetClaim && source.spec.targetClaim !== pvc.metadata?.name) return;
  if (pvc.status?.phase === 'Bound' || pvc.status?.phase === 'Lost') return;
  const r = await readyForPopulation(d, pvc);
  if (r.problem) {
    await d.recorder.record(involved(pvc), 'Warning', PopulatorEvent.errCreatingPrime, r.problem);
    return;
  }
  if (!r.ready) return;
  const config = await d.kube.get<{ status?: { preallocation?: boolean } }>(Res.cdiConfig, 'config');
  try {
    await d.kube.create(Res.pvc, newPrime(pvc, source, r.node, config?.status?.preallocation ?? false));
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

/** upstream cc.Rebind: the prime's PV is handed to the target by its claimRef. */
async function rebind(d: PopulatorDeps, prime: Pvc, target: Pvc): Promise<void> {
  const pvName = prime.spec?.volumeName;
  if (!pvName) return; // not bound yet: its binding wakes us
  const pv = await d.kube.get<
    KubeObject & { spec?: { claimRef?: { name?: string; namespace?: string; uid?: string } } }
  >(Res.pv, pvName);
  const ref = pv?.spec?.claimRef;
  if (!pv || !ref)
    throw new Error(
      `PV ${pvName} of ${prime.metadata?.name} has no claimRef; cannot hand it to ${target.metadata?.name}`,
    );
  if (ref.uid === target.metadata?.uid) return; // done: the PV controller binds the target
  if (ref.uid !== prime.metadata?.uid)
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
