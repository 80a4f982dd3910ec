import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.ts';
import { TokenBucket } from './ratelimit.ts';

void test('a token bucket gives its burst at once, then one token per 1/qps', async () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ qps: 10, burst: 3, clock });
  assert.deepEqual([b.reserve(), b.reserve(), b.reserve()], [0, 0, 0]);
  assert.equal(b.reserve(), 100);
  assert.equal(b.reserve(), 200, 'reservations queue up behind each other');
  await clock.advance(200);
  assert.equal(b.reserve(), 100);
  assert.equal(b.tryTake(), false);
  await clock.advance(100);
  assert.equal(b.full, false);
  await clock.advance(10_000);
  assert.equal(b.full, true);
  assert.equal(b.tryTake(), true);
});
