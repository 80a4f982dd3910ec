/**
 * `npm run bench`: `cdi import` over HTTP for a 1 GiB image about half full of random data, against baseline tools
 * measured in the same run, each command (ours and baseline alike, every process of a pipeline) run twice:
 * unconfined, and inside a cgroup limited as upstream limits an importer pod (0.75 CPU, 600M; bench/cgroup.ts).
 *   qcow2:          curl -o file && qemu-img convert -O raw file out   vs  cdi import (extent copy by range),
 *                                                                          --no-extent-copy (qemu-img over NBD) and --no-stream (scratch)
 *   raw:            curl -o out                                        vs  cdi import
 *   raw.gz/xz/zst:  curl | gzip/xz/zstd -dc > out                       vs  cdi import
 *   registry raw.gz / qcow2 container disk (docker-registry on loopback, the disk in a gzip layer):
 *                   skopeo copy docker:// dir: && tar -xzOf <layer> disk/<file> | gzip -dc (or > file && qemu-img
 *                   convert)                                            vs  cdi import docker://… (streamed out of the
 *                                                                          layer; qcow2 through scratch)
 *   S3 raw / qcow2 (versitygw on loopback):
 *                   curl --aws-sigv4 -o out (qcow2: then qemu-img convert)  vs  cdi import --source s3 (ranged reads)
 * Every output is fsynced in both columns (cdi fsyncs before success; the baselines get `sync out`).
 * The images are served by nginx on 127.0.0.1 (sendfile, ranges; bench/nginx.ts), outside the cgroups, so that no
 * baseline waits on the server; with --link or --rtt the Node test file server is used instead (nginx cannot share
 * one link between connections or delay each answer).
 * Also measures xz decompression in a child process vs the in-process WASM decoder (docs/adr/0002-xz-decoder.md),
 * and (cases upload-raw, upload-qcow2; by default when the local cluster exists) uploads through `cdi upload` →
 * cdi-uploadproxy → upload server on the cluster against curl --data-binary to nginx (bench/upload.ts), and (case
 * clone, the same rule) host-assisted, snapshot and CSI clones of a 1 GiB volume half full against cp --sparse=always
 * of its backing file (bench/clone.ts); the cluster cases hold the cluster while they run: take its lock.
 * Fixtures are cached in ~/.cache/cdi-dev/bench-<size>m/. Options:
 *   --size <MiB>          image size (default 1024)
 *   --runs <n>            runs of each command per mode, interleaved ours/baseline (default 1): best wall and CPU
 *   --cases <list>        comma-separated, of the CASES below (default all; --only too)
 *   --confined-only       only the 0.75 CPU / 600M runs;  --unconfined-only: only the unconfined runs
 *   --cpu <n>             the confined CPU limit (default 0.75);  --memory <MB>: its memory limit in 10^6 bytes (600)
 *   --link <MiB/s>        the server's whole output shares one link of that rate (Node test server)
 *   --rtt <ms>            the server waits that long before answering each request (Node test server)
 * Prints one table per mode, ratios against the baseline of the same mode; never asserts on timing.
 */
import { execFile, spawn } from 'node:child_process';
import { createReadStream, existsSync, rmSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, homedir, loadavg } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startFileServer } from '../test/support/fileserver.ts';
import { buildLayout, skopeoPush } from '../test/support/oci.ts';
import { startRegistry, startS3, type Server } from '../test/support/servers.ts';
import { makeSeededDisk, md5File } from '../test/support/images.ts';
import {
  cgroupProblem,
  removeStaleCgroups,
  runInCgroup,
  type CgroupLimits,
  type CgroupRun,
} from './cgroup.ts';
import { atExit } from './cleanup.ts';
import { startNginx } from './nginx.ts';
import { benchUploads, uploadTable, type UploadCase, type UploadRow } from './upload.ts';
import { benchClone, cloneTable } from './clone.ts';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const str = (...names: string[]): string => {
  for (const n of names) if (argv.includes(n)) return argv[argv.indexOf(n) + 1] ?? '';
  return '';
};
const SIZE_MIB = opt('--size', 1024);
const RUNS = opt('--runs', 1);
const LINK = opt('--link', 0);
const RTT = opt('--rtt', 0);
const CPU = opt('--cpu', 0.75);
const MEMORY_MB = opt('--memory', 600);
const CASES = [
  'qcow2',
  'qcow2-nbd',
  'qcow2-scratch',
  'raw',
  'gz',
  'xz',
  'zst',
  'registry-gz',
  'registry-qcow2',
  's3-raw',
  's3-qcow2',
  'xzdec',
  'upload-raw',
  'upload-qcow2',
  'clone',
];
const casesArg = str('--cases', '--only');
for (const c of casesArg.split(',').filter(Boolean))
  if (!CASES.includes(c)) {
    process.stderr.write(`bench: unknown case '${c}' in --cases (known: ${CASES.join(',')})\n`);
    process.exit(2);
  }
