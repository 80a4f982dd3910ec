// Manual measurement (not a test; prints numbers, asserts nothing timed): clones of a 1 GiB Filesystem volume whose
// disk is half data (512 MiB random, 512 MiB zeros) on the full cluster, against `cp --sparse=always` of the same
// backing file on the host (the CSI hostpath driver's volume image), measured in the same run:
//   host-assisted copy (cloneStrategyOverride: copy): DataVolume created → Succeeded, and the stream alone (the
//   upload server's "clone done … in Ns" line; the pod is kept with storage.pod.retainAfterCompletion)
//   snapshot clone and CSI clone: DataVolume created → Succeeded
// md5 of the target's disk verified for the copy. Run under the cluster lock:
//   flock -o /work/cluster-tests.lock node test/e2e/measure-clone.ts
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DataVolume } from '../../src/controller/shared/types.ts';
import { Resources, type KubeObject, type PersistentVolumeClaim } from '../../src/kube/index.ts';
import { startFileServer } from '../support/fileserver.ts';
import { clusterClient, createNamespace, eventually, kubectl } from '../integration/kube/cluster.ts';
import { NODE_IP, STORAGE_CLASS, deployCdi, md5OnVolume } from './harness.ts';

const run = promisify(execFile);
const GiB = 1 << 30;
const VOLUMES = process.env['CDI_CSI_VOLUMES'] ?? '/var/lib/cdi-dev/csi/volumes';
const A = 'cdi.kubevirt.io/';

async function md5Head(path: string, bytes: number): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(path, { start: 0, end: bytes - 1 })) h.update(c as Buffer);
  return h.digest('hex');
}

const client = clusterClient();
const dir = await mkdtemp(join(tmpdir(), 'cdi-measure-clone-'));
const undo: (() => Promise<unknown>)[] = [];
try {
  await run('sh', ['-c', '(head -c 512M /dev/urandom; head -c 512M /dev/zero) > disk.raw'], { cwd: dir });
  const want = await md5Head(join(dir, 'disk.raw'), GiB);
  const http = await startFileServer({ root: dir, host: NODE_IP });
  undo.push(() => http.close());
  undo.push(await deployCdi(client));
  const { name: ns, cleanup } = await createNamespace(client, 'measure-clone');
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
  const csiClass = `measure-csiclone-${process.pid}`;
  const base = await client.get<KubeObject & { provisioner?: string }>(Resources.StorageClass, STORAGE_CLASS);
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

  const importS = await dvDone('src', {
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
  await run('sync');
  const c0 = performance.now();
  await run('cp', ['--sparse=always', img, `${img}.measure`]);
  await run('sync');
  const cpS = (performance.now() - c0) / 1000;
  const du = (await run('du', ['-B1', img])).stdout.split(/\s+/)[0];
  await rm(`${img}.measure`, { force: true });

  await override('copy');
  const copyS = await dvDone('copy', clone(), { [`${A}storage.pod.retainAfterCompletion`]: 'true' });
  const logs = await kubectl('-n', ns, 'logs', 'cdi-upload-copy');
  const stream = /clone done: .*? (\d+) data bytes in ([\d.]+)s/.exec(logs.stdout);
  const got = await md5OnVolume(client, ns, 'copy', { bytes: GiB });
  await kubectl('-n', ns, 'delete', 'pod', 'cdi-upload-copy', '--wait=false');
  await override(null);
  const snapS = await dvDone('snap', clone());
  const csiS = await dvDone('csi', clone(csiClass));

  const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
  console.log(`source: 1 GiB disk.img, 512 MiB data; backing image ${mib(Number(du))} MiB allocated`);
  console.log(`import (http, 1 GiB raw): ${importS.toFixed(1)} s`);
  console.log(`cp --sparse=always of the backing image on the host: ${cpS.toFixed(2)} s`);
  console.log(
    `host-assisted copy: DataVolume → Succeeded ${copyS.toFixed(1)} s; stream ${stream ? `${mib(Number(stream[1]))} MiB in ${stream[2]} s` : 'n/a'}; md5 ${got === want ? 'ok' : `MISMATCH ${got} != ${want}`}`,
  );
  if (stream)
    console.log(`stream vs cp: ${(cpS / Number(stream[2])).toFixed(2)} of cp's throughput (same bytes)`);
  console.log(`end to end vs cp: ${(cpS / copyS).toFixed(2)}`);
  console.log(
    `snapshot clone: ${snapS.toFixed(1)} s; CSI clone: ${csiS.toFixed(1)} s (DataVolume → Succeeded)`,
  );
} finally {
  for (const u of undo.reverse()) await u().catch((e: unknown) => console.error(String(e)));
  await rm(dir, { recursive: true, force: true });
}
