import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.ts';
import { Registry } from 'prom-client';
import { Controller } from './controller.ts';
import { RuntimeMetrics } from './metrics.ts';

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

void test('the controller reports reconcile counts, errors and retries as Prometheus metrics', async () => {
  const registry = new Registry();
  const metrics = new RuntimeMetrics(registry);
  const clock = new FakeClock();
  let first = true;
  const c = new Controller({
    name: 'dv',
    clock,
    metrics,
    queue: { baseDelayMs: 10 },
    reconcile: () => {
      if (first) {
        first = false;
        return Promise.reject(new Error('boom'));
      }
      return Promise.resolve({ requeueAfterMs: 60_000 });
    },
  });
  const stop = new AbortController();
  const running = c.run(stop.signal);
  c.enqueue('ns/a');
  await clock.advance(10);
  stop.abort();
  await clock.advance(0);
  await running;
  const text = await registry.metrics();
  assert.match(text, /controller_runtime_reconcile_total\{controller="dv",result="error"\} 1/);
  assert.match(text, /controller_runtime_reconcile_total\{controller="dv",result="requeue_after"\} 1/);
  assert.match(text, /controller_runtime_reconcile_errors_total\{controller="dv"\} 1/);
  assert.match(text, /workqueue_retries_total\{name="dv"\} 1/);
  assert.match(text, /controller_runtime_reconcile_time_seconds_count\{controller="dv"\} 2/);
  assert.match(text, /controller_runtime_active_workers\{controller="dv"\} 0/);
});
