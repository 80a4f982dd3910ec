/**
 * The memory the importer may use, read from its cgroup, and the limits every child (qemu-img, xz, zstd) gets from
 * it, so that the children's address space plus Node's own use stays under the limit and the pod is never OOM-killed
 * because of our own children (docs/importer.md, "Memory").
 *
 * cgroup v2: `memory.max` of the process's cgroup and each ancestor (the smallest wins; "max" is none).
 * cgroup v1: `memory.limit_in_bytes` the same way under the memory controller's mount (a value near 2^63 is none).
 * The process's cgroup comes from /proc/self/cgroup; inside a container without a cgroup namespace that path does
 * not exist under the mount (the mount root is the container's own cgroup), so the mount root is read instead.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_LIMITS, MIN_CHILD_BYTES, type Limits } from './image/run.ts';

export interface MemoryLimit {
  bytes: number;
  /** The file it was read from. */
  file: string;
}

/** v1 reports "no limit" as the largest page-aligned 63-bit number; anything this large means none. */
const UNLIMITED = 2 ** 60;

async function readLimit(file: string): Promise<number | undefined> {
  const text = (await readFile(file, 'utf8').catch(() => undefined))?.trim();
  if (text === undefined || text === 'max' || !/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= UNLIMITED ? undefined : n;
}

/** The smallest limit on `dir` and its ancestors up to `root`. */
async function smallestUpTo(root: string, dir: string, file: string): Promise<MemoryLimit | undefined> {
  let best: MemoryLimit | undefined;
  for (let d = dir; ; d = path.dirname(d)) {
    const f = path.join(d, file);
    const n = await readLimit(f);
    if (n !== undefined && (best === undefined || n < best.bytes)) best = { bytes: n, file: f };
    if (d === root || !d.startsWith(root)) break;
  }
  return best;
}

async function exists(p: string): Promise<boolean> {
  return (await readFile(path.join(p, 'cgroup.procs'), 'utf8').catch(() => undefined)) !== undefined;
}

/**
 * The memory limit of this process's cgroup, or undefined when there is none. `root` and `self` move the cgroup
 * file system and /proc/self/cgroup (for tests).
 */
export async function cgroupMemoryLimit(
  opts: { root?: string; self?: string } = {},
): Promise<MemoryLimit | undefined> {
  const root = opts.root ?? '/sys/fs/cgroup';
  const self = await readFile(opts.self ?? '/proc/self/cgroup', 'utf8').catch(() => '');
  // "hierarchy-ID:controller-list:cgroup-path"; v2 is "0::/path".
  const lines = self.split('\n').map((l) => /^(\d+):([^:]*):(.*)$/.exec(l));
  const v1 = lines.find((m) => m?.[2]?.split(',').includes('memory'));
  if (v1) {
    const mount = path.join(root, 'memory');
    const dir = path.join(mount, v1[3] ?? '/');
    return smallestUpTo(mount, (await exists(dir)) ? dir : mount, 'memory.limit_in_bytes');
  }
  const v2 = lines.find((m) => m?.[1] === '0' && m[2] === '');
  if (v2) {
    const dir = path.join(root, v2[3] ?? '/');
    return smallestUpTo(root, (await exists(dir)) ? dir : root, 'memory.max');
  }
  return undefined;
}

/**
 * Memory kept for the importer itself and the kernel's share charged to the cgroup: a quarter of the limit, at
 * least 256 MiB. Node's anonymous memory peaked at ~160 MiB importing 1 GiB images (docs/importer.md, "Memory"); its
 * buffers can add up to 64 MiB of held compressed chunks while sniffing, 32 MiB of extent-copy windows, NBD replies.
 */
export function reserveFor(limit: number): number {
  return Math.max(256 << 20, Math.floor(limit / 4));
}

/**
 * The limits for a pod (or process) with `limit` bytes of memory: every child gets what is left after the
 * reserve, at least MIN_CHILD_BYTES and never more than the defaults. Only one child runs at a time, except
 * `qemu-img check` and `map`, which share it (validate.ts). No limit: the defaults.
 */
export function limitsFor(limit: number | undefined, base: Limits = DEFAULT_LIMITS): Limits {
  if (limit === undefined) return base;
  const child = Math.min(base.memoryBytes, Math.max(MIN_CHILD_BYTES, limit - reserveFor(limit)));
  return { ...base, memoryBytes: child };
}

/** What the importer logs about it: one line. */
export function describeLimits(m: MemoryLimit | undefined, l: Limits): string {
  const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`;
  return m
    ? `memory limit ${mib(m.bytes)} (${m.file}): each qemu-img/xz child gets at most ${mib(l.memoryBytes)} of address space`
    : `no memory limit found: each qemu-img/xz child gets at most ${mib(l.memoryBytes)} of address space`;
}
