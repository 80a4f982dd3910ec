// End-to-end harness on the `full` profile: installs CDI through the operator (the release manifests for the images
// hack/images/build.sh pushed, tag from .cluster/images.env), makes image fixtures with qemu-img from a seeded raw disk, serves them from
// the node address (pods reach the host there), and checks bytes on volumes with a verifier pod.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Informer, Resources, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import type { DataVolume, DataVolumeSource } from '../../src/controller/shared/types.ts';
import { eventually, kubectl, repoRoot } from '../integration/kube/cluster.ts';
import { getCdi, installCdi, releaseFor, uninstallCdi, waitAvailable } from './operator-install.ts';

const run = promisify(execFile);

/** The node address of the local cluster (hack/cluster/lib/common.sh NODE_IP). */
export const NODE_IP = process.env['CDI_NODE_IP'] ?? '10.99.0.1';
export const STORAGE_CLASS = process.env['CDI_E2E_STORAGE_CLASS'] ?? 'cdi-hostpath';

export function imagesEnv(): Record<string, string> {
  const p = join(repoRoot, '.cluster', 'images.env');
  if (!existsSync(p))
    throw new Error(`${p} is missing: build and push the images first (npm run cluster:sync)`);
  return Object.fromEntries(
    readFileSync(p, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]),
  );
}

/** Fails with one clear line unless the cluster has a node (the full profile). */
export async function requireFullCluster(client: KubeClient): Promise<void> {
  const nodes = await client.list({
    group: '',
    version: 'v1',
    kind: 'Node',
    plural: 'nodes',
    namespaced: false,
  });
  if (nodes.items.length === 0)
    throw new Error(
      'e2e needs the full cluster (a node, CSI storage, registry): npm run cluster:up -- --profile full',
    );
}

/**
 * Installs CDI through the operator (cdi-operator.yaml, then cdi-cr.yaml, rendered for the images hack/images/build.sh
 * pushed, tag from .cluster/images.env) and waits until the CDI resource is Available. Returns an undo: when CDI was
 * not installed before, it is removed again (the CDI resource, then the operator), so that other suites running on
 * the same cluster later (API tests writing DataVolume status, for one) do not meet a controller they did not ask for.
 */
export async function deployCdi(
  client: KubeClient,
  opts: { controllerEnv?: Record<string, string> } = {},
): Promise<() => Promise<void>> {
  const release = releaseFor(imagesEnv()['CDI_IMAGE_TAG'] ?? 'dev');
  const existing = await getCdi(client);
  if (existing) {
    await waitAvailable(client, existing.status?.targetVersion ?? release.version);
    return withControllerEnv(client, opts.controllerEnv, async () => {});
  }
  try {
    await installCdi(client, release);
  } catch (e) {
    // a suite whose install failed runs no undo: leave no half-installed CDI to the next one
    await uninstallCdi(client, release).catch((u: unknown) => console.error(`cleanup: ${String(u)}`));
    throw e;
  }
  return withControllerEnv(client, opts.controllerEnv, () => uninstallCdi(client, release));
}

/**
 * Sets `env` on cdi-operator, which hands it on to the controller it renders (ControllerPassThroughEnv, e.g.
 * CDI_READS=api for the scale bench), and waits until the controller runs with it; the undo takes it off again
 * (then runs `undo`).
 */
async function withControllerEnv(
  client: KubeClient,
  env: Record<string, string> | undefined,
  undo: () => Promise<void>,
): Promise<() => Promise<void>> {
  if (!env || Object.keys(env).length === 0) return undo;
  const setEnv = async (args: string[], want: (e: Record<string, string>) => boolean): Promise<void> => {
    const r = await kubectl('-n', 'cdi', 'set', 'env', 'deployment/cdi-operator', ...args);
    if (r.code !== 0) throw new Error(`kubectl set env on cdi-operator failed: ${r.stderr.trim()}`);
    await eventually(
      'cdi-deployment rolled out with the environment asked for',
      async () => {
        const d = await client.get<
          KubeObject & {
            metadata: { generation?: number };
            spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
            status?: { observedGeneration?: number; updatedReplicas?: number; availableReplicas?: number };
          }
        >(Deployment, 'cdi-deployment', 'cdi');
        const e = Object.fromEntries(
          (d.spec.template.spec.containers[0]?.env ?? []).map((v) => [v.name, v.value ?? '']),
        );
        return (
          want(e) &&
          d.status?.observedGeneration === d.metadata.generation &&
          (d.status?.updatedReplicas ?? 0) >= 1 &&
          (d.status?.availableReplicas ?? 0) >= 1
        );
      },
      180_000,
      1000,
    );
  };
  await setEnv(
    Object.entries(env).map(([k, v]) => `${k}=${v}`),
    (e) => Object.entries(env).every(([k, v]) => e[k] === v),
  );
  return async () => {
    await setEnv(
      Object.keys(env).map((k) => `${k}-`),
      (e) => Object.keys(env).every((k) => !(k in e)),
    );
    await undo();
  };
}

