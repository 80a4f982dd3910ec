import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeConfigStatus } from './status.ts';

const classes = [
  { metadata: { name: 'a' }, provisioner: 'x' },
  { metadata: { name: 'b' }, provisioner: 'y' },
];

void test('defaults: overhead 0.06 for every class, upstream pod resources, empty proxy', () => {
  const s = computeConfigStatus({ metadata: { name: 'config' } }, classes);
  assert.deepEqual(s.filesystemOverhead, { global: '0.06', storageClass: { a: '0.06', b: '0.06' } });
  assert.deepEqual(s.defaultPodResourceRequirements, {
    limits: { cpu: '750m', memory: '600M' },
    requests: { cpu: '100m', memory: '60M' },
  });
  assert.equal(s.scratchSpaceStorageClass, '');
  assert.equal(s.preallocation, false);
  assert.deepEqual(s.importProxy, { HTTPProxy: '', HTTPSProxy: '', noProxy: '', trustedCAProxy: '' });
});

void test('spec overrides: global and per-class overhead, existing scratch class, memory limit', () => {
  const s = computeConfigStatus(
    {
      metadata: { name: 'config' },
      spec: {
        filesystemOverhead: { global: '0.055', storageClass: { b: '0.1' } },
        scratchSpaceStorageClass: 'b',
        podResourceRequirements: { limits: { memory: '2Gi' } },
        preallocation: true,
      },
    },
    classes,
  );
  assert.deepEqual(s.filesystemOverhead, { global: '0.055', storageClass: { a: '0.055', b: '0.1' } });
  assert.equal(s.scratchSpaceStorageClass, 'b');
  assert.equal(s.defaultPodResourceRequirements?.limits?.['memory'], '2Gi');
  assert.equal(s.preallocation, true);
  assert.equal(
    computeConfigStatus({ metadata: {}, spec: { scratchSpaceStorageClass: 'nope' } }, classes)
      .scratchSpaceStorageClass,
    '',
  );
  assert.equal(
    computeConfigStatus({ metadata: {}, spec: { filesystemOverhead: { global: 'lots' } } }, classes)
      .filesystemOverhead?.global,
    '0.06',
  );
  assert.throws(
    () =>
      computeConfigStatus(
        { metadata: {}, spec: { filesystemOverhead: { storageClass: { a: '2' } } } },
        classes,
      ),
    /storageClass.a is "2"/,
  );
});
