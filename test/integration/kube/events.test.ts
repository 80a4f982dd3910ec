// The event recorder against the real API server: events show in `kubectl describe`, repeats aggregate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EventRecorder,
  FakeClock,
  KubeClient,
  Resources,
  type ConfigMap,
  type Event,
  type KubeObject,
} from '../../../src/kube/index.ts';
import type { DataVolume } from '../../../src/api/index.ts';
import { kubectl, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-events', (c, n) => ((client = c), (ns = n)), { crds: true });

void test('events about a DataVolume are listed by kubectl describe, and a repeat bumps the count', async () => {
  const dv = await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'evented', namespace: ns },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
  });
  const recorder = new EventRecorder(client, { component: 'cdi-controller-test' });
  await recorder.normal(dv, 'ImportScheduled', 'Import into evented scheduled');
  await recorder.warning(
    dv,
    'ErrImportFailed',
    'Unable to connect to http data source: expected status code 200, got 404',
  );
  await recorder.warning(
    dv,
    'ErrImportFailed',
    'Unable to connect to http data source: expected status code 200, got 404',
  );
  await recorder.warning(
    dv,
    'ErrImportFailed',
    'Unable to connect to http data source: expected status code 200, got 404',
  );
  await recorder.flush(); // record() only queues

  const events = await client.list<Event>(Resources.Event, {
    namespace: ns,
    fieldSelector: `involvedObject.uid=${dv.metadata?.uid}`,
  });
  // A CDI controller running in the cluster may add its own events about the DataVolume.
  const ours = events.items.filter((e) => e.source?.component === 'cdi-controller-test');
  const byReason = new Map(ours.map((e): [string, Event] => [e.reason ?? '', e]));
  assert.equal(ours.length, 2, 'three identical warnings are one Event');
  assert.equal(byReason.get('ErrImportFailed')?.count, 3);
  assert.equal(byReason.get('ErrImportFailed')?.type, 'Warning');
  assert.equal(byReason.get('ImportScheduled')?.count, 1);
  assert.equal(byReason.get('ImportScheduled')?.source?.component, 'cdi-controller-test');
  assert.equal(byReason.get('ImportScheduled')?.involvedObject.kind, 'DataVolume');

  const d = await kubectl('describe', 'dv', 'evented', '-n', ns);
  assert.equal(d.code, 0, d.stderr);
  const section = d.stdout.slice(d.stdout.indexOf('Events:'));
  assert.match(section, /Normal\s+ImportScheduled\s+.*cdi-controller-test\s+Import into evented scheduled/);
  assert.match(
    section,
    /Warning\s+ErrImportFailed\s+.*\(x3 over .*\)\s+cdi-controller-test\s+Unable to connect to http data source/,
  );
});

void test('events about a cluster-scoped object land in the default namespace', async () => {
  const sp = await client.create<KubeObject>(Resources.StorageProfile, {
    metadata: { name: `ev-${ns}` },
    spec: {},
  } as KubeObject);
  try {
    const recorder = new EventRecorder(client, { component: 'cdi-controller-test' });
    await recorder.normal(
      { ...sp, apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'StorageProfile' },
      'Recognized',
      'provisioner recognized',
    );
    await recorder.flush();
    const events = await client.list<Event>(Resources.Event, {
      namespace: 'default',
      fieldSelector: `involvedObject.uid=${sp.metadata?.uid}`,
    });
    assert.equal(events.items.filter((e) => e.source?.component === 'cdi-controller-test').length, 1);
    assert.equal(events.items[0]?.reason, 'Recognized');
  } finally {
    await client.delete(Resources.StorageProfile, `ev-${ns}`);
  }
});

void test('an object taken from a list (core lists omit kind) can be the subject of an event', async () => {
  await client.create<ConfigMap>(Resources.ConfigMap, { metadata: { name: 'listed', namespace: ns } });
  const [cm] = (
    await client.list<ConfigMap>(Resources.ConfigMap, {
      namespace: ns,
      fieldSelector: 'metadata.name=listed',
    })
  ).items;
  assert.ok(cm);
  const recorder = new EventRecorder(client, { component: 'cdi-controller-test' });
  await recorder.normal(cm, 'Checked', 'seen in a list');
  await recorder.flush();
  const d = await kubectl('describe', 'configmap', 'listed', '-n', ns);
  assert.match(d.stdout.slice(d.stdout.indexOf('Events:')), /Normal\s+Checked\s+.*seen in a list/);
});

void test('record() returns before the API server answers; the spam filter lets 25 events per object through, then one per 5 minutes', async () => {
  const cm = await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'noisy', namespace: ns },
  });
  const clock = new FakeClock(Date.now());
  const recorder = new EventRecorder(client, { component: 'cdi-controller-spam', clock });
  // 40 different messages about one object, as fast as a hot reconcile loop could produce them
  const recorded = Array.from({ length: 40 }, (_, i) => recorder.warning(cm, 'Retrying', `attempt ${i}`));
  assert.equal(recorder.stats.written, 0, 'nothing was written while record() ran: it only queues');
  await Promise.all(recorded);
  await recorder.flush();
  assert.equal(recorder.stats.written, 25);
  assert.equal(recorder.stats.filtered, 15);
  const list = async (): Promise<Event[]> =>
    (
      await client.list<Event>(Resources.Event, {
        namespace: ns,
        fieldSelector: `involvedObject.uid=${cm.metadata?.uid},source=cdi-controller-spam`,
      })
    ).items;
  assert.equal((await list()).length, 25);
  // another object has its own bucket
  const other = await client.create<ConfigMap>(Resources.ConfigMap, {
    metadata: { name: 'quiet', namespace: ns },
  });
  await recorder.normal(other, 'Checked', 'fine');
  await clock.advance(300_000); // five minutes: one more token for the noisy object
  await recorder.warning(cm, 'Retrying', 'attempt 40');
  await recorder.warning(cm, 'Retrying', 'attempt 41');
  await recorder.flush();
  assert.equal((await list()).length, 26);
  assert.equal(recorder.stats.written, 27);
});
