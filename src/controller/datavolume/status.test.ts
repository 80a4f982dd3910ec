import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computePhase, conditionEvents, populatedFromVolume, updateConditions } from './status.ts';
import type { DataVolume } from '../shared/types.ts';

const dv = (phase?: string): DataVolume => ({
  metadata: { name: 'disk', namespace: 'ns', uid: 'u' },
  spec: {},
  ...(phase !== undefined ? { status: { phase } } : {}),
});
const pvc = (phase: string, annotations: Record<string, string>): Pvc => ({
  metadata: { name: 'disk', annotations },
  status: { phase },
});
const withPod = (podPhase?: string, extra: Record<string, string> = {}): Record<string, string> => ({
  'cdi.kubevirt.io/storage.import.importPodName': 'importer-disk',
  ...(podPhase ? { 'cdi.kubevirt.io/storage.pod.phase': podPhase } : {}),
  ...extra,
});

void test('phase follows the pod phase copied onto a bound PVC, with upstream event reasons', () => {
  const cases: [string, string, string][] = [
    ['Pending', 'ImportScheduled', 'ImportScheduled'],
    ['Running', 'ImportInProgress', 'ImportInProgress'],
    ['Succeeded', 'Succeeded', 'ImportSucceeded'],
  ];
  for (const [pod, phase, reason] of cases) {
    const r = computePhase(dv('PVCBound'), pvc('Bound', withPod(pod)), { waitForFirstConsumer: false });
    assert.equal(r.status.phase, phase);
    assert.equal(r.event?.reason, reason);
  }
  const done = computePhase(dv('ImportInProgress'), pvc('Bound', withPod('Succeeded')), {
    waitForFirstConsumer: false,
  });
  assert.equal(done.status.progress, '100.0%');
  assert.equal(done.event?.message, 'Successfully imported into PVC disk');
});

void test('upload DataVolumes: UploadScheduled, UploadReady once the pod is ready, Succeeded; upstream messages', () => {
  const up = (extra: Record<string, string>): Record<string, string> => ({
    'cdi.kubevirt.io/storage.upload.target': '',
    ...extra,
  });
  const ctx = { waitForFirstConsumer: false, work: 'upload' as const };
  const phase = (a: Record<string, string>, from = 'PVCBound'): ReturnType<typeof computePhase> =>
    computePhase(dv(from), pvc('Bound', up(a)), ctx);
  assert.equal(phase({}).status.phase, 'UploadScheduled');
  assert.equal(phase({}).event, undefined);
  const pending = phase({ 'cdi.kubevirt.io/storage.pod.phase': 'Pending' });
  assert.deepEqual(
    [pending.status.phase, pending.event?.reason, pending.event?.message],
    ['UploadScheduled', 'UploadScheduled', 'Upload into disk scheduled'],
  );
  // running but not ready yet (the readiness probe): still scheduled
  const notReady = phase({
    'cdi.kubevirt.io/storage.pod.phase': 'Running',
    'cdi.kubevirt.io/storage.pod.ready': 'false',
  });
  assert.equal(notReady.status.phase, 'UploadScheduled');
  const ready = phase({
    'cdi.kubevirt.io/storage.pod.phase': 'Running',
    'cdi.kubevirt.io/storage.pod.ready': 'true',
  });
  assert.deepEqual(
    [ready.status.phase, ready.event?.reason, ready.event?.message],
    ['UploadReady', 'UploadReady', 'Upload into disk ready'],
  );
  const done = phase({ 'cdi.kubevirt.io/storage.pod.phase': 'Succeeded' }, 'UploadReady');
  assert.deepEqual(
    [done.status.phase, done.event?.reason, done.event?.message],
    ['Succeeded', 'UploadSucceeded', 'Successfully uploaded into disk'],
  );
  // an import PVC's annotations mean nothing to the upload phases, and the other way round
  assert.equal(computePhase(dv('PVCBound'), pvc('Bound', withPod('Running')), ctx).status.phase, 'PVCBound');
});

