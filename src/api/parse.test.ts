import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ParseError,
  parseCDI,
  parseDataImportCron,
  parseDataSource,
  parseDataVolume,
  parseObjectTransfer,
  parseUploadTokenRequest,
  parseVolumeCloneSource,
  parseVolumeImportSource,
} from './parse.ts';

const dv = {
  apiVersion: 'cdi.kubevirt.io/v1beta1',
  kind: 'DataVolume',
  metadata: { name: 'fedora', namespace: 'vms' },
  spec: {
    source: { http: { url: 'https://example.invalid/disk.qcow2', checksum: 'sha256:00' } },
    storage: { resources: { requests: { storage: '10Gi' } } },
    contentType: 'kubevirt',
  },
};

void test('parseDataVolume returns a valid DataVolume unchanged', () => {
  const parsed = parseDataVolume(dv);
  assert.equal(parsed.spec.source?.http?.url, 'https://example.invalid/disk.qcow2');
  assert.equal(parsed.spec.storage?.resources?.requests?.storage, '10Gi');
});

void test('parseDataVolume accepts numeric quantities and unknown status fields', () => {
  const parsed = parseDataVolume({
    ...dv,
    spec: { ...dv.spec, pvc: { resources: { requests: { storage: 1048576 } } } },
    status: { phase: 'Succeeded', progress: '100.0%', future: 1 },
  });
  assert.equal(parsed.status?.phase, 'Succeeded');
});

void test('parseDataVolume says which field is wrong, in one line', () => {
  const bad = { ...dv, spec: { ...dv.spec, contentType: 'tarball', source: { http: {} } } };
  assert.throws(
    () => parseDataVolume(bad),
    (e: unknown) => {
      assert.ok(e instanceof ParseError);
      assert.match(e.message, /^invalid DataVolume vms\/fedora: /);
      assert.match(e.message, /spec\.source\.http must have required properties url/);
      assert.match(e.message, /spec\.contentType must be equal to one of the allowed values/);
      assert.ok(!e.message.includes('\n'));
      return true;
    },
  );
});

void test('parseDataVolume rejects a missing spec and a bad quantity', () => {
  assert.throws(
    () => parseDataVolume({ metadata: { name: 'x' } }),
    /invalid DataVolume x: \(root\) must have required properties spec/,
  );
  assert.throws(
    () => parseDataVolume({ spec: { pvc: { resources: { requests: { storage: 'ten gigs' } } } } }),
    /spec\.pvc\.resources\.requests\.storage must match pattern/,
  );
});

void test('parseCDI accepts an upstream-style CDI resource', () => {
  const cdi = parseCDI({
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'CDI',
    metadata: { name: 'cdi' },
    spec: {
      config: { featureGates: ['HonorWaitForFirstConsumer'], filesystemOverhead: { global: '0.055' } },
      imagePullPolicy: 'IfNotPresent',
      infra: {
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
      },
      workload: { nodeSelector: { 'kubernetes.io/os': 'linux' } },
    },
  });
  assert.deepEqual(cdi.spec.config?.featureGates, ['HonorWaitForFirstConsumer']);
});

void test('the other kinds parse upstream-style objects and name a wrong field', () => {
  const ds = parseDataSource({
    metadata: { name: 'fedora', namespace: 'golden' },
    spec: { source: { pvc: { namespace: 'golden', name: 'fedora-42' } } },
  });
  assert.equal(ds.spec.source.pvc?.name, 'fedora-42');
  assert.throws(
    () =>
      parseDataSource({
        metadata: { name: 'x', namespace: 'y' },
        spec: { source: { snapshot: { name: 's' } } },
      }),
    /invalid DataSource y\/x: spec\.source\.snapshot must have required properties namespace/,
  );
  const cron = parseDataImportCron({
    metadata: { name: 'fedora', namespace: 'golden' },
    spec: {
      schedule: '0 */12 * * *',
      managedDataSource: 'fedora',
      importsToKeep: 2,
      template: {
        spec: {
          source: { registry: { url: 'docker://quay.io/containerdisks/fedora:latest' } },
          storage: { resources: { requests: { storage: '5Gi' } } },
        },
      },
    },
  });
  assert.equal(
    cron.spec.template.spec.source?.registry?.url,
    'docker://quay.io/containerdisks/fedora:latest',
  );
  assert.throws(
    () => parseDataImportCron({ metadata: { name: 'c' }, spec: { schedule: '', template: { spec: {} } } }),
    /spec must have required properties managedDataSource/,
  );
  const vis = parseVolumeImportSource({
    spec: { source: { http: { url: 'https://example.invalid/d.qcow2' } } },
  });
  assert.equal(vis.spec.source?.http?.url, 'https://example.invalid/d.qcow2');
  assert.throws(
    () => parseVolumeCloneSource({ spec: { source: { kind: 'PersistentVolumeClaim' } } }),
    /spec\.source must have required properties name/,
  );
  const ot = parseObjectTransfer({
    spec: {
      source: { kind: 'PersistentVolumeClaim', namespace: 'a', name: 'p' },
      target: { namespace: 'b' },
    },
  });
  assert.equal(ot.spec.target.namespace, 'b');
  const utr = parseUploadTokenRequest({
    apiVersion: 'upload.cdi.kubevirt.io/v1beta1',
    kind: 'UploadTokenRequest',
    metadata: { name: 'token-for-dv-x', namespace: 'vms' },
    spec: { pvcName: 'x' },
  });
  assert.equal(utr.spec.pvcName, 'x');
  assert.throws(
    () => parseUploadTokenRequest({ spec: {} }),
    /invalid UploadTokenRequest: spec must have required properties pvcName/,
  );
});
