/**
 * nbdkit's curl plugin, exporting a remote image read-only on a unix socket so that qemu-img reads it by range
 * (the streaming path: no scratch copy). The retry filter survives a dropped connection. No readahead filter:
 * on nbdkit 1.32 it does nothing above the curl plugin (serialized thread model; nbdkit says so in a warning).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorKind, ImportError } from '../errors.ts';
import type { CurlSpec } from '../source/source.ts';
import { lastLine, spawnBounded } from './run.ts';

export interface Nbdkit {
  socket: string;
  stop(): Promise<void>;
  log(): string;
}

export async function startNbdkitCurl(
  spec: CurlSpec,
  caPems: string[],
  memoryBytes: number,
): Promise<Nbdkit> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cdi-nbdkit-'));
  const socket = path.join(dir, 'nbdkit.sock');
  const args = [
    '--foreground',
    '--readonly',
    '--exit-with-parent',
    '-U',
    socket,
    '--filter=retry',
    'curl',
    `url=${spec.url}`,
    'retry-exponential=no',
    'retries=5',
    'retry-delay=1',
    // Per-request limit, like the HTTP source's idle watchdog (upstream: 10 minutes without data).
    'timeout=600',
  ];
  for (const h of spec.headers) args.push(`header=${h}`);
  if (spec.user !== undefined) {
    const pw = path.join(dir, 'password');
    await writeFile(pw, spec.password ?? '', { mode: 0o600 });
    args.push(`user=${spec.user}`, `password=+${pw}`);
  }
  if (caPems.length > 0) {
    const bundle = path.join(dir, 'ca.pem');
    await writeFile(bundle, caPems.join('\n'));
    args.push(`cainfo=${bundle}`);
  }
  if (spec.insecure) args.push('sslverify=false');
  const { child, done } = spawnBounded('nbdkit', args, memoryBytes);
  let exited: string | undefined;
  void done.then((r) => {
    exited = lastLine(r.stderr) || `exit ${r.code}`;
  });
  for (let i = 0; i < 500 && exited === undefined; i++) {
    if (await stat(socket).catch(() => undefined)) break;
    await sleep(20);
  }
  if (exited !== undefined || !(await stat(socket).catch(() => undefined))) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw new ImportError(
      ErrorKind.Transfer,
      `nbdkit could not read ${spec.url}: ${exited ?? 'no socket after 10s'}`,
    );
  }
  let stderr = '';
  child.stderr?.on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
  return {
    socket,
    log: () => stderr,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await done.catch(() => undefined);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
