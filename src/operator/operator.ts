// cdi-operator as a component: the caches, the reconcile loop and its triggers, behind leader election (Lease
// cdi-operator-leader-election-helper, upstream's name), with the facts the render needs. One reconcile key per CDI
// resource; a change to anything the operator installed wakes every CDI resource (there is one).
import {
  Controller,
  EventRecorder,
  Informer,
  isNotFound,
  LeaderElector,
  errorMessage,
  type KubeClient,
  type KubeObject,
  type Logger,
} from '../kube/index.ts';
import { OwnedCache, type Scope } from './cache.ts';
import type { OperatorConfig } from './config.ts';
import { ApiServerBundle, bundleOf, certificateObjects, OperatorCerts } from './certs.ts';
import { CdiReconciler, type CDIConfigObject, type CDIResource, type ReconcilerDeps } from './reconcile.ts';
import { deploymentNotReady } from './status.ts';
import { ApiServerName } from '../deploy/upload.ts';
import { WebhookRegistrations } from '../deploy/webhooks.ts';
import { DefaultPriorityClass, renderAll, type ClusterFacts } from './render.ts';
import { Kinds, MonitoringCrds, MonitoringKinds, type KindName } from './resources.ts';

export const LeaseName = 'cdi-operator-leader-election-helper';

export interface OperatorOptions {
  kube: KubeClient;
  config: OperatorConfig;
  log: Logger;
  identity: string;
  setReady?: (v: 0 | 1) => void;
  onLeading?: (leading: boolean) => void;
}

/** The (kind, namespace) pairs the operator renders into, found by rendering a default CDI resource. */
export function watchScopes(config: OperatorConfig): Scope[] {
  const probe = {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'CDI',
    metadata: { name: 'cdi', uid: 'probe' },
    spec: {},
  };
  const objs = renderAll({
    cr: probe,
    config,
    // with a bundle, so that the webhook configurations and the APIService are among them
    facts: { priorityClasses: new Set(), monitoring: false, apiServerBundle: 'probe' },
  });
  const seen = new Map<string, Scope>();
  const add = (kind: KindName, namespace?: string): void => {
    const s: Scope = {
      kind,
      ...(Kinds[kind].namespaced ? { namespace: namespace ?? config.namespace } : {}),
    };
    seen.set(`${s.kind}/${s.namespace ?? ''}`, s);
  };
  for (const o of objs)
    add(String(o['kind']) as KindName, (o['metadata'] as { namespace?: string }).namespace);
  // certificates and their bundles
  add('Secret');
  add('ConfigMap');
  return [...seen.values()];
}

/** PriorityClasses and the Prometheus CRDs, looked up at most every `ttlMs`. */
function factsSource(kube: KubeClient, ttlMs = 30_000): (cr: CDIResource) => Promise<ClusterFacts> {
  let cached: { at: number; key: string; facts: ClusterFacts } | undefined;
  const exists = async (r: (typeof Kinds)[KindName], name: string): Promise<boolean> => {
    try {
      await kube.get(r, name);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  };
  return async (cr) => {
    const names = [...new Set([cr.spec?.priorityClass || DefaultPriorityClass])];
    const key = names.join(',');
    if (cached && cached.key === key && Date.now() - cached.at < ttlMs) return cached.facts;
    const present = new Set<string>();
    for (const n of names) if (await exists(Kinds.PriorityClass, n)) present.add(n);
    let monitoring = true;
    for (const crd of MonitoringCrds) monitoring &&= await exists(Kinds.CustomResourceDefinition, crd);
    cached = { at: Date.now(), key, facts: { priorityClasses: present, monitoring } };
    return cached.facts;
  };
}

/** Runs until `signal` aborts: elects a leader, and while leading reconciles every CDI resource. */
export async function runOperator(o: OperatorOptions, signal: AbortSignal): Promise<void> {
  const elector = new LeaderElector(o.kube, {
    namespace: o.config.namespace,
    name: LeaseName,
    identity: o.identity,
    logger: o.log,
    onStartedLeading: async (lost) => {
      o.onLeading?.(true);
      try {
        await lead(o, lost);
      } finally {
        o.onLeading?.(false);
      }
    },
  });
  await elector.run(signal);
}

async function lead(o: OperatorOptions, lost: AbortSignal): Promise<void> {
  const log = o.log;
  const owned = new OwnedCache(o.kube, log);
  for (const s of watchScopes(o.config)) owned.add(s);
  const cdis = new Informer<KubeObject>(o.kube, Kinds.CDI, { logger: log });
  const cdiConfigs = new Informer<CDIConfigObject>(o.kube, Kinds.CDIConfig, { logger: log });
  const events = new EventRecorder(o.kube, { component: 'cdi-operator', instance: o.identity, logger: log });
  const facts = factsSource(o.kube);
  const ns = o.config.namespace;
  const certs = new OperatorCerts(o.kube, ns, log);
  const registered = (): boolean =>
    WebhookRegistrations.some(
      (r) => owned.get(`${r.type}WebhookConfiguration`, r.configuration) !== undefined,
    );
  const deps: ReconcilerDeps = {
    kube: o.kube,
    config: o.config,
    log,
    events,
    cdis,
    cdiConfigs,
    owned,
    certs,
    keep: () => certificateObjects(ns),
    facts: async (cr) => {
      const f = await facts(cr);
      // the Prometheus kinds are watched from the moment their CRDs exist
      if (f.monitoring) for (const kind of MonitoringKinds) owned.add({ kind, namespace: ns });
      // webhooks are registered once cdi-apiserver serves (a webhook nobody answers fails every request it sees);
      // once registered they stay, with the current bundle
      const bundle = bundleOf(owned.get('ConfigMap', ApiServerBundle, ns));
      const serving =
        deploymentNotReady(owned.get('Deployment', ApiServerName, ns), ApiServerName) === undefined;
      return { ...f, ...(bundle && (serving || registered()) ? { apiServerBundle: bundle } : {}) };
    },
    ...(o.setReady ? { setReady: o.setReady } : {}),
  };
  const reconciler = new CdiReconciler(deps);
  const controller = new Controller({
    name: 'cdi-operator',
    logger: log,
    reconcile: (key) => reconciler.reconcile(key),
  });
  controller.watch(cdis);
  // not a watch the controller waits for: the CDIConfig CRD is one the operator installs, so this informer syncs
  // only after the first reconcile (the controller's run waits for the informers it watches)
  const wakeAll = (): void => {
    for (const k of cdis.keys()) controller.enqueue(k);
  };
  cdiConfigs.onAdd(wakeAll).onUpdate(wakeAll).onDelete(wakeAll);
  owned.onChange((obj, kind) => {
    certs.observe(kind, obj);
    for (const k of cdis.keys()) controller.enqueue(k);
  });
  owned.start();
  cdis.start();
  cdiConfigs.start();
  try {
    await Promise.race([
      owned.waitForSync(),
      new Promise((r) => lost.addEventListener('abort', r, { once: true })),
    ]);
    if (!lost.aborted) {
      log.info('caches synced', { scopes: owned.list().length });
      await controller.run(lost);
    }
  } catch (e) {
    log.error('operator stopped', { error: errorMessage(e) });
    throw e;
  } finally {
    await Promise.all([owned.stop(), cdis.stop(), cdiConfigs.stop()]);
  }
}
