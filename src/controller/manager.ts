// Wires the reconcilers to one informer cache and src/kube's controller loop: one informer per resource shared by every
// controller, one de-duplicating, rate-limited queue per controller, and the progress scraper beside them. Each
// reconcile gets its own session of the cluster view (its writes become expectations, its requests end with the run's
// signal). The mappers decide what a change wakes, narrowly: a StorageClass change wakes the DataVolumes in flight that
// ask for that class (or for the default, when the default changes), a CDIConfig change the imports and DataVolumes
// in flight, never every object of a kind.
import {
  Cache,
  Controller,
  EventRecorder,
  expectationOwner,
  keyOf,
  realClock,
  type Clock,
  type KubeClient,
  type KubeObject,
  type Logger,
  type Pod,
  type PersistentVolumeClaim as Pvc,
  type ReconcileOutcome,
  type Reconciler,
  type RuntimeMetrics,
} from '../kube/index.ts';
import { ClusterKube, Res, type Kube, type Reads } from './shared/client.ts';
import { CDIConfigName, Component } from './shared/constants.ts';
import type { Recorder } from './shared/events.ts';
import { isImportPvc, registerCdiCache } from './shared/indexes.ts';
import type { Result } from './shared/runtime.ts';
import type { DataVolume, StorageClass } from './shared/types.ts';
import { reconcileConfig } from './config/controller.ts';
import { reconcileDataImportCron } from './dataimportcron/controller.ts';
import { reconcileDataSource } from './datasource/controller.ts';
import { reconcileImportPopulator, VolumeImportSourceKind } from './populators/import.ts';
import type { ControllerMetrics } from '../monitoring/metrics.ts';
import { reconcileDataVolume } from './datavolume/controller.ts';
import { ProgressScraper, type FetchLimits } from './datavolume/progress.ts';
import { reconcileImport } from './import/controller.ts';
import { profileKeyOfVolume, reconcileStorageProfile } from './storageprofile/controller.ts';
import { SnapshotClassWatch } from './storageprofile/snapshotclasses.ts';
import { OptionalWatch } from './shared/optional-watch.ts';
import {
  cronOf,
  dataSourcesForClaim,
  dataSourcesForDataSource,
  dataSourcesForSnapshot,
  dvsForConfig,
  dvsForDataSource,
  dvsForStorageClass,
  dvsForStorageProfile,
  importPvcForEvent,
  importPvcsForConfig,
  importPvcsForPod,
  ownerKey,
  populatorTargetOf,
  pvcsForPopulatorSource,
} from './wakeups.ts';

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  importerImage: string;
  pullPolicy: string;
  verbose?: string;
  /** Workload node placement for worker pods (upstream CDI.spec.workload.nodeSelector). */
  workloadNodeSelector?: Record<string, string>;
  workers?: number;
  /** reportingInstance of events, e.g. the pod name. */
  instance?: string;
  /** CDI's namespace (POD_NAMESPACE): where CDIConfig's trusted proxy CA lives. */
  cdiNamespace?: string;
  /** "api" sends every read to the API server (CDI_READS=api), for comparison with the cache. */
  reads?: Reads;
  clock?: Clock;
  metrics?: RuntimeMetrics;
  /** CDI's gauges (kubevirt_cdi_dataimportcron_outdated, ...). */
  cdiMetrics?: ControllerMetrics;
  /** Told about every reconcile of every controller (tracing, tests). */
  onReconciled?: (controller: string, key: string, outcome: ReconcileOutcome) => void;
  /** The importer metrics GET (tests may wrap it); the default is fetchMetrics with its limits. */
  scrapeFetch?: (url: string, limits: FetchLimits) => Promise<string | undefined>;
  scrapeConcurrency?: number;
}

export interface Manager {
  cache: Cache;
  controllers: Controller[];
  recorder: EventRecorder;
  scraper: ProgressScraper;
  /** Starts the cache, the controllers and the scraper; resolves after the signal aborts and they drained. */
  run(signal: AbortSignal): Promise<void>;
  /** True once every informer delivered its first list. */
  synced(): boolean;
}

