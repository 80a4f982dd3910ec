// The reconcile of a CDI resource: install, keep in place, upgrade, and (uninstall.ts) remove. Level-triggered: it
// reads the resource and what exists from the informer caches, applies what differs, and writes the status. The
// protocol is upstream's operator sdk's (controller-lifecycle-operator-sdk reconciler.go):
//
//   new resource      claim the install (ConfigMap cdi-config controlled by it; a second CDI resource finds it
//                     taken and goes to phase Error), add the finalizer, phase Deploying (Progressing)
//   every reconcile   apply every rendered object that differs from what exists (drift included), sync CDIConfig
//                     `config` from spec.config, check the Deployments
//   all ready         observedVersion = this operator's version, phase Deployed (Available)
//   new version       an operator of another version than observedVersion: phase Upgrading (Available, Progressing,
//                     Degraded UpgradeStarted); the components roll to the new images; when every Deployment runs
//                     the new spec, objects the new version no longer renders are deleted, observedVersion follows
//   deleted           (uninstall.ts) phase Deleting, everything removed in order, the finalizer released
import { isDeepStrictEqual } from 'node:util';
import type { CDI, CDIConfigSpec } from '../api/index.ts';
import {
  EventRecorder,
  isAlreadyExists,
  isNotFound,
  errorMessage,
  controllerOf,
  type Informer,
  type KubeClient,
  type KubeObject,
  type Logger,
} from '../kube/index.ts';
import type { Obj } from '../deploy/common.ts';
import { labelsOf } from '../deploy/common.ts';
import {
  applyObject,
  decorate,
  describe,
  finalizerOps,
  ownedBy,
  withServiceAccountUid,
  type Owner,
} from './apply.ts';
import type { OwnedCache } from './cache.ts';
import type { OperatorConfig } from './config.ts';
import { OperatorConfigMap } from './extras.ts';
import { installStrategyConfigMap } from './install-strategy.ts';
import { renderAll, type ClusterFacts } from './render.ts';
import { Kinds } from './resources.ts';
import {
  CDIPhase,
  CDIReason,
  deploymentNotReady,
  markDeploying,
  markFailed,
  markHealthy,
  markUpgrading,
  readiness,
  sameStatus,
  withDegraded,
  type CDIStatus,
} from './status.ts';
import { uninstall } from './uninstall.ts';

export const Finalizer = 'operator.cdi.kubevirt.io';
/** upstream AnnConfigAuthority: CDI.spec.config is the source of CDIConfig `config` */
export const ConfigAuthorityAnnotation = 'cdi.kubevirt.io/configAuthority';
export const CDIConfigName = 'config';

export const Events = {
  CreateResourceSuccess: 'CreateResourceSuccess',
  CreateResourceFailed: 'CreateResourceFailed',
  UpdateResourceSuccess: 'UpdateResourceSuccess',
  UpdateResourceFailed: 'UpdateResourceFailed',
  DeleteResourceSuccess: 'DeleteResourceSuccess',
  DeleteResourceFailed: 'DeleteResourceFailed',
} as const;

export interface ReconcilerDeps {
  kube: KubeClient;
  config: OperatorConfig;
  log: Logger;
  events: EventRecorder;
  cdis: Informer<KubeObject>;
  cdiConfigs: Informer<CDIConfigObject>;
  owned: OwnedCache;
  facts: (cr: CDIResource) => Promise<ClusterFacts>;
  now?: () => Date;
  /** kubevirt_cdi_cr_ready */
  setReady?: (value: 0 | 1) => void;
  /** The certificates (certs.ts): reconciled before the render, when due. */
  certs?: { sync(cr: CDIResource): Promise<{ nextInMs: number }> };
  /** Objects the operator owns that are not rendered (certificate Secrets and bundles): kept by the cleanup. */
  keep?: () => { kind: string; name: string; namespace?: string }[];
}

export type CDIResource = CDI & Owner & { status?: CDIStatus };
export type CDIConfigObject = KubeObject & { spec?: CDIConfigSpec };