void test('external population: Pending while the populator works, Succeeded once bound, a warning without a CSI driver', () => {
  const claim = (phase: string, ref: { apiGroup?: string; kind: string; name: string }): Pvc => ({
    ...pvc(phase, { 'cdi.kubevirt.io/externalPopulation': 'true' }),
    spec: { dataSourceRef: ref, dataSource: ref },
  });
  const sample = { apiGroup: 'populator.example.test', kind: 'Sample', name: 'hello' };
  const ctx = { waitForFirstConsumer: false, work: 'external' as const };
  assert.equal(computePhase(dv('Pending'), claim('Pending', sample), ctx).status.phase, 'Pending');
  assert.equal(
    computePhase(dv('Pending'), claim('Pending', sample), { ...ctx, waitForFirstConsumer: true }).status
      .phase,
    'WaitForFirstConsumer',
  );
  const done = computePhase(dv('Pending'), claim('Bound', sample), { ...ctx, populationSupported: true });
  assert.equal(done.status.phase, 'Succeeded');
  assert.deepEqual(done.event, {
    type: 'Normal',
    reason: 'ExternalPopulationSucceeded',
    message: 'PVC disk successfully populated by hello',
  });
  const noDriver = computePhase(dv('Pending'), claim('Bound', sample), {
    ...ctx,
    populationSupported: false,
  });
  assert.equal(noDriver.status.phase, 'PVCBound');
  assert.deepEqual(noDriver.event, {
    type: 'Warning',
    reason: 'NoCSIDriverForExternalPopulation',
    message: 'No CSI drivers were found: External population not supported',
  });
  assert.equal(populatedFromVolume(claim('Bound', sample)), false);
  assert.equal(populatedFromVolume(claim('Bound', { kind: 'PersistentVolumeClaim', name: 'src' })), true);
  assert.equal(
    populatedFromVolume(
      claim('Bound', { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 's' }),
    ),
    true,
  );
});

void test('a failed pod fails the DV only when the error is fatal', () => {
  const retry = computePhase(
    dv('ImportInProgress'),
    pvc('Bound', withPod('Failed', { 'cdi.kubevirt.io/storage.pod.restarts': '3' })),
    { waitForFirstConsumer: false },
  );
  assert.equal(retry.status.phase, 'ImportScheduled');
  assert.equal(retry.status.restartCount, 3);
  const fatal = computePhase(
    dv('ImportInProgress'),
    pvc('Bound', withPod('Failed', { 'cdi.kubevirt.io/storage.import.fatalError': 'true' })),
    { waitForFirstConsumer: false },
  );
  assert.equal(fatal.status.phase, 'Failed');
  assert.equal(fatal.event?.reason, 'ImportFailed');
});

void test('pending claims: Pending, or WaitForFirstConsumer on a WFFC class; bound without a pod yet: PVCBound', () => {
  assert.equal(
    computePhase(dv(''), pvc('Pending', {}), { waitForFirstConsumer: false }).status.phase,
    'Pending',
  );
  assert.equal(
    computePhase(dv(''), pvc('Pending', {}), { waitForFirstConsumer: true }).status.phase,
    'WaitForFirstConsumer',
  );
  assert.equal(
    computePhase(dv('WaitForFirstConsumer'), pvc('Bound', {}), { waitForFirstConsumer: false }).status.phase,
    'PVCBound',
  );
  assert.equal(computePhase(dv(), undefined, { waitForFirstConsumer: false }).status.phase, 'Pending');
  const lost = computePhase(dv('Succeeded'), pvc('Lost', {}), { waitForFirstConsumer: false });
  assert.equal(lost.status.phase, 'Failed');
  assert.equal(lost.event?.reason, 'ErrClaimLost');
});

