// Clones end to end on the full cluster: the deployed cdi-controller (clone controllers), real upload server and
// cloner pods from the local registry, the CSI hostpath driver's snapshots and clones, the deployed cdi-apiserver's
// clone webhooks as the operator registers them, and a verifier pod that checks the md5 on each target.
// Holds the cluster lock: `flock -o /work/cluster-tests.lock bash -c 'bash hack/images/build.sh && node --test
// test/e2e/clone.test.ts'`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { DataVolume } from '../../src/controller/shared/types.ts';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Resource,
} from '../../src/kube/index.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import {
  clusterClient,
  createNamespace,
  eventually,
  kubeconfigPath,
  kubectl,
} from '../integration/kube/cluster.ts';
import { deleteIfExists, R } from '../integration/upload/support.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  deployCdi,
  imagesEnv,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  type Fixtures,
} from './harness.ts';
import { cloneLeftovers } from './leftovers.ts';

const A = 'cdi.kubevirt.io/';
const CSI_CLASS = `cdi-e2e-csiclone-${randomBytes(2).toString('hex')}`;
const res = (group: string, kind: string, plural: string, namespaced: boolean, version = 'v1'): Resource => ({
  group,
  version,
  kind,
  plural,
  namespaced,
});
const VolumeSnapshot = res('snapshot.storage.k8s.io', 'VolumeSnapshot', 'volumesnapshots', true);
const StorageClass = Resources.StorageClass;
const CDI = Resources.CDI;
const ServiceAccount = res('', 'ServiceAccount', 'serviceaccounts', true);
const ResourceQuota = res('', 'ResourceQuota', 'resourcequotas', true);

let client: KubeClient;
let golden: string;
let alice: string;
let fx: Fixtures;
let http: FileServer;
let sa: string;
const cleanups: (() => Promise<void>)[] = [];

const getDv = (ns: string, name: string): Promise<(DataVolume & KubeObject) | undefined> =>
  client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, name, ns);

async function waitDv(ns: string, name: string, phase: string, limitMs = 300_000): Promise<DataVolume> {
  return eventually(
    `DataVolume ${ns}/${name} ${phase}`,
    async () => {
      const dv = await getDv(ns, name);
      if (phase !== 'Failed' && dv?.status?.phase === 'Failed')
        throw new Error(`DataVolume ${name} Failed: ${JSON.stringify(dv.status.conditions)}`);
      return dv?.status?.phase === phase ? dv : undefined;
    },
    limitMs,
    1000,
  );
}

function cloneSpec(
  srcNs: string,
  src: string,
  o: { kind?: 'pvc' | 'snapshot'; volumeMode?: string; size?: string; storageClassName?: string } = {},
): DataVolume['spec'] {
  return {
    source: { [o.kind ?? 'pvc']: { namespace: srcNs, name: src } },
    storage: {
      storageClassName: o.storageClassName ?? STORAGE_CLASS,
      ...(o.volumeMode ? { volumeMode: o.volumeMode } : {}),
      ...(o.size ? { resources: { requests: { storage: o.size } } } : {}),
    },
  };
}

async function createDv(ns: string, name: string, spec: DataVolume['spec']): Promise<void> {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name, namespace: ns },
    spec,
  });
}

async function importSource(name: string, volumeMode: 'Filesystem' | 'Block'): Promise<void> {
  await createDv(golden, name, {
    source: { http: { url: `${http.url}/disk.raw` } },
    storage: {
      storageClassName: STORAGE_CLASS,
      volumeMode,
      resources: { requests: { storage: '64Mi' } },
    },
  });
}

const md5Of = (ns: string, pvc: string, block = false): Promise<string> =>
  md5OnVolume(client, ns, pvc, { block, bytes: fx.rawSize });

