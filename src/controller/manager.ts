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
  type Informer,
  type KubeClient,
  type KubeObject,
  type Logger,
  type Pod,
  type PersistentVolumeClaim as Pvc,
  type ReconcileOutcome,
  type Reconciler,
  type RuntimeMetrics,
} from '../kube/index.ts';
import type { CDI } from '../api/index.ts';
import { siblingImage } from '../api/naming.ts';
import { ClusterKube, listOrNone, Res, type Kube, type Reads } from './shared/client.ts';
import { certsConfigOf, DefaultCertConfig } from '../certs/rotation.ts';
import { CDIConfigName, Component } from './shared/constants.ts';
import type { Recorder } from './shared/events.ts';
import {
  Active,
  cloneSourceKey,
  isImportPvc,
  isUploadPvc,
  registerCdiCache,
  UploadPvcIndex,
} from './shared/indexes.ts';
import type { Result } from './shared/runtime.ts';
import type { DataVolume, StorageClass } from './shared/types.ts';
import { reconcileConfig } from './config/controller.ts';
import { reconcileDataImportCron } from './dataimportcron/controller.ts';
import { reconcileDataSource } from './datasource/controller.ts';
import { reconcileImportPopulator, VolumeImportSourceKind } from './populators/import.ts';
import { reconcileUploadPopulator, VolumeUploadSourceKind } from './populators/upload.ts';
import { reconcileClonePopulator, VolumeCloneSourceKind } from './populators/clone.ts';
import { reconcileDataVolume } from './datavolume/controller.ts';
import { PendingDataVolumes } from './datavolume/pending.ts';
import { ProgressScraper, type FetchLimits } from './datavolume/progress.ts';
import { reconcileImport } from './import/controller.ts';
import { UploadCertificates } from './upload/certs.ts';
import { reconcileUpload } from './upload/controller.ts';
import { reconcileCloneDataVolume } from './datavolume/clone.ts';
import { reconcileHostClone } from './clone/host.ts';
import { signingKeyTokens, type TokenSource } from './clone/tokens.ts';
import { OptionalWatch } from './shared/optionalwatch.ts';
import { profileKeyOfVolume, reconcileStorageProfile } from './storageprofile/controller.ts';
import { SnapshotClassWatch } from './storageprofile/snapshotclasses.ts';
import {
  cloneDvsForPod,
  cloneDvsForPv,
  cloneDvForClaimEvent,
  cloneDvsForPvc,
  cloneDvsForSnapshot,
  hostCloneForDv,
  hostClonesForPod,
  hostClonesForPvc,
  cronOf,
  cronsForStorageClass,
  cronsForStorageProfile,
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
  uploadPvcForEvent,
  uploadPvcsForPod,
  populatorTargetOf,
  primeTargetOfEvent,
  pvcsForPopulatorSource,
  clonePopulatorTargetsForPvc,
  clonePopulatorTargetsForSnapshot,
  clonePopulatorTargetsForPod,
} from './wakeups.ts';
import type { ControllerMetrics } from '../monitoring/metrics.ts';

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  importerImage: string;
  /** The upload server (a host-assisted clone's target) and cloner (its source) images. */
  uploadServerImage?: string;
  clonerImage?: string;
  pullPolicy: string;
  /** Clone tokens; by default the key pair in <cdiNamespace>/cdi-api-signing-key. */
  tokens?: TokenSource;
  verbose?: string;
  /** Workload node placement for worker pods (upstream CDI.spec.workload.nodeSelector). */
  workloadNodeSelector?: Record<string, string>;
  /** Handed to S3 and GCS importer pods (ImporterPodOptions.objectStoreEnv). */
  objectStoreEnv?: Record<string, string>;
  workers?: number;
  /** reportingInstance of events, e.g. the pod name. */
  instance?: string;
  /** CDI's namespace (POD_NAMESPACE): where CDIConfig's trusted proxy CA lives. */
  cdiNamespace?: string;
  /** "api" sends every read to the API server (CDI_READS=api), for comparison with the cache. */
  reads?: Reads;
  clock?: Clock;
  metrics?: RuntimeMetrics;
  /** The CDI gauges (kubevirt_cdi_datavolume_pending, kubevirt_cdi_storageprofile_info) */
  gauges?: ControllerMetrics;
  /** Told about every reconcile of every controller (tracing, tests). */
  onReconciled?: (controller: string, key: string, outcome: ReconcileOutcome) => void;
  /** The importer metrics GET (tests may wrap it); the default is fetchMetrics with its limits. */
  scrapeFetch?: (url: string, limits: FetchLimits) => Promise<string | undefined>;
  scrapeConcurrency?: number;
  /**
   * The upload certificates in CDI's namespace: "reconcile" creates and rotates them (cmd/controller.ts, until the
   * operator owns them), "read" (the default) only reads the CAs the upload pods' certificates come from.
   */
  certificates?: 'reconcile' | 'read';
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
  // Reconciles wait on the API server, not on the CPU: with 3 workers (controller-runtime's usual count) 500 blank
  // DataVolumes left the import queue 464 deep with every worker busy while the controller used 7 % of a core, and
  // importer pods came at 20 a minute (bench:scale, docs/controllers.md "Measured").
  const workers = o.workers ?? 10;
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
  const services = cache.informerOf(Res.service);
  const dataSources = cache.informerOf(Res.dataSource);
  const crons = cache.informerOf(Res.dataImportCron);
  const importSources = cache.informerOf(Res.volumeImportSource);
  const uploadSources = cache.informerOf(Res.volumeUploadSource);
  const cloneSources = cache.informerOf(Res.volumeCloneSource);

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
    reconcileStorageProfile(
      {
        kube,
        recorder: events,
        log: log('storageprofile-controller'),
        ...(o.gauges ? { gauges: o.gauges } : {}),
      },
      key,
    ),
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

  if (o.gauges) countPendingDataVolumes(dvs, o.gauges);

  const podOptions = {
    image: o.importerImage,
    pullPolicy: o.pullPolicy,
    ...(o.verbose ? { verbose: o.verbose } : {}),
    ...(o.workloadNodeSelector ? { nodeSelector: o.workloadNodeSelector } : {}),
    ...(o.objectStoreEnv ? { objectStoreEnv: o.objectStoreEnv } : {}),
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

  /** One DataVolume controller per kind of work, as upstream (each leaves the others' DataVolumes alone). */
  const dvController = (name: string, serves: 'import' | 'upload'): Controller =>
    controller(name, workers, (kube, key) =>
      reconcileDataVolume(
        // the scraper is made below (it wakes this controller); only imports report progress
        {
          kube,
          recorder: events,
          log: log(name),
          serves,
          ...(serves === 'import' ? { progress: scraper } : {}),
        },
        key,
      ),
    )
      .watch(dvs)
      .watch(pvcs, (p) => ownerKey(p, 'DataVolume'))
      .watch(classes, (sc, old) => dvsForStorageClass(cache, sc, old))
      .watch(profiles, (sp) => dvsForStorageProfile(cache, sp))
      .watch(configs, () => dvsForConfig(cache))
      .watch(dataSources, (ds) => dvsForDataSource(cache, ds));
  const datavolume = dvController('datavolume-import-controller', 'import');

  const uploadServerImage = o.uploadServerImage ?? siblingImage(o.importerImage, 'cdi-uploadserver');
  const certs = new UploadCertificates({
    client: o.client,
    namespace: o.cdiNamespace ?? 'cdi',
    log: o.log.child({ component: 'certificates' }),
    clock,
    mode: o.certificates ?? 'read',
    // the operator makes them with CDI.spec.certConfig (upstream: GetCertConfigWithDefaults for each upload pod)
    ...((o.certificates ?? 'read') === 'read'
      ? {
          configFrom: async () => {
            const [cdi] = await listOrNone<CDI>(base, Res.cdi);
            return cdi ? certsConfigOf(cdi) : DefaultCertConfig;
          },
        }
      : {}),
    onReady: () => {
      for (const p of cache.list<Pvc>(Res.pvc, { index: { name: UploadPvcIndex, value: Active } }))
        upload.enqueue(keyOf(p));
    },
  });
  const upload = controller('upload-controller', workers, (kube, key) =>
    reconcileUpload(
      {
        kube,
        recorder: events,
        log: log('upload-controller'),
        certs,
        pod: {
          ...podOptions,
          image: uploadServerImage,
        },
      },
      key,
    ),
  )
    .watch(pvcs, (p) => (isUploadPvc(p) ? keyOf(p) : undefined))
    .watch(pods, (p) => uploadPvcsForPod(cache, p))
    .watch(services, (s) => ownerKey(s, 'PersistentVolumeClaim'))
    .watch(pvcEvents, (e) => uploadPvcForEvent(cache, e));

  dvController('datavolume-upload-controller', 'upload');

  // clones: the DataVolume side (strategy, smart clones, rebind) and the host-assisted PVC side (pods)
  const cdiNamespace = o.cdiNamespace ?? 'cdi';
  const tokens = o.tokens ?? signingKeyTokens(cdiNamespace);
  const cloneDv = controller('datavolume-clone-controller', workers, (kube, key) =>
    reconcileCloneDataVolume(
      { kube, recorder: events, log: log('datavolume-clone-controller'), tokens, progress: scraper },
      key,
    ),
  )
    .watch(dvs, (dv) => (cloneSourceKey(dv) || dv.spec?.sourceRef ? keyOf(dv) : undefined))
    .watch(dataSources, (ds) => dvsForDataSource(cache, ds))
    .watch(pvcs, (p) => cloneDvsForPvc(cache, p))
    .watch(pods, (p) => cloneDvsForPod(cache, p))
    .watch(pvs, (pv) => cloneDvsForPv(cache, pv))
    .watch(pvcEvents, (e) => cloneDvForClaimEvent(cache, e));
  controller('clone-controller', workers, (kube, key) =>
    reconcileHostClone(
      {
        kube,
        recorder: events,
        log: log('clone-controller'),
        tokens,
        certs,
        uploadServerImage,
        clonerImage: o.clonerImage ?? siblingImage(o.importerImage, 'cdi-cloner'),
        pullPolicy: o.pullPolicy,
        ...(o.verbose ? { verbose: o.verbose } : {}),
        ...(o.workloadNodeSelector ? { nodeSelector: o.workloadNodeSelector } : {}),
      },
      key,
    ),
  )
    .watch(pvcs, (p) => hostClonesForPvc(cache, p))
    .watch(pods, (p) => hostClonesForPod(cache, p))
    .watch(dvs, (dv) => hostCloneForDv(cache, dv));

  // golden images: DataSources, the DataImportCron poller, the import populator
  const dataSource = controller('datasource-controller', workers, (kube, key) =>
    reconcileDataSource({ kube, log: log('datasource-controller') }, key),
  )
    .watch(dataSources, (ds) => dataSourcesForDataSource(cache, ds))
    .watch(pvcs, (p) => dataSourcesForClaim(cache, p))
    .watch(dvs, (dv) => dataSourcesForClaim(cache, dv));
  const dataImportCron = controller('dataimportcron-controller', workers, (kube, key) =>
    reconcileDataImportCron(
      {
        kube,
        recorder: events,
        log: log('dataimportcron-controller'),
        poller: {
          image: o.importerImage,
          pullPolicy: o.pullPolicy,
          cdiNamespace,
          ...(o.workloadNodeSelector ? { nodeSelector: o.workloadNodeSelector } : {}),
        },
        ...(o.gauges ? { metrics: o.gauges } : {}),
      },
      key,
    ),
  )
    .watch(crons)
    .watch(dvs, cronOf)
    .watch(pvcs, cronOf)
    .watch(dataSources, cronOf)
    .watch(profiles, (sp, old) => cronsForStorageProfile(cache, sp, old))
    .watch(classes, (sc, old) => cronsForStorageClass(cache, sc, old));
  // the populators' running progress comes from the DataVolumes' scraper, each in a scope of its own (made below)
  const importPopulator = controller('import-populator', workers, (kube, key) =>
    reconcileImportPopulator(
      { kube, recorder: events, log: log('import-populator'), progress: importPopulatorProgress },
      key,
    ),
  )
    .watch(pvcs, (p) => populatorTargetOf(p, VolumeImportSourceKind))
    .watch(pvcEvents, (e) => primeTargetOfEvent(cache, e, VolumeImportSourceKind))
    .watch(importSources, (s) => pvcsForPopulatorSource(cache, VolumeImportSourceKind, s));
  controller('upload-populator', workers, (kube, key) =>
    reconcileUploadPopulator({ kube, recorder: events, log: log('upload-populator') }, key),
  )
    .watch(pvcs, (p) => populatorTargetOf(p, VolumeUploadSourceKind))
    .watch(pvcEvents, (e) => primeTargetOfEvent(cache, e, VolumeUploadSourceKind))
    .watch(uploadSources, (s) => pvcsForPopulatorSource(cache, VolumeUploadSourceKind, s));
  // the clone populator also wakes when its source claim changes (bound, no longer in use) or a snapshot is ready
  const clonePopulator = controller('clone-populator', workers, (kube, key) =>
    reconcileClonePopulator(
      { kube, recorder: events, log: log('clone-populator'), progress: clonePopulatorProgress },
      key,
    ),
  )
    .watch(pvcs, (p) => clonePopulatorTargetsForPvc(cache, p, VolumeCloneSourceKind))
    .watch(pvcEvents, (e) => primeTargetOfEvent(cache, e, VolumeCloneSourceKind))
    .watch(pods, (p) => clonePopulatorTargetsForPod(cache, p, VolumeCloneSourceKind))
    .watch(cloneSources, (s) => pvcsForPopulatorSource(cache, VolumeCloneSourceKind, s));

  // VolumeSnapshots are not cached (the kind may not be served): one optional watch wakes the snapshot clones, the
  // DataSources of snapshots and the DataImportCrons of their snapshot imports
  const snapshots = new OptionalWatch<KubeObject>({
    client: o.client,
    resource: Res.volumeSnapshot,
    logger: log('datavolume-clone-controller'),
    notServed:
      'VolumeSnapshots are not served (no CSI snapshotter): snapshot clones wait for one, DataSources of snapshots are not Ready',
    changed: (snap) => {
      for (const k of cloneDvsForSnapshot(cache, snap)) cloneDv.enqueue(k);
      for (const k of dataSourcesForSnapshot(cache, snap)) dataSource.enqueue(k);
      const cron = cronOf(snap);
      if (cron) dataImportCron.enqueue(cron);
      for (const k of clonePopulatorTargetsForSnapshot(cache, snap, VolumeCloneSourceKind))
        clonePopulator.enqueue(k);
    },
  });

  const scraper = new ProgressScraper({
    kube: base,
    onChange: (key) => {
      datavolume.enqueue(key);
      cloneDv.enqueue(key);
    },
    log: o.log.child({ component: 'progress' }),
    clock,
    ...(o.scrapeConcurrency ? { concurrency: o.scrapeConcurrency } : {}),
    ...(o.scrapeFetch ? { fetch: o.scrapeFetch } : {}),
  });
  const importPopulatorProgress = scraper.scoped('import-populator:', (k) => importPopulator.enqueue(k));
  const clonePopulatorProgress = scraper.scoped('clone-populator:', (k) => clonePopulator.enqueue(k));

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
        await Promise.all([...controllers.map((c) => c.run(signal)), scraper.run(signal), certs.run(signal)]);
      } finally {
        await Promise.all([cache.stop(), snapshotClasses.stop(), snapshots.stop()]);
        await recorder.flush();
      }
    },
  };
}

/** kubevirt_cdi_datavolume_pending, kept up to date from the DataVolume informer's events. */
function countPendingDataVolumes(
  dvs: Informer<DataVolume & KubeObject>,
  gauges: Pick<ControllerMetrics, 'setDataVolumePending'>,
): void {
  const pending = new PendingDataVolumes();
  dvs
    .onAdd((dv) => gauges.setDataVolumePending(pending.set(keyOf(dv), dv)))
    .onUpdate((_old, dv) => gauges.setDataVolumePending(pending.set(keyOf(dv), dv)))
    .onDelete((dv) => gauges.setDataVolumePending(pending.delete(keyOf(dv))));
}
