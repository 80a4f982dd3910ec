import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeConfigStatus } from './status.ts';

const classes = [
  { metadata: { name: 'a' }, provisioner: 'x' },
  { metadata: { name: 'b' }, provisioner: 'y' },
];

void test('defaults: overhead 0.06 for every class, upstream pod resources, empty proxy, no problems', () => {
  const { status: s, problems } = computeConfigStatus({ metadata: { name: 'config' } }, classes);
  assert.deepEqual(s.filesystemOverhead, { global: '0.06', storageClass: { a: '0.06', b: '0.06' } });
  assert.deepEqual(s.defaultPodResourceRequirements, {
    limits: { cpu: '750m', memory: '600M' },
    requests: { cpu: '100m', memory: '60M' },
  });
  assert.equal(s.scratchSpaceStorageClass, '');
  assert.equal(s.preallocation, false);
  assert.deepEqual(s.importProxy, { HTTPProxy: '', HTTPSProxy: '', noProxy: '', trustedCAProxy: '' });
  assert.deepEqual(problems, []);
});

void test('spec overrides: global and per-class overhead, existing scratch class, memory limit', () => {
  const { status: s, problems } = computeConfigStatus(
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
  assert.deepEqual(problems, []);
});

void test('settings that cannot be applied fall back to the default and each says so', () => {
  const { status: s, problems } = computeConfigStatus(
    {
      metadata: { name: 'config' },
      spec: {
        scratchSpaceStorageClass: 'nope',
        filesystemOverhead: { global: 'lots', storageClass: { a: '2' } },
        podResourceRequirements: { limits: { memory: 'plenty', cpu: '50m' } },
        importProxy: { HTTPProxy: 'proxy.example:3128' },
      },
    },
    classes,
  );
  assert.equal(s.scratchSpaceStorageClass, '');
  assert.equal(s.filesystemOverhead?.global, '0.06');
  assert.equal(s.filesystemOverhead?.storageClass?.['a'], '0.06');
  assert.equal(s.defaultPodResourceRequirements?.limits?.['memory'], '600M');
  assert.deepEqual(problems, [
    `spec.scratchSpaceStorageClass "nope" is not a StorageClass: scratch volumes use the target's storage class`,
    'spec.podResourceRequirements.limits.memory "plenty" is not a quantity (e.g. 600M): 600M is used',
    'spec.podResourceRequirements: requests.cpu 100m is larger than limits.cpu 50m: the API server will refuse every importer pod',
    'spec.filesystemOverhead.global "lots" is not 0, 1 or 0.xxx: 0.06 is used',
    'spec.filesystemOverhead.storageClass.a is "2": use 0, 1 or 0.xxx; 0.06 is used',
    'spec.importProxy.HTTPProxy "proxy.example:3128" is not an http:// or https:// URL: importers will fail to use it',
  ]);
});

void test('CPU requests and limits compare in every quantity form (1e3 is above 500m; 0.5 is not above 500m)', () => {
  const check = (request: string, limit: string) =>
    computeConfigStatus(
      {
        metadata: { name: 'config' },
        spec: { podResourceRequirements: { requests: { cpu: request }, limits: { cpu: limit } } },
      },
      classes,
    ).problems.filter((p) => p.includes('requests.cpu'));
  assert.deepEqual(check('1e3', '500m'), [
    'spec.podResourceRequirements: requests.cpu 1e3 is larger than limits.cpu 500m: the API server will refuse every importer pod',
  ]);
  assert.deepEqual(check('0.5', '500m'), []);
  assert.deepEqual(check('1500m', '1.2'), [
    'spec.podResourceRequirements: requests.cpu 1500m is larger than limits.cpu 1.2: the API server will refuse every importer pod',
  ]);
});

void test('status.uploadProxyURL is spec.uploadProxyURLOverride (as upstream), and goes when the override goes', () => {
  const set = computeConfigStatus(
    { metadata: { name: 'config' }, spec: { uploadProxyURLOverride: 'https://10.96.0.9' } },
    classes,
  );
  assert.equal(set.status.uploadProxyURL, 'https://10.96.0.9');
  const cleared = computeConfigStatus(
    { metadata: { name: 'config' }, spec: {}, status: { uploadProxyURL: 'https://10.96.0.9' } },
    classes,
  );
  assert.equal(cleared.status.uploadProxyURL, undefined);
});