const clusterHere = existsSync(path.resolve(import.meta.dirname, '..', '.cluster', 'kubeconfig'));
/** The cases that need the local cluster run by default only when it exists. */
const onCluster = (c: string): boolean => c.startsWith('upload-') || c === 'clone';
const want = (c: string): boolean =>
  casesArg === '' ? !onCluster(c) || clusterHere : casesArg.split(',').includes(c);
const MODES: { label: string; limits: CgroupLimits }[] = [];
if (!argv.includes('--confined-only')) MODES.push({ label: 'unconfined', limits: {} });
if (!argv.includes('--unconfined-only'))
  MODES.push({ label: `${CPU} CPU / ${MEMORY_MB}M`, limits: { cpu: CPU, memoryBytes: MEMORY_MB * 1e6 } });

const root = path.resolve(import.meta.dirname, '..');
const cache = path.join(homedir(), '.cache', 'cdi-dev', `bench-${SIZE_MIB}m`);
const work = path.join(cache, 'work');
const out = path.join(work, 'out.img');
const CDI = path.join(root, 'bin', 'cdi.js');

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

async function sh(cmd: string): Promise<void> {
  await run('bash', ['-o', 'pipefail', '-c', cmd], { maxBuffer: 1 << 26 });
}

async function fixtures(): Promise<{ raw: string; md5: string }> {
  await mkdir(cache, { recursive: true });
  const raw = path.join(cache, 'seed.raw');
  let md5: string;
  if (!(await exists(raw))) {
    process.stderr.write(`==> generating ${SIZE_MIB} MiB seeded disk in ${cache}\n`);
    md5 = (await makeSeededDisk(cache, { size: SIZE_MIB << 20, seed: 'bench', chunk: 4 << 20 })).md5;
  } else md5 = await md5File(raw);
  const make: [string, string][] = [
    ['disk.qcow2', 'qemu-img convert -f raw -O qcow2 seed.raw {out}'],
    ['disk.raw', 'cp --sparse=always seed.raw {out}'],
    ['disk.raw.gz', 'gzip -c seed.raw > {out}'],
    ['disk.raw.zst', 'zstd -q -T0 -c seed.raw > {out}'],
    ['disk.raw.xz', 'xz -T0 -c seed.raw > {out}'],
  ];
  for (const [f, cmd] of make) {
    if (await exists(path.join(cache, f))) continue;
    process.stderr.write(`==> making ${f}\n`);
    await sh(`cd '${cache}' && ${cmd.replace('{out}', `${f}.tmp`)} && mv ${f}.tmp ${f}`);
  }
  return { raw, md5 };
}

/**
 * docker-registry on loopback with the raw.gz and the qcow2 fixture as container disks (disk/<file> in one gzip
 * layer), pushed with skopeo once; the registry's storage stays in the cache.
 */
