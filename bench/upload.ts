/**
 * The upload rows of `npm run bench` (cases upload-raw, upload-qcow2): a 1 GiB image through `cdi upload` →
 * cdi-uploadproxy → upload server pod on the local cluster (CDI deployed from this tree, as test/e2e does), against
 * `curl --data-binary @file` POSTed to nginx on loopback, which reads the body to its end and stores it in a file
 * before it answers (bench/nginx.ts), measured in the same run. Both columns end with the data on disk: the upload
 * server fsyncs the volume before it answers, the baseline runs `sync` after curl.
 *
 *   ours (cdi upload)   `cdi upload dv --no-create` of a DataVolume already UploadReady: token, async probe, the
 *                       upload, and the wait for Succeeded (the pod's exit and the controller's status write)
 *   ours (curl→proxy)   `curl --data-binary` with a token to the proxy's sync path (answers once the image is
 *                       written): the data path without the CLI and the status round trip
 * The proxy is reached at its Service's cluster IP from the host. Every volume's md5 is checked by a verifier pod
 * (untimed). Needs the full cluster and its lock (test/e2e's rule): flock /work/cluster-tests.lock npm run bench --
 * --cases upload-raw,upload-qcow2
 */
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Resources, type KubeObject, type Service } from '../src/kube/index.ts';
import type { DataVolume } from '../src/controller/shared/types.ts';
import {
  clusterClient,
  createNamespace,
  eventually,
  kubeconfigPath,
} from '../test/integration/kube/cluster.ts';
import {
  deployCdi,
  md5OnVolume,
  requireFullCluster,
  uploadToken,
  createUploadDataVolume,
} from '../test/e2e/harness.ts';

const run = promisify(execFile);

export interface UploadCase {
  id: 'upload-raw' | 'upload-qcow2';
  file: string;
}

export interface UploadRow {
  name: string;
  /** seconds */
  ours: number;
  base: number;
  bytes: number;
}

async function timed(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(env ? { env } : {}) });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: exit ${code}: ${err.trim()}`)),
    );
  });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Runs the cases; `nginxUrl` is bench/nginx.ts's server (its /upload stores a POSTed body). */
export async function benchUploads(o: {
  cases: UploadCase[];
  nginxUrl: string;
  cdi: string;
  md5: string;
  size: number;
  log: (l: string) => void;
}): Promise<UploadRow[]> {
  const client = clusterClient();
  await requireFullCluster(client);
  const undo: (() => Promise<void>)[] = [];
  const rows: UploadRow[] = [];
  try {
    o.log('==> deploying cdi-controller, cdi-apiserver and cdi-uploadproxy from this tree');
    undo.push(await deployCdi(client));
    const n = await createNamespace(client, 'bench-upload');
    undo.push(n.cleanup);
    const svc = await client.get<Service>(Resources.Service, 'cdi-uploadproxy', 'cdi');
    const proxy = `https://${svc.spec?.clusterIP ?? ''}`;
    const size = `${Math.ceil(((o.size / 0.94) * 1.06) / 2 ** 20)}Mi`;
    const dv = async (name: string): Promise<void> => {
      await createUploadDataVolume(client, n.name, name, { size });
      await eventually(
        `DataVolume ${name} UploadReady`,
        async () =>
          (await client.get<DataVolume & KubeObject>(Resources.DataVolume, name, n.name)).status?.phase ===
            'UploadReady' || undefined,
        300_000,
        500,
      );
    };
    const verify = async (name: string): Promise<void> => {
      const sum = await md5OnVolume(client, n.name, name, { bytes: o.size });
      if (sum !== o.md5) throw new Error(`${name}: wrong md5 ${sum} on the volume`);
      await client.delete(Resources.DataVolume, name, { namespace: n.name });
    };
    for (const c of o.cases) {
      const kind = c.id.replace('upload-', '');
      o.log(`==> ${c.id}: curl --data-binary to nginx`);
      const t0 = process.hrtime.bigint();
      await run('bash', [
        '-o',
        'pipefail',
        '-c',
        `curl -sS -f -o /dev/null --data-binary '@${c.file}' '${o.nginxUrl}/upload' && sync`,
      ]);
      const base = Number(process.hrtime.bigint() - t0) / 1e9;
      const bytes = Number((await run('stat', ['-c', '%s', c.file])).stdout.trim());

      o.log(`==> ${c.id}: cdi upload`);
      const a = `bench-cli-${kind}`;
      await dv(a);
      await run('sync');
      const cli = await timed(process.execPath, [
        o.cdi,
        'upload',
        'dv',
        a,
        '--kubeconfig',
        kubeconfigPath,
        '-n',
        n.name,
        '--no-create',
        '--insecure',
        '--uploadproxy-url',
        proxy,
        '--no-progress',
        '--wait-secs',
        '600',
        '--image-path',
        c.file,
      ]);
      await verify(a);
      rows.push({ name: `${kind} via cdi upload`, ours: cli, base, bytes });

      o.log(`==> ${c.id}: curl to the proxy`);
      const b = `bench-curl-${kind}`;
      await dv(b);
      const token = await uploadToken(n.name, b, b);
      await run('sync');
      const viaCurl = await timed('curl', [
        '-sS',
        '-f',
        '-k',
        '-o',
        '/dev/null',
        '-H',
        `Authorization: Bearer ${token}`,
        '--data-binary',
        `@${c.file}`,
        `${proxy}/v1beta1/upload`,
      ]);
      await verify(b);
      rows.push({ name: `${kind} via curl → proxy`, ours: viaCurl, base, bytes });
    }
  } finally {
    for (const u of undo.reverse()) await u().catch(() => undefined);
  }
  return rows;
}

export function uploadTable(rows: UploadRow[]): string {
  const mibs = (r: UploadRow, s: number): string => (r.bytes / 2 ** 20 / s).toFixed(0);
  const lines = [
    "upload: wall seconds and throughput (file bytes / s); ratio = our throughput / the baseline's (curl --data-binary to nginx on loopback, stored, then sync)",
    '| case                     | ours s | ours MiB/s | base s | base MiB/s | ratio |',
    '|--------------------------|--------|------------|--------|------------|-------|',
    ...rows.map(
      (r) =>
        `| ${r.name.padEnd(24)} | ${r.ours.toFixed(2).padStart(6)} | ${mibs(r, r.ours).padStart(10)} | ${r.base.toFixed(2).padStart(6)} | ${mibs(r, r.base).padStart(10)} | ${(r.base / r.ours).toFixed(2).padStart(5)} |`,
    ),
    '',
  ];
  return lines.join('\n');
}
