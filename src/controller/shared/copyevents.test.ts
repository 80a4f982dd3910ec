import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeObject, PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import type { Kube, ListOptions } from './client.ts';
import { ClaimMisbound, copyEvents, eventsToMirror, latestMirrored, type SourceEvent } from './copyevents.ts';

const at = (s: number): string => new Date(Date.UTC(2026, 11, 4, 12, 0, s)).toISOString();
const ev = (reason: string, message: string, s: number, type = 'Normal'): SourceEvent => ({
  type,
  reason,
  message,
  lastTimestamp: at(s),
});

void test('copies new events with the prefix, oldest first', () => {
  const out = eventsToMirror(
    'prime-1',
    [
      ev('ProvisioningSucceeded', 'Successfully provisioned volume pv-1', 2),
      ev('Provisioning', 'External provisioner is provisioning volume', 1),
    ],
    [],
  );
  assert.deepEqual(out, [
    {
      type: 'Normal',
      reason: 'Provisioning',
      message: '[prime-1] : External provisioner is provisioning volume',
    },
    {
      type: 'Normal',
      reason: 'ProvisioningSucceeded',
      message: '[prime-1] : Successfully provisioned volume pv-1',
    },
  ]);
});

void test('skips what the target has, with or without the prefix', () => {
  const out = eventsToMirror(
    'tmp-pvc-1',
    [ev('A', 'same words', 1), ev('B', 'copied before', 2), ev('C', 'new', 3, 'Warning')],
    ['same words', '[tmp-pvc-1] : copied before'],
  );
  assert.deepEqual(out, [{ type: 'Warning', reason: 'C', message: '[tmp-pvc-1] : new' }]);
});

void test('skips ClaimMisbound, and a message twice is one copy', () => {
  const out = eventsToMirror(
    'p',
    [
      ev(ClaimMisbound, 'Two claims are bound to the same volume', 1, 'Warning'),
      ev('X', 'm', 2),
      ev('Y', 'm', 3),
    ],
    [],
  );
  assert.deepEqual(
    out.map((e) => e.reason),
    ['X'],
  );
  assert.equal(latestMirrored([ev(ClaimMisbound, 'x', 9), ev('X', 'older', 1)])?.message, 'older');
});

/** A stand-in for the API server's field-selected event list (the rule's caller only lists and records). */
function fakes(events: (KubeObject & SourceEvent & { involvedObject: { name: string; uid: string } })[]): {
  kube: Kube;
  recorded: string[];
  lists: number;
  recorder: { record: (o: KubeObject, t: 'Normal' | 'Warning', r: string, m: string) => Promise<void> };
} {
  const state = { recorded: [] as string[], lists: 0 };
  const kube = {
    list: (_r: unknown, o?: ListOptions) => {
      state.lists++;
      assert.equal(o?.live, true);
      const [name, uid] = (o?.fieldSelector ?? '').split(',').map((p) => p.split('=')[1]);
      return Promise.resolve({
        items: events.filter((e) => e.involvedObject.name === name && e.involvedObject.uid === uid),
      });
    },
  } as unknown as Kube;
  const recorder = {
    record: (o: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> => {
      state.recorded.push(message);
      events.push({
        involvedObject: { name: o.metadata?.name ?? '', uid: o.metadata?.uid ?? '' },
        type,
        reason,
        message,
      });
      return Promise.resolve();
    },
  };
  return {
    kube,
    recorder,
    get recorded() {
      return state.recorded;
    },
    get lists() {
      return state.lists;
    },
  };
}

void test('copyEvents records each copy once, and lists the target only when there is something new', async () => {
  const source: Pvc = { metadata: { name: 'prime-u1', namespace: 'ns', uid: 'u-prime' } };
  const target: Pvc = { metadata: { name: 't', namespace: 'ns', uid: 'u-target' } };
  const f = fakes([
    {
      involvedObject: { name: 'prime-u1', uid: 'u-prime' },
      ...ev('ProvisioningFailed', 'no space', 1, 'Warning'),
    },
    { involvedObject: { name: 't', uid: 'u-target' }, ...ev('Other', 'unrelated', 1) },
  ]);
  const latest = await copyEvents({ kube: f.kube, recorder: f.recorder }, source, target);
  assert.equal(latest?.message, 'no space');
  assert.deepEqual(f.recorded, ['[prime-u1] : no space']);
  assert.equal(f.lists, 2);
  await copyEvents({ kube: f.kube, recorder: f.recorder }, source, target);
  assert.deepEqual(f.recorded, ['[prime-u1] : no space']);
  assert.equal(f.lists, 3, 'nothing new: the source only');
});