async function benchRegistry(): Promise<Server> {
  const r = await startRegistry(path.join(cache, 'registry'));
  for (const [tag, file] of [
    ['rawgz', 'disk.raw.gz'],
    ['qcow2', 'disk.qcow2'],
  ] as const) {
    const have = await fetch(`${r.url}/v2/bench/${tag}/manifests/1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    if (have.ok) continue;
    process.stderr.write(`==> pushing the ${file} container disk to the bench registry\n`);
    const layout = await buildLayout(path.join(cache, 'layouts'), tag, [
      { layers: [{ compression: 'gzip', files: { [`disk/${file}`]: path.join(cache, file) } }] },
    ]);
    await skopeoPush(layout, `docker://${r.address}/bench/${tag}:1`, { tlsVerify: false });
    await rm(layout.dir, { recursive: true, force: true });
  }
  return r;
}

const S3_CREDS = { accessKeyId: 'bench-access', secretKey: 'bench-secret-key' };

/** versitygw on loopback with the raw and the qcow2 fixture in bucket `bench` (put once, kept in the cache). */
async function benchS3(): Promise<Server & { keyFile: string }> {
  const srv = await startS3(path.join(cache, 's3'), S3_CREDS);
  const { S3Client, CreateBucketCommand, HeadObjectCommand, PutObjectCommand } =
    await import('@aws-sdk/client-s3');
  const c = new S3Client({
    endpoint: srv.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3_CREDS.accessKeyId, secretAccessKey: S3_CREDS.secretKey },
  });
  await c.send(new CreateBucketCommand({ Bucket: 'bench' })).catch(() => undefined);
  for (const file of ['disk.raw', 'disk.qcow2']) {
    const have = await c.send(new HeadObjectCommand({ Bucket: 'bench', Key: file })).catch(() => undefined);
    if (have) continue;
    process.stderr.write(`==> putting ${file} into the bench S3 bucket\n`);
    const size = (await stat(path.join(cache, file))).size;
    await c.send(
      new PutObjectCommand({
        Bucket: 'bench',
        Key: file,
        Body: createReadStream(path.join(cache, file)),
        ContentLength: size,
      }),
    );
  }
  c.destroy();
  const keyFile = path.join(cache, 's3-secret-key');
  await writeFile(keyFile, S3_CREDS.secretKey, { mode: 0o600 });
  return { ...srv, keyFile };
}

