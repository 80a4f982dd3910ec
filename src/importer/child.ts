/**
 * What every child process of the data path (qemu-img, xz, zstd) shares: the prlimit command line that bounds it,
 * its environment, and output collection that never grows without bound.
 *
 * RLIMIT_AS bounds a child's whole address space, not only what it touches, so the environment keeps reservations
 * small enough for a limit sized from the pod's memory (memory.ts): one malloc arena (glibc reserves 64 MiB of
 * address space per thread arena otherwise, and qemu-img's thread pool makes many) and 2 MiB thread stacks
 * (RLIMIT_STACK sets the default pthread stack, 8 MiB). Measured: `qemu-img convert -m 16 -W` of a qcow2 needs
 * ~1 GiB of address space with the defaults (thread creation fails below that, at random) and runs in 128 MiB with
 * these, at the same speed (peak RSS ~41 MB either way).
 */

/** RLIMIT_STACK for children: the default thread stack size. */
export const CHILD_STACK_BYTES = 2 << 20;

/** The environment of every bounded child. */
export function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, MALLOC_ARENA_MAX: '1' };
}

export interface ProcessLimits {
  /** RLIMIT_AS, bytes. */
  addressSpace: number;
  /** RLIMIT_FSIZE, bytes (regular files only). */
  fileSize?: number;
  /** RLIMIT_CPU soft limit, seconds (the hard limit is 5 s later, so SIGXCPU comes first). */
  cpuSeconds?: number;
  /** Wall-clock limit (`timeout`), seconds. */
  timeoutSec?: number;
}

/** `prlimit … -- [timeout …] cmd args…`. */
export function prlimitArgv(l: ProcessLimits, argv: string[]): string[] {
  const limits = [`--as=${l.addressSpace}`, `--stack=${CHILD_STACK_BYTES}`];
  if (l.fileSize !== undefined) limits.push(`--fsize=${l.fileSize}`);
  if (l.cpuSeconds !== undefined) limits.push(`--cpu=${l.cpuSeconds}:${l.cpuSeconds + 5}`);
  const t = l.timeoutSec === undefined ? [] : ['timeout', '--kill-after=5', `${l.timeoutSec}`];
  return ['prlimit', ...limits, '--', ...t, ...argv];
}

/** Kept of a tool's stderr: the end, where the message is. */
export const STDERR_TAIL = 64 << 10;

/** The last `max` characters of a text stream (a tool's stderr: a flood of warnings cannot push out the error). */
export class TextTail {
  private text = '';
  private readonly max: number;
  constructor(max = STDERR_TAIL) {
    this.max = max;
  }
  add(chunk: string): void {
    this.text += chunk;
    // Trimmed in batches, so a stream of small chunks costs O(n) overall.
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text;
  }
}

/** The first `max` characters of a text stream; `overflowed` says more came (and was dropped). */
export class TextHead {
  private parts: string[] = [];
  private length = 0;
  private readonly max: number;
  overflowed = false;
  constructor(max: number) {
    this.max = max;
  }
  add(chunk: string): void {
    if (this.overflowed) return;
    if (this.length + chunk.length > this.max) {
      this.overflowed = true;
      this.parts = [];
      return;
    }
    this.parts.push(chunk);
    this.length += chunk.length;
  }
  toString(): string {
    return this.parts.join('');
  }
}

/**
 * A text stream split into lines, each at most `max` characters (the rest of a longer line is dropped), so a child
 * that never ends a line holds no more than `max` of our memory.
 */
export class BoundedLines {
  private partial = '';
  private skipping = false;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  /** The lines this chunk completed (without their newlines). */
  add(chunk: string): string[] {
    const pieces = chunk.split('\n');
    const out: string[] = [];
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      const ended = i < pieces.length - 1;
      if (!this.skipping) this.partial += piece.slice(0, this.max - this.partial.length);
      if (ended) {
        if (!this.skipping) out.push(this.partial);
        this.partial = '';
        this.skipping = false;
      } else if (this.partial.length >= this.max) {
        // a full line's worth came without an end: hand it on now, drop the rest of it
        if (!this.skipping) out.push(this.partial);
        this.partial = '';
        this.skipping = true;
      }
    }
    return out;
  }
}

const MEMORY_FAILURE =
  /Cannot allocate memory|Memory usage limit reached|failed to allocate|out of memory|too much memory/i;

/**
 * The message for a bounded child that failed for lack of memory (its stderr says so), or undefined. `what` is the
 * subject ("the vdi image", "the xz data"): what the user must act on, and how.
 */
export function outOfMemory(what: string, stderr: string, addressSpace: number): string | undefined {
  if (!MEMORY_FAILURE.test(stderr)) return undefined;
  return `${what} needs more memory than the ${Math.round(addressSpace / 2 ** 20)} MiB a child process of the importer may use (sized from the importer's memory limit); refused. If the image is genuine, raise the importer pod's memory limit (CDI spec.config.podResourceRequirements)`;
}
