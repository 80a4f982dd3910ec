import type { Pod as PodObj } from '../../kube/index.ts';
type ContainerStatus = NonNullable<NonNullable<PodObj['status']>['containerStatuses']>[number];
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTerminationMessage, podToPvcUpdate } from './termination.ts';

const pod = (
  phase: string,
  cs: Partial<ContainerStatus>,
  env: { name: string; value: string }[] = [],
): PodObj => ({
  metadata: { name: 'importer-disk' },
  spec: { containers: [{ name: 'importer', env }] },
  status: {
    phase,
    containerStatuses: [
      { name: 'importer', image: 'img', imageID: '', ready: false, restartCount: 0, ...cs },
    ],
  },
});
const terminated = (exitCode: number, message: string, reason = exitCode === 0 ? 'Completed' : 'Error') => ({
  state: { terminated: { exitCode, message, reason } },
});

void test('running pod: Running=true with upstream reason, phase copied, restarts counted', () => {
  const u = podToPvcUpdate({}, {}, pod('Running', { restartCount: 2, state: { running: {} } }));
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.phase'], 'Running');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running'], 'true');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'Pod is running');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.restarts'], '2');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.import.importPodName'], 'importer-disk');
  assert.equal(u.complete, false);
});

void test('restarts never go down (a recreated pod starts from 0)', () => {
  const u = podToPvcUpdate(
    { 'cdi.kubevirt.io/storage.pod.restarts': '4' },
    {},
    pod('Running', { restartCount: 0, state: { running: {} } }),
  );
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.restarts'], '4');
});

void test('success: JSON termination message, phase Succeeded, complete', () => {
  const u = podToPvcUpdate(
    {},
    {},
    pod(
      'Succeeded',
      terminated(
        0,
        '{"message":"Import Complete","preallocationApplied":true,"labels":{"instancetype.kubevirt.io/default-instancetype":"u1.small"}}',
      ),
    ),
  );
  assert.equal(u.complete, true);
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.message'], 'Import Complete');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'Completed');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.preallocation'], 'true');
  assert.equal(u.labels['instancetype.kubevirt.io/default-instancetype'], 'u1.small');
});

void test('scratch space required: the phase is not copied, the pod must be recreated', () => {
  const u = podToPvcUpdate(
    { 'cdi.kubevirt.io/storage.pod.phase': 'Running' },
    {},
    pod('Succeeded', terminated(0, '{"scratchSpaceRequired":true}')),
  );
  assert.equal(u.podModificationsNeeded, true);
  assert.equal(u.complete, false);
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.phase'], 'Running');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.import.requiresScratch'], 'true');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'Scratch space required');
  assert.equal(
    u.annotations['cdi.kubevirt.io/storage.condition.running.message'],
    'scratch space required and none found',
  );
});

void test('checksum mismatch is fatal: phase Failed, fatalError, reason ChecksumError, a warning event', () => {
  const u = podToPvcUpdate(
    {},
    {},
    pod('Succeeded', terminated(0, '{"message":"checksum mismatch: expected sha256:aa, got sha256:bb"}')),
  );
  assert.equal(u.fatal, true);
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.phase'], 'Failed');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.import.fatalError'], 'true');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'ChecksumError');
  assert.match(u.annotations['cdi.kubevirt.io/storage.condition.running.message'] ?? '', /checksum mismatch/);
  assert.deepEqual(
    u.events.map((e) => e.reason),
    ['ErrImportFailed'],
  );
});

void test('a request refused for good (fatalReason) is fatal: phase Failed, its reason and message, a warning event', () => {
  const message =
    'Unable to process data: a checksum (cdi.kubevirt.io/storage.import.checksum) cannot be verified when importing from vddk: …';
  const u = podToPvcUpdate(
    { 'cdi.kubevirt.io/storage.pod.phase': 'Running' },
    {},
    pod('Succeeded', terminated(0, JSON.stringify({ fatalReason: 'ChecksumUnsupported', message }))),
  );
  assert.equal(u.fatal, true);
  assert.equal(u.complete, false, 'exit 0, yet nothing was imported');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.phase'], 'Failed');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.import.fatalError'], 'true');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running'], 'false');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'ChecksumUnsupported');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.message'], message);
  assert.deepEqual(u.events, [{ type: 'Warning', reason: 'ErrImportFailed', message }]);
});

void test('a retryable failure (exit 1, plain text) is not fatal; the message survives CrashLoopBackOff', () => {
  const failed = podToPvcUpdate(
    {},
    {},
    pod('Running', terminated(1, 'Unable to connect to http data source: 404 Not Found')),
  );
  assert.equal(failed.fatal, false);
  assert.equal(failed.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'Error');
  assert.match(
    failed.annotations['cdi.kubevirt.io/storage.condition.running.message'] ?? '',
    /404 Not Found/,
  );
  const waiting = podToPvcUpdate(
    {},
    {},
    pod('Running', {
      restartCount: 3,
      state: { waiting: { reason: 'CrashLoopBackOff' } },
      lastState: {
        terminated: {
          exitCode: 1,
          reason: 'Error',
          message: 'Unable to connect to http data source: 404 Not Found',
        },
      },
    }),
  );
  assert.equal(waiting.annotations['cdi.kubevirt.io/storage.pod.restarts'], '3');
  assert.equal(waiting.annotations['cdi.kubevirt.io/storage.condition.running'], 'false');
  assert.match(
    waiting.annotations['cdi.kubevirt.io/storage.condition.running.message'] ?? '',
    /404 Not Found/,
  );
});