/** One measured command: a fresh work dir and a `sync` first (untimed), then the command alone in its cgroup. */
async function measure(what: string, cmd: readonly string[], limits: CgroupLimits): Promise<CgroupRun> {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await sh('sync');
  const r = await runInCgroup(cmd, limits);
  if (r.code !== 0) {
    const why =
      r.oomKills > 0
        ? `OOM-killed at the memory limit of ${limits.memoryBytes} bytes`
        : r.signal
          ? `killed by ${r.signal}`
          : `exit code ${r.code}`;
    throw new Error(`${what}: ${why}: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
  return r;
}

function cdiArgv(url: string, extra: string[] = []): string[] {
  return [
    process.execPath,
    CDI,
    'import',
    url,
    '--to',
    out,
    '--no-progress',
    '--scratch-dir',
    path.join(work, 'scratch'),
    ...extra,
  ];
}

async function xzCompare(file: string): Promise<{ child: number; child1: number; wasm: number }> {
  const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
  const t = async (fn: () => Promise<void>): Promise<number> => {
    const s = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - s) / 1e9;
  };
  const childRun = (args: string[]) => () =>
    new Promise<void>((resolve, reject) => {
      const c = spawn('xz', args, { stdio: ['ignore', 'pipe', 'inherit'] });
      c.stdout.resume();
      c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`xz exit ${code}`))));
    });
  const child = await t(childRun(['-T0', '-dc', file]));
  const child1 = await t(childRun(['-T1', '-dc', file]));
  const mod = (await import('xz-decompress')) as unknown as { default: typeof import('xz-decompress') };
  const { XzReadableStream } = mod.default;
  const wasm = await t(async () => {
    const web = Readable.toWeb(
      createReadStream(file, { highWaterMark: 1 << 20 }),
    ) as ReadableStream<Uint8Array>;
    await pipeline(
      Readable.fromWeb(new XzReadableStream(web) as import('node:stream/web').ReadableStream<Uint8Array>),
      sink(),
    );
  });
  return { child, child1, wasm };
}

/** Best of the runs: the lowest wall time and the lowest CPU time; the highest memory peak. */
interface Best {
  wall: number;
  cpu: number;
  peak: number;
}
const best = (rs: CgroupRun[]): Best => ({
  wall: Math.min(...rs.map((r) => r.wallSec)),
  cpu: Math.min(...rs.map((r) => r.cpuSec)),
  peak: Math.max(...rs.map((r) => r.peakBytes)),
});

interface Group {
  baseline: { note: string; cmd: string };
  ours: { id: string; name: string; argv: string[]; check: string }[];
}

const loadAtStart = loadavg()[0]!;
const problem = cgroupProblem();
if (problem !== undefined) {
  process.stderr.write(`bench: ${problem}\n`);
  process.exit(2);
}
const removed = removeStaleCgroups();
if (removed > 0)
  process.stderr.write(`==> removed ${removed} cgroups left by an earlier bench that was killed\n`);
const fx = await fixtures();
// a Ctrl-C leaves no image-sized output behind (the cgroups and nginx clean up after themselves)
atExit(() => rmSync(work, { recursive: true, force: true }));
const throttled = LINK > 0 || RTT > 0;
const srv = throttled
  ? await startFileServer({
      root: cache,
      ...(LINK > 0 ? { linkBytesPerSec: LINK * 2 ** 20 } : {}),
      ...(RTT > 0 ? { latencyMs: RTT } : {}),
    })
  : await startNginx(cache);
const served = throttled
  ? `the Node test file server on loopback${LINK > 0 ? ` over one ${LINK} MiB/s link` : ''}${RTT > 0 ? `, ${RTT} ms per request` : ''} (nginx cannot shape a link)`
  : 'nginx on loopback (sendfile, ranges)';
const u = (f: string): string => `${srv.url}/${f}`;
const registry = want('registry-gz') || want('registry-qcow2') ? await benchRegistry() : undefined;
const s3 = want('s3-raw') || want('s3-qcow2') ? await benchS3() : undefined;
const sync = `sync '${out}'`;
const groups: Group[] = [
  {
    baseline: {
      note: 'curl -o + qemu-img convert',
      cmd: `curl -sS -o '${work}/dl.qcow2' '${u('disk.qcow2')}' && qemu-img convert -f qcow2 -O raw '${work}/dl.qcow2' '${out}' && ${sync}`,
    },
    ours: [
      {
        id: 'qcow2',
        name: 'qcow2 (extent copy by range)',
        argv: cdiArgv(u('disk.qcow2')),
        check: 'qcow2 extent copy',
      },
      {
        id: 'qcow2-nbd',
        name: 'qcow2 (qemu-img over NBD)',
        argv: cdiArgv(u('disk.qcow2'), ['--no-extent-copy']),
        check: 'qcow2 nbd',
      },
      {
        id: 'qcow2-scratch',
        name: 'qcow2 (--no-stream, scratch)',
        argv: cdiArgv(u('disk.qcow2'), ['--no-stream']),
        check: 'qcow2 scratch',
      },
    ],
  },
  {
    baseline: { note: 'curl -o', cmd: `curl -sS -o '${out}' '${u('disk.raw')}' && ${sync}` },
    ours: [{ id: 'raw', name: 'raw', argv: cdiArgv(u('disk.raw')), check: 'raw' }],
  },
  ...(
    [
      ['gz', 'gzip'],
      ['xz', 'xz -T0'],
      ['zst', 'zstd'],
    ] as const
  ).map(([ext, tool]) => ({
    baseline: {
      note: `curl | ${tool} -dc`,
      cmd: `curl -sS '${u(`disk.raw.${ext}`)}' | ${tool} -dc > '${out}' && ${sync}`,
    },
    ours: [{ id: ext, name: `raw.${ext}`, argv: cdiArgv(u(`disk.raw.${ext}`)), check: ext }],
  })),
  ...(registry
    ? (
        [
          ['registry-gz', 'rawgz', 'disk.raw.gz', 'gzip -dc'],
          ['registry-qcow2', 'qcow2', 'disk.qcow2', ''],
        ] as const
      ).map(([id, tag, file, decompress]) => {
        const copy = `skopeo --insecure-policy copy -q --src-tls-verify=false docker://${registry.address}/bench/${tag}:1 dir:'${work}/img'`;
        // the layer is the largest file skopeo wrote
        const layer = `"${work}/img/$(ls -S '${work}/img' | head -1)"`;
        const extract = decompress
          ? `tar -xzOf ${layer} disk/${file} | ${decompress} > '${out}'`
          : `tar -xzOf ${layer} disk/${file} > '${work}/${file}' && qemu-img convert -f qcow2 -O raw '${work}/${file}' '${out}'`;
        return {
          baseline: {
            note: `skopeo copy dir: + tar -x${decompress ? ` | ${decompress.split(' ')[0]}` : ' + qemu-img'}`,
            cmd: `${copy} && ${extract} && ${sync}`,
          },
          ours: [
            {
              id,
              name: `registry ${tag === 'rawgz' ? 'raw.gz' : 'qcow2'} container disk`,
              argv: cdiArgv(`docker://${registry.address}/bench/${tag}:1`, ['--insecure-skip-verify']),
              check: id,
            },
          ],
        };
      })
    : []),
  ...(s3
    ? (
        [
          ['s3-raw', 'disk.raw'],
          ['s3-qcow2', 'disk.qcow2'],
        ] as const
      ).map(([id, file]) => {
        const url = `${s3.url}/bench/${file}`;
        const get = `curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --user '${S3_CREDS.accessKeyId}:${S3_CREDS.secretKey}'`;
        const cmd =
          file === 'disk.raw'
            ? `${get} -o '${out}' '${url}' && ${sync}`
            : `${get} -o '${work}/dl.qcow2' '${url}' && qemu-img convert -f qcow2 -O raw '${work}/dl.qcow2' '${out}' && ${sync}`;
        return {
          baseline: { note: `curl --aws-sigv4${file === 'disk.raw' ? '' : ' + qemu-img'}`, cmd },
          ours: [
            {
              id,
              name: `S3 ${file === 'disk.raw' ? 'raw' : 'qcow2'}`,
              argv: cdiArgv(url, [
                '--source',
                's3',
                '--user',
                S3_CREDS.accessKeyId,
                '--password-file',
                s3.keyFile,
              ]),
              check: id,
            },
          ],
        };
      })
    : []),
];

