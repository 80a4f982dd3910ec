// Lease leader election against the real API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KubeClient,
  LeaderElector,
  Resources,
  microTime,
  type LeadershipEnd,
  type Lease,
} from '../../../src/kube/index.ts';
import { eventually, useTestNamespace } from './cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('kube-leader', (c, n) => ((client = c), (ns = n)));

// Short periods keep the test quick; the relations between them are client-go's.
const periods = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 };
const sixDigits = /\.\d{6}Z$/;

function candidate(name: string, identity: string, log: string[]) {
  const stop = new AbortController();
  const ends: LeadershipEnd[] = [];
  const elector = new LeaderElector(client, {
    namespace: ns,
    name,
    identity,
    ...periods,
    onStartedLeading: (lost) => {
      log.push(`${identity} leads`);
      lost.addEventListener('abort', () => log.push(`${identity} stops`));
    },
    onStoppedLeading: (end) => ends.push(end),
  });
  let returned = false;
  const done = elector.run(stop.signal).then(() => void (returned = true));
  return { elector, ends, returned: () => returned, stop: async () => (stop.abort(), await done) };
}

void test('one of two candidates leads; the other takes over after the leader releases the lease', async () => {
  const log: string[] = [];
  const a = candidate('release', 'a', log);
  const b = candidate('release', 'b', log);
  try {
    await eventually('a leader', () => a.elector.isLeader || b.elector.isLeader);
    const [leader, follower] = a.elector.isLeader ? [a, b] : [b, a];
    const leaderId = leader === a ? 'a' : 'b';
    const followerId = leader === a ? 'b' : 'a';
    // Several renew periods pass with exactly one leader.
    const lease0 = await client.get<Lease>(Resources.Lease, 'release', ns);
    await eventually(
      'a renewal',
      async () =>
        (await client.get<Lease>(Resources.Lease, 'release', ns)).spec?.renewTime !== lease0.spec?.renewTime,
    );
    assert.equal(follower.elector.isLeader, false);
    const lease1 = await client.get<Lease>(Resources.Lease, 'release', ns);
    assert.equal(lease1.spec?.holderIdentity, leaderId);
    assert.match(lease1.spec?.renewTime ?? '', sixDigits, 'renewTime is a MicroTime');
    assert.match(lease1.spec?.acquireTime ?? '', sixDigits);
    assert.equal(lease1.spec?.leaseDurationSeconds, 3);

    await leader.stop();
    assert.deepEqual(log.slice(0, 2), [`${leaderId} leads`, `${leaderId} stops`]);
    await eventually('the follower to take over', () => follower.elector.isLeader);
    const lease2 = await client.get<Lease>(Resources.Lease, 'release', ns);
    assert.equal(lease2.spec?.holderIdentity, followerId);
    assert.equal(lease2.spec?.leaseTransitions, (lease1.spec?.leaseTransitions ?? 0) + 1);
    assert.deepEqual(log, [`${leaderId} leads`, `${leaderId} stops`, `${followerId} leads`]);
  } finally {
    await a.stop();
    await b.stop();
  }
});

void test('a candidate waits while the holder is alive and takes over once the lease expires', async () => {
  // A holder that vanished without releasing: its last renewal is now.
  const now = microTime(new Date());
  await client.create<Lease>(Resources.Lease, {
    metadata: { name: 'expiry', namespace: ns },
    spec: {
      holderIdentity: 'ghost',
      leaseDurationSeconds: 3,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 4,
    },
  });
  const log: string[] = [];
  const c = candidate('expiry', 'c', log);
  try {
    // Before expiry the lease still belongs to the ghost.
    const early = await client.get<Lease>(Resources.Lease, 'expiry', ns);
    assert.equal(early.spec?.holderIdentity, 'ghost');
    assert.equal(c.elector.isLeader, false);
    await eventually('the takeover', () => c.elector.isLeader);
    const lease = await client.get<Lease>(Resources.Lease, 'expiry', ns);
    assert.equal(lease.spec?.holderIdentity, 'c');
    assert.equal(lease.spec?.leaseTransitions, 5);
  } finally {
    await c.stop();
  }
  const released = await client.get<Lease>(Resources.Lease, 'expiry', ns);
  assert.equal(released.spec?.holderIdentity ?? '', '', 'the lease is released on shutdown');
  assert.deepEqual(log, ['c leads', 'c stops']);
});

void test('a leader whose lease is taken steps down at once, says by whom, and does not campaign again', async () => {
  const log: string[] = [];
  const d = candidate('stolen', 'd', log);
  try {
    await eventually('d to lead', () => d.elector.isLeader);
    // Someone else overwrites the lease and keeps renewing it: d's renewals conflict or see a live holder.
    const stopThief = new AbortController();
    const thief = (async () => {
      while (!stopThief.signal.aborted) {
        const l = await client.get<Lease>(Resources.Lease, 'stolen', ns);
        const t = microTime(new Date());
        await client
          .replace<Lease>(Resources.Lease, {
            ...l,
            spec: { ...l.spec, holderIdentity: 'thief', renewTime: t, leaseDurationSeconds: 3 },
          })
          .catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await eventually('d to step down', () => log.includes('d stops'));
    assert.equal(d.elector.isLeader, false);
    await eventually('run() to return (no second campaign)', () => d.returned());
    assert.deepEqual(d.ends, [
      { kind: 'taken', message: `lost the lease ${ns}/stolen: it is now held by thief` },
    ]);
    stopThief.abort();
    await thief;
    assert.deepEqual(log, ['d leads', 'd stops'], 'never led again');
  } finally {
    await d.stop();
  }
});
