/**
 * A real memory cgroup for a test (cgroup v1 memory controller, or v2 with the memory controller enabled), when this
 * process may make one (root, a writable cgroup file system); undefined otherwise, and the test skips.
 *   const cg = await makeMemoryCgroup('cdi-test-x', 600 << 20);
 *   spawn('sh', ['-c', `echo $$ > ${cg.procs} && exec node …`]);   // the child and its children are limited
 *   await cg.oomKills();  await cg.remove();
 */
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface MemoryCgroup {
  dir: string;
  /** Write a pid here to move that process into the cgroup. */
  procs: string;
  /** OOM kills inside the cgroup so far. */
  oomKills(): Promise<number>;
  remove(): Promise<void>;
}

export async function makeMemoryCgroup(name: string, limit: number): Promise<MemoryCgroup | undefined> {
  const v1 = '/sys/fs/cgroup/memory';
  const v2 = '/sys/fs/cgroup';
  const isV1 = await access(path.join(v1, 'memory.limit_in_bytes')).then(
    () => true,
    () => false,
  );
  const isV2 =
    !isV1 &&
    (await readFile(path.join(v2, 'cgroup.subtree_control'), 'utf8').catch(() => ''))
      .split(' ')
      .includes('memory');
  if (!isV1 && !isV2) return undefined;
  const dir = path.join(isV1 ? v1 : v2, name);
  try {
    await mkdir(dir);
    await writeFile(path.join(dir, isV1 ? 'memory.limit_in_bytes' : 'memory.max'), `${limit}`);
  } catch {
    await rmdir(dir).catch(() => undefined);
    return undefined;
  }
  return {
    dir,
    procs: path.join(dir, 'cgroup.procs'),
    oomKills: async () => {
      const text = await readFile(path.join(dir, isV1 ? 'memory.oom_control' : 'memory.events'), 'utf8');
      return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    },
    remove: () => rmdir(dir),
  };
}