async function events(ns: string, name: string): Promise<{ reason?: string; message?: string }[]> {
  const l = await client.list<KubeObject & { reason?: string; message?: string }>(Resources.Event, {
    namespace: ns,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return l.items;
}

/** What a clone may leave behind, by name, in both namespaces: nothing, once it is done or deleted. */
const leftovers = (dv: DataVolume, srcNs: string): Promise<string[]> =>
  cloneLeftovers(client, {
    uid: dv.metadata.uid ?? '',
    srcNs,
    targetNs: dv.metadata.namespace ?? '',
    targetName: dv.metadata.name ?? '',
  });

/** Waits until `find` reports nothing left of `what`; the last list it reported is the failure. */
const nothingLeft = (what: string, find: () => Promise<string[]>): Promise<unknown> =>
  eventually(
    `nothing of ${what} left`,
    async () => {
      const left = await find();
      if (left.length > 0) throw new Error(`left: ${left.join(', ')}`);
      return true;
    },
    120_000,
    1000,
  );

/** Sets CDI.spec.cloneStrategyOverride (the CR is made if missing); the cleanup puts back what was there. */
let overrideRestore: (() => Promise<void>) | undefined;
async function setOverride(strategy: string | undefined): Promise<void> {
  const existing = await client.getOrUndefined<KubeObject & { spec?: Record<string, unknown> }>(CDI, 'cdi');
  if (!existing) {
    await client.create(CDI, { metadata: { name: 'cdi' }, spec: {} });
    cleanups.push(() => deleteIfExists(client, CDI, 'cdi'));
  } else if (!overrideRestore) {
    const before = existing.spec?.['cloneStrategyOverride'] ?? null;
    overrideRestore = () =>
      client.mergePatch(CDI, 'cdi', { spec: { cloneStrategyOverride: before } }).then(() => undefined);
    cleanups.push(overrideRestore);
  }
  await client.mergePatch(CDI, 'cdi', { spec: { cloneStrategyOverride: strategy ?? null } });
}

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  const undeploy = await deployCdi(client);
  cleanups.push(undeploy);
  const g = await createNamespace(client, 'e2e-golden');
  const a = await createNamespace(client, 'e2e-alice');
  golden = g.name;
  alice = a.name;
  cleanups.push(g.cleanup, a.cleanup);

  // the clone webhooks are the deployed cdi-apiserver's (datavolume-mutate, datavolume-validate, pvc-clone-mutate),
  // registered by the operator for every namespace, signing clone tokens with cdi-api-signing-key

  // alice's ServiceAccount: DataVolumes, PVCs and pods in her own namespace, nothing in golden
  await client.create(ServiceAccount, { metadata: { name: 'vm-owner', namespace: alice } });
  sa = `system:serviceaccount:${alice}:vm-owner`;
  await client.create(R.Role, {
    metadata: { name: 'vm-owner', namespace: alice },
    rules: [
      { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['create', 'get'] },
      { apiGroups: [''], resources: ['persistentvolumeclaims', 'pods'], verbs: ['create', 'get'] },
    ],
  } as KubeObject);
  await client.create(R.RoleBinding, {
    metadata: { name: 'vm-owner', namespace: alice },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'vm-owner' },
    subjects: [{ kind: 'ServiceAccount', name: 'vm-owner', namespace: alice }],
  } as KubeObject);

  // a class of the same driver whose profile asks for CSI clones
  const base = await client.get<KubeObject & Record<string, unknown>>(StorageClass, STORAGE_CLASS);
  await client.create(StorageClass, {
    metadata: {
      name: CSI_CLASS,
      annotations: {
        [`${A}clone-strategy`]: 'csi-clone',
        [`${A}claim-property-sets`]: (base.metadata?.annotations ?? {})[`${A}claim-property-sets`] ?? '',
      },
    },
    provisioner: base['provisioner'],
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
    allowVolumeExpansion: true,
  } as KubeObject);
  cleanups.push(() => deleteIfExists(client, StorageClass, CSI_CLASS));

  fx = await makeFixtures();
  http = await startFileServer({ root: fx.dir, host: NODE_IP });
  cleanups.push(
    () => http.close(),
    () => fx.cleanup(),
  );
  await importSource('src-fs', 'Filesystem');
  await importSource('src-block', 'Block');
  await waitDv(golden, 'src-fs', 'Succeeded');
  await waitDv(golden, 'src-block', 'Succeeded');
});

