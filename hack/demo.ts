/**
 * `npm run demo`: the main job end to end. hack/run.sh has brought the local cluster up (full profile) and
 * `cluster:sync` has built the images and deployed CDI. This script:
 *   1. runs the local `cdi import` demo (hack/demo-local.ts, no cluster involved);
 *   2. serves a sample qcow2 (seeded, half random, half zero) from the node address, where pods reach the host;
 *   3. applies a DataVolume for it and prints `kubectl get dv` while the import runs;
 *   4. checks the md5 of the disk on the volume with a verifier pod, and cleans up (the cluster stays up).
 * Options: --skip-local (skip step 1), --size <MiB> (sample size, default 256), --keep (keep the namespace),
 * --rate <MiB/s> (the server's throttle, default 24 so the progress shows; 0 for none).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { Resources } from '../src/kube/index.ts';
import { startFileServer } from '../test/support/fileserver.ts';
import { makeSeededDisk, makeVariant } from '../test/support/images.ts';
import { clusterClient, createNamespace, kubectl } from '../test/integration/kube/cluster.ts';
import { NODE_IP, STORAGE_CLASS, md5OnVolume } from '../test/e2e/harness.ts';
import type { DataVolume } from '../src/api/index.ts';

const { values: opts } = parseArgs({
  options: {
    'skip-local': { type: 'boolean', default: false },
    size: { type: 'string', default: '256' },
    keep: { type: 'boolean', default: false },
    rate: { type: 'string', default: '24' },
  },
});
const sizeMiB = Number(opts.size);
const say = (s: string): boolean => process.stdout.write(`${s}\n`);

function runNode(script: string): Promise<number> {
  const child = spawn(process.execPath, [script], { stdio: 'inherit' });
  return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
}

if (!opts['skip-local']) {
  say('==> part 1: `cdi import` on this machine, no cluster');
  if ((await runNode(path.join(import.meta.dirname, 'demo-local.ts'))) !== 0) {
    say('demo FAILED: the local import did not verify');
    process.exit(1);
  }
}

say('\n==> part 2: a DataVolume on the local Kubernetes cluster');
const client = clusterClient();
const dir = await mkdtemp(path.join(tmpdir(), 'cdi-demo-cluster-'));
const { name: ns, cleanup } = await createNamespace(client, 'demo');
// throttled so that the progress column has something to show
const srv = await startFileServer({
  root: dir,
  host: NODE_IP,
  ...(Number(opts.rate) > 0 ? { throttleBytesPerSec: Number(opts.rate) << 20 } : {}),
});
let ok = false;
try {
  say(`    making a ${sizeMiB} MiB sample disk and its qcow2`);
  const disk = await makeSeededDisk(dir, { size: sizeMiB << 20, seed: 'demo-cluster', chunk: 4 << 20 });
  await makeVariant(disk.path, dir, 'qcow2');
  const url = `${srv.url}/disk.qcow2`;
  const dv: DataVolume = {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name: 'demo-disk', namespace: ns },
    spec: {
      source: { http: { url } },
      storage: {
        storageClassName: STORAGE_CLASS,
        resources: { requests: { storage: `${sizeMiB + 64}Mi` } },
      },
    },
  };
  say(`    served at ${url} (pods reach the host at the node address ${NODE_IP})`);
  say(`    original md5 ${disk.md5}\n`);
  say(`$ kubectl apply -f - <<EOF\n${stringify(dv).trimEnd()}\nEOF`);
  const started = Date.now();
  await client.create(Resources.DataVolume, dv);

  say(`\n$ kubectl get dv -n ${ns} demo-disk   (every 2 s)`);
  let phase = '';
  for (let i = 0; i < 300 && phase !== 'Succeeded' && phase !== 'Failed'; i++) {
    const out = await kubectl('-n', ns, 'get', 'dv', 'demo-disk', '--no-headers');
    say(`    ${out.stdout.trim()}`);
    const cur = await client.get<DataVolume>(Resources.DataVolume, 'demo-disk', ns);
    phase = cur.status?.phase ?? '';
    if (phase !== 'Succeeded' && phase !== 'Failed') await new Promise((r) => setTimeout(r, 2000));
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (phase !== 'Succeeded') {
    say(`\n    the DataVolume ended in phase ${phase || '(none)'}:`);
    say((await kubectl('-n', ns, 'describe', 'dv', 'demo-disk')).stdout);
  } else {
    say(`\n    Succeeded ${seconds} s after the apply; checking the bytes with a verifier pod`);
    const onVolume = await md5OnVolume(client, ns, 'demo-disk', { bytes: disk.size });
    ok = onVolume === disk.md5;
    say(`    md5 on the volume ${onVolume} ${ok ? '== original' : `!= original ${disk.md5}`}`);
  }
} finally {
  await srv.close();
  await rm(dir, { recursive: true, force: true });
  if (!opts.keep) await cleanup();
}
say(ok ? '\ndemo OK (the cluster stays up: npm run cluster:down stops it)' : '\ndemo FAILED');
process.exit(ok ? 0 : 1);
