import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeProfile, profileKeyOfVolume, type ProfileWorld } from './controller.ts';
import type { ClaimPropertySet, StorageClass, StorageProfile, VolumeSnapshotClass } from '../shared/types.ts';

const now = new Date('2026-12-01T10:00:00Z');
const later = new Date('2026-12-01T11:00:00Z');
const T = '2026-12-01T10:00:00Z';

const sc = (
  provisioner: string,
  annotations?: Record<string, string>,
  parameters?: Record<string, string>,
): StorageClass => ({
  metadata: { name: 'gold', ...(annotations ? { annotations } : {}) },
  provisioner,
  ...(parameters ? { parameters } : {}),
});
const vsc = (
  name: string,
  driver: string,
  isDefault = false,
  parameters?: Record<string, string>,
): VolumeSnapshotClass => ({
  metadata: {
    name,
    ...(isDefault ? { annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' } } : {}),
  },
  driver,
  ...(parameters ? { parameters } : {}),
});
const profile = (spec: StorageProfile['spec'] = {}, extra: Partial<StorageProfile> = {}): StorageProfile => ({
  metadata: { name: 'gold' },
  spec,
  ...extra,
});
const world = (
  snapshotClasses: VolumeSnapshotClass[] = [],
  volumes: ProfileWorld['volumes'] = [],
): ProfileWorld => ({
  snapshotClasses,
  volumes,
});
const condition = (s: NonNullable<StorageProfile['status']>, type: string) =>
  s.conditions?.find((c) => c.type === type);

void test('a known provisioner: table sets, Recognized, Valid, conditions stamped', () => {
  const { status, problems } = computeProfile(sc('rbd.csi.ceph.com'), profile(), world(), now);
  assert.deepEqual(problems, []);
  assert.equal(status.storageClass, 'gold');
  assert.equal(status.provisioner, 'rbd.csi.ceph.com');
  assert.deepEqual(status.claimPropertySets, [
    { accessModes: ['ReadWriteMany'], volumeMode: 'Block' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
  ]);
  assert.deepEqual(status.conditions, [
    {
      type: 'Recognized',
      status: 'True',
      reason: 'RecognizedProvisioner',
      message: 'Provisioner is recognized',
      lastTransitionTime: T,
      lastHeartbeatTime: T,
    },
    {
      type: 'Valid',
      status: 'True',
      reason: 'Valid',
      message: 'The StorageProfile settings are valid',
      lastTransitionTime: T,
      lastHeartbeatTime: T,
    },
  ]);
  // level-triggered: computing again from the written status changes nothing, not even the timestamps
  const again = computeProfile(sc('rbd.csi.ceph.com'), profile({}, { status }), world(), later);
  assert.deepEqual(again.status, status);
});

// [what, class annotations, provisioner, spec.cloneStrategy, snapshot classes, expected strategy, snapshotClass]
const rule: [
  string,
  Record<string, string> | undefined,
  string,
  string | undefined,
  VolumeSnapshotClass[],
  string,
  string | undefined,
][] = [
  ['no snapshot class: copy', undefined, 'example.com/csi', undefined, [], 'copy', undefined],
  [
    'a snapshot class for the driver: snapshot',
    undefined,
    'example.com/csi',
    undefined,
    [vsc('snap', 'example.com/csi')],
    'snapshot',
    'snap',
  ],
  [
    'a snapshot class for another driver only: copy',
    undefined,
    'example.com/csi',
    undefined,
    [vsc('snap', 'other.csi')],
    'copy',
    undefined,
  ],
  [
    'the table advises csi-clone: csi-clone, snapshot class or not',
    undefined,
    'rbd.csi.ceph.com',
    undefined,
    [],
    'csi-clone',
    undefined,
  ],
  [
    'the table advises copy over an existing snapshot class',
    undefined,
    'topolvm.io',
    undefined,
    [vsc('lvm', 'topolvm.io')],
    'copy',
    'lvm',
  ],
  [
    'the table advises snapshot but no snapshot class exists: copy',
    undefined,
    'pd.csi.storage.gke.io',
    undefined,
    [],
    'copy',
    undefined,
  ],
  [
    'the table advises snapshot and a class exists',
    undefined,
    'pd.csi.storage.gke.io',
    undefined,
    [vsc('pd', 'pd.csi.storage.gke.io')],
    'snapshot',
    'pd',
  ],
  [
    'the StorageClass annotation beats the table',
    { 'cdi.kubevirt.io/clone-strategy': 'copy' },
    'rbd.csi.ceph.com',
    undefined,
    [],
    'copy',
    undefined,
  ],
  [
    'the annotation is taken as it is (snapshot without a class)',
    { 'cdi.kubevirt.io/clone-strategy': 'snapshot' },
    'example.com/csi',
    undefined,
    [],
    'snapshot',
    undefined,
  ],
  [
    'spec.cloneStrategy beats the annotation',
    { 'cdi.kubevirt.io/clone-strategy': 'copy' },
    'example.com/csi',
    'csi-clone',
    [],
    'csi-clone',
    undefined,
  ],
  [
    'the default snapshot class is preferred',
    undefined,
    'example.com/csi',
    undefined,
    [vsc('a', 'example.com/csi'), vsc('z', 'example.com/csi', true)],
    'snapshot',
    'z',
  ],
  [
    'else the first by name',
    undefined,
    'example.com/csi',
    undefined,
    [vsc('m', 'example.com/csi'), vsc('b', 'example.com/csi')],
    'snapshot',
    'b',
  ],
];

for (const [what, annotations, provisioner, cloneStrategy, classes, strategy, snapshotClass] of rule) {
  void test(`clone strategy: ${what}`, () => {
    const spec = cloneStrategy ? { cloneStrategy } : {};
    const { status, problems } = computeProfile(
      sc(provisioner, annotations),
      profile(spec),
      world(classes),
      now,
    );
    assert.deepEqual(problems, []);
    assert.equal(status.cloneStrategy, strategy);
    assert.equal(status.snapshotClass, snapshotClass);
  });
}

void test('dataImportCronSourceFormat: spec, else table advice when a snapshot class exists, else pvc', () => {
  const rook = sc('rook-ceph.rbd.csi.ceph.com');
  assert.equal(computeProfile(rook, profile(), world(), now).status.dataImportCronSourceFormat, 'pvc');
  const withClass = world([vsc('rbd', 'rook-ceph.rbd.csi.ceph.com')]);
  assert.equal(computeProfile(rook, profile(), withClass, now).status.dataImportCronSourceFormat, 'snapshot');
  assert.equal(
    computeProfile(rook, profile({ dataImportCronSourceFormat: 'pvc' }), withClass, now).status
      .dataImportCronSourceFormat,
    'pvc',
  );
});

void test('spec.snapshotClass: used when it is for the provisioner; missing or foreign is a problem, not a retry', () => {
  const mine = world([
    vsc('fast', 'example.com/csi'),
    vsc('default', 'example.com/csi', true),
    vsc('theirs', 'other.csi'),
  ]);
  const ok = computeProfile(sc('example.com/csi'), profile({ snapshotClass: 'fast' }), mine, now);
  assert.equal(ok.status.snapshotClass, 'fast');
  assert.equal(ok.status.cloneStrategy, 'snapshot');

  const missing = computeProfile(sc('example.com/csi'), profile({ snapshotClass: 'gone' }), mine, now);
  assert.equal(missing.status.snapshotClass, undefined);
  assert.equal(missing.status.cloneStrategy, 'copy');
  assert.deepEqual(condition(missing.status, 'Valid'), {
    type: 'Valid',
    status: 'False',
    reason: 'SnapshotClassNotFound',
    message:
      'spec.snapshotClass: VolumeSnapshotClass "gone" does not exist; create it or change spec.snapshotClass',
    lastTransitionTime: T,
    lastHeartbeatTime: T,
  });

  const foreign = computeProfile(sc('example.com/csi'), profile({ snapshotClass: 'theirs' }), mine, now);
  assert.equal(foreign.problems[0]?.reason, 'InvalidSnapshotClass');
  assert.match(
    foreign.problems[0]?.message ?? '',
    /is for driver "other\.csi", not for this class's provisioner "example\.com\/csi"/,
  );
});

void test('invalid claimPropertySets: Valid=False naming the set, the sets in effect are kept, the rest still computed', () => {
  const good = computeProfile(sc('rbd.csi.ceph.com'), profile(), world(), now).status;
  const bad = [
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
    { accessModes: [], volumeMode: 'Filesystem' },
  ] as ClaimPropertySet[];
  const { status, problems } = computeProfile(
    sc('rbd.csi.ceph.com'),
    profile({ claimPropertySets: bad }, { status: good }),
    world(),
    later,
  );
  assert.deepEqual(problems, [
    {
      reason: 'InvalidClaimPropertySets',
      message:
        'spec.claimPropertySets[1]: each ClaimPropertySet must provide both volumeMode and accessModes',
    },
  ]);
  assert.deepEqual(status.claimPropertySets, good.claimPropertySets);
  assert.equal(status.cloneStrategy, 'csi-clone');
  const valid = condition(status, 'Valid');
  assert.equal(valid?.status, 'False');
  assert.equal(valid?.lastTransitionTime, '2026-12-01T11:00:00Z');
  assert.equal(condition(status, 'Recognized')?.lastTransitionTime, T, 'Recognized did not change');
  // fixed: valid again, the user's sets in effect
  const fixed = computeProfile(
    sc('rbd.csi.ceph.com'),
    profile({ claimPropertySets: [bad[0]!] }, { status }),
    world(),
    later,
  );
  assert.deepEqual(fixed.problems, []);
  assert.deepEqual(fixed.status.claimPropertySets, [bad[0]]);
  assert.equal(condition(fixed.status, 'Valid')?.status, 'True');
});

void test('bad clone strategy, source format and class annotation values are reported together, then ignored', () => {
  const { status, problems } = computeProfile(
    sc('example.com/csi', { 'cdi.kubevirt.io/clone-strategy': 'fastest' }),
    profile({ cloneStrategy: 'quick', dataImportCronSourceFormat: 'tarball' }),
    world(),
    now,
  );
  assert.deepEqual(
    problems.map((p) => p.reason),
    ['InvalidCloneStrategy', 'InvalidStorageClassAnnotation', 'InvalidDataImportCronSourceFormat'],
  );
  assert.equal(status.cloneStrategy, 'copy');
  assert.equal(status.dataImportCronSourceFormat, 'pvc');
  const valid = condition(status, 'Valid');
  assert.equal(valid?.reason, 'InvalidCloneStrategy');
  assert.match(
    valid?.message ?? '',
    /^spec\.cloneStrategy "quick" is not one of copy, snapshot, csi-clone; fix or remove it; /,
  );
  assert.match(valid?.message ?? '', /annotation cdi\.kubevirt\.io\/clone-strategy "fastest"/);
});

void test('a provisioner the table does not know: sets from the class annotation, else from the spec, else none', () => {
  const sets = [
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
  ];
  const annotated = sc('hostpath.csi.cdi.dev', {
    'cdi.kubevirt.io/claim-property-sets': JSON.stringify(sets),
  });
  const fromAnn = computeProfile(annotated, profile(), world(), now);
  assert.deepEqual(fromAnn.status.claimPropertySets, sets);
  assert.deepEqual(fromAnn.problems, []);
  assert.equal(condition(fromAnn.status, 'Recognized')?.reason, 'UnrecognizedProvisioner');

  const user = [{ accessModes: ['ReadWriteMany'], volumeMode: 'Block' }] as ClaimPropertySet[];
  assert.deepEqual(
    computeProfile(annotated, profile({ claimPropertySets: user }), world(), now).status.claimPropertySets,
    user,
  );

  const bare = computeProfile(sc('hostpath.csi.cdi.dev'), profile(), world(), now);
  assert.deepEqual(bare.status.claimPropertySets, []);
  assert.equal(condition(bare.status, 'Recognized')?.status, 'False');

  for (const bad of [
    'not json',
    '[]',
    '[{"accessModes":["ReadWriteOnce"]}]',
    '[{"accessModes":["WriteAlways"],"volumeMode":"Block"}]',
  ]) {
    const r = computeProfile(
      sc('hostpath.csi.cdi.dev', { 'cdi.kubevirt.io/claim-property-sets': bad }),
      profile(),
      world(),
      now,
    );
    assert.equal(r.problems[0]?.reason, 'InvalidStorageClassAnnotation', bad);
    assert.deepEqual(r.status.claimPropertySets, [], bad);
  }
});

void test('kubernetes.io/no-provisioner: sets from the class PersistentVolumes', () => {
  const local: StorageClass = { metadata: { name: 'gold' }, provisioner: 'kubernetes.io/no-provisioner' };
  const { status } = computeProfile(
    local,
    profile(),
    world([], [{ spec: { storageClassName: 'gold', accessModes: ['ReadWriteOnce'], volumeMode: 'Block' } }]),
    now,
  );
  assert.deepEqual(status.claimPropertySets, [{ accessModes: ['ReadWriteOnce'], volumeMode: 'Block' }]);
  const classes = new Map([
    ['gold', local],
    ['csi', { metadata: { name: 'csi' }, provisioner: 'example.com/csi' }],
  ]);
  const key = profileKeyOfVolume({ getByName: (n) => classes.get(n) });
  assert.equal(key({ spec: { storageClassName: 'gold' } }), 'gold');
  assert.equal(key({ spec: { storageClassName: 'csi' } }), undefined);
  assert.equal(key({ spec: {} }), undefined);
});

void test('profile annotations from the table: minimum size and RWO for crons added once, cron snapshot class kept current', () => {
  const gp3 = sc('ebs.csi.aws.com', undefined, { type: 'gp3' });
  assert.deepEqual(computeProfile(gp3, profile(), world(), now).annotations, {
    'cdi.kubevirt.io/minimumSupportedPvcSize': '1Gi',
  });
  // a value the admin set is left alone
  const own = profile(
    {},
    { metadata: { name: 'gold', annotations: { 'cdi.kubevirt.io/minimumSupportedPvcSize': '8Gi' } } },
  );
  assert.deepEqual(computeProfile(gp3, own, world(), now).annotations, {});

  const gke = sc('pd.csi.storage.gke.io');
  const images = vsc('images', 'pd.csi.storage.gke.io', false, { 'snapshot-type': 'images' });
  assert.deepEqual(
    computeProfile(gke, profile(), world([vsc('plain', 'pd.csi.storage.gke.io'), images]), now).annotations,
    {
      'cdi.kubevirt.io/useReadWriteOnceForDataImportCron': 'true',
      'cdi.kubevirt.io/snapshotClassForDataImportCron': 'images',
    },
  );
  const annotated = profile(
    {},
    {
      metadata: {
        name: 'gold',
        annotations: {
          'cdi.kubevirt.io/useReadWriteOnceForDataImportCron': 'true',
          'cdi.kubevirt.io/snapshotClassForDataImportCron': 'images',
        },
      },
    },
  );
  assert.deepEqual(computeProfile(gke, annotated, world([images]), now).annotations, {});
  assert.deepEqual(computeProfile(gke, annotated, world(), now).annotations, {
    'cdi.kubevirt.io/snapshotClassForDataImportCron': null,
  });
});
