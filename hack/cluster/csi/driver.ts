// The harness's hostpath CSI driver, run on the host by hack/cluster (one process):
//  - a CSI plugin (Identity, Controller, Node services) on a unix socket, used by the real kubelet and by the
//    Go-built csi-snapshotter and csi-resizer sidecars;
//  - the kubelet plugin-registration service (what node-driver-registrar does);
//  - a dynamic provisioner for PVCs of its StorageClasses, including clones and snapshot restores
//    (what external-provisioner does).
// Why not upstream's csi-driver-host-path, node-driver-registrar and external-provisioner: the Go module proxy
// answers 403 "not available" for those modules and for sig-storage-lib-external-provisioner here
// (see docs/development.md). The storage itself is real: ext4 on loop devices, and raw loop devices for Block.
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  get,
  items,
  KubeError,
  kubeRequest,
  loadKubeConfig,
  str,
  type KubeConfig,
  type Obj,
} from './kube.ts';
import { StorageError, Store, VolumeMode } from './volumes.ts';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) {
    console.error(`csi-driver: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
};

const DRIVER = env('CSI_DRIVER_NAME');
const NODE = env('CSI_NODE_NAME');
const CSI_SOCKET = env('CSI_SOCKET');
const REG_SOCKET = env('CSI_REGISTRATION_SOCKET');
const store = new Store(env('CSI_STATE_DIR'));
const kube = loadKubeConfig(env('KUBE_SERVER'), env('KUBE_CA'), env('KUBE_CERT'), env('KUBE_KEY'));

const here = dirname(fileURLToPath(import.meta.url));
const loadOpts = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const csiPkg = grpc.loadPackageDefinition(protoLoader.loadSync(join(here, 'proto', 'csi.proto'), loadOpts));
const regPkg = grpc.loadPackageDefinition(
  protoLoader.loadSync(join(here, 'proto', 'pluginregistration.proto'), loadOpts),
);

type Req = Record<string, unknown>;
type Handler = (req: Req) => unknown;

function log(msg: string): void {
  console.log(`${new Date().toISOString()} ${msg}`);
}

function service(pkg: grpc.GrpcObject, path: string[]): grpc.ServiceDefinition {
  let cur: unknown = pkg;
  for (const p of path) cur = (cur as Record<string, unknown>)[p];
  return (cur as { service: grpc.ServiceDefinition }).service;
}

/** Wraps synchronous handlers into grpc-js unary handlers with CSI error codes. */
function implement(handlers: Record<string, Handler>): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(handlers)) {
    impl[name] = (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      try {
        cb(null, fn(call.request));
      } catch (err) {
        const code =
          err instanceof StorageError
            ? {
                NOT_FOUND: grpc.status.NOT_FOUND,
                INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
                OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
                INTERNAL: grpc.status.INTERNAL,
              }[err.code]
            : grpc.status.INTERNAL;
        log(`${name} failed: ${(err as Error).message}`);
        cb({ code, details: (err as Error).message });
      }
    };
  }
  return impl;
}

function modeOf(caps: unknown): VolumeMode {
  const list = Array.isArray(caps) ? caps : [caps];
  return list.some((c) => get(c, 'block') !== undefined && get(c, 'block') !== null)
    ? VolumeMode.Block
    : VolumeMode.Filesystem;
}

function toCsiVolume(id: string, size: number): Obj {
  return { volume_id: id, capacity_bytes: String(size), volume_context: {} };
}

const identity = implement({
  GetPluginInfo: () => ({ name: DRIVER, vendor_version: '1.0.0' }),
  GetPluginCapabilities: () => ({
    capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }, { volume_expansion: { type: 'ONLINE' } }],
  }),
  Probe: () => ({ ready: { value: true } }),
});

const controller = implement({
  ControllerGetCapabilities: () => ({
    capabilities: ['CREATE_DELETE_VOLUME', 'CREATE_DELETE_SNAPSHOT', 'CLONE_VOLUME', 'EXPAND_VOLUME'].map(
      (type) => ({
        rpc: { type },
      }),
    ),
  }),
  CreateVolume: (req) => {
    const name = str(req, 'name') ?? '';
    const size = Number(get(req, 'capacity_range', 'required_bytes') ?? 0);
    const snap = str(req, 'volume_content_source', 'snapshot', 'snapshot_id');
    const vol = str(req, 'volume_content_source', 'volume', 'volume_id');
    const source = snap
      ? { kind: 'snapshot' as const, id: snap }
      : vol
        ? { kind: 'volume' as const, id: vol }
        : undefined;
    const v = store.createVolume(name, size, modeOf(req['volume_capabilities']), source);
    return { volume: toCsiVolume(v.id, v.sizeBytes) };
  },
  DeleteVolume: (req) => {
    store.deleteVolume(String(req['volume_id']));
    return {};
  },
  ValidateVolumeCapabilities: (req) => ({
    confirmed: { volume_capabilities: req['volume_capabilities'] },
  }),
  CreateSnapshot: (req) => {
    const s = store.createSnapshot(String(req['name']), String(req['source_volume_id']));
    log(`snapshot ${s.id} of ${s.sourceVolumeId}`);
    return {
      snapshot: {
        snapshot_id: s.id,
        source_volume_id: s.sourceVolumeId,
        size_bytes: String(s.sizeBytes),
        creation_time: { seconds: String(s.createdAtSeconds), nanos: 0 },
        ready_to_use: true,
      },
    };
  },
  DeleteSnapshot: (req) => {
    store.deleteSnapshot(String(req['snapshot_id']));
    return {};
  },
  ControllerExpandVolume: (req) => {
    const r = store.expandVolume(
      String(req['volume_id']),
      Number(get(req, 'capacity_range', 'required_bytes')),
    );
    return { capacity_bytes: String(r.volume.sizeBytes), node_expansion_required: r.nodeExpansionRequired };
  },
});

const node = implement({
  NodeGetInfo: () => ({ node_id: NODE, max_volumes_per_node: '0' }),
  NodeGetCapabilities: () => ({ capabilities: [{ rpc: { type: 'EXPAND_VOLUME' } }] }),
  NodePublishVolume: (req) => {
    const id = String(req['volume_id']);
    store.publish(id, String(req['target_path']), req['readonly'] === true);
    log(`published ${id} at ${String(req['target_path'])}`);
    return {};
  },
  NodeUnpublishVolume: (req) => {
    store.unpublish(String(req['volume_id']), String(req['target_path']));
    return {};
  },
  NodeExpandVolume: (req) => ({ capacity_bytes: String(store.nodeExpand(String(req['volume_id']))) }),
});

const registration = implement({
  GetInfo: () => ({ type: 'CSIPlugin', name: DRIVER, endpoint: CSI_SOCKET, supported_versions: ['1.0.0'] }),
  NotifyRegistrationStatus: (req) => {
    log(`kubelet registration: registered=${String(req['plugin_registered'])} ${str(req, 'error') ?? ''}`);
    return {};
  },
});

// ---- provisioner: PVCs of our StorageClasses -> volume + PV ----

const PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';

function parseQuantity(q: string): number {
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(q.trim());
  if (!m) throw new Error(`cannot parse quantity ${q}`);
  const mult: Record<string, number> = {
    '': 1,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  const f = mult[m[2] ?? ''];
  if (f === undefined) throw new Error(`unsupported quantity suffix in ${q}`);
  return Math.ceil(Number(m[1]) * f);
}

async function event(pvc: Obj, type: string, reason: string, message: string): Promise<void> {
  const ns = str(pvc, 'metadata', 'namespace') ?? 'default';
  await kubeRequest(kube, 'POST', `/api/v1/namespaces/${ns}/events`, {
    metadata: { generateName: `${str(pvc, 'metadata', 'name')}.` },
    involvedObject: {
      kind: 'PersistentVolumeClaim',
      namespace: ns,
      name: str(pvc, 'metadata', 'name'),
      uid: str(pvc, 'metadata', 'uid'),
      apiVersion: 'v1',
    },
    type,
    reason,
    message,
    source: { component: DRIVER },
    firstTimestamp: new Date().toISOString(),
    lastTimestamp: new Date().toISOString(),
    count: 1,
  }).catch(() => undefined);
}

const reported = new Set<string>();

/** Where the new volume's bytes come from, or 'wait' / 'skip'. */
async function contentSource(
  cfg: KubeConfig,
  pvc: Obj,
): Promise<{ kind: 'volume' | 'snapshot'; id: string } | undefined | 'wait' | 'skip'> {
  const ds = (get(pvc, 'spec', 'dataSourceRef') ?? get(pvc, 'spec', 'dataSource')) as Obj | undefined;
  if (!ds) return undefined;
  const ns = str(pvc, 'metadata', 'namespace') ?? 'default';
  const kind = str(ds, 'kind');
  const group = str(ds, 'apiGroup') ?? '';
  const name = str(ds, 'name') ?? '';
  const srcNs = str(ds, 'namespace') ?? ns;
  if (kind === 'PersistentVolumeClaim' && group === '') {
    const src = await kubeRequest(cfg, 'GET', `/api/v1/namespaces/${srcNs}/persistentvolumeclaims/${name}`);
    const pvName = str(src, 'spec', 'volumeName');
    if (!pvName || str(src, 'status', 'phase') !== 'Bound') return 'wait';
    const pv = await kubeRequest(cfg, 'GET', `/api/v1/persistentvolumes/${pvName}`);
    if (str(pv, 'spec', 'csi', 'driver') !== DRIVER) return 'skip';
    return { kind: 'volume', id: str(pv, 'spec', 'csi', 'volumeHandle') ?? '' };
  }
  if (kind === 'VolumeSnapshot' && group === 'snapshot.storage.k8s.io') {
    const snap = await kubeRequest(
      cfg,
      'GET',
      `/apis/snapshot.storage.k8s.io/v1/namespaces/${srcNs}/volumesnapshots/${name}`,
    );
    const contentName = str(snap, 'status', 'boundVolumeSnapshotContentName');
    if (get(snap, 'status', 'readyToUse') !== true || !contentName) return 'wait';
    const content = await kubeRequest(
      cfg,
      'GET',
      `/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/${contentName}`,
    );
    const handle = str(content, 'status', 'snapshotHandle');
    return handle ? { kind: 'snapshot', id: handle } : 'wait';
  }
  return 'skip'; // a volume populator (e.g. CDI's) owns this claim
}

async function provisionOnce(cfg: KubeConfig): Promise<void> {
  const classes = new Map<string, Obj>();
  for (const sc of items(await kubeRequest(cfg, 'GET', '/apis/storage.k8s.io/v1/storageclasses'))) {
    if (str(sc, 'provisioner') === DRIVER) classes.set(str(sc, 'metadata', 'name') ?? '', sc);
  }
  for (const pvc of items(await kubeRequest(cfg, 'GET', '/api/v1/persistentvolumeclaims'))) {
    const sc = classes.get(str(pvc, 'spec', 'storageClassName') ?? '');
    if (!sc || str(pvc, 'spec', 'volumeName') || str(pvc, 'status', 'phase') !== 'Pending') continue;
    if (get(pvc, 'metadata', 'deletionTimestamp')) continue;
    if (
      str(sc, 'volumeBindingMode') === 'WaitForFirstConsumer' &&
      !str(pvc, 'metadata', 'annotations', 'volume.kubernetes.io/selected-node')
    ) {
      continue;
    }
    const uid = str(pvc, 'metadata', 'uid') ?? '';
    const pvName = `pvc-${uid}`;
    const key = `${str(pvc, 'metadata', 'namespace')}/${str(pvc, 'metadata', 'name')}`;
    try {
      const source = await contentSource(cfg, pvc);
      if (source === 'wait' || source === 'skip') continue;
      const size = parseQuantity(str(pvc, 'spec', 'resources', 'requests', 'storage') ?? '1Mi');
      const mode = str(pvc, 'spec', 'volumeMode') === 'Block' ? VolumeMode.Block : VolumeMode.Filesystem;
      const v = store.createVolume(pvName, size, mode, source);
      await kubeRequest(cfg, 'POST', '/api/v1/persistentvolumes', {
        metadata: { name: pvName, annotations: { [PROVISIONED_BY]: DRIVER } },
        spec: {
          capacity: { storage: String(v.sizeBytes) },
          accessModes: get(pvc, 'spec', 'accessModes'),
          volumeMode: mode,
          storageClassName: str(sc, 'metadata', 'name'),
          persistentVolumeReclaimPolicy: str(sc, 'reclaimPolicy') ?? 'Delete',
          claimRef: {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            namespace: str(pvc, 'metadata', 'namespace'),
            name: str(pvc, 'metadata', 'name'),
            uid,
          },
          csi: {
            driver: DRIVER,
            volumeHandle: v.id,
            ...(mode === VolumeMode.Filesystem ? { fsType: 'ext4' } : {}),
          },
          nodeAffinity: {
            required: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [NODE] }] },
              ],
            },
          },
        },
      }).catch((err: unknown) => {
        if (!(err instanceof KubeError && err.status === 409)) throw err;
      });
      log(
        `provisioned ${pvName} for ${key} (${mode}, ${v.sizeBytes} bytes${source ? `, from ${source.kind} ${source.id}` : ''})`,
      );
      await event(pvc, 'Normal', 'ProvisioningSucceeded', `Successfully provisioned volume ${pvName}`);
    } catch (err) {
      const msg = (err as Error).message;
      if (!reported.has(`${key}:${msg}`)) {
        reported.add(`${key}:${msg}`);
        log(`provisioning ${key} failed: ${msg}`);
        await event(pvc, 'Warning', 'ProvisioningFailed', msg);
      }
    }
  }
  for (const pv of items(await kubeRequest(cfg, 'GET', '/api/v1/persistentvolumes'))) {
    if (str(pv, 'metadata', 'annotations', PROVISIONED_BY) !== DRIVER) continue;
    const phase = str(pv, 'status', 'phase');
    if (
      (phase !== 'Released' && phase !== 'Failed') ||
      str(pv, 'spec', 'persistentVolumeReclaimPolicy') !== 'Delete'
    ) {
      continue;
    }
    const name = str(pv, 'metadata', 'name') ?? '';
    try {
      store.deleteVolume(str(pv, 'spec', 'csi', 'volumeHandle') ?? name);
      await kubeRequest(cfg, 'DELETE', `/api/v1/persistentvolumes/${name}`).catch((err: unknown) => {
        if (!(err instanceof KubeError && err.status === 404)) throw err;
      });
      log(`deleted ${name}`);
    } catch (err) {
      log(`deleting ${name} failed: ${(err as Error).message}`);
    }
  }
}

function serve(socket: string, add: (s: grpc.Server) => void): Promise<grpc.Server> {
  if (existsSync(socket)) rmSync(socket);
  const server = new grpc.Server();
  add(server);
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) reject(err);
      else resolve(server);
    });
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === 'cleanup') {
    store.unpublishAll();
    return;
  }
  const csi = await serve(CSI_SOCKET, (s) => {
    s.addService(service(csiPkg, ['csi', 'v1', 'Identity']), identity);
    s.addService(service(csiPkg, ['csi', 'v1', 'Controller']), controller);
    s.addService(service(csiPkg, ['csi', 'v1', 'Node']), node);
  });
  const reg = await serve(REG_SOCKET, (s) => {
    s.addService(service(regPkg, ['pluginregistration', 'Registration']), registration);
  });
  log(`CSI driver ${DRIVER} listening on ${CSI_SOCKET}; registration socket ${REG_SOCKET}`);
  let stopping = false;
  const stop = (): void => {
    stopping = true;
    csi.forceShutdown();
    reg.forceShutdown();
    rmSync(REG_SOCKET, { force: true });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  while (!stopping) {
    try {
      await provisionOnce(kube);
    } catch (err) {
      log(`provisioner: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

main().catch((err: unknown) => {
  console.error(`csi-driver: ${(err as Error).message}`);
  process.exit(1);
});