export interface ReconcileOutcome {
  requeueAfterMs?: number;
}

/** Steady-state recheck: facts that are not watched (PriorityClasses, the Prometheus CRDs) and certificates. */
export const ResyncMs = 60_000;

export class CdiReconciler {
  private readonly d: ReconcilerDeps;
  private readonly now: () => Date;

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(key: string): Promise<ReconcileOutcome> {
    const cached = this.d.cdis.getByName(key);
    if (!cached) return {};
    const cr = structuredClone(cached) as CDIResource;
    cr.apiVersion = 'cdi.kubevirt.io/v1beta1';
    cr.kind = 'CDI';
    if (cr.metadata.deletionTimestamp) {
      return uninstall(
        {
          kube: this.d.kube,
          config: this.d.config,
          log: this.d.log,
          events: this.d.events,
          owned: this.d.owned,
          now: this.now,
          writeStatus: (c, s) => this.writeStatus(c, s),
          setReady: this.d.setReady,
        },
        cr,
        Finalizer,
      );
    }
    const claim = this.claim(cr);
    if (claim !== 'ours') return claim;

    let status: CDIStatus = { ...(cr.status ?? {}) };
    const version = this.d.config.version;
    if (!(cr.metadata.finalizers ?? []).includes(Finalizer)) {
      status = markDeploying(status, this.now(), CDIReason.DeployStarted, 'Started Deployment');
      status = { ...status, phase: CDIPhase.Deploying, operatorVersion: version, targetVersion: version };
      await this.d.kube.jsonPatch(Kinds.CDI, cr.metadata.name, [
        ...finalizerOps(cr.metadata.finalizers, [...(cr.metadata.finalizers ?? []), Finalizer]),
        { op: 'add', path: '/status', value: status },
      ]);
      void this.d.events.normal(cr, CDIReason.DeployStarted, 'Started Deployment');
      // the update wakes the next reconcile with the new object
      return {};
    }
    if (await this.takeConfigAuthority(cr)) return {};

    if (status.operatorVersion !== version || status.targetVersion !== version)
      status = { ...status, operatorVersion: version, targetVersion: version };
    const upgrading = !!status.observedVersion && status.observedVersion !== version;
    if (upgrading && status.phase !== CDIPhase.Upgrading) {
      const msg = `Started upgrade to version ${version}`;
      status = {
        ...markUpgrading(status, this.now(), CDIReason.UpgradeStarted, msg),
        phase: CDIPhase.Upgrading,
      };
      void this.d.events.normal(cr, CDIReason.UpgradeStarted, msg);
      this.d.log.info('upgrade started', { from: status.observedVersion, to: version });
    }

    const failures: string[] = [];
    // certificates first: the webhook configurations and the APIService are rendered with their bundle
    let certsNextMs = ResyncMs;
    if (this.d.certs) {
      try {
        certsNextMs = (await this.d.certs.sync(cr)).nextInMs;
      } catch (e) {
        failures.push(`certificates: ${errorMessage(e)}`);
      }
    }
    const facts = await this.d.facts(cr);
    let desired: Obj[];
    try {
      desired = renderAll({ cr, config: this.d.config, facts });
      // applied and kept with the rest; without the variable the cleanup deletes one an earlier run wrote
      if (this.d.config.dumpInstallStrategy)
        desired.push(installStrategyConfigMap(this.d.config.namespace, desired));
    } catch (e) {
      // a customization that cannot be applied, a bad field: the user must fix the CDI resource
      status = {
        ...markFailed(status, this.now(), CDIReason.ConfigError, errorMessage(e)),
        phase: CDIPhase.Error,
      };
      await this.writeStatus(cr, status);
      return {};
    }
    failures.push(...(await this.applyAll(cr, desired)));
    await this.syncConfig(cr);
    if (failures.length > 0) {
      status = withDegraded(status, this.now(), {
        status: 'True',
        reason: CDIReason.ApplyFailed,
        message: failures.slice(0, 3).join('; '),
      });
      await this.writeStatus(cr, status);
      throw new Error(`reconcile encountered ${failures.length} errors: ${failures[0] ?? ''}`);
    }

    const notReady = desired
      .filter((o) => o['kind'] === 'Deployment')
      .map((o) => {
        const name = String((o['metadata'] as Obj)['name']);
        return deploymentNotReady(this.d.owned.get('Deployment', name, this.d.config.namespace), name);
      })
      .filter((m): m is string => m !== undefined);
    const degraded = notReady.length > 0;
    if (degraded && status.phase === CDIPhase.Deployed) {
      status = withDegraded(status, this.now(), {
        status: 'True',
        reason: CDIReason.DeploymentNotReady,
        message: notReady.join('; '),
      });
    } else if (!upgrading) {
      status = withDegraded(status, this.now(), { status: 'False' });
    }
    if (!degraded && (status.phase !== CDIPhase.Deployed || upgrading)) {
      if (upgrading) await this.cleanup(cr, desired);
      const from = status.observedVersion;
      status = {
        ...markHealthy(status, this.now(), CDIReason.DeployCompleted, 'Deployment Completed'),
        phase: CDIPhase.Deployed,
        observedVersion: version,
      };
      void this.d.events.normal(cr, CDIReason.DeployCompleted, 'Deployment Completed');
      this.d.log.info(upgrading ? 'upgrade completed' : 'deployed', {
        version,
        ...(upgrading ? { from } : {}),
      });
    } else if (!degraded && status.phase === CDIPhase.Deployed) {
      await this.cleanup(cr, desired);
    }
    await this.writeStatus(cr, status);
    return { requeueAfterMs: Math.max(1000, Math.min(ResyncMs, certsNextMs)) };
  }