interface Row {
  name: string;
  note: string;
  ours: Best;
  base: Best;
}
const rows = new Map<string, Row[]>(MODES.map((m) => [m.label, []]));
try {
  const check = async (what: string): Promise<void> => {
    const sum = await md5File(out, SIZE_MIB << 20);
    if (sum !== fx.md5) throw new Error(`${what}: wrong md5 ${sum}`);
  };
  for (const g of groups) {
    const ours = g.ours.filter((o) => want(o.id));
    if (ours.length === 0) continue;
    for (const mode of MODES) {
      process.stderr.write(`==> ${ours.map((o) => o.name).join(', ')}: ${mode.label}\n`);
      const base: CgroupRun[] = [];
      const mine = ours.map((): CgroupRun[] => []);
      for (let i = 0; i < RUNS; i++) {
        base.push(
          await measure(
            `baseline ${g.baseline.note}`,
            ['bash', '-o', 'pipefail', '-c', g.baseline.cmd],
            mode.limits,
          ),
        );
        for (const [k, o] of ours.entries()) {
          mine[k]!.push(await measure(`cdi import (${o.name})`, o.argv, mode.limits));
          await check(`${o.check} (${mode.label})`);
        }
      }
      for (const [k, o] of ours.entries())
        rows
          .get(mode.label)!
          .push({ name: o.name, note: g.baseline.note, ours: best(mine[k]!), base: best(base) });
    }
  }
  if (want('xzdec')) process.stderr.write('==> xz decoders\n');
  const xz = want('xzdec') ? await xzCompare(path.join(cache, 'disk.raw.xz')) : undefined;
  const uploadCases: UploadCase[] = (
    [
      { id: 'upload-raw', file: path.join(cache, 'disk.raw') },
      { id: 'upload-qcow2', file: path.join(cache, 'disk.qcow2') },
    ] as const
  ).filter((c) => want(c.id));
  let uploads: UploadRow[] = [];
  if (uploadCases.length > 0 && throttled)
    process.stderr.write('==> upload cases skipped: their baseline is nginx (not with --link or --rtt)\n');
  else if (uploadCases.length > 0) {
    await mkdir(work, { recursive: true });
    uploads = await benchUploads({
      cases: uploadCases,
      nginxUrl: srv.url,
      cdi: CDI,
      md5: fx.md5,
      size: SIZE_MIB << 20,
      log: (l) => process.stderr.write(`${l}\n`),
    });
  }
  const clone = want('clone') ? await benchClone((l) => process.stderr.write(`${l}\n`)) : undefined;
  const sizes = await Promise.all(
    ['disk.qcow2', 'disk.raw.gz', 'disk.raw.xz', 'disk.raw.zst'].map(
      async (f) => `${f} ${((await stat(path.join(cache, f))).size / 2 ** 20).toFixed(0)} MiB`,
    ),
  );
  process.stdout.write(
    `cdi import vs baseline, ${SIZE_MIB} MiB image (about half random) served by ${served}; best of ${RUNS}; ${sizes.join(', ')}; load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (${cpus().length} cores)\n`,
  );
  for (const mode of MODES) {
    const rs = rows.get(mode.label)!;
    if (rs.length > 0) process.stdout.write(`\n${table(mode.label, rs)}`);
  }
  if (uploads.length > 0) process.stdout.write(`\n${uploadTable(uploads)}`);
  if (clone) process.stdout.write(`\n${cloneTable(clone)}`);
  if (xz)
    process.stdout.write(
      `\nxz decoding of disk.raw.xz to /dev/null (unconfined): xz -T0 child ${xz.child.toFixed(2)} s, xz -T1 child ${xz.child1.toFixed(2)} s, xz-decompress (WASM, in-process) ${xz.wasm.toFixed(2)} s\n`,
    );
} finally {
  await srv.close();
  await registry?.close();
  await s3?.close();
  await rm(work, { recursive: true, force: true });
}

