import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StorageClass, StorageProfile } from '../shared/types.ts';
import {
  chooseStrategy,
  CloneStrategy,
  Fallback,
  planTempSourceClaim,
  tempSourceClaimName,
  type StrategyInput,
} from './strategy.ts';

const sc = (name: string, provisioner: string, allowVolumeExpansion = true): StorageClass => ({
  metadata: { name },
  provisioner,
  allowVolumeExpansion,
});
const profile = (name: string, cloneStrategy?: string, snapshotClass?: string): StorageProfile => ({
  metadata: { name },
  status: {
    ...(cloneStrategy ? { cloneStrategy } : {}),
    ...(snapshotClass ? { snapshotClass } : {}),
  },
});

const GiB = 1n << 30n;
const base = (over: Partial<StrategyInput> = {}): StrategyInput => ({
  classes: [sc('fast', 'csi.a'), sc('other', 'csi.b'), sc('fixed', 'csi.a', false)],
  profile: profile('fast', undefined, 'snap-a'),
  source: { kind: 'pvc', storageClassName: 'fast', volumeMode: 'Filesystem', capacity: GiB },
  target: { storageClassName: 'fast', volumeMode: 'Filesystem', request: GiB },
  ...over,
});

void test('snapshot unless told otherwise; the override wins over the profile', () => {
  assert.deepEqual(chooseStrategy(base()), { strategy: CloneStrategy.Snapshot });
  assert.deepEqual(chooseStrategy(base({ profile: profile('fast', 'csi-clone') })), {
    strategy: CloneStrategy.CsiClone,
  });
  assert.deepEqual(chooseStrategy(base({ override: 'copy', profile: profile('fast', 'csi-clone') })), {
    strategy: CloneStrategy.Copy,
  });
});

void test('each reason the storage cannot do it falls back to copy with upstream message', () => {
  assert.deepEqual(chooseStrategy(base({ profile: profile('fast') })), {
    strategy: 'copy',
    fallback: Fallback.NoVolumeSnapshotClass,
  });
  const csi = profile('fast', 'csi-clone');
  assert.deepEqual(
    chooseStrategy(
      base({
        profile: csi,
        source: { kind: 'pvc', storageClassName: 'other', volumeMode: 'Filesystem', capacity: GiB },
      }),
    ).fallback,
    Fallback.IncompatibleProvisioners,
  );
  assert.deepEqual(
    chooseStrategy(
      base({ profile: csi, target: { storageClassName: 'fast', volumeMode: 'Block', request: GiB } }),
    ).fallback,
    Fallback.IncompatibleVolumeModes,
  );
  // larger target: fine where the class expands, copy where it cannot
  assert.equal(
    chooseStrategy(
      base({
        profile: csi,
        target: { storageClassName: 'fast', volumeMode: 'Filesystem', request: 2n * GiB },
      }),
    ).strategy,
    'csi-clone',
  );
  assert.deepEqual(
    chooseStrategy(
      base({
        profile: profile('fixed', 'csi-clone'),
        source: { kind: 'pvc', storageClassName: 'fixed', volumeMode: 'Filesystem', capacity: GiB },
        target: { storageClassName: 'fixed', volumeMode: 'Filesystem', request: 2n * GiB },
      }),
    ).fallback,
    Fallback.NoVolumeExpansion,
  );
  assert.equal(Fallback.NoVolumeExpansion.message, 'No volume expansion is possible');
});

void test('a snapshot source is restored where its driver and volume mode allow, whatever the override', () => {
  const snap = { kind: 'snapshot', driver: 'csi.a', volumeMode: 'Filesystem', restoreSize: GiB } as const;
  assert.deepEqual(chooseStrategy(base({ override: 'copy', source: snap })), { strategy: 'snapshot' });
  assert.deepEqual(
    chooseStrategy(base({ source: { ...snap, driver: 'csi.b' } })).fallback,
    Fallback.NoProvisionerMatch,
  );
  assert.deepEqual(
    chooseStrategy(
      base({ source: snap, target: { storageClassName: 'fast', volumeMode: 'Block', request: GiB } }),
    ).fallback,
    Fallback.IncompatibleVolumeModes,
  );
});