export function buildManager(o: ManagerOptions): Manager {
  const clock = o.clock ?? realClock;
  const cache = new Cache(o.client, { clock, logger: o.log });
  registerCdiCache(cache, Component);
  const base = new ClusterKube(o.client, { cache, reads: o.reads ?? 'cache' });
  const recorder = new EventRecorder(o.client, {
    component: Component,
    ...(o.instance ? { instance: o.instance } : {}),
    clock,
    logger: o.log,
  });
  const events: Recorder = recorder;
  const workers = o.workers ?? 3;
  const log = (n: string): Logger => o.log.child({ controller: n });

  const controllers: Controller[] = [];
  /** A controller whose every reconcile works through its own session of the cluster view. */
  const controller = (
    name: string,
    nWorkers: number,
    fn: (kube: Kube, key: string) => Promise<Result | void>,
  ): Controller => {
    const reconcile: Reconciler = (key, signal) => fn(base.session(expectationOwner(name, key), signal), key);
    const c = new Controller({
      name,
      workers: nWorkers,
      logger: o.log,
      clock,
      reconcile,
      expectations: cache.expectations,
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.onReconciled ? { onReconciled: (key, outcome) => o.onReconciled?.(name, key, outcome) } : {}),
    });
    controllers.push(c);
    return c;
  };

  const dvs = cache.informerOf<DataVolume & KubeObject>(Res.dataVolume);
  const pvcs = cache.informerOf<Pvc>(Res.pvc);
  const pods = cache.informerOf<Pod>(Res.pod);
  const classes = cache.informerOf<StorageClass & KubeObject>(Res.storageClass);
  const profiles = cache.informerOf(Res.storageProfile);
  const configs = cache.informerOf(Res.cdiConfig);
  const pvcEvents = cache.informerOf(Res.event);
  const pvs = cache.informerOf(Res.pv);
  const dataSources = cache.informerOf(Res.dataSource);
  const crons = cache.informerOf(Res.dataImportCron);
  const importSources = cache.informerOf(Res.volumeImportSource);

  const config = controller('config-controller', 1, (kube, key) =>
    reconcileConfig(
      {
        kube,
        log: log('config-controller'),
        recorder: events,
        ...(o.cdiNamespace ? { cdiNamespace: o.cdiNamespace } : {}),
      },
      key,
    ),
  )
    .watch(configs)
    .watch(classes, () => CDIConfigName);

  const storageProfile = controller('storageprofile-controller', 1, (kube, key) =>
    reconcileStorageProfile({ kube, recorder: events, log: log('storageprofile-controller') }, key),
  )
    .watch(classes)
    .watch(profiles)
    .watch(pvs, profileKeyOfVolume(classes));
  // not an informer the controller waits for: the kind is only served with a CSI snapshotter
  const snapshotClasses = new SnapshotClassWatch({
    client: o.client,
    logger: log('storageprofile-controller'),
    classes: () => classes.list(),
    enqueue: (k) => storageProfile.enqueue(k),
  });

  const podOptions = {
    image: o.importerImage,
    pullPolicy: o.pullPolicy,
    ...(o.verbose ? { verbose: o.verbose } : {}),
    ...(o.workloadNodeSelector ? { nodeSelector: o.workloadNodeSelector } : {}),
  };
  controller('import-controller', workers, (kube, key) =>
    reconcileImport(
      {
        kube,
        recorder: events,
        log: log('import-controller'),
        pod: podOptions,
        ...(o.cdiNamespace ? { cdiNamespace: o.cdiNamespace } : {}),
      },
      key,
    ),
  )
    .watch(pvcs, (p) => (isImportPvc(p) ? keyOf(p) : undefined))
    .watch(pods, (p) => importPvcsForPod(cache, p))
    .watch(pvcEvents, (e) => importPvcForEvent(cache, e))
    .watch(configs, () => importPvcsForConfig(cache));

  const datavolume = controller('datavolume-import-controller', workers, (kube, key) =>
    reconcileDataVolume(
      { kube, recorder: events, log: log('datavolume-import-controller'), progress: scraper },
      key,
    ),
  )
    .watch(dvs)
    .watch(pvcs, (p) => ownerKey(p, 'DataVolume'))
    .watch(classes, (sc, old) => dvsForStorageClass(cache, sc, old))
    .watch(profiles, (sp) => dvsForStorageProfile(cache, sp))
    .watch(configs, () => dvsForConfig(cache))
    .watch(dataSources, (ds) => dvsForDataSource(cache, ds));

  const dataSource = controller('datasource-controller', workers, (kube, key) =>
    reconcileDataSource({ kube, log: log('datasource-controller') }, key),
  )
    .watch(dataSources, (ds) => dataSourcesForDataSource(cache, ds))
    .watch(pvcs, (p) => dataSourcesForClaim(cache, p))
    .watch(dvs, (dv) => dataSourcesForClaim(cache, dv));
  controller('dataimportcron-controller', workers, (kube, key) =>
    reconcileDataImportCron(
      {
        kube,
        recorder: events,
        log: log('dataimportcron-controller'),
        poller: {
          image: o.importerImage,
          pullPolicy: o.pullPolicy,
          cdiNamespace: o.cdiNamespace ?? 'cdi',
          ...(o.workloadNodeSelector ? { nodeSelector: o.workloadNodeSelector } : {}),
        },
        ...(o.cdiMetrics ? { metrics: o.cdiMetrics } : {}),
      },
      key,
    ),
  )
    .watch(crons)
    .watch(dvs, cronOf)
    .watch(pvcs, cronOf)
    .watch(dataSources, cronOf);

  controller('import-populator', workers, (kube, key) =>
    reconcileImportPopulator({ kube, recorder: events, log: log('import-populator') }, key),
  )
    .watch(pvcs, (p) => populatorTargetOf(p, VolumeImportSourceKind))
    .watch(importSources, (s) => pvcsForPopulatorSource(cache, VolumeImportSourceKind, s));

  // VolumeSnapshots are read from the API server (not cached: the kind may not be served); their changes still wake
  const snapshots = new OptionalWatch({
    client: o.client,
    resource: Res.volumeSnapshot,
    logger: log('datasource-controller'),
    onChange: (s) => {
      for (const k of dataSourcesForSnapshot(cache, s)) dataSource.enqueue(k);
    },
  });

  const scraper = new ProgressScraper({
    kube: base,
    onChange: (key) => datavolume.enqueue(key),
    log: o.log.child({ component: 'progress' }),
    clock,
    ...(o.scrapeConcurrency ? { concurrency: o.scrapeConcurrency } : {}),
    ...(o.scrapeFetch ? { fetch: o.scrapeFetch } : {}),
  });

  return {
    cache,
    controllers,
    recorder,
    scraper,
    synced: () => cache.synced,
    async run(signal: AbortSignal): Promise<void> {
      cache.start();
      snapshotClasses.start();
      snapshots.start();
      // the config must exist even before anything changes
      config.enqueue(CDIConfigName);
      try {
        await Promise.all([...controllers.map((c) => c.run(signal)), scraper.run(signal)]);
      } finally {
        await Promise.all([cache.stop(), snapshotClasses.stop(), snapshots.stop()]);
        await recorder.flush();
      }
    },
  };
}
