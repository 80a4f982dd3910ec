/**
 * Runs a command inside a fresh cgroup (v1), as the kubelet confines a pod: `cpu.cfs_quota_us` of
 * `cpu.cfs_period_us` for a CPU limit, `memory.limit_in_bytes` for a memory limit, and `cpuacct` for the CPU time
 * spent. Every process the command starts (both sides of `curl | zstd -dc`) is in the cgroup, because the shell
 * that execs the command joins it first.
 *
 *   const r = await runInCgroup(['bash', '-c', 'curl … | zstd -dc > out'], { cpu: 0.75, memoryBytes: 600e6 });
 *   r.wallSec, r.cpuSec (user+sys of all processes), r.peakBytes (memory.max_usage_in_bytes: page cache included,
 *   as the kernel charges it to the cgroup), r.code / r.signal, r.oomKills
 *
 * The cgroups are created below this process's own cgroup in each hierarchy (so whatever limits the machine puts
 * on this process still apply) as `cdi-bench-<pid>-<n>`, and removed after the command ends; on SIGINT/SIGTERM
 * or an exit their processes are killed and the directories removed too. Without limits the cgroup still counts
 * CPU and memory, so an unconfined run is measured the same way.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { atExit } from './cleanup.ts';

export interface CgroupLimits {
  /** CPUs, as a Kubernetes CPU limit (0.75 → cfs_quota_us 75000 of cfs_period_us 100000); omitted: no limit */
  cpu?: number;
  /** bytes, as a Kubernetes memory limit (`600M` → 600_000_000); omitted: no limit */
  memoryBytes?: number;
}

export interface CgroupRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  wallSec: number;
  /** user+sys CPU seconds of every process in the cgroup (cpuacct.usage) */
  cpuSec: number;
  /** memory.max_usage_in_bytes: the highest charge, page cache included */
  peakBytes: number;
  /** processes the kernel OOM-killed in the cgroup (`oom_kill` of memory.oom_control) */
  oomKills: number;
  stderr: string;
}

const CPU_PERIOD_US = 100_000;
const PREFIX = 'cdi-bench-';
const CONTROLLERS = ['cpu', 'cpuacct', 'memory'] as const;
type Controller = (typeof CONTROLLERS)[number];

/** Where each controller's hierarchy is mounted and which cgroup this process is in, from /proc. */
function hierarchies(): Record<Controller, string> {
  const mounts = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // … <mount point> … - cgroup cgroup rw,cpu,cpuacct
    const [pre, post] = line.split(' - ');
    if (!pre || !post?.startsWith('cgroup ')) continue;
    const mountPoint = pre.split(' ')[4] ?? '';
    for (const o of (post.split(' ')[2] ?? '').split(',')) mounts.set(o, mountPoint);
  }
  const own = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]+):(.*)$/.exec(line);
    if (m) for (const c of m[1]!.split(',')) own.set(c, m[2]!);
  }
  const out = {} as Record<Controller, string>;
  for (const c of CONTROLLERS) {
    const mp = mounts.get(c);
    const p = own.get(c);
    if (mp === undefined || p === undefined)
      throw new Error(
        `no cgroup v1 '${c}' hierarchy on this machine (/proc/self/mountinfo, /proc/self/cgroup): the bench ` +
          'measures every command in cgroup v1 cpu, cpuacct and memory hierarchies (cgroup v2 is not supported yet)',
      );
    out[c] = path.join(mp, p);
  }
  return out;
}

/** Every cgroup directory this process created and has not removed yet, with its exit-time clean-up. */
const live = new Map<string, () => void>();
let seq = 0;

function track(dir: string): void {
  live.set(
    dir,
    atExit(() => killAndRemoveSync(dir)),
  );
}

function untrack(dir: string): void {
  live.get(dir)?.();
  live.delete(dir);
}

/**
 * Kills whatever is still in the cgroup (a process the command left in the background, or all of it when the bench
 * is interrupted) and removes the directory; false while the killed processes are still exiting (EBUSY).
 */
function killAndRemove(dir: string): boolean {
  let pids: string[];
  try {
    pids = readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  } catch {
    untrack(dir);
    return true; // already gone
  }
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return false;
  }
  untrack(dir);
  return true;
}

/** For exit handlers, which cannot wait asynchronously: retries with a short busy wait. */
function killAndRemoveSync(dir: string): void {
  for (let i = 0; i < 100 && !killAndRemove(dir); i++) {
    const until = Date.now() + 10;
    while (Date.now() < until);
  }
}