after(async () => {
  // the controller removes its finalizers: DataVolumes and clone PVCs go while it still runs
  for (const ns of [alice, golden].filter(Boolean)) {
    await kubectl('-n', ns, 'delete', 'datavolumes,pvc', '--all', '--wait=true', '--timeout=120s');
  }
  for (const c of cleanups.reverse()) await c().catch((e: unknown) => console.error(String(e)));
  for (const ns of [alice, golden].filter(Boolean))
    await eventually(
      `namespace ${ns} gone`,
      async () => !(await client.getOrUndefined(Resources.Namespace, ns)),
      180_000,
      1000,
    );
});

void test('copy within a namespace (cloneStrategyOverride: copy): Succeeded, the bytes match, the pods are gone', async () => {
  await setOverride('copy');
  await createDv(golden, 'copy-same', cloneSpec(golden, 'src-fs'));
  const dv = await waitDv(golden, 'copy-same', 'Succeeded');
  assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'copy');
  assert.equal(dv.status?.progress, '100.0%');
  const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'copy-same', golden);
  assert.equal(pvc.metadata?.annotations?.['k8s.io/CloneOf'], 'true');
  assert.equal(await md5Of(golden, 'copy-same'), fx.rawMd5);
  await eventually('the clone pods gone', async () => (await leftovers(dv, golden)).length === 0);
});

/**
 * Every phase a DataVolume shows, in order, from one watch started before it exists (each status write is one
 * MODIFIED event, so no phase in between is lost to polling); `stop()` ends the watch and returns them.
 */
function watchPhases(ns: string, name: string): { stop: () => Promise<string[]> } {
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

void test('copy Block → Block: CloneScheduled, then CloneInProgress, then Succeeded; every byte of the device', async () => {
  await setOverride('copy');
  const watch = watchPhases(golden, 'copy-block');
  await createDv(golden, 'copy-block', cloneSpec(golden, 'src-block', { volumeMode: 'Block' }));
  const dv = await waitDv(golden, 'copy-block', 'Succeeded');
  const phases = await watch.stop();
  assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'copy');
  // what comes before the clone is scheduled (Pending, PVCBound) varies with the timing; from there on the order is fixed
  assert.deepEqual(
    phases.slice(phases.indexOf('CloneScheduled')),
    ['CloneScheduled', 'CloneInProgress', 'Succeeded'],
    `phases seen: ${phases.join(' → ')}`,
  );
  assert.equal(await md5Of(golden, 'copy-block', true), fx.rawMd5);
  await eventually('the clone pods gone', async () => (await leftovers(dv, golden)).length === 0);
});

void test('copy across namespaces: the webhook grants it, the controller mints the long-term token, the bytes match', async () => {
  await setOverride('copy');
  await createDv(alice, 'copy-cross', cloneSpec(golden, 'src-fs'));
  const dv = await waitDv(alice, 'copy-cross', 'Succeeded');
  assert.ok(
    dv.metadata.annotations?.[`${A}storage.extended.clone.token`],
    'long-term token on the DataVolume',
  );
  assert.equal(dv.metadata.annotations?.[`${A}storage.clone.token`], undefined);
  assert.equal(await md5Of(alice, 'copy-cross'), fx.rawMd5);
  await eventually(
    'nothing left in either namespace',
    async () => (await leftovers(dv, golden)).length === 0,
  );
});

