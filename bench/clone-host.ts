/**
 * The host-assisted clone stream on the host, without the cluster: the real clone source pod entrypoint
 * (src/cmd/cloner.ts) and the real upload server pod entrypoint (src/cmd/uploadserver.ts) as processes, each in a
 * cgroup of its own with a pod's limits (0.75 CPU, 600M, as the kubelet sets them; bench/cgroup.ts), over mutual TLS
 * on loopback with certificates from src/certs, from one loop-mounted ext4 volume to another. The source volume holds
 * `disk.img`: a 1 GiB sparse file with 512 MiB of random data (the cluster measurement's source, docs/clone.md).
 * Baseline, in the same run and interleaved with the clones: `cp --sparse=always` of the same disk.img between the
 * same two volumes, then `sync` (unconfined, as the cluster measurement ran it on the host).
 * Rows per run:
 *   cp          wall seconds of cp + sync
 *   stream      the upload server's "clone done … in Ns" (request arrived → every byte written, fsynced, moved into
 *               place): what docs/clone.md calls the stream
 *   pods        wall seconds of the source pod process (Node start-up included)
 *   cpu         CPU seconds (cpuacct) of the source pod and of the upload server, less what each spends loading its
 *               modules (the entrypoint run with an env it refuses at once, right after)
 * The md5 of the target's disk.img is checked after every clone. Needs root (loop devices, mount, cgroup v1).
 *
 *   node bench/clone-host.ts [--runs 5] [--data MiB] [--size MiB] [--dir DIR] [--unconfined]
 *                            [--node-options='--cpu-prof --cpu-prof-dir=/tmp/prof'] [--baseline DIR]
 * --baseline DIR: another checkout (e.g. `git archive HEAD src test/support package.json | tar -x -C DIR`, with
 * node_modules linked) whose pods run too, interleaved with ours, for an A/B in the same run. BENCH_PERF=<dir> runs
 * each pod under `perf record -g`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { cloneClientCert } from '../test/support/clone.ts';
import { md5File } from '../test/support/images.ts';
import { makeUploadPki, uploadPodFiles } from '../test/support/upload.ts';
import { accepts, freePort } from '../test/support/servers.ts';
import { atExit } from './cleanup.ts';
import {
  cgroupProblem,
  removeStaleCgroups,
  runInCgroup,
  type CgroupLimits,
  type CgroupRun,
} from './cgroup.ts';

const run = promisify(execFile);
const MiB = 1 << 20;
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    data: { type: 'string', default: '512' },
    size: { type: 'string', default: '1024' },
    dir: { type: 'string', default: '/tmp/cdi-clone-host-bench' },
    unconfined: { type: 'boolean', default: false },
    'node-options': { type: 'string', default: '' },
    baseline: { type: 'string' },
  },
});
const runs = Number(values.runs);
const dataBytes = Number(values.data) * MiB;
const diskBytes = Number(values.size) * MiB;
const dir = values.dir;
const POD: CgroupLimits = values.unconfined ? {} : { cpu: 0.75, memoryBytes: 600e6 };
const CLIENT_NAME = 'golden/bench-target/bench';
const ROOT = path.resolve(import.meta.dirname, '..');
/** BENCH_PERF=<dir>: each pod runs under `perf record -g` (its data in <dir>/<pod>.perf.data) */
const perf = (name: string): string[] =>
  process.env.BENCH_PERF
    ? [
        'perf',
        'record',
        '-g',
        '-F',
        '1999',
        '-o',
        path.join(process.env.BENCH_PERF, `${name}.perf.data`),
        '--',
      ]
    : [];

const problem = cgroupProblem();
if (problem) throw new Error(problem);
removeStaleCgroups();
await mkdir(dir, { recursive: true });

/** A fresh ext4 filesystem in a sparse file, loop-mounted at `mnt`; unmounted at exit. */
async function volume(name: string, mib: number): Promise<string> {
  const img = path.join(dir, `${name}.ext4`);
  const mnt = path.join(dir, name);
  await run('umount', [mnt]).catch(() => undefined);
  await rm(img, { force: true });
  await run('truncate', ['-s', `${mib}M`, img]);
  await run('mkfs.ext4', ['-q', '-F', '-m', '0', img]);
  await mkdir(mnt, { recursive: true });
  await run('mount', ['-o', 'loop', img, mnt]);
  atExit(() => {
    try {
      execFileSync('umount', [mnt]);
    } catch {
      // already unmounted
    }
  });
  return mnt;
}

