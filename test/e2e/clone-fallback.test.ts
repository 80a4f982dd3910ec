// Clone strategy fallbacks end to end on the full cluster (src/controller/clone/strategy.ts, upstream planner.go): a
// smart clone the storage cannot do for this pair is copied host-assisted instead, with upstream's reason in
// cdi.kubevirt.io/cloneFallbackReason and a Warning event.
//   NoVolumeExpansion:  a larger target in a class of the CSI driver with allowVolumeExpansion false (the profile
//                       would take a snapshot: the class has the driver's VolumeSnapshotClass).
//   NoProvisionerMatch: a source.snapshot into a class of another provisioner (kubernetes.io/no-provisioner), which
//                       binds the target to a static hostPath PV made for it: the snapshot is restored beside itself
//                       through the driver's class and that claim copied.
// Holds the cluster lock: `flock -o /work/cluster-tests.lock bash -c 'bash hack/images/build.sh && node --test
// test/e2e/clone-fallback.test.ts'`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { parseQuantity } from '../../src/api/quantity.ts';
import type { DataVolume } from '../../src/controller/shared/types.ts';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../src/kube/index.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import {
  clusterClient,
  createNamespace,
  deleteIfExists,
  eventually,
  kubectl,
} from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  deployCdi,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  type Fixtures,
} from './harness.ts';
import { cloneLeftovers, VolumeSnapshot } from './leftovers.ts';

const A = 'cdi.kubevirt.io/';
const suffix = randomBytes(2).toString('hex');
/** The CSI driver's class, as the e2e's own, but without volume expansion. */
const NOEXPAND = `cdi-e2e-noexpand-${suffix}`;
/** A class of another provisioner: nothing provisions it, its claims bind to the static PV below. */
const STATIC = `cdi-e2e-static-${suffix}`;
const STATIC_PV = `cdi-e2e-static-${suffix}`;
/** The static PV's directory on the node (the node is this machine: the local cluster's kubelet). */
const STATIC_DIR = `/var/tmp/cdi-e2e-static-${suffix}`;
/** The upload server runs as qemu (Pod.qemuUid); a hostPath volume gets no fsGroup, so the directory is its own. */
const QEMU_UID = 107;

type Dv = DataVolume & KubeObject;
type Pv = KubeObject & {
  spec?: { claimRef?: { name?: string; namespace?: string } };
  status?: { phase?: string };
};

let client: KubeClient;
let ns: string;
let fx: Fixtures;
let http: FileServer;
const cleanups: (() => Promise<void>)[] = [];

const getDv = (name: string): Promise<Dv | undefined> =>
  client.getOrUndefined<Dv>(Resources.DataVolume, name, ns);

async function waitDv(name: string, phase: string, limitMs = 300_000): Promise<Dv> {
  return eventually(
    `DataVolume ${ns}/${name} ${phase}`,
    async () => {
      const dv = await getDv(name);
      if (phase !== 'Failed' && dv?.status?.phase === 'Failed')
        throw new Error(`DataVolume ${name} Failed: ${JSON.stringify(dv.status.conditions)}`);
      return dv?.status?.phase === phase ? dv : undefined;
    },
    limitMs,
    1000,
  );
}

async function createDv(name: string, spec: DataVolume['spec']): Promise<void> {
  await client.create<Dv>(Resources.DataVolume, { metadata: { name, namespace: ns }, spec });
}

async function events(name: string): Promise<{ type?: string; reason?: string; message?: string }[]> {
  const l = await client.list<KubeObject & { type?: string; reason?: string; message?: string }>(
    Resources.Event,
    { namespace: ns, fieldSelector: `involvedObject.name=${name}` },
  );
  return l.items;
}

/**
 * Every phase a DataVolume shows, in order, from one watch started before it exists; `stop()` ends the watch and
 * returns them (as in clone.test.ts).
 */