const Deployment = {
  group: 'apps',
  version: 'v1',
  kind: 'Deployment',
  plural: 'deployments',
  namespaced: true,
} as const;

/**
 * Sets fields of CDIConfig's spec as an administrator does: in CDI.spec.config, which the operator copies into
 * CDIConfig `config` (its authority, as upstream: an edit of CDIConfig itself is put back). Waits until CDIConfig
 * shows them; the undo puts back what CDI.spec.config had (and waits for that too).
 */
export async function setCdiConfig(
  client: KubeClient,
  fields: Record<string, unknown>,
): Promise<() => Promise<void>> {
  type Cdi = KubeObject & { spec?: { config?: Record<string, unknown> } };
  type Cfg = KubeObject & { spec?: Record<string, unknown> };
  const had = (await client.get<Cdi>(Resources.CDI, 'cdi')).spec?.config ?? {};
  const set = async (values: Record<string, unknown>): Promise<void> => {
    await client.mergePatch(Resources.CDI, 'cdi', { spec: { config: values } });
    await eventually(
      `CDIConfig config shows ${Object.keys(values).join(', ')} of CDI.spec.config`,
      async () => {
        const spec = (await client.get<Cfg>(Resources.CDIConfig, 'config')).spec ?? {};
        return Object.entries(values).every(
          ([k, v]) => JSON.stringify(spec[k] ?? null) === JSON.stringify(v ?? null),
        );
      },
      60_000,
      500,
    );
  };
  await set(fields);
  return () => set(Object.fromEntries(Object.keys(fields).map((k) => [k, had[k] ?? null])));
}

/** Adds `registries` to CDI.spec.config.insecureRegistries (setCdiConfig); the undo puts back the list there was. */
export async function addInsecureRegistries(
  client: KubeClient,
  registries: string[],
): Promise<() => Promise<void>> {
  const cdi = await client.get<KubeObject & { spec?: { config?: { insecureRegistries?: string[] } } }>(
    Resources.CDI,
    'cdi',
  );
  const before = cdi.spec?.config?.insecureRegistries ?? [];
  const missing = registries.filter((r) => !before.includes(r));
  if (missing.length === 0) return async () => {};
  return setCdiConfig(client, { insecureRegistries: [...before, ...missing] });
}

/** A DataVolume with `source: upload` on the e2e class (64Mi unless `size` says otherwise). */
export async function createUploadDataVolume(
  client: KubeClient,
  ns: string,
  name: string,
  o: { contentType?: 'archive'; size?: string } = {},
): Promise<void> {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name, namespace: ns },
    spec: {
      source: { upload: {} },
      ...(o.contentType ? { contentType: o.contentType } : {}),
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: o.size ?? '64Mi' } } },
    },
  });
}