/**
 * Removes `cdi-bench-<pid>-*` cgroups left by a bench process that no longer exists (one that was SIGKILLed), so
 * stale directories do not pile up. Returns how many were removed.
 */
export function removeStaleCgroups(): number {
  let n = 0;
  for (const dir of Object.values(hierarchies())) {
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((f) => f.startsWith(PREFIX));
    } catch {
      continue;
    }
    for (const name of names) {
      const pid = Number(name.slice(PREFIX.length).split('-')[0]);
      if (pid === process.pid || alive(pid)) continue;
      killAndRemoveSync(path.join(dir, name));
      n++;
    }
  }
  return n;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function removeWhenEmpty(dir: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (killAndRemove(dir)) return;
    await sleep(10);
  }
  throw new Error(`cannot remove cgroup ${dir}: processes are still in it`);
}

/**
 * Why this process cannot run commands in cgroups (no v1 hierarchies, not root, read-only cgroupfs), or undefined
 * when it can: a probe directory is made and removed in each hierarchy.
 */
export function cgroupProblem(): string | undefined {
  let base: Record<Controller, string>;
  try {
    base = hierarchies();
  } catch (e) {
    return (e as Error).message;
  }
  for (const dir of Object.values(base)) {
    const probe = path.join(dir, `${PREFIX}${process.pid}-probe`);
    try {
      mkdirSync(probe);
      rmdirSync(probe);
    } catch (e) {
      return `cannot create a cgroup in ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}): the bench must run as root with a writable cgroup v1 filesystem`;
    }
  }
  return undefined;
}

/** Runs argv in a new cgroup with these limits; resolves when the command exits (any exit code). */
export async function runInCgroup(
  argv: readonly string[],
  limits: CgroupLimits = {},
  opts: { cwd?: string; signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<CgroupRun> {
  const base = hierarchies();
  const name = `${PREFIX}${process.pid}-${++seq}`;
  const dirs = {} as Record<Controller, string>;
  try {
    for (const c of CONTROLLERS) {
      dirs[c] = path.join(base[c], name);
      await mkdir(dirs[c]);
      track(dirs[c]);
    }
    await writeFile(path.join(dirs.cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    await writeFile(
      path.join(dirs.cpu, 'cpu.cfs_quota_us'),
      limits.cpu === undefined ? '-1' : String(Math.round(limits.cpu * CPU_PERIOD_US)),
    );
    if (limits.memoryBytes !== undefined) {
      await writeFile(path.join(dirs.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      // no swap beyond the limit, as the kubelet sets it (memsw exists only with swap accounting on)
      await writeFile(
        path.join(dirs.memory, 'memory.memsw.limit_in_bytes'),
        String(limits.memoryBytes),
      ).catch(() => undefined);
    }
    const procs = [...new Set(Object.values(dirs))].map((d) => path.join(d, 'cgroup.procs'));
    // the shell joins every cgroup, then becomes the command: nothing of the command runs outside
    const join = procs.map((p) => `echo $$ > '${p}'`).join(' && ');
    const child = spawn('sh', ['-c', `${join} && exec "$@"`, 'sh', ...argv], {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: opts.cwd,
      ...(opts.env ? { env: opts.env } : {}),
    });
    const onAbort = (): void => {
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 1 << 16) stderr += d;
    });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const t0 = process.hrtime.bigint();
    // 'exit', not 'close': a process the command left in the background may hold stderr open
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c, s) => resolve([c, s]));
    });
    const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
    opts.signal?.removeEventListener('abort', onAbort);
    const num = async (dir: string, file: string): Promise<number> =>
      Number((await readFile(path.join(dir, file), 'utf8')).trim());
    const result = {
      code,
      signal,
      wallSec,
      cpuSec: (await num(dirs.cpuacct, 'cpuacct.usage')) / 1e9,
      peakBytes: await num(dirs.memory, 'memory.max_usage_in_bytes'),
      oomKills: Number(
        /^oom_kill (\d+)$/m.exec(await readFile(path.join(dirs.memory, 'memory.oom_control'), 'utf8'))?.[1] ??
          0,
      ),
    };
    for (const d of Object.values(dirs)) await removeWhenEmpty(d);
    await closed; // all of stderr, now that nothing is left to hold it open
    return { ...result, stderr };
  } finally {
    for (const d of Object.values(dirs)) await removeWhenEmpty(d);
  }
}

/** For the exit handler and tests: the cgroup directories still present (should be none after a run). */
export function liveCgroups(): string[] {
  return [...live.keys()];
}