void test('a snapshot copy restores the snapshot first: a class of its driver, its volume mode, its restore size', () => {
  const target = { storageClassName: 'other', volumeMode: 'Block', request: 2n * GiB } as const;
  const classes = [
    sc('zz-a', 'csi.a'),
    sc('b-other', 'csi.b'),
    { ...sc('aa-a-wffc', 'csi.a'), volumeBindingMode: 'WaitForFirstConsumer' },
    sc('mm-a', 'csi.a'),
  ];
  // the first class of the driver by name that binds at once (a waiting one would never bind: no consumer)
  assert.deepEqual(
    planTempSourceClaim({
      classes,
      driver: 'csi.a',
      sourceVolumeMode: 'Filesystem',
      restoreSize: GiB,
      target,
    }),
    { ok: true, storageClassName: 'mm-a', volumeMode: 'Filesystem', request: GiB },
  );
  // the volume mode not recorded: the target's; a restore size of 0: the target's request (upstream)
  assert.deepEqual(planTempSourceClaim({ classes, driver: 'csi.a', restoreSize: 0n, target }), {
    ok: true,
    storageClassName: 'mm-a',
    volumeMode: 'Block',
    request: 2n * GiB,
  });
});

void test('a snapshot copy that no class can restore says what to create', () => {
  const target = { storageClassName: 'fast', volumeMode: 'Filesystem', request: GiB } as const;
  const none = planTempSourceClaim({ classes: [sc('fast', 'csi.a')], driver: 'csi.x', target });
  assert.equal(none.ok, false);
  assert.match(!none.ok ? none.message : '', /no StorageClass has the snapshot's driver csi\.x.*create one/);
  const waiting = planTempSourceClaim({
    classes: [{ ...sc('late', 'csi.a'), volumeBindingMode: 'WaitForFirstConsumer' }],
    driver: 'csi.a',
    target,
  });
  assert.match(!waiting.ok ? waiting.message : '', /\(late\) all wait for a first consumer.*Immediate/);
  const unbound = planTempSourceClaim({ classes: [sc('fast', 'csi.a')], target });
  assert.match(!unbound.ok ? unbound.message : '', /wait for the snapshot to be ready/);
});

void test('a snapshot source copies when the restore cannot be: each upstream reason, in upstream order', () => {
  const snap = {
    kind: 'snapshot',
    driver: 'csi.a',
    volumeMode: 'Filesystem',
    restoreSize: 2n * GiB,
  } as const;
  const block = { storageClassName: 'fast', volumeMode: 'Block', request: GiB } as const;
  // another driver wins over the volume mode; no content (driver unknown) is no match either
  assert.deepEqual(chooseStrategy(base({ source: { ...snap, driver: 'csi.b' }, target: block })), {
    strategy: 'copy',
    fallback: Fallback.NoProvisionerMatch,
  });
  assert.equal(chooseStrategy(base({ source: { kind: 'snapshot' } })).fallback, Fallback.NoProvisionerMatch);
  // a target larger than the restore size on a class that cannot expand
  assert.equal(
    chooseStrategy(
      base({
        source: snap,
        target: { storageClassName: 'fixed', volumeMode: 'Filesystem', request: 3n * GiB },
      }),
    ).fallback,
    Fallback.NoVolumeExpansion,
  );
  // the mode not recorded on the content is Filesystem (upstream ResolveVolumeMode)
  assert.equal(
    chooseStrategy(base({ source: { kind: 'snapshot', driver: 'csi.a' }, target: block })).fallback,
    Fallback.IncompatibleVolumeModes,
  );
  assert.equal(tempSourceClaimName('1234'), '1234-host-assisted-source-pvc');
});
