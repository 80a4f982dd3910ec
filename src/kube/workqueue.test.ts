import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.ts';
import { WorkQueue } from './workqueue.ts';

void test('a key added many times is handed out once', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  q.add('ns/a');
  q.add('ns/a');
  q.add('ns/b');
  q.add('ns/a');
  assert.equal(q.length, 2);
  assert.equal(await q.get(), 'ns/a');
  assert.equal(await q.get(), 'ns/b');
  assert.equal(q.length, 0);
});

void test('a key being processed is not handed to a second worker; it comes back after done()', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  q.add('k');
  const first = await q.get();
  assert.equal(first, 'k');
  q.add('k'); // changed while processing
  let second: string | undefined;
  const waiting = q.get().then((k) => (second = k));
  await new Promise((r) => setImmediate(r));
  assert.equal(second, undefined, 'the key must not be given out while processing');
  q.done('k');
  await waiting;
  assert.equal(second, 'k');
});

void test('failures back off exponentially per key and forget() resets it', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock, baseDelayMs: 100, maxDelayMs: 1000 });
  const got: string[] = [];
  q.addRateLimited('k'); // 100 ms
  await clock.advance(99);
  assert.equal(q.length, 0);
  await clock.advance(1);
  assert.equal(q.length, 1);
  got.push((await q.get())!);
  q.done('k');
  q.addRateLimited('k'); // 200 ms
  await clock.advance(199);
  assert.equal(q.length, 0);
  await clock.advance(1);
  assert.equal(q.length, 1);
  assert.equal(q.numRequeues('k'), 2);
  for (let i = 0; i < 10; i++) q.addRateLimited('x');
  assert.equal(q.numRequeues('x'), 10);
  q.forget('x');
  assert.equal(q.numRequeues('x'), 0);
  assert.deepEqual(got, ['k']);
});

void test('addAfter keeps the earliest time for a key', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock });
  q.addAfter('k', 5000);
  q.addAfter('k', 1000);
  q.addAfter('k', 3000);
  await clock.advance(1000);
  assert.equal(q.length, 1);
  assert.equal(await q.get(), 'k');
  q.done('k');
  await clock.advance(10_000);
  assert.equal(q.length, 0, 'the later timers were dropped');
});

void test('shutDown releases waiting workers and waits for in-flight keys', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  q.add('busy');
  const busy = await q.get();
  const idle = q.get();
  let drained = false;
  const shut = q.shutDown().then(() => (drained = true));
  assert.equal(await idle, undefined);
  await new Promise((r) => setImmediate(r));
  assert.equal(drained, false);
  q.done(busy!);
  await shut;
  assert.equal(drained, true);
  q.add('late');
  assert.equal(await q.get(), undefined);
});

void test('retries of many keys share an overall bucket (10 per second after a burst of 100), as client-go does', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ clock }); // client-go's defaults: 5 ms per key, 10 qps burst 100 overall
  for (let i = 0; i < 150; i++) q.addRateLimited(`ns/k${i}`);
  await clock.advance(5);
  assert.equal(q.length, 100, "the burst goes after the keys' own 5 ms");
  await clock.advance(1000);
  assert.equal(q.length, 110, 'then ten a second');
  await clock.advance(4000);
  assert.equal(q.length, 150);
});