function watchPhases(name: string): { stop: () => Promise<string[]> } {
  const ac = new AbortController();
  const seen: string[] = [];
  const done = (async () => {
    for await (const ev of client.watch<DataVolume>(Resources.DataVolume, {
      namespace: ns,
      fieldSelector: `metadata.name=${name}`,
      signal: ac.signal,
    })) {
      const phase = ev.object.status?.phase;
      if (phase && seen.at(-1) !== phase) seen.push(phase);
    }
  })();
  return {
    stop: async () => {
      ac.abort();
      await done.catch(() => undefined);
      return seen;
    },
  };
}

/** Waits until the clone of `dv` left nothing behind (pods, temporary claims and snapshots, their volumes). */
const nothingLeft = (dv: Dv): Promise<unknown> =>
  eventually(
    `nothing of ${dv.metadata.name} left`,
    async () => {
      const left = await cloneLeftovers(client, {
        uid: dv.metadata.uid ?? '',
        srcNs: ns,
        targetNs: ns,
        targetName: dv.metadata.name ?? '',
      });
      if (left.length > 0) throw new Error(`left: ${left.join(', ')}`);
      return true;
    },
    120_000,
    1000,
  );

/** The StorageProfile of `cls` as the controller made it, once it has what `ready` wants. */
const profileReady = (cls: string, ready: (s: Record<string, unknown>) => boolean): Promise<unknown> =>
  eventually(
    `StorageProfile ${cls}`,
    async () => {
      const p = await client.getOrUndefined<KubeObject & { status?: Record<string, unknown> }>(
        Resources.StorageProfile,
        cls,
      );
      return p?.status && ready(p.status) ? p : undefined;
    },
    60_000,
    500,
  );

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  cleanups.push(await deployCdi(client));
  const n = await createNamespace(client, 'e2e-fallback');
  ns = n.name;
  cleanups.push(n.cleanup);

  // the strategies come from the profiles here: no override (put back what there was)
  const cdi = await client.get<KubeObject & { spec?: { cloneStrategyOverride?: string } }>(
    Resources.CDI,
    'cdi',
  );
  const override = cdi.spec?.cloneStrategyOverride;
  if (override) {
    await client.mergePatch(Resources.CDI, 'cdi', { spec: { cloneStrategyOverride: null } });
    cleanups.push(async () => {
      await client.mergePatch(Resources.CDI, 'cdi', { spec: { cloneStrategyOverride: override } });
    });
  }

  // the e2e's class with its parameters, less volume expansion; and a class of a provisioner nobody runs
  const base = await client.get<KubeObject & Record<string, unknown>>(Resources.StorageClass, STORAGE_CLASS);
  const propertySets = (base.metadata?.annotations ?? {})[`${A}claim-property-sets`] ?? '';
  for (const [name, provisioner, allowVolumeExpansion] of [
    [NOEXPAND, base['provisioner'], false],
    [STATIC, 'kubernetes.io/no-provisioner', false],
  ] as const) {
    await client.create(Resources.StorageClass, {
      metadata: { name, annotations: { [`${A}claim-property-sets`]: propertySets } },
      provisioner,
      ...(base['parameters'] ? { parameters: base['parameters'] } : {}),
      reclaimPolicy: name === STATIC ? 'Retain' : 'Delete',
      volumeBindingMode: 'Immediate',
      allowVolumeExpansion,
    } as KubeObject);
    cleanups.push(() => deleteIfExists(client, Resources.StorageClass, name));
  }
  // the profile would take a snapshot (the driver has a VolumeSnapshotClass): what falls back is that
  await profileReady(NOEXPAND, (s) => s['cloneStrategy'] === 'snapshot' && !!s['snapshotClass']);
  await profileReady(STATIC, (s) => Array.isArray(s['claimPropertySets']));

  fx = await makeFixtures();
  http = await startFileServer({ root: fx.dir, host: NODE_IP });
  cleanups.push(
    () => http.close(),
    () => fx.cleanup(),
  );
  await createDv('src', {
    source: { http: { url: `${http.url}/disk.raw` } },
    storage: { storageClassName: NOEXPAND, resources: { requests: { storage: '64Mi' } } },
  });
  await waitDv('src', 'Succeeded');
});

