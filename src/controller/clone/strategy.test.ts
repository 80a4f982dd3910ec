import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StorageClass, StorageProfile } from '../shared/types.ts';
import { chooseStrategy, CloneStrategy, Fallback, type StrategyInput } from './strategy.ts';

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
