import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { primeProgress } from './base.ts';

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
