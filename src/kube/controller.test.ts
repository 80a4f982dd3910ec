import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.ts';
import { Controller } from './controller.ts';

void test('the controller never reconciles one key on two workers at once, retries failures and honours requeueAfter', async () => {
  const clock = new FakeClock();
  const calls: string[] = [];
  let active = 0;
  let maxActiveForA = 0;
  let failOnce = true;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const c = new Controller({
    name: 'test',
    workers: 4,
    clock,
    queue: { baseDelayMs: 1000 },
    reconcile: async (key) => {
      calls.push(key);
      if (key === 'ns/a') {
        active++;
        maxActiveForA = Math.max(maxActiveForA, active);
        await gate;
        active--;
      }
      if (key === 'ns/b' && failOnce) {
        failOnce = false;
        throw new Error('transient');
      }
      if (key === 'ns/c') return { requeueAfterMs: 2000 };
    },
  });
  const stop = new AbortController();
  const running = c.run(stop.signal);
  await clock.advance(0);
  c.enqueue('ns/a');
  c.enqueue('ns/b');
  c.enqueue('ns/c');
  await clock.advance(0);
  c.enqueue('ns/a'); // while ns/a is running
  c.enqueue('ns/a');
  await clock.advance(0);
  assert.equal(maxActiveForA, 1);
  release();
  await clock.advance(0);
  assert.equal(
    calls.filter((k) => k === 'ns/a').length,
    2,
    'ns/a runs again once, after the first run finished',
  );
  assert.equal(maxActiveForA, 1);
  assert.equal(calls.filter((k) => k === 'ns/b').length, 1);
  await clock.advance(1000); // failure back-off of ns/b
  assert.equal(calls.filter((k) => k === 'ns/b').length, 2);
  assert.equal(calls.filter((k) => k === 'ns/c').length, 1);
  await clock.advance(1000); // requeueAfter of ns/c (2000 ms after its first run)
  assert.equal(calls.filter((k) => k === 'ns/c').length, 2);
  stop.abort();
  await clock.advance(0);
  await running;
});
