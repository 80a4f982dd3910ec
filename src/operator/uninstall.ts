// Removing CDI when its CDI resource is deleted (the finalizer operator.cdi.kubevirt.io holds the resource until
// this is done). In order, each step waiting until its objects are gone before the next:
//
//   1. the webhook configurations and the APIService, so no API request is sent to a server about to go
//   2. the Deployments (cdi-deployment first: no new worker pods), then the worker pods and services the controller
//      started in any namespace (importer, upload server, clone source), as upstream's deleteWorkerResources
//   3. the CRDs: their DataVolumes, DataSources, … go with them (uninstallStrategy RemoveWorkloads; under
//      BlockUninstallIfWorkloadsExist the cdi-validate webhook refused the deletion while DataVolumes existed, and if
//      it could not be asked the removal waits here, with a message, until none exist)
//   4. everything else the resource owns (RBAC, ServiceAccounts, Services, ConfigMaps, certificates, policies) and
//      what the components made for themselves (the controller's Lease, the upload token signing key)
//   5. phase Deleted, the finalizer released
//
// Everything the operator made carries its controller reference, so an uninstall interrupted for good still ends
// with garbage collection; this order is what makes it clean while CDI runs.
import {
  errorMessage,
  isNotFound,
  type EventRecorder,
  type KubeClient,
  type KubeObject,
  type Logger,
  type Resource,
} from '../kube/index.ts';
import { uninstallBlockedMessage } from '../api/cdi.ts';
import { finalizerOps, ownedBy } from './apply.ts';
import type { OwnedCache } from './cache.ts';
import type { OperatorConfig } from './config.ts';
import { Kinds, type KindName } from './resources.ts';
import { CDIPhase, CDIReason, withConditions, withDegraded, type CDIStatus } from './status.ts';
import type { CDIResource, ReconcileOutcome } from './reconcile.ts';

export interface UninstallDeps {
  kube: KubeClient;
  config: OperatorConfig;
  log: Logger;
  events: EventRecorder;
  owned: OwnedCache;
  now: () => Date;
  writeStatus: (cr: CDIResource, s: CDIStatus) => Promise<void>;
  setReady?: ((v: 0 | 1) => void) | undefined;
}

/** Labels of the pods and services the controller starts (upstream deleteWorkerResources). */
export const WorkerSelector = 'cdi.kubevirt.io in (importer, cdi-upload-server, cdi-clone-source)';

/** What the components create for themselves in the CDI namespace, removed with them. */
export const ComponentLeftovers: { kind: KindName; name: string }[] = [
  { kind: 'Lease', name: 'cdi-controller-leader-election-helper' },
  { kind: 'Secret', name: 'cdi-api-signing-key' },
];

const Steps: { name: string; kinds: KindName[] }[] = [
  {
    name: 'registrations',
    kinds: ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration', 'APIService'],
  },
  { name: 'deployments', kinds: ['Deployment'] },
  { name: 'crds', kinds: ['CustomResourceDefinition'] },
];

const pendingWait = 1000;

