/**
 * The clone rows of `npm run bench` (case clone; by default when the local cluster exists): clones of a 1 GiB
 * Filesystem volume whose disk is half data (512 MiB random, 512 MiB zeros) on the full cluster (CDI deployed from
 * this tree, as test/e2e does), against `cp --sparse=always` of the source's backing file on the host (the CSI
 * hostpath driver's volume image, the same bytes), measured in the same run:
 *
 *   host-assisted copy   (cloneStrategyOverride: copy) DataVolume created → Succeeded, and the stream alone (the
 *                        upload server's "clone done … in Ns" line; the pod is kept with retainAfterCompletion);
 *                        the target's md5 is checked by a verifier pod (untimed)
 *   snapshot / CSI clone DataVolume created → Succeeded
 *
 * Needs the full cluster and its lock (test/e2e's rule): flock /work/cluster-tests.lock npm run bench -- --cases clone
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DataVolume } from '../src/controller/shared/types.ts';
import { Resources, type KubeObject, type PersistentVolumeClaim } from '../src/kube/index.ts';
import { startFileServer } from '../test/support/fileserver.ts';
import { md5File } from '../test/support/images.ts';
import { clusterClient, createNamespace, eventually, kubectl } from '../test/integration/kube/cluster.ts';
import { NODE_IP, STORAGE_CLASS, deployCdi, md5OnVolume, requireFullCluster } from '../test/e2e/harness.ts';

const run = promisify(execFile);
const GiB = 1 << 30;
const VOLUMES = process.env['CDI_CSI_VOLUMES'] ?? '/var/lib/cdi-dev/csi/volumes';
const A = 'cdi.kubevirt.io/';

export interface CloneResult {
  /** seconds */
  cp: number;
  /** data bytes the stream moved and its seconds (from the upload server's log), if it said so */
  stream?: { bytes: number; seconds: number };
  copy: number;
  snapshot: number;
  csi: number;
}

