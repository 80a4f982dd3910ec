import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { boundConditionPatch, primeProgress } from './base.ts';

const prime = (podPhase: string | undefined, bound = true): Pvc => ({
  metadata: {
    name: 'prime-t-uid',
    annotations: podPhase ? { 'cdi.kubevirt.io/storage.pod.phase': podPhase } : {},
  },
  ...(bound ? { status: { phase: 'Bound' } } : {}),
});

void test("the target shows the running import's progress as upstream's import populator writes it", () => {
  assert.equal(primeProgress(undefined, prime(undefined, false), undefined), undefined, 'nothing yet');
  assert.equal(primeProgress(undefined, prime(undefined), undefined), 'N/A', 'the prime is bound');
  assert.equal(primeProgress('N/A', prime('Running'), 45.678), '45.68%');
  assert.equal(primeProgress('45.68%', prime('Running'), undefined), '45.68%', 'no new report: as it is');
  // 100 from the importer does not count the conversion and resize after the download: wait for Succeeded
  assert.equal(primeProgress('99.50%', prime('Running'), 100), '99.50%');
  assert.equal(primeProgress('99.50%', prime('Succeeded'), 100), '100.0%');
  assert.equal(primeProgress(undefined, prime('Succeeded'), undefined), '100.0%');
});

void test("a Pending target's Bound condition is its prime's newest copied event; gone once Bound", () => {
  const B = 'cdi.kubevirt.io/storage.condition.bound';
  const target = (phase: string, annotations: Record<string, string> = {}): Pvc => ({
    metadata: { name: 't', annotations },
    status: { phase },
  });
  const pending = { [B]: 'false', [`${B}.reason`]: 'Pending', [`${B}.message`]: 'no space left' };
  assert.deepEqual(boundConditionPatch(target('Pending'), 'no space left'), pending);
  assert.deepEqual(boundConditionPatch(target('Pending', pending), 'no space left'), {}, 'as it is');
  assert.deepEqual(boundConditionPatch(target('Pending'), undefined), {}, 'no event yet');
  assert.deepEqual(boundConditionPatch(target('Bound', pending), undefined), {
    [B]: null,
    [`${B}.reason`]: null,
    [`${B}.message`]: null,
  });
  assert.deepEqual(boundConditionPatch(target('Bound'), undefined), {});
});