export async function uninstall(
  d: UninstallDeps,
  cr: CDIResource,
  finalizer: string,
): Promise<ReconcileOutcome> {
  if (!(cr.metadata.finalizers ?? []).includes(finalizer)) return {};
  let status: CDIStatus = { ...(cr.status ?? {}) };
  const progress = async (message: string, blocked = false): Promise<void> => {
    let s = withConditions(
      status,
      d.now(),
      { status: 'False' },
      { status: 'True', reason: CDIReason.Uninstalling, message },
      { status: 'False' },
    );
    if (blocked)
      s = withDegraded(s, d.now(), { status: 'True', reason: CDIReason.UninstallBlocked, message });
    status = { ...s, phase: CDIPhase.Deleting };
    await d.writeStatus(cr, status);
  };
  if (status.phase !== CDIPhase.Deleting) {
    await progress('Removing CDI');
    void d.events.normal(cr, 'Deleting', 'Removing CDI');
    d.log.info('uninstall started', { cdi: cr.metadata.name });
  }
  d.setReady?.(0);

  if (cr.spec?.uninstallStrategy === 'BlockUninstallIfWorkloadsExist') {
    const n = await countDataVolumes(d.kube);
    if (n > 0) {
      await progress(uninstallBlockedMessage(n), true);
      return { requeueAfterMs: 5000 };
    }
  }

  const owned = (kinds: KindName[]): { kind: KindName; obj: KubeObject }[] =>
    d.owned.all().filter((x) => kinds.includes(x.kind) && ownedBy(x.obj, cr));

  for (const step of Steps) {
    const objs = owned(step.kinds).sort((a, b) => order(a.obj) - order(b.obj));
    if (objs.length === 0) {
      if (step.name === 'deployments' && (await deleteWorkers(d))) {
        await progress('Waiting for the worker pods to be removed');
        return { requeueAfterMs: pendingWait };
      }
      continue;
    }
    await deleteAll(d, cr, objs, step.name === 'deployments' ? 'Foreground' : 'Background');
    await progress(
      `Waiting for ${objs.map((o) => `${o.kind} ${o.obj.metadata?.name ?? ''}`).join(', ')} to be removed`,
    );
    return { requeueAfterMs: pendingWait };
  }

  const rest = owned(Object.keys(Kinds) as KindName[]);
  const leftovers = await presentLeftovers(d);
  if (rest.length > 0 || leftovers.length > 0) {
    await deleteAll(d, cr, [...rest, ...leftovers], 'Background');
    await progress(`Waiting for ${rest.length + leftovers.length} objects to be removed`);
    return { requeueAfterMs: pendingWait };
  }

  status = { ...status, phase: CDIPhase.Deleted };
  await d.writeStatus(cr, status);
  const finalizers = (cr.metadata.finalizers ?? []).filter((f) => f !== finalizer);
  await d.kube.jsonPatch(Kinds.CDI, cr.metadata.name, finalizerOps(cr.metadata.finalizers, finalizers));
  d.log.info('uninstall complete: finalizer released', { cdi: cr.metadata.name });
  return {};
}

/** cdi-deployment goes first: it would start new worker pods otherwise. */
const order = (o: KubeObject): number => (o.metadata?.name === 'cdi-deployment' ? 0 : 1);

async function deleteAll(
  d: UninstallDeps,
  cr: CDIResource,
  objs: { kind: KindName; obj: KubeObject }[],
  propagationPolicy: 'Foreground' | 'Background',
): Promise<void> {
  for (const { kind, obj } of objs) {
    if (obj.metadata?.deletionTimestamp) continue;
    const r: Resource = Kinds[kind];
    try {
      const gone = await d.kube.delete(r, obj.metadata?.name ?? '', {
        namespace: obj.metadata?.namespace,
        propagationPolicy,
      });
      if (gone) {
        d.log.info(`deleted ${kind} ${obj.metadata?.name ?? ''}`);
        void d.events.normal(
          cr,
          'DeleteResourceSuccess',
          `Successfully deleted resource ${kind} ${obj.metadata?.name ?? ''}`,
        );
      }
    } catch (e) {
      void d.events.warning(
        cr,
        'DeleteResourceFailed',
        `Failed deleting resource ${kind} ${obj.metadata?.name ?? ''}: ${errorMessage(e)}`,
      );
      throw e;
    }
  }
}

/** Deletes the controller's worker pods and services everywhere; true while some still exist. */
async function deleteWorkers(d: UninstallDeps): Promise<boolean> {
  let left = false;
  for (const r of [Kinds.Pod, Kinds.Service]) {
    const list = await d.kube.listAll<KubeObject>(r, { labelSelector: WorkerSelector });
    for (const o of list.items) {
      left = true;
      if (o.metadata?.deletionTimestamp) continue;
      await d.kube.delete(r, o.metadata?.name ?? '', { namespace: o.metadata?.namespace });
    }
  }
  return left;
}

async function presentLeftovers(d: UninstallDeps): Promise<{ kind: KindName; obj: KubeObject }[]> {
  const out: { kind: KindName; obj: KubeObject }[] = [];
  for (const l of ComponentLeftovers) {
    const obj = await d.kube.getOrUndefined<KubeObject>(Kinds[l.kind], l.name, d.config.namespace);
    if (obj) out.push({ kind: l.kind, obj });
  }
  return out;
}

/** DataVolumes that block an uninstall (upstream: those not made by a DataImportCron). */
export async function countDataVolumes(kube: KubeClient): Promise<number> {
  try {
    const list = await kube.list<KubeObject>(Kinds.DataVolume, {
      labelSelector: '!cdi.kubevirt.io/dataImportCron',
      limit: 2,
    });
    return list.items.length; // as upstream: at most 2 are counted
  } catch (e) {
    if (isNotFound(e)) return 0; // the CRD is gone: so are the DataVolumes
    throw e;
  }
}