void test('Filesystem → Block and Block → Filesystem: host-assisted with the fallback reason, the bytes match', async () => {
  await setOverride(undefined);
  await createDv(alice, 'fs-to-block', cloneSpec(golden, 'src-fs', { volumeMode: 'Block', size: '64Mi' }));
  await createDv(
    alice,
    'block-to-fs',
    // a bigger claim: ext4 on a volume this small takes more than the 5.5 % the overhead default allows for, and
    // the whole 64Mi device must fit in the file system
    cloneSpec(golden, 'src-block', { volumeMode: 'Filesystem', size: '80Mi' }),
  );
  const a = await waitDv(alice, 'fs-to-block', 'Succeeded');
  const b = await waitDv(alice, 'block-to-fs', 'Succeeded');
  for (const dv of [a, b]) {
    assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'copy');
    assert.equal(
      dv.metadata.annotations?.[`${A}cloneFallbackReason`],
      'The volume modes of source and target are incompatible',
    );
  }
  assert.ok((await events(alice, 'fs-to-block')).some((e) => e.reason === 'IncompatibleVolumeModes'));
  assert.equal(await md5Of(alice, 'fs-to-block', true), fx.rawMd5);
  assert.equal(await md5Of(alice, 'block-to-fs'), fx.rawMd5);
});

void test('snapshot clone within and across namespaces: restored from a temporary snapshot, nothing left behind', async () => {
  await setOverride(undefined);
  await createDv(golden, 'snap-same', cloneSpec(golden, 'src-fs'));
  await createDv(alice, 'snap-cross', cloneSpec(golden, 'src-fs'));
  for (const [ns, name] of [
    [golden, 'snap-same'],
    [alice, 'snap-cross'],
  ] as const) {
    const dv = await waitDv(ns, name, 'Succeeded');
    assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'snapshot');
    assert.equal(await md5Of(ns, name), fx.rawMd5);
    assert.deepEqual(await leftovers(dv, golden), []);
    assert.deepEqual(dv.metadata.finalizers ?? [], []);
  }
  // the moved volume is the target's, with its class's reclaim policy again
  const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'snap-cross', alice);
  const pv = await client.get<KubeObject & { spec?: { persistentVolumeReclaimPolicy?: string } }>(
    Resources.PersistentVolume,
    pvc.spec?.volumeName ?? '',
  );
  assert.equal(pv.spec?.persistentVolumeReclaimPolicy, 'Delete');
});

void test('CSI clone within and across namespaces (profile cloneStrategy csi-clone)', async () => {
  await setOverride(undefined);
  await createDv(golden, 'csi-same', cloneSpec(golden, 'src-fs', { storageClassName: CSI_CLASS }));
  await createDv(alice, 'csi-cross', cloneSpec(golden, 'src-fs', { storageClassName: CSI_CLASS }));
  for (const [ns, name] of [
    [golden, 'csi-same'],
    [alice, 'csi-cross'],
  ] as const) {
    const dv = await waitDv(ns, name, 'Succeeded');
    assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'csi-clone');
    assert.equal(await md5Of(ns, name), fx.rawMd5);
    assert.deepEqual(await leftovers(dv, golden), []);
  }
});

/** A VolumeSnapshot of golden/src-fs (the default class: cdi-hostpath-snapclass), ready to use; removed at the end. */
async function snapshotOfSource(name: string): Promise<void> {
  await client.create(VolumeSnapshot, {
    metadata: { name, namespace: golden },
    spec: { source: { persistentVolumeClaimName: 'src-fs' } },
  } as KubeObject);
  cleanups.push(() => deleteIfExists(client, VolumeSnapshot, name, golden));
  await eventually(
    `the snapshot ${name} ready to use`,
    async () =>
      (await client.get<KubeObject & { status?: { readyToUse?: boolean } }>(VolumeSnapshot, name, golden))
        .status?.readyToUse === true,
    120_000,
    1000,
  );
}

void test('source.snapshot: a DataVolume from a VolumeSnapshot, in its namespace and in another', async () => {
  await setOverride(undefined);
  await snapshotOfSource('golden-snap');
  await createDv(golden, 'from-snap', cloneSpec(golden, 'golden-snap', { kind: 'snapshot', size: '64Mi' }));
  await createDv(alice, 'from-snap-x', cloneSpec(golden, 'golden-snap', { kind: 'snapshot', size: '64Mi' }));
  for (const [ns, name] of [
    [golden, 'from-snap'],
    [alice, 'from-snap-x'],
  ] as const) {
    const dv = await waitDv(ns, name, 'Succeeded');
    assert.equal(await md5Of(ns, name), fx.rawMd5);
    assert.deepEqual(await leftovers(dv, golden), []);
  }
  // the user's snapshot is theirs: a clone from it leaves it in place
  assert.ok(await client.getOrUndefined(VolumeSnapshot, 'golden-snap', golden));
});