after(async () => {
  // the controller removes its finalizers: DataVolumes and clone PVCs go while it still runs
  if (ns)
    await kubectl(
      '-n',
      ns,
      'delete',
      'datavolumes,pvc,volumesnapshots',
      '--all',
      '--wait=true',
      '--timeout=120s',
    );
  // the static PV is Retain: it and its directory are ours to remove
  await deleteIfExists(client, Resources.PersistentVolume, STATIC_PV).catch((e: unknown) =>
    console.error(String(e)),
  );
  await rm(STATIC_DIR, { recursive: true, force: true });
  for (const c of cleanups.reverse()) await c().catch((e: unknown) => console.error(String(e)));
  if (ns)
    await eventually(
      `namespace ${ns} gone`,
      async () => !(await client.getOrUndefined(Resources.Namespace, ns)),
      180_000,
      1000,
    );
  // nothing of the classes' volumes either
  const pvs = (await client.list<Pv>(Resources.PersistentVolume)).items.filter(
    (pv) => pv.spec?.claimRef?.namespace === ns || pv.metadata?.name === STATIC_PV,
  );
  await eventually(
    `the volumes of ${ns} gone (${pvs.map((p) => p.metadata?.name).join(', ')})`,
    async () => {
      for (const pv of pvs)
        if (await client.getOrUndefined(Resources.PersistentVolume, pv.metadata?.name ?? '')) return false;
      return true;
    },
    120_000,
    1000,
  );
});

void test('NoVolumeExpansion: a larger target on a class that cannot expand is copied host-assisted, with the reason and the event', async () => {
  const src = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'src', ns);
  const srcSize = parseQuantity(src.status?.capacity?.['storage'] ?? '0');
  const watch = watchPhases('bigger');
  await createDv('bigger', {
    source: { pvc: { namespace: ns, name: 'src' } },
    storage: { storageClassName: NOEXPAND, resources: { requests: { storage: '128Mi' } } },
  });
  const dv = await waitDv('bigger', 'Succeeded');
  const phases = await watch.stop();

  // the choice and its reason: on the DataVolume, and on the target PVC (which takes the DataVolume's annotations)
  assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'copy');
  assert.equal(dv.metadata.annotations?.[`${A}cloneFallbackReason`], 'No volume expansion is possible');
  const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'bigger', ns);
  const a = pvc.metadata?.annotations ?? {};
  assert.equal(a[`${A}cloneFallbackReason`], 'No volume expansion is possible');
  const ev = (await events('bigger')).filter((e) => e.reason === 'NoVolumeExpansion');
  assert.ok(ev.length > 0, 'a NoVolumeExpansion event');
  assert.ok(
    ev.every((e) => e.type === 'Warning' && e.message === 'No volume expansion is possible'),
    JSON.stringify(ev),
  );

  // host-assisted: the clone controller's copy (upload and source pods), not a snapshot
  assert.equal(a['k8s.io/CloneRequest'], `${ns}/src`);
  assert.equal(a['k8s.io/CloneOf'], 'true');
  assert.ok(phases.includes('CloneInProgress'), `phases seen: ${phases.join(' → ')}`);
  assert.ok(!phases.includes('SnapshotForSmartCloneInProgress'), `phases seen: ${phases.join(' → ')}`);
  assert.ok(
    (await events('bigger')).some((e) => e.reason === 'CloneSucceeded'),
    'the clone controller reports the copy',
  );
  assert.equal(await client.getOrUndefined(VolumeSnapshot, `tmp-snapshot-${dv.metadata.uid}`, ns), undefined);

  // the target at its size, in its class, holding the source's data
  assert.equal(pvc.spec?.storageClassName, NOEXPAND);
  // the storage API asks for the file system's overhead on top (the source's 64Mi became its capacity, more)
  const request = parseQuantity(pvc.spec?.resources?.requests?.['storage'] ?? '0');
  const capacity = parseQuantity(pvc.status?.capacity?.['storage'] ?? '0');
  assert.ok(request >= 128n << 20n, `request ${request}`);
  assert.ok(capacity >= request, `capacity ${capacity}, request ${request}`);
  assert.ok(capacity > srcSize, `the target (${capacity}) is larger than the source (${srcSize})`);
  assert.equal(await md5OnVolume(client, ns, 'bigger', { bytes: fx.rawSize }), fx.rawMd5);
  await nothingLeft(dv);
});

