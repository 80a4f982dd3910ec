/**
 * `npm run bench`: wall time of `cdi import` over HTTP (loopback, the test file server with ranges) for a 1 GiB
 * image about half full of random data, against baseline tools measured in the same run:
 *   qcow2:          curl -o file && qemu-img convert -O raw file out   vs  cdi import (extent copy by range),
 *                                                                          --no-extent-copy (qemu-img over NBD) and --no-stream (scratch)
 *   raw:            curl -o out                                        vs  cdi import
 *   raw.gz/xz/zst:  curl | gzip/xz/zstd -dc > out                       vs  cdi import
 * Every output is fsynced in both columns (cdi fsyncs before success; the baselines get `sync out`).
 * Also measures xz decompression in a child process vs the in-process WASM decoder (docs/adr/0002-xz-decoder.md).
 * Fixtures are cached in ~/.cache/cdi-dev/bench-<size>m/. Options: --size <MiB> (default 1024), --runs <n> (default 1),
 * --only <cases> (comma-separated: qcow2,raw,gz,xz,zst,xzdec; default all),
 * --link <MiB/s> (the server's whole output shares one link of that rate; default: unlimited loopback),
 * --rtt <ms> (the server waits that long before answering each request; default 0).
 * Prints a table of ratios; never asserts on timing.
 */
import { execFile, spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startFileServer } from '../test/support/fileserver.ts';
import { makeSeededDisk, md5File } from '../test/support/images.ts';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const SIZE_MIB = opt('--size', 1024);
const RUNS = opt('--runs', 1);
const LINK = opt('--link', 0);
const RTT = opt('--rtt', 0);
/** --only qcow2,raw,gz,xz,zst,xzdec: run just these cases (default: all). */
const onlyArg = argv.includes('--only') ? (argv[argv.indexOf('--only') + 1] ?? '') : '';
const want = (c: string): boolean => onlyArg === '' || onlyArg.split(',').includes(c);
const root = path.resolve(import.meta.dirname, '..');
const cache = path.join(homedir(), '.cache', 'cdi-dev', `bench-${SIZE_MIB}m`);
const work = path.join(cache, 'work');
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

/** Best wall time of `fn` over RUNS runs; `verify` (the md5 check) runs after each run, outside the timing. */
async function timed(fn: () => Promise<void>, verify?: () => Promise<void>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < RUNS; i++) {
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    await sh('sync');
    const t = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
    await verify?.();
  }
  return best;
}

async function cdi(url: string, extra: string[] = []): Promise<void> {
  const out = path.join(work, 'out.img');
  await run(process.execPath, [
    CDI,
    'import',
    url,
    '--to',
    out,
    '--no-progress',
    '--scratch-dir',
    path.join(work, 'scratch'),
    ...extra,
  ]);
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

const fx = await fixtures();
const srv = await startFileServer({
  root: cache,
  ...(LINK > 0 ? { linkBytesPerSec: LINK * 2 ** 20 } : {}),
  ...(RTT > 0 ? { latencyMs: RTT } : {}),
});
const u = (f: string): string => `${srv.url}/${f}`;
const out = path.join(work, 'out.img');
const rows: { name: string; base: number; cdi: number; note: string }[] = [];
try {
  const check = async (what: string): Promise<void> => {
    const sum = await md5File(out, SIZE_MIB << 20);
    if (sum !== fx.md5) throw new Error(`${what}: wrong md5 ${sum}`);
  };
  if (want('qcow2')) {
    process.stderr.write('==> qcow2\n');
    const qb = await timed(() =>
      sh(
        `curl -sS -o '${work}/dl.qcow2' '${u('disk.qcow2')}' && qemu-img convert -f qcow2 -O raw '${work}/dl.qcow2' '${out}' && sync '${out}'`,
      ),
    );
    const qs = await timed(
      () => cdi(u('disk.qcow2')),
      () => check('qcow2 stream'),
    );
    const qq = await timed(
      () => cdi(u('disk.qcow2'), ['--no-extent-copy']),
      () => check('qcow2 nbd'),
    );
    const qn = await timed(
      () => cdi(u('disk.qcow2'), ['--no-stream']),
      () => check('qcow2 scratch'),
    );
    rows.push({
      name: 'qcow2 (extent copy by range)',
      base: qb,
      cdi: qs,
      note: 'curl -o + qemu-img convert',
    });
    rows.push({ name: 'qcow2 (qemu-img over NBD)', base: qb, cdi: qq, note: 'curl -o + qemu-img convert' });
    rows.push({
      name: 'qcow2 (--no-stream, scratch)',
      base: qb,
      cdi: qn,
      note: 'curl -o + qemu-img convert',
    });
  }
  if (want('raw')) {
    process.stderr.write('==> raw\n');
    const rb = await timed(() => sh(`curl -sS -o '${out}' '${u('disk.raw')}' && sync '${out}'`));
    const rc = await timed(
      () => cdi(u('disk.raw')),
      () => check('raw'),
    );
    rows.push({ name: 'raw', base: rb, cdi: rc, note: 'curl -o' });
  }
  for (const [ext, tool] of [
    ['gz', 'gzip'],
    ['xz', 'xz -T0'],
    ['zst', 'zstd'],
  ] as const) {
    if (!want(ext)) continue;
    process.stderr.write(`==> raw.${ext}\n`);
    const b = await timed(() =>
      sh(`curl -sS '${u(`disk.raw.${ext}`)}' | ${tool} -dc > '${out}' && sync '${out}'`),
    );
    const c = await timed(
      () => cdi(u(`disk.raw.${ext}`)),
      () => check(ext),
    );
    rows.push({ name: `raw.${ext}`, base: b, cdi: c, note: `curl | ${tool} -dc` });
  }
  if (want('xzdec')) process.stderr.write('==> xz decoders\n');
  const xz = want('xzdec') ? await xzCompare(path.join(cache, 'disk.raw.xz')) : undefined;
  const sizes = await Promise.all(
    ['disk.qcow2', 'disk.raw.gz', 'disk.raw.xz', 'disk.raw.zst'].map(
      async (f) => `${f} ${((await stat(path.join(cache, f))).size / 2 ** 20).toFixed(0)} MiB`,
    ),
  );
  const pad = (s: string, n: number): string => s.padEnd(n);
  const lines = [
    `cdi import vs baseline, ${SIZE_MIB} MiB image (about half random), loopback HTTP${LINK > 0 ? ` over a ${LINK} MiB/s link` : ''}${RTT > 0 ? `, ${RTT} ms per request` : ''}, best of ${RUNS}; ${sizes.join(', ')}`,
    `| ${pad('case', 30)} | ${pad('baseline', 30)} | base s | cdi s  | ratio |`,
    `|${'-'.repeat(32)}|${'-'.repeat(32)}|--------|--------|-------|`,
    ...rows.map(
      (r) =>
        `| ${pad(r.name, 30)} | ${pad(r.note, 30)} | ${r.base.toFixed(2).padStart(6)} | ${r.cdi.toFixed(2).padStart(6)} | ${(r.cdi / r.base).toFixed(2).padStart(5)} |`,
    ),
    '',
    xz
      ? `xz decoding of disk.raw.xz to /dev/null: xz -T0 child ${xz.child.toFixed(2)} s, xz -T1 child ${xz.child1.toFixed(2)} s, xz-decompress (WASM, in-process) ${xz.wasm.toFixed(2)} s`
      : '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await srv.close();
  await rm(work, { recursive: true, force: true });
}
