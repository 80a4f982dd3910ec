/**
 * STAND-INS for the vddk importer tests (test/importer/vddk.test.ts), none of which can be the real thing here:
 *
 *   vCenter    govmomi's vCenter simulator with one VM and a snapshot chain (hack/cluster/go/vcsim: a Go program on
 *              the simulator library, built once from the Go module proxy and cached in ~/.cache/cdi-dev/); it also
 *              answers QueryChangedDiskAreas, which vcsim lacks, from the changed areas the test gives it.
 *   nbdkit's vddk plugin + VDDK   test/support/vddk/vddk-standin-plugin.c, an nbdkit plugin built with gcc at test
 *              time (cached by its hash): VDDK is proprietary, and Debian ships no vddk plugin. nbdkit is real.
 *   the VDDK init image's library  a placeholder libdir/lib64/libvixDiskLib.so.8 plus the stand-in's configuration.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE = process.env.CDI_DEV_CACHE ?? path.join(homedir(), '.cache', 'cdi-dev');
const GOVMOMI = 'v0.52.0';

async function hashOf(files: string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) h.update(await readFile(f));
  return h.digest('hex').slice(0, 12);
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/** Builds (once; cached by govmomi version and source hash) the vCenter stand-in. Returns its path. */
export async function buildVcenterStandin(): Promise<string> {
  const src = path.join(ROOT, 'hack/cluster/go/vcsim');
  const tag = await hashOf([path.join(src, 'main.go'), path.join(src, 'go.mod'), path.join(src, 'go.sum')]);
  const bin = path.join(CACHE, `vcsim-standin-govmomi-${GOVMOMI}-${tag}`, 'vcsim-standin');
  if (await exists(bin)) return bin;
  await mkdir(path.dirname(bin), { recursive: true });
  const env = {
    ...process.env,
    GOMODCACHE: path.join(CACHE, 'go/mod'),
    GOCACHE: path.join(CACHE, 'go/cache'),
    GOFLAGS: '-mod=mod',
    PATH: `/usr/local/go/bin:${process.env.PATH ?? ''}`,
  };
  await run('nice', ['-n', '10', 'go', 'build', '-trimpath', '-ldflags=-s -w', '-o', `${bin}.tmp`, '.'], {
    cwd: src,
    env,
    maxBuffer: 16 << 20,
  });
  await rename(`${bin}.tmp`, bin);
  return bin;
}

/** Builds (once; cached by source hash) the nbdkit plugin standing in for nbdkit's vddk plugin and VDDK. */
export async function buildVddkPluginStandin(): Promise<string> {
  const src = path.join(ROOT, 'test/support/vddk/vddk-standin-plugin.c');
  const so = path.join(CACHE, `vddk-standin-plugin-${await hashOf([src])}`, 'nbdkit-vddk-standin-plugin.so');
  if (await exists(so)) return so;
  await mkdir(path.dirname(so), { recursive: true });
  await run('gcc', [
    '-std=gnu11',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-O2',
    '-fPIC',
    '-shared',
    '-o',
    `${so}.tmp`,
    src,
  ]);
  await rename(`${so}.tmp`, so);
  return so;
}

export interface VcenterSpec {
  capacity: number;
  snapshots: string[];
  changes: Record<string, Record<string, { start: number; length: number }[]>>;
  pageSize?: number;
}

export interface VcenterInventory {
  url: string;
  vm: { moref: string; instanceUuid: string; biosUuid: string };
  disk: { key: number; files: string[] };
  snapshots: { name: string; moref: string; file: string; changeId: string }[];
}

export interface VcenterStandin extends VcenterInventory {
  close(): Promise<void>;
}

export async function startVcenterStandin(o: {
  bin: string;
  dir: string;
  spec: VcenterSpec;
  tls: { certPath: string; keyPath: string };
  user: string;
  password: string;
}): Promise<VcenterStandin> {
  const specPath = path.join(o.dir, 'vcenter-spec.json');
  await writeFile(specPath, JSON.stringify(o.spec));
  const child: ChildProcess = spawn(
    o.bin,
    [
      '-listen',
      '127.0.0.1:0',
      '-cert',
      o.tls.certPath,
      '-key',
      o.tls.keyPath,
      '-username',
      o.user,
      '-password',
      o.password,
      '-spec',
      specPath,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the vCenter stand-in exited (${code}): ${stderr}`)));
  });
  const inv = JSON.parse(first) as VcenterInventory;
  return {
    ...inv,
    close: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

export interface StandinLibConf {
  version: string;
  build: string;
  host: string;
  user: string;
  password: string;
  thumbprint: string;
  abortAfter?: number;
  /** snapshot moref or "-", raw image, datastore path */
  disks: { snapshot: string; image: string; file: string }[];
}

/** What the user's VDDK init image would copy into the pod: libdir/lib64/libvixDiskLib.so.8 (a placeholder here). */
export async function makeVddkLibdir(dir: string, conf: StandinLibConf): Promise<string> {
  await mkdir(path.join(dir, 'lib64'), { recursive: true });
  await writeFile(
    path.join(dir, 'lib64', 'libvixDiskLib.so.8'),
    'placeholder for the proprietary VDDK library\n',
  );
  const lines = [
    `version ${conf.version}`,
    `build ${conf.build}`,
    `host ${conf.host}`,
    `user ${conf.user}`,
    `password ${conf.password}`,
    `thumbprint ${conf.thumbprint}`,
    ...(conf.abortAfter !== undefined ? [`abort-after ${conf.abortAfter}`] : []),
    ...conf.disks.map((d) => `disk ${d.snapshot} ${d.image} ${d.file}`),
  ];
  await writeFile(path.join(dir, 'cdi-vddk-standin.conf'), lines.join('\n') + '\n');
  return dir;
}