void test('NoProvisionerMatch: a snapshot into a class of another provisioner is restored beside itself and copied host-assisted', async () => {
  // a static volume for the target, bound to it alone (claimRef), in a directory the upload server may write
  await mkdir(STATIC_DIR, { mode: 0o750 });
  await chown(STATIC_DIR, QEMU_UID, QEMU_UID);
  await client.create(Resources.PersistentVolume, {
    metadata: { name: STATIC_PV },
    spec: {
      storageClassName: STATIC,
      capacity: { storage: '128Mi' },
      accessModes: ['ReadWriteOnce'],
      volumeMode: 'Filesystem',
      persistentVolumeReclaimPolicy: 'Retain',
      hostPath: { path: STATIC_DIR, type: 'Directory' },
      claimRef: { namespace: ns, name: 'from-snap' },
    },
  } as KubeObject);

  await client.create(VolumeSnapshot, {
    metadata: { name: 'src-snap', namespace: ns },
    spec: { source: { persistentVolumeClaimName: 'src' } },
  } as KubeObject);
  await eventually(
    'the snapshot src-snap ready to use',
    async () =>
      (await client.get<KubeObject & { status?: { readyToUse?: boolean } }>(VolumeSnapshot, 'src-snap', ns))
        .status?.readyToUse === true,
    120_000,
    1000,
  );

  const watch = watchPhases('from-snap');
  await createDv('from-snap', {
    source: { snapshot: { namespace: ns, name: 'src-snap' } },
    storage: { storageClassName: STATIC, resources: { requests: { storage: '80Mi' } } },
  });
  const dv = await waitDv('from-snap', 'Succeeded');
  const phases = await watch.stop();
  const reason = 'The storageclass provisioner does not match the volumesnapshotcontent driver';
  assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'copy');
  assert.equal(dv.metadata.annotations?.[`${A}cloneFallbackReason`], reason);
  const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'from-snap', ns);
  const a = pvc.metadata?.annotations ?? {};
  assert.equal(a[`${A}cloneFallbackReason`], reason);
  const ev = (await events('from-snap')).filter((e) => e.reason === 'NoProvisionerMatch');
  assert.ok(ev.length > 0, 'a NoProvisionerMatch event');
  assert.ok(
    ev.every((e) => e.type === 'Warning' && e.message === reason),
    JSON.stringify(ev),
  );

  // restored through the driver's class beside the snapshot, that claim copied into the static volume
  assert.equal(a['k8s.io/CloneRequest'], `${ns}/${dv.metadata.uid}-host-assisted-source-pvc`);
  assert.equal(a['k8s.io/CloneOf'], 'true');
  assert.equal(pvc.spec?.volumeName, STATIC_PV);
  assert.equal(pvc.status?.capacity?.['storage'], '128Mi');
  assert.deepEqual(
    phases.slice(phases.indexOf('CloneFromSnapshotSourceInProgress')),
    ['CloneFromSnapshotSourceInProgress', 'CloneScheduled', 'CloneInProgress', 'Succeeded'],
    `phases seen: ${phases.join(' → ')}`,
  );
  assert.equal(await md5OnVolume(client, ns, 'from-snap', { bytes: fx.rawSize }), fx.rawMd5);
  await nothingLeft(dv);
  assert.ok(await client.getOrUndefined(VolumeSnapshot, 'src-snap', ns), "the user's snapshot stays");
});