/** Empties the target volume (lost+found stays), so every run writes into the same fresh state. */
async function emptyTarget(mnt: string): Promise<void> {
  for (const n of await readdir(mnt))
    if (n !== 'lost+found') await rm(path.join(mnt, n), { recursive: true });
  await run('sync');
  await run('fstrim', [mnt]).catch(() => undefined);
}

const srcImage = path.join(dir, 'src.ext4');
const src = await volume('src', Math.ceil((diskBytes + 64 * MiB) / MiB));
const dst = await volume('dst', Math.ceil((diskBytes * 1.1 + 64 * MiB) / MiB));
const disk = path.join(src, 'disk.img');
process.stderr.write(
  `==> source: ${disk}, ${diskBytes / MiB} MiB with ${dataBytes / MiB} MiB of random data\n`,
);
await run('bash', [
  '-c',
  `head -c ${dataBytes} /dev/urandom > '${disk}' && truncate -s ${diskBytes} '${disk}'`,
]);
await run('sync');
const want = await md5File(disk, diskBytes);

const pki = await makeUploadPki();
const client = await cloneClientCert(pki, CLIENT_NAME);
const nodeOptions: Record<string, string> = values['node-options']
  ? { NODE_OPTIONS: values['node-options'] }
  : {};

interface CloneSample {
  stream: number;
  pod: number;
  /** CPU seconds of each pod less its start-up (what loading the modules costs, measured right after) */
  srcCpu: number;
  dstCpu: number;
}

/** CPU seconds a pod entrypoint spends loading its modules: it is run with an env it refuses at once. */
async function startupCpu(entry: string): Promise<number> {
  const r = await runInCgroup([process.execPath, path.join(ROOT, entry)], POD, {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CDI_IMPORTER_TERMINATION_LOG: path.join(dir, 'refused-log'),
    },
  });
  return r.cpuSec;
}

async function cloneOnce(root = ROOT): Promise<CloneSample> {
  await emptyTarget(dst);
  const port = await freePort();
  const files = await uploadPodFiles(dir, pki, {
    CLIENT_NAME,
    LISTEN_PORT: String(port),
    CDI_IMPORTER_DATA_DIR: dst,
    ...nodeOptions,
  });
  const stop = new AbortController();
  const server = runInCgroup(
    [...perf('target'), process.execPath, path.join(root, 'src/cmd/uploadserver.ts')],
    POD,
    {
      env: files.env,
      signal: stop.signal,
    },
  );
  server.catch(() => undefined);
  for (let i = 0; !(await accepts(port)); i++) {
    if (i > 300) throw new Error('the upload server did not listen within 30 s');
    await sleep(100);
  }
  if (process.env.BENCH_VERBOSE) process.stderr.write(`upload server listens on ${port}\n`);
  const source: CgroupRun = await runInCgroup(
    [...perf('source'), process.execPath, path.join(root, 'src/cmd/cloner.ts')],
    POD,
    {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        VOLUME_MODE: 'filesystem',
        MOUNT_POINT: src,
        UPLOAD_URL: `https://127.0.0.1:${port}/v1beta1/upload`,
        CLIENT_CERT: client.certPem,
        CLIENT_KEY: client.keyPem,
        SERVER_CA_CERT: pki.serverCa.certPem,
        OWNER_UID: 'bench',
        PREALLOCATION: 'false',
        CDI_CLONER_METRICS_PORT: 'off',
        CDI_IMPORTER_TERMINATION_LOG: path.join(files.root, 'cloner-termination-log'),
        ...nodeOptions,
      },
    },
  );
  if (source.code !== 0) stop.abort(); // the server would wait for a stream that never comes
  const target = await server;
  await rm(files.root, { recursive: true, force: true });
  if (source.code !== 0 || target.code !== 0)
    throw new Error(
      `clone failed (source ${source.code}, target ${target.code}):\n${source.stderr}\n${target.stderr}`,
    );
  const m = /clone done: .* in ([\d.]+)s/.exec(target.stderr);
  if (!m) throw new Error(`no "clone done" line in the upload server's log:\n${target.stderr}`);
  const got = await md5File(path.join(dst, 'disk.img'), diskBytes);
  if (got !== want) throw new Error(`the target's disk.img has md5 ${got}, the source's ${want}`);
  if (process.env.BENCH_VERBOSE) process.stderr.write(source.stderr + target.stderr);
  const srcStart = await startupCpu('src/cmd/cloner.ts');
  const dstStart = await startupCpu('src/cmd/uploadserver.ts');
  return {
    stream: Number(m[1]),
    pod: source.wallSec,
    srcCpu: source.cpuSec - srcStart,
    dstCpu: target.cpuSec - dstStart,
  };
}

