import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.ts';
import { Controller, expectationOwner } from './controller.ts';
import { Expectations, type CacheView } from './expectations.ts';
import { Resources, type KubeObject } from './types.ts';

/** A cache view whose objects the test moves forward by hand (the informer's part, without a server). */
function view(): CacheView & { set(key: string, obj: KubeObject | undefined): void; last?: string } {
  const objs = new Map<string, KubeObject>();
  const v = {
    last: undefined as string | undefined,
    get: (_r: unknown, key: string) => objs.get(key),
    lastResourceVersion: () => v.last,
    set(key: string, obj: KubeObject | undefined) {
      if (obj) objs.set(key, obj);
      else objs.delete(key);
    },
  };
  return v;
}
const pvc = (rv: string, extra: Partial<NonNullable<KubeObject['metadata']>> = {}): KubeObject => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u1', resourceVersion: rv, ...extra },
});

void test('a write is expected until the cache shows its resourceVersion or a later one', () => {
  const v = view();
  const e = new Expectations(v, { clock: new FakeClock() });
  v.set('ns/p', pvc('10'));
  e.expectWrite('o', Resources.PersistentVolumeClaim, 'ns/p', '12');
  assert.equal(e.satisfied('o'), false);
  v.set('ns/p', pvc('11'));
  assert.equal(e.satisfied('o'), false, 'an older version is not our write');
  v.set('ns/p', pvc('13'));
  assert.equal(e.satisfied('o'), true, 'a later version includes it');
  assert.equal(e.size, 0);
});

void test('the informer as a whole moving past the write satisfies it (the object may be gone since)', () => {
  const v = view();
  const e = new Expectations(v, { clock: new FakeClock() });
  e.expectWrite('o', Resources.PersistentVolumeClaim, 'ns/p', '12');
  v.last = '15';
  assert.equal(e.satisfied('o'), true);
});

void test('a delete is expected until the uid is gone, replaced or terminating; a create that met AlreadyExists until present', () => {
  const v = view();
  const e = new Expectations(v, { clock: new FakeClock() });
  v.set('ns/p', pvc('10'));
  e.expectGone('o', Resources.Pod, 'ns/p', 'u1');
  assert.equal(e.satisfied('o'), false);
  v.set('ns/p', pvc('11', { uid: 'u2' }));
  assert.equal(e.satisfied('o'), true, 'a new incarnation under the name');
  e.expectGone('o', Resources.Pod, 'ns/p', 'u2');
  v.set('ns/p', pvc('12', { uid: 'u2', deletionTimestamp: '2026-01-01T00:00:00Z' }));
  assert.equal(e.satisfied('o'), true, 'terminating counts as gone');
  v.set('ns/p', undefined);
  e.expectPresent('o', Resources.Pod, 'ns/q');
  assert.equal(e.satisfied('o'), false);
  v.set('ns/q', pvc('1'));
  assert.equal(e.satisfied('o'), true);
});

void test('expectations expire after their TTL, so a cache that never catches up cannot wedge a key', async () => {
  const clock = new FakeClock();
  const v = view();
  const e = new Expectations(v, { clock, ttlMs: 1000 });
  e.expectWrite('o', Resources.PersistentVolumeClaim, 'ns/p', '12');
  let woke = 0;
  e.whenSatisfied('o', () => woke++);
  await clock.advance(999);
  assert.equal(woke, 0);
  await clock.advance(1);
  assert.equal(woke, 1);
  assert.equal(e.satisfied('o'), true);
});

void test('a non-numeric resourceVersion gives no expectation (nothing to order it by)', () => {
  const e = new Expectations(view(), { clock: new FakeClock() });
  e.expectWrite('o', Resources.PersistentVolumeClaim, 'ns/p', 'opaque-token');
  assert.equal(e.satisfied('o'), true);
});

void test('the controller holds a key back while its own writes are missing from the cache, and runs it once they show', async () => {
  const clock = new FakeClock();
  const v = view();
  const e = new Expectations(v, { clock });
  v.set('ns/p', pvc('10'));
  const seen: string[] = [];
  const c = new Controller({
    name: 'imp',
    clock,
    expectations: e,
    reconcile: (key) => {
      seen.push(v.get(Resources.PersistentVolumeClaim, key)?.metadata?.resourceVersion ?? '');
      // the reconcile "writes" the PVC: the API server answered resourceVersion 11
      if (seen.length === 1)
        e.expectWrite(expectationOwner('imp', key), Resources.PersistentVolumeClaim, key, '11');
      return Promise.resolve();
    },
  });
  const stop = new AbortController();
  const running = c.run(stop.signal);
  c.enqueue('ns/p');
  await clock.advance(0);
  assert.deepEqual(seen, ['10']);
  c.enqueue('ns/p'); // a storm of wake-ups while the cache still shows version 10
  c.enqueue('ns/p');
  await clock.advance(0);
  assert.deepEqual(seen, ['10'], 'not reconciled on the stale copy');
  v.set('ns/p', pvc('11'));
  e.observed(Resources.PersistentVolumeClaim);
  await clock.advance(0);
  assert.deepEqual(seen, ['10', '11'], 'reconciled once the cache shows the write');
  stop.abort();
  await clock.advance(0);
  await running;
});