  /**
   * The install belongs to the CDI resource that controls ConfigMap cdi-config. Another one is refused (phase
   * Error, upstream's message); while the previous owner's ConfigMap is still being garbage collected, wait.
   */
  private claim(cr: CDIResource): 'ours' | ReconcileOutcome {
    const cm = this.d.owned.get('ConfigMap', OperatorConfigMap, this.d.config.namespace);
    if (!cm || ownedBy(cm, cr)) return 'ours';
    const ref = controllerOf(cm);
    const other = ref ? this.d.cdis.getByName(ref.name) : undefined;
    if (!ref || !other || other.metadata?.uid !== ref.uid || other.metadata?.deletionTimestamp) {
      this.d.log.info('waiting for the previous install to be removed', { configMap: OperatorConfigMap });
      return { requeueAfterMs: 1000 };
    }
    const status: CDIStatus = {
      ...markFailed(
        cr.status ?? {},
        this.now(),
        CDIReason.ConfigError,
        'Reconciling to error state, unwanted CDI object',
      ),
      phase: CDIPhase.Error,
    };
    void this.writeStatus(cr, status);
    return {};
  }

  /**
   * Upstream's reconcileSetConfigAuthority: the first time, an existing CDIConfig's spec moves into CDI.spec.config
   * (so settings made before the operator are kept), and the resource is marked as the config authority.
   */
  private async takeConfigAuthority(cr: CDIResource): Promise<boolean> {
    if (cr.metadata.annotations?.[ConfigAuthorityAnnotation] !== undefined) return false;
    const existing = this.d.cdiConfigs.getByName(CDIConfigName);
    const adopt = cr.spec?.config === undefined && existing?.spec && Object.keys(existing.spec).length > 0;
    await this.d.kube.mergePatch(Kinds.CDI, cr.metadata.name, {
      metadata: { annotations: { [ConfigAuthorityAnnotation]: '' } },
      ...(adopt ? { spec: { config: existing.spec } } : {}),
    });
    return true;
  }