void test('source.snapshot into a Block target: restored into a temporary claim, copied host-assisted, nothing left behind', async () => {
  await setOverride(undefined);
  // the snapshot of a Filesystem claim cannot be restored as a Block volume (upstream IncompatibleVolumeModes): the
  // controller restores it beside itself and copies that claim's disk.img onto the target's device
  await snapshotOfSource('fs-snap');
  // 80Mi: a size the restored claim's usable space (its restore size less the file system's overhead) surely fits
  const spec = cloneSpec(golden, 'fs-snap', { kind: 'snapshot', volumeMode: 'Block', size: '80Mi' });
  const watch = watchPhases(alice, 'snap-copy-x');
  await createDv(golden, 'snap-copy', spec);
  await createDv(alice, 'snap-copy-x', spec);
  for (const [ns, name] of [
    [golden, 'snap-copy'],
    [alice, 'snap-copy-x'],
  ] as const) {
    const dv = await waitDv(ns, name, 'Succeeded');
    assert.equal(dv.metadata.annotations?.[`${A}cloneType`], 'copy');
    assert.equal(
      dv.metadata.annotations?.[`${A}cloneFallbackReason`],
      'The volume modes of source and target are incompatible',
    );
    assert.ok((await events(ns, name)).some((e) => e.reason === 'IncompatibleVolumeModes'));
    const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns);
    assert.equal(
      pvc.metadata?.annotations?.['k8s.io/CloneRequest'],
      `${golden}/${dv.metadata.uid}-host-assisted-source-pvc`,
    );
    // the restored claim's events (the external-provisioner's restore) are on the target, prefixed with its name
    const prefix = `[${dv.metadata.uid}-host-assisted-source-pvc] : `;
    const mirrored = (await events(ns, name)).filter((e) => e.message?.startsWith(prefix));
    assert.ok(
      mirrored.some((e) => e.reason === 'ProvisioningSucceeded'),
      `mirrored events: ${JSON.stringify(mirrored)}`,
    );
    assert.equal(await md5Of(ns, name, true), fx.rawMd5);
    // the restored claim, its volume, the source and upload pods: all go once the copy is done
    await nothingLeft(name, () => leftovers(dv, golden));
    assert.deepEqual((await getDv(ns, name))?.metadata.finalizers ?? [], []);
  }
  const phases = await watch.stop();
  assert.deepEqual(
    phases.slice(phases.indexOf('CloneFromSnapshotSourceInProgress')),
    ['CloneFromSnapshotSourceInProgress', 'CloneScheduled', 'CloneInProgress', 'Succeeded'],
    `phases seen: ${phases.join(' → ')}`,
  );
  assert.ok(await client.getOrUndefined(VolumeSnapshot, 'fs-snap', golden), "the user's snapshot stays");

  // deleted while the snapshot is restored or copied: the restored claim and its volume go with the DataVolume
  await createDv(alice, 'snap-copy-del', spec);
  const started = await eventually(
    'the restored claim made',
    async () => {
      const dv = await getDv(alice, 'snap-copy-del');
      const uid = dv?.metadata.uid ?? '';
      const tmp =
        uid &&
        (await client.getOrUndefined(
          Resources.PersistentVolumeClaim,
          `${uid}-host-assisted-source-pvc`,
          golden,
        ));
      return tmp ? dv : undefined;
    },
    120_000,
    200,
  );
  await client.delete(Resources.DataVolume, 'snap-copy-del', { namespace: alice });
  await eventually('snap-copy-del gone', async () => !(await getDv(alice, 'snap-copy-del')), 120_000, 1000);
  await nothingLeft('snap-copy-del', () =>
    cloneLeftovers(client, {
      uid: started.metadata.uid ?? '',
      srcNs: golden,
      targetNs: alice,
      targetName: 'snap-copy-del',
      storage: true,
    }),
  );
  assert.equal(
    await client.getOrUndefined(Resources.PersistentVolumeClaim, 'snap-copy-del', alice),
    undefined,
  );
});

