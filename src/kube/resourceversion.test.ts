import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareResourceVersion, isAtLeast } from './resourceversion.ts';

void test('resource versions compare as integers of any length (KEP-5504), others are not comparable', () => {
  assert.equal(compareResourceVersion('9', '10'), -1);
  assert.equal(compareResourceVersion('123456789012345678901', '123456789012345678900'), 1);
  assert.equal(compareResourceVersion('42', '42'), 0);
  assert.equal(compareResourceVersion('042', '42'), undefined);
  assert.equal(compareResourceVersion('abc', '1'), undefined);
  assert.equal(compareResourceVersion(undefined, '1'), undefined);
  assert.equal(isAtLeast('10', '9'), true);
  assert.equal(isAtLeast('9', '10'), false);
  assert.equal(isAtLeast('x', 'x'), false, 'unknown ordering never counts as caught up');
});