void test('image too large reads as one clear sentence and keeps retrying', () => {
  const u = podToPvcUpdate(
    {},
    {},
    pod(
      'Running',
      terminated(
        1,
        'Unable to process data: virtual image size 2147483648 is larger than the reported available storage 1073741824',
      ),
    ),
  );
  assert.equal(u.fatal, false);
  assert.equal(
    u.annotations['cdi.kubevirt.io/storage.condition.running.message'],
    'DataVolume too small to contain image',
  );
});

void test('OOMKilled asks for direct I/O; a pod already on TRYNONE clears it', () => {
  const oom = podToPvcUpdate(
    {},
    {},
    pod('Running', { state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }),
  );
  assert.equal(oom.podModificationsNeeded, true);
  assert.equal(oom.annotations['cdi.kubevirt.io/storage.import.requiresDirectIo'], 'true');
  const retry = podToPvcUpdate(
    { 'cdi.kubevirt.io/storage.import.requiresDirectIo': 'true' },
    {},
    pod('Running', { state: { running: {} } }, [{ name: 'CACHE_MODE', value: 'TRYNONE' }]),
  );
  assert.equal(retry.annotations['cdi.kubevirt.io/storage.import.requiresDirectIo'], 'false');
});

void test('image pull failures are named', () => {
  const u = podToPvcUpdate(
    {},
    {},
    pod('Pending', { started: false, state: { waiting: { reason: 'ImagePullBackOff' } } }),
  );
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'ImagePullFailed');
  assert.equal(
    u.annotations['cdi.kubevirt.io/storage.condition.running.message'],
    'failed to pull image: img',
  );
});

void test('unschedulable pods are flagged', () => {
  const p = pod('Pending', { state: { waiting: { reason: 'ContainerCreating' } } });
  p.status!.conditions = [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }];
  assert.equal(podToPvcUpdate({}, {}, p).annotations['cdi.kubevirt.io/storage.pod.schedulable'], 'false');
});

void test('termination message parsing: only exit 0, JSON object, clear error otherwise', () => {
  assert.equal(parseTerminationMessage(pod('Running', terminated(1, 'boom'))), undefined);
  assert.deepEqual(
    parseTerminationMessage(pod('Succeeded', terminated(0, '{"scratchSpaceRequired":true,"message":"x"}'))),
    { scratchSpaceRequired: true, message: 'x' },
  );
  assert.throws(() => parseTerminationMessage(pod('Succeeded', terminated(0, 'not json'))), /is not JSON/);
});

void test('a second OOMKilled, already with direct I/O, fails the import and names the memory limit to raise', () => {
  const p = pod('Running', {
    restartCount: 1,
    state: { waiting: { reason: 'CrashLoopBackOff' } },
    lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
  });
  p.spec!.containers[0]!.env = [{ name: 'CACHE_MODE', value: 'TRYNONE' }];
  p.spec!.containers[0]!.resources = { limits: { memory: '600M' } };
  const u = podToPvcUpdate({ 'cdi.kubevirt.io/storage.import.requiresDirectIo': 'false' }, {}, p);
  assert.equal(u.fatal, true);
  assert.equal(u.podModificationsNeeded, false, 'no third pod');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.phase'], 'Failed');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.condition.running.reason'], 'OOMKilled');
  assert.equal(
    u.annotations['cdi.kubevirt.io/storage.condition.running.message'],
    'the importer ran out of memory again with direct I/O (CACHE_MODE=TRYNONE): raise its memory limit (now 600M) in CDIConfig spec.podResourceRequirements.limits.memory and recreate the DataVolume',
  );
  assert.ok(
    u.events.some((e) => e.type === 'Warning' && /raise its memory limit \(now 600M\)/.test(e.message)),
  );
});

void test("a successful import's warnings are handed on; the JSON of a failure's are not", () => {
  const warning = "Unexpected content type 'text/html'. Content might not be a KubeVirt image.";
  const ok = podToPvcUpdate(
    {},
    {},
    pod(
      'Succeeded',
      terminated(0, JSON.stringify({ message: 'Import Complete', warnings: [warning, 7, ''] })),
    ),
  );
  assert.deepEqual(ok.warnings, [warning], 'strings only');
  const scratch = podToPvcUpdate(
    {},
    {},
    pod('Succeeded', terminated(0, JSON.stringify({ scratchSpaceRequired: true, warnings: [warning] }))),
  );
  assert.deepEqual(scratch.warnings, [], 'the import is not complete yet: its retry will say it again');
});

void test('multi-stage: the pod that transferred the current checkpoint is recorded by uid', () => {
  const p = { ...pod('Succeeded', terminated(0, '{"message":"Import Complete"}')) };
  p.metadata = { ...p.metadata, uid: 'pod-uid-7' };
  const u = podToPvcUpdate({ 'cdi.kubevirt.io/storage.checkpoint.current': 'snap-1' }, {}, p);
  assert.equal(u.annotations['cdi.kubevirt.io/storage.checkpoint.pod.id'], 'pod-uid-7');
  assert.equal(u.annotations['cdi.kubevirt.io/storage.pod.phase'], 'Succeeded');
  const single = podToPvcUpdate({}, {}, p);
  assert.equal(single.annotations['cdi.kubevirt.io/storage.checkpoint.pod.id'], undefined);
});