void test('source.snapshot copied: the restored claim deleted by hand before the copy is made again; the bytes match', async () => {
  await setOverride(undefined);
  await snapshotOfSource('fs-snap-re');
  const name = 'snap-copy-re';
  await createDv(
    alice,
    name,
    cloneSpec(golden, 'fs-snap-re', { kind: 'snapshot', volumeMode: 'Block', size: '80Mi' }),
  );
  const first = await eventually(
    'the restored claim made',
    async () => {
      const uid = (await getDv(alice, name))?.metadata.uid ?? '';
      return uid
        ? client.getOrUndefined<PersistentVolumeClaim>(
            Resources.PersistentVolumeClaim,
            `${uid}-host-assisted-source-pvc`,
            golden,
          )
        : undefined;
    },
    120_000,
    100,
  );
  const claim = first.metadata?.name ?? '';
  // someone's pod on the restored claim holds the copy back (CloneSourceInUse) and, through pvc-protection, keeps
  // the deleted claim until it goes: the deletion lands before any source pod could have used the claim
  const blocker = `hold-${name}`;
  await client.create(Resources.Pod, {
    metadata: { name: blocker, namespace: golden },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: 'hold',
          image: imagesEnv()['BUSYBOX_IMAGE'] ?? 'localhost:5000/busybox:latest',
          command: ['sleep', '3600'],
          volumeMounts: [{ name: 'v', mountPath: '/data', readOnly: true }],
        },
      ],
      volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claim, readOnly: true } }],
    },
  } as KubeObject);
  cleanups.push(() => deleteIfExists(client, Resources.Pod, blocker, golden));
  const dv = (await getDv(alice, name))!;
  assert.equal(
    await client.getOrUndefined(
      Resources.Pod,
      `${(await targetUid(alice, name)) ?? 'none'}-source-pod`,
      golden,
    ),
    undefined,
    'no source pod yet: the copy has not started',
  );
  await client.delete(Resources.PersistentVolumeClaim, claim, { namespace: golden });
  await client.delete(Resources.Pod, blocker, { namespace: golden });
  const again = await eventually(
    'the restored claim made again',
    async () => {
      const c = await client.getOrUndefined<PersistentVolumeClaim>(
        Resources.PersistentVolumeClaim,
        claim,
        golden,
      );
      return c && c.metadata?.uid !== first.metadata?.uid && !c.metadata?.deletionTimestamp ? c : undefined;
    },
    120_000,
    500,
  );
  assert.equal(again.spec?.dataSource?.name, 'fs-snap-re');
  await waitDv(alice, name, 'Succeeded');
  assert.equal(await md5Of(alice, name, true), fx.rawMd5);
  await nothingLeft(name, () => leftovers(dv, golden));
});

/** The uid of the DataVolume's target PVC (the source pod is named after it), once it exists. */
async function targetUid(ns: string, name: string): Promise<string | undefined> {
  return (await client.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns))
    ?.metadata?.uid;
}