interface CpSample {
  wall: number;
  cpu: number;
  /** cp of the source volume's backing image, host file to host file (the cluster measurement's baseline) */
  image: number;
}

async function cpOnce(): Promise<CpSample> {
  await emptyTarget(dst);
  const r = await runInCgroup(
    ['bash', '-c', `cp --sparse=always '${disk}' '${path.join(dst, 'disk.img')}' && sync`],
    {},
  );
  if (r.code !== 0) throw new Error(`cp failed: ${r.stderr}`);
  await emptyTarget(dst);
  const copy = path.join(dir, 'copy.ext4');
  const i = await runInCgroup(['bash', '-c', `cp --sparse=always '${srcImage}' '${copy}' && sync`], {});
  await rm(copy, { force: true });
  if (i.code !== 0) throw new Error(`cp failed: ${i.stderr}`);
  return { wall: r.wallSec, cpu: r.cpuSec, image: i.wallSec };
}

const cps: CpSample[] = [];
const clones: CloneSample[] = [];
const bases: CloneSample[] = [];
const baseline = values.baseline;
const describeClone = (c: CloneSample): string =>
  `stream ${c.stream.toFixed(2)} s (source pod ${c.pod.toFixed(2)} s; cpu beyond start-up: source ${c.srcCpu.toFixed(2)}, target ${c.dstCpu.toFixed(2)})`;
for (let i = 0; i < runs; i++) {
  // rotate the order, so a slow moment of the machine does not always fall on the same side
  const steps: (() => Promise<void>)[] = [
    async () => void cps.push(await cpOnce()),
    async () => void clones.push(await cloneOnce()),
    ...(baseline ? [async () => void bases.push(await cloneOnce(baseline))] : []),
  ];
  for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
  process.stderr.write(
    `run ${i + 1}: cp ${cps.at(-1)!.wall.toFixed(2)} s, cp image ${cps.at(-1)!.image.toFixed(2)} s, ${describeClone(clones.at(-1)!)}${baseline ? `; baseline ${describeClone(bases.at(-1)!)}` : ''}\n`,
  );
}
await emptyTarget(dst);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
const row = (name: string, xs: number[]): string =>
  `${name.padEnd(22)} median ${median(xs).toFixed(2).padStart(6)} s  (${spread(xs)})  ${(dataBytes / MiB / median(xs)).toFixed(0).padStart(5)} MiB/s of data\n`;
const ratios = clones.map((c, i) => cps[i]!.wall / c.stream);
const imageRatios = clones.map((c, i) => cps[i]!.image / c.stream);
process.stdout.write(
  `clone on the host: ${diskBytes / MiB} MiB disk.img with ${dataBytes / MiB} MiB of data, ${runs} runs interleaved, pods ${values.unconfined ? 'unconfined' : '0.75 CPU / 600M each'}\n` +
    row(
      'cp --sparse=always+sync',
      cps.map((c) => c.wall),
    ) +
    row(
      'cp of the backing image',
      cps.map((c) => c.image),
    ) +
    row(
      'clone stream',
      clones.map((c) => c.stream),
    ) +
    row(
      'source pod (process)',
      clones.map((c) => c.pod),
    ) +
    (baseline
      ? row(
          'baseline clone stream',
          bases.map((c) => c.stream),
        ) +
        `baseline cpu s (median, less start-up): source pod ${median(bases.map((c) => c.srcCpu)).toFixed(2)}, upload server ${median(bases.map((c) => c.dstCpu)).toFixed(2)}; ratio stream/cp ${median(bases.map((c, i) => cps[i]!.wall / c.stream)).toFixed(2)}, against the backing image ${median(bases.map((c, i) => cps[i]!.image / c.stream)).toFixed(2)}\n`
      : '') +
    `cpu s (median; the pods' less their start-up): cp ${median(cps.map((c) => c.cpu)).toFixed(2)}, source pod ${median(clones.map((c) => c.srcCpu)).toFixed(2)}, upload server ${median(clones.map((c) => c.dstCpu)).toFixed(2)}\n` +
    `throughput ratio stream/cp (per pair): median ${median(ratios).toFixed(2)} (${spread(ratios)}); against cp of the backing image ${median(imageRatios).toFixed(2)} (${spread(imageRatios)})\n`,
);
