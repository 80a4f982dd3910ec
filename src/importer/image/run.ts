/** Runs qemu-img with bounded memory (prlimit --as) and time (timeout), collecting output. */
import { spawn, type ChildProcess } from 'node:child_process';
import { ErrorKind, ImportError } from '../errors.ts';

export interface Limits {
  /** Address-space limit for qemu-img (bytes). */
  memoryBytes: number;
  /** Wall-clock limit for metadata commands (info, check, map), seconds. */
  metadataTimeoutSec: number;
  /** Wall-clock limit for a conversion, seconds. */
  convertTimeoutSec: number;
}

export const DEFAULT_LIMITS: Limits = {
  memoryBytes: 2 * 1024 ** 3,
  metadataTimeoutSec: 60,
  convertTimeoutSec: 24 * 3600,
};

export function boundedArgv(cmd: string, args: string[], memoryBytes: number, timeoutSec?: number): string[] {
  const t = timeoutSec === undefined ? [] : ['timeout', '--kill-after=5', `${timeoutSec}`];
  return ['prlimit', `--as=${memoryBytes}`, '--', ...t, cmd, ...args];
}

export interface RunResult {
  code: number | null;
  stdout: string;
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
  const child = spawn(bin, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    if (onStdout) onStdout(d);
    else stdout += d;
  });
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < 65536) stderr += d;
  });
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (err) =>
      reject(new ImportError(ErrorKind.Internal, `cannot run ${cmd}: ${err.message}`, { cause: err })),
    );
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

export async function runBounded(
  cmd: string,
  args: string[],
  memoryBytes: number,
  timeoutSec: number,
): Promise<RunResult> {
  const r = await spawnBounded(cmd, args, memoryBytes, timeoutSec).done;
  if (r.code === 124 || r.code === 137) {
    throw new ImportError(
      ErrorKind.Invalid,
      `${cmd} ${args[0] ?? ''} did not finish within ${timeoutSec}s; the image is refused`,
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