void test('sourceRef: a DataVolume names a DataSource in another namespace; refused without clone permission, else the golden bytes', async () => {
  await setOverride('copy');
  await client.create(Resources.DataSource, {
    metadata: { name: 'fedora', namespace: golden },
    spec: { source: { pvc: { name: 'src-fs', namespace: golden } } },
  } as KubeObject);
  cleanups.push(() => deleteIfExists(client, Resources.DataSource, 'fedora', golden));
  const spec = {
    sourceRef: { kind: 'DataSource', name: 'fedora', namespace: golden },
    storage: { storageClassName: STORAGE_CLASS },
  };
  // alice's ServiceAccount has no rights in golden (yet): the webhook names what is missing
  const refused = await kubectlStdin(
    JSON.stringify({
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'DataVolume',
      metadata: { name: 'ref-as-alice', namespace: alice },
      spec,
    }),
    'create',
    '-f',
    '-',
    `--as=${sa}`,
  );
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /insufficient permissions in clone source namespace/);
  // an administrator's DataVolume: resolved through the DataSource into a clone of its PVC
  await createDv(alice, 'ref-cross', spec);
  const dv = await waitDv(alice, 'ref-cross', 'Succeeded');
  assert.equal(await md5Of(alice, 'ref-cross'), fx.rawMd5);
  assert.equal(dv.spec.source, undefined, 'the stored spec keeps its sourceRef');
  assert.deepEqual(await leftovers(dv, golden), []);
});

void test('a user without permission in the source namespace is refused with it named; with clone-sourcer bound it clones', async () => {
  await setOverride('copy');
  const yaml = JSON.stringify({
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name: 'as-alice', namespace: alice },
    spec: cloneSpec(golden, 'src-fs'),
  });
  const refused = await kubectlStdin(yaml, 'create', '-f', '-', `--as=${sa}`);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /insufficient permissions in clone source namespace/);
  assert.match(refused.stderr, /datavolumes\/source/);
  assert.match(refused.stderr, /cdi\.kubevirt\.io:clone-sourcer/);
  await client.create(R.RoleBinding, {
    metadata: { name: 'alice-clones-golden', namespace: golden },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'cdi.kubevirt.io:clone-sourcer',
    },
    subjects: [{ kind: 'ServiceAccount', name: 'vm-owner', namespace: alice }],
  } as KubeObject);
  await eventually('the binding to take effect', async () => {
    const r = await kubectlStdin(yaml, 'create', '-f', '-', `--as=${sa}`);
    return r.code === 0;
  });
  await waitDv(alice, 'as-alice', 'Succeeded');
  assert.equal(await md5Of(alice, 'as-alice'), fx.rawMd5);
});

void test('a namespace kept out of the storage class by a ResourceQuota: the clone fails with the quota named', async () => {
  await setOverride('copy');
  const locked = await createNamespace(client, 'e2e-locked');
  cleanups.push(locked.cleanup);
  // docs/clone.md: no claims of this class in the namespace
  await client.create(ResourceQuota, {
    metadata: { name: 'no-hostpath', namespace: locked.name },
    spec: { hard: { [`${STORAGE_CLASS}.storageclass.storage.k8s.io/persistentvolumeclaims`]: '0' } },
  } as KubeObject);
  await createDv(locked.name, 'denied', cloneSpec(golden, 'src-fs'));
  const bound = await eventually(
    'Bound False with ErrExceededQuota',
    async () => {
      const dv = await getDv(locked.name, 'denied');
      const c = dv?.status?.conditions?.find((x) => x.type === 'Bound');
      return c?.reason === 'ErrExceededQuota' ? { c, dv } : undefined;
    },
    120_000,
    1000,
  );
  assert.equal(bound.c.status, 'False');
  assert.match(bound.c.message ?? '', /exceeded quota: no-hostpath/);
  assert.match(bound.c.message ?? '', /ask its administrator/);
  assert.notEqual(bound.dv?.status?.phase, 'Succeeded');
  assert.ok((await events(locked.name, 'denied')).some((e) => e.reason === 'ErrExceededQuota'));
  assert.equal(
    await client.getOrUndefined(Resources.PersistentVolumeClaim, 'denied', locked.name),
    undefined,
    'no claim',
  );
});

void test('seed 003: a PVC annotated k8s.io/CloneRequest across namespaces is cloned and marked k8s.io/CloneOf', async () => {
  await client.create(Resources.PersistentVolumeClaim, {
    metadata: {
      name: 'legacy',
      namespace: alice,
      annotations: { 'k8s.io/CloneRequest': `${golden}/src-fs` },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: STORAGE_CLASS,
      resources: { requests: { storage: '128Mi' } },
    },
  } as KubeObject);
  await eventually(
    'k8s.io/CloneOf on the PVC',
    async () =>
      (await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'legacy', alice)).metadata
        ?.annotations?.['k8s.io/CloneOf'] === 'true',
    300_000,
    1000,
  );
  assert.equal(await md5Of(alice, 'legacy'), fx.rawMd5);
});