function table(label: string, rs: Row[]): string {
  const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
  const cols: [string, number, (r: Row) => string][] = [
    ['case', 30, (r) => r.name],
    ['baseline', 26, (r) => r.note],
    ['ours s', 6, (r) => r.ours.wall.toFixed(2)],
    ['ours MiB', 8, (r) => mib(r.ours.peak)],
    ['base s', 6, (r) => r.base.wall.toFixed(2)],
    ['base MiB', 8, (r) => mib(r.base.peak)],
    ['ratio', 5, (r) => (r.ours.wall / r.base.wall).toFixed(2)],
    ['ours CPU s', 10, (r) => r.ours.cpu.toFixed(2)],
    ['base CPU s', 10, (r) => r.base.cpu.toFixed(2)],
    ['CPU ratio', 9, (r) => (r.ours.cpu / r.base.cpu).toFixed(2)],
  ];
  // a `|` inside a cell (curl | zstd) is escaped, so the table can be pasted into Markdown as it is
  const cell = (s: string, w: number, left: boolean): string => {
    const t = s.replaceAll('|', '\\|');
    return left ? t.padEnd(w) : t.padStart(w);
  };
  const line = (f: (c: (typeof cols)[number], i: number) => string): string =>
    `| ${cols.map((c, i) => f(c, i)).join(' | ')} |`;
  return [
    `${label}: wall seconds, memory peak (memory.max_usage_in_bytes, page cache included) and CPU seconds (user+sys of every process, cpuacct.usage)`,
    line(([h, w], i) => cell(h, w, i < 2)),
    `|${cols.map(([, w]) => '-'.repeat(w + 2)).join('|')}|`,
    ...rs.map((r) => line(([, w, f], i) => cell(f(r), w, i < 2))),
    '',
  ].join('\n');
}