  /** CDIConfig `config`.spec = CDI.spec.config (the controller keeps its status). */
  private async syncConfig(cr: CDIResource): Promise<void> {
    const want = cr.spec?.config ?? {};
    const live = this.d.cdiConfigs.getByName(CDIConfigName);
    if (!live) {
      try {
        await this.d.kube.create(Kinds.CDIConfig, {
          metadata: { name: CDIConfigName, labels: labelsOf() },
          spec: want,
        } as KubeObject);
      } catch (e) {
        if (!isAlreadyExists(e) && !isNotFound(e)) throw e;
      }
      return;
    }
    if (isDeepStrictEqual(live.spec ?? {}, want)) return;
    await this.d.kube.replace(Kinds.CDIConfig, { ...structuredClone(live), spec: want });
    this.d.log.info('CDIConfig config updated from CDI.spec.config');
  }

  private async applyAll(cr: CDIResource, desired: Obj[]): Promise<string[]> {
    const failures: string[] = [];
    const version = this.d.config.version;
    // ServiceAccounts come before the Deployments that use them: their uids, from the cache or the apply
    const saUids = new Map<string, string>();
    for (const obj of desired) {
      const meta = obj['metadata'] as { name: string; namespace?: string };
      const kind = String(obj['kind']);
      const live = this.d.owned.covers(kind, meta.namespace)
        ? this.d.owned.get(kind, meta.name, meta.namespace)
        : undefined;
      let want = decorate(obj, cr, version, live);
      if (kind === 'Deployment') {
        const pod = ((want['spec'] as Obj)['template'] as Obj)['spec'] as { serviceAccountName?: string };
        want = withServiceAccountUid(want, saUids.get(pod.serviceAccountName ?? ''));
      }
      try {
        const { action, object } = await applyObject(this.d.kube, want, live);
        if (kind === 'ServiceAccount' && object?.metadata?.uid) saUids.set(meta.name, object.metadata.uid);
        if (action === 'unchanged') continue;
        this.d.log.info(`${action} ${describe(obj)}`);
        const reason = action === 'created' ? Events.CreateResourceSuccess : Events.UpdateResourceSuccess;
        void this.d.events.normal(cr, reason, `Successfully ${action} resource ${describe(obj)}`);
      } catch (e) {
        const msg = `${describe(obj)}: ${errorMessage(e)}`;
        failures.push(msg);
        this.d.log.warn('apply failed', { object: describe(obj), error: errorMessage(e) });
        void this.d.events.warning(
          cr,
          live ? Events.UpdateResourceFailed : Events.CreateResourceFailed,
          `Failed to apply resource ${msg}`,
        );
      }
    }
    return failures;
  }

  /** Deletes what this resource installed and no longer renders (an older version's objects, a disabled part). */
  private async cleanup(cr: CDIResource, desired: Obj[]): Promise<void> {
    const wanted = new Set(
      desired.map((o) => {
        const m = o['metadata'] as { name: string; namespace?: string };
        return `${String(o['kind'])}/${m.namespace ?? ''}/${m.name}`;
      }),
    );
    for (const k of this.d.keep?.() ?? []) wanted.add(`${k.kind}/${k.namespace ?? ''}/${k.name}`);
    for (const { kind, obj } of this.d.owned.all()) {
      if (!ownedBy(obj, cr)) continue;
      const id = `${kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
      if (wanted.has(id)) continue;
      // never a CRD: deleting one deletes every object of its kind
      if (kind === 'CustomResourceDefinition') continue;
      await this.d.kube.delete(Kinds[kind], obj.metadata?.name ?? '', {
        namespace: obj.metadata?.namespace,
        propagationPolicy: 'Background',
      });
      this.d.log.info(
        `deleted ${kind} ${obj.metadata?.name ?? ''}: not part of version ${this.d.config.version}`,
      );
      void this.d.events.normal(
        cr,
        Events.DeleteResourceSuccess,
        `Successfully deleted resource ${kind} ${obj.metadata?.name ?? ''}`,
      );
    }
  }

  /** The CRD has no status subresource (as upstream): the status is merge-patched onto the object. */
  private async writeStatus(cr: CDIResource, status: CDIStatus): Promise<void> {
    const r = readiness(status);
    if (r !== undefined) this.d.setReady?.(r);
    if (sameStatus(cr.status, status)) return;
    await this.d.kube.mergePatch(Kinds.CDI, cr.metadata.name, { status });
  }
}