/** An upload token the way a user gets one: `kubectl create -f` of an UploadTokenRequest for `pvc` (named `name`). */
export async function uploadToken(ns: string, pvc: string, name = `utr-${pvc}`): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-utr-'));
  try {
    const f = join(dir, 'utr.yaml');
    await writeFile(
      f,
      `apiVersion: upload.cdi.kubevirt.io/v1beta1\nkind: UploadTokenRequest\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  pvcName: ${pvc}\n`,
    );
    const r = await kubectl('create', '-f', f, '-o', 'json');
    if (r.code !== 0) throw new Error(`kubectl create UploadTokenRequest ${ns}/${name}: ${r.stderr}`);
    const t = (JSON.parse(r.stdout) as { status?: { token?: string } }).status?.token;
    if (!t) throw new Error(`UploadTokenRequest ${ns}/${name} came back without a token: ${r.stdout}`);
    return t;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Fixtures {
  dir: string;
  /** md5 and size of the raw disk every image holds */
  rawMd5: string;
  rawSize: number;
  /** the ISO fixture differs from the raw disk in its volume descriptor */
  isoMd5: string;
  files: {
    qcow2: string;
    vmdk: string;
    vhdx: string;
    rawXz: string;
    rawGz: string;
    iso: string;
    tooBig: string;
    archive: string;
  };
  archiveFileMd5: string;
  cleanup: () => Promise<void>;
}

/** A seeded pseudo-random raw disk (deterministic), converted with qemu-img (always -f) and compressed. */
export async function makeFixtures(sizeMiB = 32): Promise<Fixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-e2e-'));
  const size = sizeMiB << 20;
  const raw = Buffer.alloc(size);
  let block = createHash('sha256').update('cdi-e2e-seed').digest();
  // every other MiB stays zero so sparse handling is exercised too
  for (let off = 0; off < size; off += 32) {
    if (Math.floor(off / (1 << 20)) % 2 === 1) continue;
    block = createHash('sha256').update(block).digest();
    block.copy(raw, off);
  }
  const rawPath = join(dir, 'disk.raw');
  await writeFile(rawPath, raw);
  const conv = (fmt: string, out: string): Promise<unknown> =>
    run('qemu-img', ['convert', '-f', 'raw', '-O', fmt, rawPath, join(dir, out)]);
  await conv('qcow2', 'disk.qcow2');
  await conv('vmdk', 'disk.vmdk');
  await conv('vhdx', 'disk.vhdx');
  await run('sh', ['-c', `xz -T1 -k -c disk.raw > disk.raw.xz && gzip -k -c disk.raw > disk.raw.gz`], {
    cwd: dir,
  });
  // An ISO 9660 image is raw data with the "CD001" volume descriptor at 0x8001: the importer detects it as iso.
  const iso = Buffer.from(raw);
  iso.write('\x01CD001\x01', 0x8000, 'latin1');
  await writeFile(join(dir, 'disk.iso'), iso);
  // A qcow2 whose virtual size (256 MiB) exceeds the volumes the tests give it.
  await run('qemu-img', ['create', '-f', 'qcow2', join(dir, 'big.qcow2'), '256M']);
  // archive content: a tar of one file
  await writeFile(join(dir, 'payload.bin'), raw.subarray(0, 1 << 20));
  await run('tar', ['-cf', 'archive.tar', 'payload.bin'], { cwd: dir });
  const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
  return {
    dir,
    rawMd5: md5(raw),
    rawSize: size,
    isoMd5: md5(iso),
    files: {
      qcow2: 'disk.qcow2',
      vmdk: 'disk.vmdk',
      vhdx: 'disk.vhdx',
      rawXz: 'disk.raw.xz',
      rawGz: 'disk.raw.gz',
      iso: 'disk.iso',
      tooBig: 'big.qcow2',
      archive: 'archive.tar',
    },
    archiveFileMd5: md5(await readFile(join(dir, 'payload.bin'))),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Runs a busybox pod that mounts the claim (or attaches it as a block device) and prints the md5 of its first
 * `bytes` bytes, or of `file` inside a Filesystem volume; returns the printed hash.
 */
export async function md5OnVolume(
  client: KubeClient,
  ns: string,
  pvc: string,
  opts: { block?: boolean; bytes?: number; file?: string },
): Promise<string> {
  const busybox = imagesEnv()['BUSYBOX_IMAGE'] ?? 'localhost:5000/busybox:latest';
  const name = `verify-${pvc}`.slice(0, 63);
  const target = opts.block ? '/dev/disk' : `/data/${opts.file ?? 'disk.img'}`;
  const cmd = opts.bytes !== undefined ? `head -c ${opts.bytes} ${target} | md5sum` : `md5sum < ${target}`;
  await client.create(Resources.Pod, {
    metadata: { name, namespace: ns },
    spec: {
      restartPolicy: 'Never',
      containers: [
        {
          name: 'verify',
          image: busybox,
          command: ['sh', '-c', cmd],
          ...(opts.block
            ? { volumeDevices: [{ name: 'v', devicePath: '/dev/disk' }] }
            : { volumeMounts: [{ name: 'v', mountPath: '/data' }] }),
        },
      ],
      volumes: [{ name: 'v', persistentVolumeClaim: { claimName: pvc } }],
    },
  } as KubeObject);
  await eventually(
    `verifier pod ${name} to finish`,
    async () => {
      const p = await client.get<KubeObject & { status?: { phase?: string } }>(Resources.Pod, name, ns);
      if (p.status?.phase === 'Failed') throw new Error(`verifier pod ${name} failed`);
      return p.status?.phase === 'Succeeded';
    },
    180_000,
    1000,
  );
  const logs = await kubectl('-n', ns, 'logs', name);
  await client.delete(Resources.Pod, name, { namespace: ns });
  return logs.stdout.trim().split(/\s+/)[0] ?? '';
}

/** Creates a DataVolume (the `storage` API unless `pvc` is given: then that PVC spec verbatim). */
export async function createDataVolume(
  client: KubeClient,
  ns: string,
  name: string,
  source: DataVolumeSource,
  opts: {
    size?: string;
    volumeMode?: string;
    contentType?: 'kubevirt' | 'archive';
    storageClass?: string;
    pvc?: Record<string, unknown>;
  } = {},
): Promise<void> {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name, namespace: ns },
    spec: {
      source,
      ...(opts.contentType ? { contentType: opts.contentType } : {}),
      ...(opts.pvc
        ? { pvc: opts.pvc }
        : {
            storage: {
              storageClassName: opts.storageClass ?? STORAGE_CLASS,
              ...(opts.volumeMode ? { volumeMode: opts.volumeMode } : {}),
              resources: { requests: { storage: opts.size ?? '64Mi' } },
            },
          }),
    },
  });
}

