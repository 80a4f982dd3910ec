import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, itemBackoffMs } from './backoff.ts';
import { onAbort } from './clock.ts';

void test('back-off doubles up to the cap and resets', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  assert.deepEqual(
    [b.next(), b.next(), b.next(), b.next(), b.next(), b.next()],
    [100, 200, 400, 800, 1000, 1000],
  );
  b.reset();
  assert.equal(b.next(), 100);
});

void test('jitter shortens a delay by at most its share', () => {
  const low = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0.999999 });
  const high = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0 });
  assert.equal(low.next(), 500);
  assert.equal(high.next(), 1000);
});

void test('the per-item failure delay is capped', () => {
  assert.equal(itemBackoffMs(0, 5, 1000), 5);
  assert.equal(itemBackoffMs(3, 5, 1000), 40);
  assert.equal(itemBackoffMs(500, 5, 1000), 1000);
});

void test('onAbort runs for a signal that aborted earlier, and after a later abort', () => {
  const done = new AbortController();
  done.abort();
  let early = 0;
  onAbort(done.signal, () => early++);
  assert.equal(early, 1);
  const later = new AbortController();
  let late = 0;
  const remove = onAbort(later.signal, () => late++);
  later.abort();
  remove();
  assert.equal(late, 1);
});
