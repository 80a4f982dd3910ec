/** Runs qemu-img with bounded memory (prlimit --as) and time (timeout), collecting bounded output. */
import { spawn, type ChildProcess } from 'node:child_process';
import { childEnv, prlimitArgv, TextHead, TextTail } from '../child.ts';
import { ErrorKind, ImportError } from '../errors.ts';

export interface Limits {
  /** Address-space limit for one child process (qemu-img, xz), bytes. */
  memoryBytes: number;
  /** Wall-clock limit for metadata commands (info, check, map), seconds. */
  metadataTimeoutSec: number;
  /** Wall-clock limit for a conversion, seconds. */
  convertTimeoutSec: number;
  /** Most separate extents an extent-copy plan may hold (image/extents.ts); more converts with qemu-img instead. */
  maxExtents?: number;
}

/** Without a memory limit to size from (memory.ts): what a 2 GiB child can do. */
export const DEFAULT_LIMITS: Limits = {
  memoryBytes: 2 * 1024 ** 3,
  metadataTimeoutSec: 60,
  convertTimeoutSec: 24 * 3600,
};

/** The least address space a child gets, whatever the pod's limit (qemu-img convert needs ~100 MiB, child.ts). */
export const MIN_CHILD_BYTES = 128 << 20;

/** Most of a metadata command's stdout kept (qemu-img info/check JSON); more refuses the image. */
export const MAX_STDOUT = 8 << 20;

export function boundedArgv(cmd: string, args: string[], memoryBytes: number, timeoutSec?: number): string[] {
  return prlimitArgv({ addressSpace: memoryBytes, ...(timeoutSec !== undefined ? { timeoutSec } : {}) }, [
    cmd,
    ...args,
  ]);
}

export interface RunResult {
  code: number | null;
  /** Empty when the output went to `onStdout`. */
  stdout: string;
  /** More than MAX_STDOUT came; `stdout` is empty. */
  stdoutOverflow: boolean;
  /** The last 64 KiB. */
  stderr: string;
}

export function spawnBounded(
  cmd: string,
  args: string[],
  memoryBytes: number,
  timeoutSec?: number,
  onStdout?: (chunk: string) => void,
): { child: ChildProcess; done: Promise<RunResult> } {
  const [bin = 'prlimit', ...rest] = boundedArgv(cmd, args, memoryBytes, timeoutSec);
  const child = spawn(bin, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const stdout = new TextHead(MAX_STDOUT);
  const stderr = new TextTail();
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    if (onStdout) onStdout(d);
    else stdout.add(d);
  });
  child.stderr?.on('data', (d: string) => stderr.add(d));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (err) =>
      reject(new ImportError(ErrorKind.Internal, `cannot run ${cmd}: ${err.message}`, { cause: err })),
    );
    child.on('close', (code) =>
      resolve({
        code,
        stdout: stdout.toString(),
        stdoutOverflow: stdout.overflowed,
        stderr: stderr.toString(),
      }),
    );
  });
  return { child, done };
}

export async function runBounded(
  cmd: string,
  args: string[],
  memoryBytes: number,
  timeoutSec: number,
  onStdout?: (chunk: string) => void,
): Promise<RunResult> {
  const r = await spawnBounded(cmd, args, memoryBytes, timeoutSec, onStdout).done;
  if (r.code === 124 || r.code === 137) {
    throw new ImportError(
      ErrorKind.Invalid,
      `${cmd} ${args[0] ?? ''} did not finish within ${timeoutSec}s; the image is refused`,
    );
  }
  if (r.stdoutOverflow) {
    throw new ImportError(
      ErrorKind.Invalid,
      `${cmd} ${args[0] ?? ''} printed more than ${MAX_STDOUT >> 20} MiB about the image; such images are refused`,
    );
  }
  return r;
}

/** The last meaningful line of a tool's stderr, without the program-name prefix. */
export function lastLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/warning: /.test(l));
  return (lines.at(-1) ?? '').replace(/^qemu-img: /, '');
}
