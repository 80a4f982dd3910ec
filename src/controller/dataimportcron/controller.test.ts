import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestedUrl, importName } from './controller.ts';

const D = 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

void test('imports are named <managedDataSource>-<first 12 digest characters>, as upstream', () => {
  assert.equal(importName('fedora', D), 'fedora-0123456789ab');
  assert.equal(importName('fedora', 'uid:8d2a1c4e-77f0-4b1e'), 'fedora-8d2a1c4e-77f');
  assert.equal(importName('fedora', 'md5:abc'), undefined);
  assert.equal(importName('fedora', 'sha256:0123'), undefined);
});

void test('the imported URL names the digest instead of the tag', () => {
  assert.equal(
    digestedUrl('docker://quay.io/containerdisks/fedora:latest', D),
    `docker://quay.io/containerdisks/fedora@${D}`,
  );
  assert.equal(
    digestedUrl('docker://localhost:5000/golden/fedora', D),
    `docker://localhost:5000/golden/fedora@${D}`,
  );
  assert.equal(digestedUrl('docker://10.99.0.1:5000/fedora:41', D), `docker://10.99.0.1:5000/fedora@${D}`);
  assert.equal(digestedUrl('docker://fedora:41', D), `docker://fedora@${D}`);
  assert.equal(digestedUrl(`docker://quay.io/x/y@sha256:${'f'.repeat(64)}`, D), `docker://quay.io/x/y@${D}`);
});
