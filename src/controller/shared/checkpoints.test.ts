import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataVolume } from './types.ts';
import {
  checkpointArgs,
  initialCheckpointAnnotations,
  isMultiStageInProgress,
  multiStageSucceeded,
} from './checkpoints.ts';

const G = 'cdi.kubevirt.io/';
const dv = (checkpoints: { previous: string; current: string }[], finalCheckpoint: boolean): DataVolume => ({
  metadata: { name: 'warm', namespace: 'ns' },
  spec: {
    source: { imageio: { url: 'https://e/api', secretRef: 's', diskId: 'd', certConfigMap: 'c' } },
    checkpoints,
    finalCheckpoint,
    storage: {},
  },
});

/** Applies a change set as a merge patch would. */
const apply = (
  a: Record<string, string>,
  c: Record<string, string | null> | undefined,
): Record<string, string> => {
  const out = { ...a };
  for (const [k, v] of Object.entries(c ?? {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
};

void test('a warm import walks its checkpoints: one pod each, Paused between, done after the final one', () => {
  const d = dv(
    [
      { previous: '', current: 'snap-1' },
      { previous: 'snap-1', current: 'snap-2' },
    ],
    true,
  );
  let a: Record<string, string> = initialCheckpointAnnotations(d);
  assert.deepEqual(a, {
    [`${G}storage.checkpoint.current`]: 'snap-1',
    [`${G}storage.checkpoint.previous`]: '',
    [`${G}storage.checkpoint.final`]: 'false',
  });
  // the first pod succeeded (the import controller recorded its uid)
  a = {
    ...a,
    [`${G}storage.pod.phase`]: 'Succeeded',
    [`${G}storage.import.importPodName`]: 'importer-warm-checkpoint-snap-1',
    [`${G}storage.checkpoint.pod.id`]: 'uid-1',
  };
  a = apply(a, multiStageSucceeded(a, checkpointArgs(d)));
  assert.equal(a[`${G}storage.checkpoint.copied.snap-1`], 'uid-1');
  assert.equal(a[`${G}storage.checkpoint.current`], 'snap-2');
  assert.equal(a[`${G}storage.checkpoint.previous`], 'snap-1');
  assert.equal(a[`${G}storage.checkpoint.final`], 'true');
  assert.equal(a[`${G}storage.pod.phase`], 'Unknown'); // the import controller starts the next pod
  assert.equal(a[`${G}storage.import.importPodName`], undefined);
  assert.equal(isMultiStageInProgress(a), true);
  // run again on the same state: nothing changes (the same pod never marks two checkpoints)
  assert.equal(multiStageSucceeded(a, checkpointArgs(d)), undefined);
  // the final pod succeeded
  a = { ...a, [`${G}storage.pod.phase`]: 'Succeeded', [`${G}storage.checkpoint.pod.id`]: 'uid-2' };
  a = apply(a, multiStageSucceeded(a, checkpointArgs(d)));
  assert.equal(a[`${G}storage.checkpoint.copied.snap-2`], 'uid-2');
  assert.equal(a[`${G}storage.pod.phase`], 'Succeeded');
  assert.equal(isMultiStageInProgress(a), true); // still Paused for one reconcile, as upstream
  a = apply(a, multiStageSucceeded(a, checkpointArgs(d)));
  assert.equal(a[`${G}storage.checkpoint.done`], 'true');
  assert.equal(a[`${G}storage.checkpoint.current`], undefined);
  assert.equal(a[`${G}storage.checkpoint.copied.snap-1`], undefined);
  assert.equal(isMultiStageInProgress(a), false);
});

void test('without finalCheckpoint the import waits, Paused, for the next checkpoint in the spec', () => {
  const one = dv([{ previous: '', current: 'snap-1' }], false);
  let a: Record<string, string> = {
    ...initialCheckpointAnnotations(one),
    [`${G}storage.pod.phase`]: 'Succeeded',
    [`${G}storage.checkpoint.pod.id`]: 'uid-1',
  };
  a = apply(a, multiStageSucceeded(a, checkpointArgs(one)));
  assert.equal(a[`${G}storage.checkpoint.current`], 'snap-1');
  assert.equal(a[`${G}storage.pod.phase`], 'Succeeded');
  // the user adds a checkpoint and sets finalCheckpoint
  const two = dv(
    [
      { previous: '', current: 'snap-1' },
      { previous: 'snap-1', current: 'snap-2' },
    ],
    true,
  );
  a = apply(a, multiStageSucceeded(a, checkpointArgs(two)));
  assert.equal(a[`${G}storage.checkpoint.current`], 'snap-2');
  assert.equal(a[`${G}storage.checkpoint.final`], 'true');
  assert.equal(a[`${G}storage.pod.phase`], 'Unknown');
});

void test('only imageio and vddk DataVolumes with checkpoints are multi-stage', () => {
  const http: DataVolume = {
    metadata: { name: 'x' },
    spec: { source: { http: { url: 'http://h/x' } }, checkpoints: [{ previous: '', current: 'a' }] },
  };
  assert.deepEqual(initialCheckpointAnnotations(http), {});
});
