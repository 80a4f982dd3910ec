// Real cgroups (v1, as root): what a confined command sees and what is left behind. Skipped, with the reason, where
// this process cannot make cgroups (no v1 cpu/cpuacct/memory hierarchies, not root): the bench refuses there too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cgroupProblem, liveCgroups, runInCgroup } from './cgroup.ts';

const skip = cgroupProblem() ?? false;

/** This process's cgroup directory in a hierarchy, e.g. /sys/fs/cgroup/memory/<own path>. */
function ownDir(controller: string): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes(controller));
  const mount = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => new RegExp(` - cgroup cgroup [^ ]*\\b${controller}\\b`).test(l));
  assert.ok(line && mount);
  return path.join(mount.split(' ')[4]!, line.split(':').slice(2).join(':'));
}

function leftovers(pid: number): string[] {
  return ['cpu', 'cpuacct', 'memory'].flatMap((c) =>
    readdirSync(ownDir(c)).filter((f) => f.startsWith(`cdi-bench-${pid}-`)),
  );
}

const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

void describe('runInCgroup', { skip }, () => {
  void it('puts every process of a pipeline in the cgroup, with the limits a pod gets, and removes it after', async () => {
    // each side of the pipe reports its own memory and cpu cgroup, and reads its limits from there
    const report = (tag: string): string =>
      `for c in memory cpu; do p=$(grep -E "^[0-9]+:([^:]*,)?$c(,[^:]*)?:" /proc/self/cgroup | cut -d: -f3); echo "${tag} $c $p" >&2; done; ` +
      `m=$(grep -E "^[0-9]+:([^:]*,)?memory(,[^:]*)?:" /proc/self/cgroup | cut -d: -f3); ` +
      `c=$(grep -E "^[0-9]+:([^:]*,)?cpu(,[^:]*)?:" /proc/self/cgroup | cut -d: -f3); ` +
      `echo "${tag} limit $(cat /sys/fs/cgroup/memory$m/memory.limit_in_bytes) $(cat /sys/fs/cgroup/cpu$c/cpu.cfs_quota_us)/$(cat /sys/fs/cgroup/cpu$c/cpu.cfs_period_us)" >&2`;
    const r = await runInCgroup(['bash', '-c', `(${report('left')}) | (${report('right')}; cat)`], {
      cpu: 0.75,
      memoryBytes: 600e6,
    });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    const name = /cdi-bench-\d+-\d+$/.exec(lines.find((l) => l.startsWith('left memory')) ?? '')?.[0];
    assert.ok(name?.startsWith(`cdi-bench-${process.pid}-`), r.stderr);
    for (const side of ['left', 'right']) {
      for (const c of ['memory', 'cpu'])
        assert.ok(
          lines.some((l) => l.startsWith(`${side} ${c} `) && l.endsWith(`/${name}`)),
          `${side} ${c}: ${r.stderr}`,
        );
      // the kernel keeps the limit in whole pages: 600M rounds down to a multiple of 4 KiB
      const limit = lines.find((l) => l.startsWith(`${side} limit `))?.split(' ');
      assert.equal(Number(limit?.[2]), Math.floor(600e6 / 4096) * 4096, r.stderr);
      assert.equal(limit?.[3], '75000/100000', r.stderr);
    }
    assert.deepEqual(leftovers(process.pid), []);
    assert.deepEqual(liveCgroups(), []);
  });

  void it('counts the CPU time of every process and the memory peak, unconfined too', async () => {
    // 64 MiB through dd's buffer: the peak includes it; a shell loop in a grandchild burns CPU
    const r = await runInCgroup([
      'bash',
      '-c',
      'dd if=/dev/zero of=/dev/null bs=64M count=4 2>/dev/null; (i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done) & wait',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.cpuSec > 0, `cpu ${r.cpuSec}`);
    assert.ok(r.peakBytes >= 64 << 20, `peak ${r.peakBytes}`);
  });

  void it('enforces the memory limit: a command that needs more is OOM-killed, one that needs less completes', async () => {
    const over = await runInCgroup(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1'], {
      memoryBytes: 32e6,
    });
    assert.equal(over.signal, 'SIGKILL');
    assert.ok(over.oomKills >= 1);
    const under = await runInCgroup(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1M', 'count=16'], {
      memoryBytes: 32e6,
    });
    assert.equal(under.code, 0, under.stderr);
    assert.equal(under.oomKills, 0);
    assert.deepEqual(leftovers(process.pid), []);
  });

  void it('kills what a command left running in the background, and removes the cgroup', async () => {
    const r = await runInCgroup(['bash', '-c', 'sleep 60 & echo $! >&2']);
    assert.equal(r.code, 0);
    const pid = Number(r.stderr.trim());
    assert.ok(pid > 0);
    assert.equal(alive(pid), false, 'the background sleep still runs');
    assert.deepEqual(leftovers(process.pid), []);
  });

  void it('leaves no cgroup and no process behind when the bench is interrupted (Ctrl-C)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cgroup-test-'));
    try {
      const script = path.join(dir, 'run.ts');
      await writeFile(
        script,
        `import { runInCgroup } from ${JSON.stringify(path.join(import.meta.dirname, 'cgroup.ts'))};\n` +
          `await runInCgroup(['bash', '-c', 'sleep 60 & echo $! > ${dir}/bg; exec sleep 60'], { cpu: 0.75, memoryBytes: 600e6 });\n`,
      );
      const child = spawn(process.execPath, [script], { stdio: 'ignore' });
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.once('exit', (_c, s) => resolve(s)),
      );
      // wait for the command to have started inside its cgroup (it writes the background pid)
      while (!existsSync(path.join(dir, 'bg')) || readFileSync(path.join(dir, 'bg'), 'utf8') === '')
        await new Promise((r) => setTimeout(r, 20));
      const bg = Number(readFileSync(path.join(dir, 'bg'), 'utf8'));
      assert.equal(leftovers(child.pid!).length, 3, 'cpu, cpuacct and memory cgroups while it runs');
      child.kill('SIGINT');
      assert.equal(await exited, 'SIGINT');
      assert.deepEqual(leftovers(child.pid!), []);
      assert.equal(alive(bg), false, 'the command left running after Ctrl-C');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
