import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PersistentVolumeClaim, Pod } from '../../kube/index.ts';
import { retryUnschedulablePod, SchedulingRetryAnn } from './pods.ts';

const now = Date.parse('2026-12-02T12:00:00Z');
const ago = (ms: number): string => new Date(now - ms).toISOString();

const pvc = (
  name: string,
  bound: boolean,
  annotations: Record<string, string> = {},
): PersistentVolumeClaim => ({
  metadata: {
    name,
    namespace: 'ns',
    annotations: { ...annotations, ...(bound ? { 'pv.kubernetes.io/bind-completed': 'yes' } : {}) },
  },
  spec: bound ? { volumeName: `pv-${name}` } : {},
});

const UNBOUND =
  '0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.';

const pod = (scheduled: { status: string; reason?: string; message?: string; since: number }): Pod => ({
  metadata: { name: 'cdi-upload-t', namespace: 'ns' },
  spec: {
    containers: [],
    volumes: [
      { name: 'cdi-data-vol', persistentVolumeClaim: { claimName: 't' } },
      { name: 'cdi-scratch-vol', persistentVolumeClaim: { claimName: 't-scratch' } },
    ],
  },
  status: {
    phase: 'Pending',
    conditions: [
      {
        type: 'PodScheduled',
        status: scheduled.status,
        ...(scheduled.reason ? { reason: scheduled.reason } : {}),
        ...(scheduled.reason === 'Unschedulable' ? { message: scheduled.message ?? UNBOUND } : {}),
        lastTransitionTime: ago(scheduled.since),
      },
    ],
  },
});

/** The two reads and the one write the helper makes, over an in-memory map (a unit test of the decision only). */
function kubeOf(claims: PersistentVolumeClaim[]) {
  const patches: { name: string; patch: unknown }[] = [];
  const byName = new Map(claims.map((c) => [c.metadata?.name, c]));
  return {
    patches,
    get: <T>(_r: unknown, name: string) => Promise.resolve(byName.get(name) as T | undefined),
    mergePatch: <T>(_r: unknown, name: string, _ns: string | undefined, patch: unknown) => {
      patches.push({ name, patch });
      return Promise.resolve(undefined as T);
    },
  };
}

void test('a Pending, Unschedulable pod whose claims are all bound: its scratch claim is touched, once per 30 s', async () => {
  const k = kubeOf([pvc('t', true), pvc('t-scratch', true)]);
  const stuck = pod({ status: 'False', reason: 'Unschedulable', since: 10_000 });
  assert.deepEqual(await retryUnschedulablePod(k, stuck, now), { requeueAfterMs: 30_000 });
  assert.deepEqual(k.patches, [
    {
      name: 't-scratch',
      patch: { metadata: { annotations: { [SchedulingRetryAnn]: new Date(now).toISOString() } } },
    },
  ]);
  const touched = kubeOf([pvc('t', true), pvc('t-scratch', true, { [SchedulingRetryAnn]: ago(5_000) })]);
  await retryUnschedulablePod(touched, stuck, now);
  assert.deepEqual(touched.patches, [], 'touched 5 s ago: not again yet');
});

void test('no touch while a claim is still unbound or the scheduler just said so; looks again in 3 s', async () => {
  const unbound = kubeOf([pvc('t', true), pvc('t-scratch', false)]);
  const stuck = pod({ status: 'False', reason: 'Unschedulable', since: 10_000 });
  assert.deepEqual(await retryUnschedulablePod(unbound, stuck, now), { requeueAfterMs: 3_000 });
  const fresh = kubeOf([pvc('t', true), pvc('t-scratch', true)]);
  const justNow = pod({ status: 'False', reason: 'Unschedulable', since: 500 });
  assert.deepEqual(await retryUnschedulablePod(fresh, justNow, now), { requeueAfterMs: 3_000 });
  assert.deepEqual([...unbound.patches, ...fresh.patches], []);
});

void test('nothing for a scheduled pod, one not yet tried, or one running', async () => {
  const k = kubeOf([pvc('t', true), pvc('t-scratch', true)]);
  assert.equal(await retryUnschedulablePod(k, pod({ status: 'True', since: 10_000 }), now), undefined);
  const untried = pod({ status: 'False', reason: 'SchedulingGated', since: 10_000 });
  assert.equal(await retryUnschedulablePod(k, untried, now), undefined);
  const running = { ...pod({ status: 'True', since: 1 }), status: { phase: 'Running' } };
  assert.equal(await retryUnschedulablePod(k, running, now), undefined);
  assert.deepEqual(k.patches, []);
});

void test('nothing for a pod the scheduler refused for its own reasons (node selector, resources)', async () => {
  const k = kubeOf([pvc('t', true), pvc('t-scratch', true)]);
  const message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";
  assert.equal(
    await retryUnschedulablePod(
      k,
      pod({ status: 'False', reason: 'Unschedulable', message, since: 10_000 }),
      now,
    ),
    undefined,
  );
  const missing = 'persistentvolumeclaim "t-scratch" not found';
  assert.deepEqual(
    await retryUnschedulablePod(
      k,
      pod({ status: 'False', reason: 'Unschedulable', message: missing, since: 10_000 }),
      now,
    ),
    { requeueAfterMs: 30_000 },
  );
  assert.deepEqual(
    k.patches.map((p) => p.name),
    ['t-scratch'],
  );
});
