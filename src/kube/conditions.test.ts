import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findCondition, isConditionTrue, setCondition, type Condition } from './conditions.ts';

const t0 = new Date('2026-01-01T00:00:00.123Z');
const t1 = new Date('2026-01-01T00:05:00Z');

void test('a new condition gets lastTransitionTime (second precision) and heartbeat on request', () => {
  const c = setCondition<Condition>(undefined, { type: 'Ready', status: 'False', reason: 'Pending' }, t0, {
    heartbeat: true,
  });
  assert.deepEqual(c, [
    {
      type: 'Ready',
      status: 'False',
      reason: 'Pending',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      lastHeartbeatTime: '2026-01-01T00:00:00Z',
    },
  ]);
});

void test('an unchanged condition returns the same array', () => {
  const c = setCondition<Condition>(undefined, { type: 'Ready', status: 'False', reason: 'Pending' }, t0);
  assert.equal(setCondition(c, { type: 'Ready', status: 'False', reason: 'Pending' }, t1), c);
});

void test('a new reason with the same status keeps lastTransitionTime; a new status moves it', () => {
  const c0 = setCondition<Condition>(undefined, { type: 'Running', status: 'False', reason: 'Pending' }, t0, {
    heartbeat: true,
  });
  const c1 = setCondition(
    c0,
    { type: 'Running', status: 'False', reason: 'ImagePullFailed', message: 'x' },
    t1,
    { heartbeat: true },
  );
  assert.notEqual(c1, c0);
  assert.equal(findCondition(c1, 'Running')?.lastTransitionTime, '2026-01-01T00:00:00Z');
  assert.equal(findCondition(c1, 'Running')?.lastHeartbeatTime, '2026-01-01T00:05:00Z');
  const c2 = setCondition(c1, { type: 'Running', status: 'True', reason: '' }, t1);
  assert.equal(findCondition(c2, 'Running')?.lastTransitionTime, '2026-01-01T00:05:00Z');
  assert.ok(isConditionTrue(c2, 'Running'));
});

void test('other conditions are kept in order', () => {
  let c = setCondition<Condition>(undefined, { type: 'Ready', status: 'False' }, t0);
  c = setCondition(c, { type: 'Bound', status: 'True' }, t0);
  c = setCondition(c, { type: 'Ready', status: 'True' }, t1);
  assert.deepEqual(
    c.map((x) => [x.type, x.status]),
    [
      ['Ready', 'True'],
      ['Bound', 'True'],
    ],
  );
});

void test('a reason or message left out of the update is cleared, as upstream sets them to ""', () => {
  const c0 = setCondition<Condition>(
    undefined,
    { type: 'Bound', status: 'False', reason: 'ClaimLost', message: 'Claim Lost' },
    t0,
  );
  const c1 = setCondition(c0, { type: 'Bound', status: 'False' }, t1);
  assert.deepEqual(c1, [{ type: 'Bound', status: 'False', lastTransitionTime: '2026-01-01T00:00:00Z' }]);
});