/** Waits for a DataVolume's phase; fails at once when it Failed instead (unless Failed is what is awaited). */
export async function waitForDataVolume(
  client: KubeClient,
  ns: string,
  name: string,
  phase: string,
  limitMs = 300_000,
): Promise<DataVolume> {
  return eventually(
    `DataVolume ${name} ${phase}`,
    async () => {
      const dv = await client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, name, ns);
      if (phase !== 'Failed' && dv?.status?.phase === 'Failed')
        throw new Error(`DataVolume ${name} Failed: ${JSON.stringify(dv.status.conditions)}`);
      return dv?.status?.phase === phase ? dv : undefined;
    },
    limitMs,
    1000,
  );
}

export interface ImporterPodWatch {
  /** The most importer pods that existed at one moment for each PVC (terminating ones count). */
  peak: Map<string, number>;
  /** Importer pods seen per PVC (distinct uids): a restart by a new pod shows here. */
  seen: Map<string, Set<string>>;
  stop(): Promise<void>;
}

/**
 * Watches a namespace's importer pods (list+watch through the informer, which reconnects across an API server
 * restart and resumes from its resourceVersion, so no pod is missed) and records, per PVC, how many existed at once.
 */
export async function watchImporterPods(client: KubeClient, ns: string): Promise<ImporterPodWatch> {
  const inf = new Informer<KubeObject>(client, Resources.Pod, {
    namespace: ns,
    labelSelector: 'cdi.kubevirt.io=importer',
    watchTimeoutSeconds: 60,
    backoff: { initialMs: 200, maxMs: 2000 },
  });
  const peak = new Map<string, number>();
  const seen = new Map<string, Set<string>>();
  const owner = (p: KubeObject): string =>
    p.metadata?.ownerReferences?.find((o) => o.kind === 'PersistentVolumeClaim')?.name ?? '?';
  const count = (pvc: string): void => {
    const n = inf.list(ns).filter((p) => owner(p) === pvc).length;
    peak.set(pvc, Math.max(peak.get(pvc) ?? 0, n));
  };
  const add = (p: KubeObject): void => {
    const pvc = owner(p);
    const s = seen.get(pvc) ?? new Set<string>();
    s.add(p.metadata?.uid ?? '');
    seen.set(pvc, s);
    count(pvc);
  };
  inf.onAdd(add);
  inf.onUpdate((_o, p) => add(p));
  inf.onDelete((p) => count(owner(p)));
  inf.start();
  await inf.waitForSync();
  return { peak, seen, stop: () => inf.stop() };
}
