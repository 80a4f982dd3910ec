// Wires the four reconcilers to shared informers and src/kube's controller loop. One informer per resource is
// shared by every controller that watches it; each controller has its own de-duplicating, rate-limited queue.
import {
  Controller,
  EventRecorder,
  Informer,
  type KubeClient,
  type KubeObject,
  type Logger,
  type Resource,
} from '../kube/index.ts';
import { ClientKube, Res } from './shared/client.ts';
import { CDIConfigName, Label } from './shared/constants.ts';
import { reconcileConfig } from './config/controller.ts';
import { reconcileDataVolume } from './datavolume/controller.ts';
import { reconcileImport } from './import/controller.ts';
import { profileKeyOfVolume, reconcileStorageProfile } from './storageprofile/controller.ts';
import { SnapshotClassWatch } from './storageprofile/snapshotclasses.ts';

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
  /** Reads an importer's metrics page (tests may point it elsewhere); the default does the HTTPS GET. */
  scrape?: (url: string) => Promise<string | undefined>;
  /** Called after every reconcile (for metrics). */
  onReconcile?: (controller: string, result: 'success' | 'requeue' | 'error') => void;
}

export interface Manager {
  informers: Informer<KubeObject>[];
  controllers: Controller[];
  /** Starts informers and controllers; resolves after the signal aborts and every worker has drained. */
  run(signal: AbortSignal): Promise<void>;
  /** True once every informer delivered its first list. */
  synced(): boolean;
}

const ownerKey = (o: KubeObject, kind: string): string | undefined => {
  const ref = o.metadata?.ownerReferences?.find((r) => r.controller === true && r.kind === kind);
  return ref && o.metadata?.namespace ? `${o.metadata.namespace}/${ref.name}` : undefined;
};

export function buildManager(o: ManagerOptions): Manager {
  const kube = new ClientKube(o.client);
  const recorder = new EventRecorder(o.client, {
    component: 'cdi-controller',
    ...(o.instance ? { instance: o.instance } : {}),
    logger: o.log,
  });
  const inf = (r: Resource, labelSelector?: string): Informer<KubeObject> =>
    new Informer<KubeObject>(o.client, r, { logger: o.log, ...(labelSelector ? { labelSelector } : {}) });
  const dvs = inf(Res.dataVolume);
  const pvcs = inf(Res.pvc);
  // Only CDI's own worker pods matter for progress and status; user pods that hold a target PVC are found by a
  // direct list when an import is about to start.
  const pods = inf(Res.pod, `${Label.app}=${Label.appValue}`);
  const classes = inf(Res.storageClass);
  const profiles = inf(Res.storageProfile);
  const configs = inf(Res.cdiConfig);
  const pvs = inf(Res.pv);
  const informers = [dvs, pvcs, pods, classes, profiles, configs, pvs];
  const workers = o.workers ?? 3;
  const log = (n: string): Logger => o.log.child({ controller: n });
  const counted =
    (name: string, fn: (key: string) => Promise<{ requeueAfterMs?: number } | void>) =>
    async (key: string): Promise<{ requeueAfterMs?: number } | void> => {
      try {
        const r = await fn(key);
        o.onReconcile?.(name, r?.requeueAfterMs !== undefined ? 'requeue' : 'success');
        return r;
      } catch (e) {
        o.onReconcile?.(name, 'error');
        throw e;
      }
    };

  const config = new Controller({
    name: 'config-controller',
    workers: 1,
    logger: o.log,
    reconcile: counted('config-controller', (key) =>
      reconcileConfig({ kube, log: log('config-controller') }, key),
    ),
  })
    .watch(configs)
    .watch(classes, () => CDIConfigName);

  const storageProfile = new Controller({
    name: 'storageprofile-controller',
    workers: 1,
    logger: o.log,
    reconcile: counted('storageprofile-controller', (key) =>
      reconcileStorageProfile({ kube, recorder, log: log('storageprofile-controller') }, key),
    ),
  })
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

  const importer = new Controller({
    name: 'import-controller',
    workers,
    logger: o.log,
    reconcile: counted('import-controller', (key) =>
      reconcileImport(
        {
          kube,
          recorder,
          log: log('import-controller'),
          pod: {
            image: o.importerImage,
            pullPolicy: o.pullPolicy,
            ...(o.verbose ? { verbose: o.verbose } : {}),
            ...(o.workloadNodeSelector ? { nodeSelector: o.workloadNodeSelector } : {}),
          },
        },
        key,
      ),
    ),
  })
    .watch(pvcs)
    .watch(pods, (p) => ownerKey(p, 'PersistentVolumeClaim'))
    // the config carries the pod resources and the overhead a waiting import needs
    .watch(configs, () => pvcs.keys());

  const allDvs = (): string[] => dvs.keys();
  const datavolume = new Controller({
    name: 'datavolume-import-controller',
    workers,
    logger: o.log,
    reconcile: counted('datavolume-import-controller', (key) =>
      reconcileDataVolume(
        {
          kube,
          recorder,
          log: log('datavolume-import-controller'),
          ...(o.scrape ? { scrape: o.scrape } : {}),
        },
        key,
      ),
    ),
  })
    .watch(dvs)
    .watch(pvcs, (p) => ownerKey(p, 'DataVolume'))
    .watch(pods, (p) => ownerKey(p, 'PersistentVolumeClaim'))
    // rendering depends on classes, profiles and the config: a DV that could not be rendered may be renderable now
    .watch(classes, allDvs)
    .watch(profiles, allDvs)
    .watch(configs, allDvs);

  const controllers = [config, storageProfile, importer, datavolume];
  return {
    informers,
    controllers,
    synced: () => informers.every((i) => i.hasSynced),
    async run(signal: AbortSignal): Promise<void> {
      for (const i of informers) i.start();
      snapshotClasses.start();
      // the config must exist even before anything changes
      config.enqueue(CDIConfigName);
      try {
        await Promise.all(controllers.map((c) => c.run(signal)));
      } finally {
        await Promise.all([...informers.map((i) => i.stop()), snapshotClasses.stop()]);
      }
    },
  };
}
