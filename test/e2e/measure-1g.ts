// Manual measurement (not a test; prints numbers, asserts nothing timed): a 1 GiB qcow2 (512 MiB of random data,
// 512 MiB of zeros) imported (a) by `cdi import` on the host from a loopback HTTP server and (b) through a
// DataVolume on the full cluster (kubectl-apply equivalent → phase Succeeded), md5 verified both times; plus the
// deployed controller's memory. Run: node test/e2e/measure-1g.ts   (needs the full cluster and pushed images)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Resources, type KubeObject } from '../../src/kube/index.ts';
import { startFileServer } from '../support/fileserver.ts';
import { clusterClient, createNamespace, repoRoot } from '../integration/kube/cluster.ts';
import { NODE_IP, deployCdi, md5OnVolume } from './harness.ts';

const run = promisify(execFile);
const GiB = 1 << 30;

async function md5Head(path: string, bytes: number): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(path, { start: 0, end: bytes - 1 })) h.update(c as Buffer);
  return h.digest('hex');
}

const dir = await mkdtemp(join(tmpdir(), 'cdi-measure-'));
try {
  await run(
    'sh',
    [
      '-c',
      `(head -c 512M /dev/urandom; head -c 512M /dev/zero) > disk.raw && qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2`,
    ],
    { cwd: dir },
  );
  const want = await md5Head(join(dir, 'disk.raw'), GiB);

  // (a) host
  const local = await startFileServer({ root: dir, host: '127.0.0.1' });
  const h0 = performance.now();
  await run(process.execPath, [
    join(repoRoot, 'bin', 'cdi.js'),
    'import',
    `${local.url}/disk.qcow2`,
    '--to',
    join(dir, 'out.img'),
    '--size',
    '2Gi',
  ]);
  const hostSec = (performance.now() - h0) / 1000;
  await local.close();
  const hostMd5 = await md5Head(join(dir, 'out.img'), GiB);
  await rm(join(dir, 'out.img'));

  // (b) cluster
  const client = clusterClient();
  const undeploy = await deployCdi(client);
  const srv = await startFileServer({ root: dir, host: NODE_IP });
  const { name: ns, cleanup } = await createNamespace(client, 'measure');
  try {
    const c0 = performance.now();
    await client.create(Resources.DataVolume, {
      metadata: { name: 'big', namespace: ns },
      spec: {
        source: { http: { url: `${srv.url}/disk.qcow2` } },
        storage: { resources: { requests: { storage: '2Gi' } } },
      },
    } as KubeObject);
    let phase = '';
    while (phase !== 'Succeeded' && phase !== 'Failed') {
      await new Promise((r) => setTimeout(r, 100));
      phase =
        (await client.get<KubeObject & { status?: { phase?: string } }>(Resources.DataVolume, 'big', ns))
          .status?.phase ?? '';
    }
    const dvSec = (performance.now() - c0) / 1000;
    const dvMd5 = await md5OnVolume(client, ns, 'big', { bytes: GiB });
    const pods = await client.list<KubeObject & { status?: { podIP?: string } }>(Resources.Pod, {
      namespace: 'cdi',
      labelSelector: 'cdi.kubevirt.io=cdi-deployment',
    });
    const ip = pods.items[0]?.status?.podIP;
    const metrics = ip ? await (await fetch(`http://${ip}:8080/metrics`)).text() : '';
    const rss = /^process_resident_memory_bytes (\d+)/m.exec(metrics)?.[1];
    console.log(`1 GiB qcow2, expected md5 ${want}`);
    console.log(
      `host  cdi import:                 ${hostSec.toFixed(1)} s  md5 ${hostMd5 === want ? 'ok' : `MISMATCH ${hostMd5}`}`,
    );
    console.log(
      `cluster DataVolume → ${phase.padEnd(9)}: ${dvSec.toFixed(1)} s  md5 ${dvMd5 === want ? 'ok' : `MISMATCH ${dvMd5}`}  (${(dvSec / hostSec).toFixed(2)}× host)`,
    );
    if (rss) console.log(`cdi-controller resident memory: ${(Number(rss) / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    await cleanup();
    await srv.close();
    await undeploy();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
