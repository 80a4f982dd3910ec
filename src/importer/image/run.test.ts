/** Output of bounded children is capped: the tail of stderr (where the message is), the head of stdout or a refusal. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImportError } from '../errors.ts';
import { lastLine, MAX_STDOUT, runBounded, spawnBounded } from './run.ts';

const GiB = 1024 ** 3;

void describe('spawnBounded / runBounded', () => {
  void it('keeps the last 64 KiB of stderr: the message after a megabyte of warnings is the one reported', async () => {
    const script =
      'i=0; while [ $i -lt 20000 ]; do echo "qemu-img: warning: noise line $i" >&2; i=$((i+1)); done; echo "qemu-img: the real error" >&2; exit 1';
    const r = await spawnBounded('sh', ['-c', script], GiB).done;
    assert.equal(r.code, 1);
    assert.ok(r.stderr.length <= 64 << 10, `stderr kept ${r.stderr.length} characters`);
    assert.equal(lastLine(r.stderr), 'the real error');
  });

  void it('refuses a tool that prints more than MAX_STDOUT instead of gathering it', async () => {
    const err = await runBounded('head', ['-c', `${MAX_STDOUT + 1}`, '/dev/zero'], GiB, 60).then(
      () => assert.fail('should be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ImportError);
    assert.match(err.message, /^head -c printed more than 8 MiB about the image/);
  });

  void it('hands stdout to onStdout as it arrives, gathering none of it', async () => {
    let n = 0;
    const r = await runBounded(
      'head',
      ['-c', `${3 * MAX_STDOUT}`, '/dev/zero'],
      GiB,
      60,
      (c) => (n += c.length),
    );
    assert.equal(n, 3 * MAX_STDOUT);
    assert.equal(r.stdout, '');
  });

  void it('runs the child with one malloc arena and 2 MiB stacks', async () => {
    const r = await runBounded('sh', ['-c', 'echo "$MALLOC_ARENA_MAX $(ulimit -s)"'], GiB, 60);
    assert.equal(r.stdout.trim(), '1 2048');
  });
});