void test('conditions: Running and Ready never both True; Bound from the claim; timestamps move only on change', () => {
  const s = computePhase(
    dv('PVCBound'),
    pvc(
      'Bound',
      withPod('Running', {
        'cdi.kubevirt.io/storage.condition.running': 'true',
        'cdi.kubevirt.io/storage.condition.running.reason': 'Pod is running',
      }),
    ),
    { waitForFirstConsumer: false },
  ).status;
  updateConditions(
    s,
    pvc(
      'Bound',
      withPod('Running', {
        'cdi.kubevirt.io/storage.condition.running': 'true',
        'cdi.kubevirt.io/storage.condition.running.reason': 'Pod is running',
        'cdi.kubevirt.io/storage.condition.running.message': '',
      }),
    ),
    '',
    '',
    '2026-01-01T00:00:00Z',
  );
  const by = (t: string) => s.conditions?.find((c) => c.type === t);
  assert.deepEqual(by('Running'), {
    type: 'Running',
    status: 'True',
    reason: 'Pod is running',
    message: '',
    lastTransitionTime: '2026-01-01T00:00:00Z',
    lastHeartbeatTime: '2026-01-01T00:00:00Z',
  });
  assert.equal(by('Ready')?.status, 'False');
  assert.equal(by('Ready')?.reason, 'TransferRunning');
  assert.equal(by('Bound')?.status, 'True');
  assert.equal(by('Bound')?.message, 'PVC disk Bound');
  // success: Ready True, Running False with the importer's words
  const done = computePhase({ ...dv('ImportInProgress'), status: s }, pvc('Bound', withPod('Succeeded')), {
    waitForFirstConsumer: false,
  }).status;
  const a = withPod('Succeeded', {
    'cdi.kubevirt.io/storage.condition.running': 'false',
    'cdi.kubevirt.io/storage.condition.running.reason': 'Completed',
    'cdi.kubevirt.io/storage.condition.running.message': 'Import Complete',
  });
  updateConditions(done, pvc('Bound', a), '', '', '2026-01-01T00:01:00Z');
  const d = (t: string) => done.conditions?.find((c) => c.type === t);
  assert.equal(d('Ready')?.status, 'True');
  assert.equal(d('Ready')?.lastTransitionTime, '2026-01-01T00:01:00Z');
  assert.equal(d('Running')?.status, 'False');
  assert.equal(d('Running')?.message, 'Import Complete');
  assert.equal(d('Bound')?.lastTransitionTime, '2026-01-01T00:00:00Z');
});

void test('events from conditions: Bound changes, and a new failure message while bound', () => {
  const before = [
    { type: 'Bound' as const, status: 'True' as const, reason: 'Bound', message: 'PVC disk Bound' },
    { type: 'Running' as const, status: 'True' as const, reason: 'Pod is running', message: '' },
  ];
  const after = [
    { type: 'Bound' as const, status: 'True' as const, reason: 'Bound', message: 'PVC disk Bound' },
    { type: 'Ready' as const, status: 'False' as const, reason: '', message: '' },
    {
      type: 'Running' as const,
      status: 'False' as const,
      reason: 'Error',
      message: 'Unable to connect to http data source: 404',
    },
  ];
  assert.deepEqual(conditionEvents(after, before), [
    { type: 'Warning', reason: 'Error', message: 'Unable to connect to http data source: 404' },
  ]);
  assert.deepEqual(conditionEvents(after, after), []);
});

void test('a checkpoint of a multi-stage import that succeeded pauses the DV; after the final one, Succeeded', () => {
  const paused = computePhase(
    dv('ImportInProgress'),
    pvc('Bound', withPod('Succeeded', { 'cdi.kubevirt.io/storage.checkpoint.current': 'snap-1' })),
    { waitForFirstConsumer: false },
  );
  assert.equal(paused.status.phase, 'Paused');
  assert.equal(paused.event?.reason, 'ImportPaused');
  assert.equal(paused.event?.message, 'Multistage import into PVC disk is paused');
  const done = computePhase(
    dv('Paused'),
    pvc('Bound', withPod('Succeeded', { 'cdi.kubevirt.io/storage.checkpoint.done': 'true' })),
    { waitForFirstConsumer: false },
  );
  assert.equal(done.status.phase, 'Succeeded');
});