void test('a source in use: the clone waits (CloneSourceInUse), then proceeds when the pod is gone', async () => {
  await setOverride('copy');
  await client.create(Resources.Pod, {
    metadata: { name: 'user-of-src', namespace: golden },
    spec: {
      containers: [
        {
          name: 'c',
          image: 'localhost:5000/busybox:1.35.0',
          command: ['sleep', '3600'],
          volumeMounts: [{ name: 'v', mountPath: '/v' }],
        },
      ],
      volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'src-fs' } }],
    },
  } as KubeObject);
  await eventually(
    'the user pod running',
    async () => {
      const p = await client.get<KubeObject & { status?: { phase?: string } }>(
        Resources.Pod,
        'user-of-src',
        golden,
      );
      return p.status?.phase === 'Running';
    },
    120_000,
    1000,
  );
  await createDv(alice, 'in-use', cloneSpec(golden, 'src-fs'));
  await eventually(
    'CloneSourceInUse',
    async () => (await events(alice, 'in-use')).some((e) => e.reason === 'CloneSourceInUse'),
    120_000,
    1000,
  );
  assert.notEqual((await getDv(alice, 'in-use'))?.status?.phase, 'Succeeded');
  await client.delete(Resources.Pod, 'user-of-src', { namespace: golden });
  await waitDv(alice, 'in-use', 'Succeeded');
  assert.equal(await md5Of(alice, 'in-use'), fx.rawMd5);
});

void test('three parallel clones of one source succeed', async () => {
  await setOverride('copy');
  const names = ['par-1', 'par-2', 'par-3'];
  for (const n of names) await createDv(alice, n, cloneSpec(golden, 'src-fs'));
  for (const n of names) await waitDv(alice, n, 'Succeeded');
  for (const n of names) assert.equal(await md5Of(alice, n), fx.rawMd5);
});

void test('deleting DataVolumes mid-clone leaves no temporary claim, snapshot, pod or finalizer behind', async () => {
  await setOverride(undefined);
  const mid: [string, DataVolume['spec']][] = [
    ['del-copy', cloneSpec(golden, 'src-fs', { volumeMode: 'Block', size: '64Mi' })],
    ['del-snap', cloneSpec(golden, 'src-fs')],
    ['del-csi', cloneSpec(golden, 'src-fs', { storageClassName: CSI_CLASS })],
  ];
  const made: DataVolume[] = [];
  for (const [n, spec] of mid) {
    await createDv(alice, n, spec);
    // deleted once the clone has started making things (a strategy chosen)
    made.push(
      await eventually(
        `${n} started`,
        async () => {
          const dv = await getDv(alice, n);
          return dv?.metadata.annotations?.[`${A}cloneType`] ? dv : undefined;
        },
        120_000,
        200,
      ),
    );
    await client.delete(Resources.DataVolume, n, { namespace: alice });
  }
  for (const dv of made) {
    await eventually(
      `${dv.metadata.name} gone`,
      async () => !(await getDv(alice, dv.metadata.name ?? '')),
      120_000,
      1000,
    );
    await nothingLeft(dv.metadata.name ?? '', () => leftovers(dv, golden));
    assert.equal(
      await client.getOrUndefined(Resources.PersistentVolumeClaim, dv.metadata.name ?? '', alice),
      undefined,
    );
  }
});

/** kubectl with the object on stdin (as a user would pipe it). */
function kubectlStdin(input: string, ...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('kubectl', ['--kubeconfig', kubeconfigPath, ...args]);
    let stderr = '';
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('close', (code) => resolve({ code: code ?? 1, stderr }));
    p.stdin.end(input);
  });
}
