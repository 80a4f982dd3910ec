import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOverhead, requiredSpace, usableSpace } from './quantity.ts';

void test('filesystem overhead arithmetic matches upstream for the DV storage API', () => {
  // 1Gi at 6%: ceil(1073741824 × 1.06) = 1138166333.44 → 1138166334
  assert.equal(requiredSpace(0.06, 1073741824n), 1138166334n);
  // a size that is not MiB-aligned is first rounded up to 1MiB
  assert.equal(requiredSpace(0, 1048577n), 2097152n);
  // usable space goes the other way and rounds down to 1MiB
  assert.equal(usableSpace(0.06, 1138166334n), 1073741824n);
  assert.equal(usableSpace(0.055, 10n * 1073741824n), 10177478656n);
});

void test('overhead strings follow the CRD pattern', () => {
  assert.equal(parseOverhead('0.055'), 0.055);
  assert.equal(parseOverhead('1'), 1);
  assert.throws(() => parseOverhead('0.5555'), /invalid filesystem overhead/);
});
