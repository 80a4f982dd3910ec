/**
 * Upstream's virtctl (KubeVirt v1.8.4), for the compatibility tests: CDI_VIRTCTL, or the binary that
 * hack/tools/build-virtctl.sh caches. `npm test` starts that build in the background (hack/run.sh) and names its
 * files in CDI_VIRTCTL_BUILD (`<prefix>.log`, and `<prefix>.rc` once it has ended): a test file that needs virtctl
 * waits for the build, and fails with the end of its log when the build failed. Without either (a developer running
 * one file) the tests skip, saying how to get it.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const VirtctlPath =
  process.env['CDI_VIRTCTL'] ??
  path.join(
    process.env['CDI_DEV_CACHE'] ?? path.join(homedir(), '.cache', 'cdi-dev'),
    'virtctl-v1.8.4',
    'virtctl',
  );

/** Waits for the background build if there is one; the binary's path, or why the tests skip. */
export async function virtctlBinary(): Promise<{ path: string; skip: false } | { skip: string }> {
  const build = process.env['CDI_VIRTCTL_BUILD'];
  if (build && !process.env['CDI_VIRTCTL']) {
    const began = Date.now();
    let announced = false;
    while (!existsSync(`${build}.rc`)) {
      if (!announced && Date.now() - began > 5000) {
        process.stderr.write(`waiting for the virtctl build (${build}.log)\n`);
        announced = true;
      }
      await sleep(2000);
    }
    const rc = (await readFile(`${build}.rc`, 'utf8')).trim();
    if (rc !== '0') {
      const log = await readFile(`${build}.log`, 'utf8').catch(() => '');
      throw new Error(`building virtctl failed (exit ${rc}); the end of ${build}.log:\n${log.slice(-4000)}`);
    }
    if (!existsSync(VirtctlPath)) throw new Error(`the virtctl build ended well but left no ${VirtctlPath}`);
  }
  return existsSync(VirtctlPath)
    ? { path: VirtctlPath, skip: false }
    : { skip: `no virtctl at ${VirtctlPath}: run hack/tools/build-virtctl.sh (npm test builds it)` };
}
