import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getName, resourceName } from './naming.ts';
import { uploadServerUrl, uploadServiceName } from './upload.ts';

void test('short names are base-suffix', () => {
  assert.equal(resourceName('cdi-upload', 'disk'), 'cdi-upload-disk');
  assert.equal(
    uploadServerUrl('ns', 'disk', '/v1beta1/upload'),
    'https://cdi-upload-disk.ns.svc:8443/v1beta1/upload',
  );
});

void test('long names are shortened with an FNV-1a hash, as library-go (values from Go hash/fnv)', () => {
  assert.equal(uploadServiceName('x'.repeat(70)), `cdi-upload-${'x'.repeat(39)}-31370fb8-cdi`);
  assert.equal(getName('cdi-upload', 'a-very-long-suffix', 20), 'cdi-upload-6ec8e2f3');
});