export async function benchClone(log: (l: string) => void): Promise<CloneResult> {
  const client = clusterClient();
  await requireFullCluster(client);
  const dir = await mkdtemp(join(tmpdir(), 'cdi-bench-clone-'));
  const undo: (() => Promise<unknown>)[] = [];
  try {
    await run('sh', ['-c', '(head -c 512M /dev/urandom; head -c 512M /dev/zero) > disk.raw'], { cwd: dir });
    const want = await md5File(join(dir, 'disk.raw'), GiB);
    const http = await startFileServer({ root: dir, host: NODE_IP });
    undo.push(() => http.close());
    log('==> clone: deploying CDI from this tree');
    undo.push(await deployCdi(client));
    const { name: ns, cleanup } = await createNamespace(client, 'bench-clone');
    undo.push(async () => {
      await kubectl('-n', ns, 'delete', 'datavolumes,pvc', '--all', '--wait=true', '--timeout=180s');
      await cleanup();
    });
    const cdi = await client.getOrUndefined<KubeObject & { spec?: Record<string, unknown> }>(
      Resources.CDI,
      'cdi',
    );
    if (!cdi) {
      await client.create(Resources.CDI, { metadata: { name: 'cdi' }, spec: {} });
      undo.push(() => client.delete(Resources.CDI, 'cdi'));
    } else {
      const before = cdi.spec?.['cloneStrategyOverride'] ?? null;
      undo.push(() => client.mergePatch(Resources.CDI, 'cdi', { spec: { cloneStrategyOverride: before } }));
    }
    const override = (v: string | null): Promise<unknown> =>
      client.mergePatch(Resources.CDI, 'cdi', { spec: { cloneStrategyOverride: v } });
    const csiClass = `bench-csiclone-${process.pid}`;
    const base = await client.get<KubeObject & { provisioner?: string }>(
      Resources.StorageClass,
      STORAGE_CLASS,
    );
    await client.create(Resources.StorageClass, {
      metadata: {
        name: csiClass,
        annotations: {
          [`${A}clone-strategy`]: 'csi-clone',
          [`${A}claim-property-sets`]: base.metadata?.annotations?.[`${A}claim-property-sets`] ?? '',
        },
      },
      provisioner: base.provisioner,
      allowVolumeExpansion: true,
    } as KubeObject);
    undo.push(() => client.delete(Resources.StorageClass, csiClass));

    const dvDone = async (name: string, spec: DataVolume['spec'], annotations = {}): Promise<number> => {
      const t0 = performance.now();
      await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
        metadata: { name, namespace: ns, annotations },
        spec,
      });
      await eventually(
        `${name} Succeeded`,
        async () => {
          const dv = await client.get<DataVolume & KubeObject>(Resources.DataVolume, name, ns);
          if (dv.status?.phase === 'Failed') throw new Error(`${name} failed`);
          return dv.status?.phase === 'Succeeded';
        },
        900_000,
        250,
      );
      return (performance.now() - t0) / 1000;
    };
    const clone = (storageClassName = STORAGE_CLASS): DataVolume['spec'] => ({
      source: { pvc: { namespace: ns, name: 'src' } },
      storage: { storageClassName },
    });

    log('==> clone: importing the 1 GiB source');
    await dvDone('src', {
      source: { http: { url: `${http.url}/disk.raw` } },
      // the filesystem's own metadata takes part of the 6 % overhead (docs/controllers.md, sizing note): a little more
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '1100Mi' } } },
    });

    // the source's backing file on the host: <volumes>/<volumeHandle>.img
    const pvc = await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, 'src', ns);
    const pv = await client.get<KubeObject & { spec?: { csi?: { volumeHandle?: string } } }>(
      Resources.PersistentVolume,
      pvc.spec?.volumeName ?? '',
    );
    const img = join(VOLUMES, `${pv.spec?.csi?.volumeHandle ?? ''}.img`);
    log('==> clone: cp --sparse=always of the backing image');
    await run('sync');
    const c0 = performance.now();
    await run('cp', ['--sparse=always', img, `${img}.measure`]);
    await run('sync');
    const cp = (performance.now() - c0) / 1000;
    await rm(`${img}.measure`, { force: true });

    log('==> clone: host-assisted copy');
    await override('copy');
    const copy = await dvDone('copy', clone(), { [`${A}storage.pod.retainAfterCompletion`]: 'true' });
    const logs = await kubectl('-n', ns, 'logs', 'cdi-upload-copy');
    const m = /clone done: .*? (\d+) data bytes in ([\d.]+)s/.exec(logs.stdout);
    const got = await md5OnVolume(client, ns, 'copy', { bytes: GiB });
    if (got !== want) throw new Error(`host-assisted clone: wrong md5 ${got} on the target (want ${want})`);
    await kubectl('-n', ns, 'delete', 'pod', 'cdi-upload-copy', '--wait=false');
    await override(null);
    log('==> clone: snapshot and CSI clones');
    const snapshot = await dvDone('snap', clone());
    const csi = await dvDone('csi', clone(csiClass));
    return {
      cp,
      ...(m ? { stream: { bytes: Number(m[1]), seconds: Number(m[2]) } } : {}),
      copy,
      snapshot,
      csi,
    };
  } finally {
    for (const u of undo.reverse()) await u().catch((e: unknown) => log(`clone cleanup: ${String(e)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

export function cloneTable(r: CloneResult): string {
  const ratio = (s: number): string => (r.cp / s).toFixed(2);
  const row = (what: string, s: number, vsCp: string): string =>
    `| ${what.padEnd(44)} | ${s.toFixed(2).padStart(6)} | ${vsCp.padStart(9)} |`;
  return [
    "clone of a 1 GiB Filesystem volume, 512 MiB data: wall seconds; vs cp = cp's seconds / ours (the throughput ratio, same bytes)",
    `| ${'case'.padEnd(44)} | ${'s'.padStart(6)} | ${'vs cp'.padStart(9)} |`,
    `|${'-'.repeat(46)}|--------|-----------|`,
    row('cp --sparse=always of the backing image', r.cp, '1.00'),
    ...(r.stream
      ? [
          row(
            `host-assisted stream (${(r.stream.bytes / 2 ** 20).toFixed(0)} MiB data)`,
            r.stream.seconds,
            ratio(r.stream.seconds),
          ),
        ]
      : []),
    row('host-assisted DataVolume → Succeeded', r.copy, ratio(r.copy)),
    row('snapshot clone DataVolume → Succeeded', r.snapshot, ratio(r.snapshot)),
    row('CSI clone DataVolume → Succeeded', r.csi, ratio(r.csi)),
    '',
  ].join('\n');
}
