import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProgress, importerMetricsUrl, parseProgress } from './progress.ts';

const body = `# HELP kubevirt_cdi_import_progress_total The import progress in percentage
# TYPE kubevirt_cdi_import_progress_total counter
kubevirt_cdi_import_progress_total{ownerUID="other"} 99
kubevirt_cdi_import_progress_total{ownerUID="b7c1-uid"} 45.678
`;

void test('progress for the DV UID, formatted as upstream (%.2f%%)', () => {
  assert.equal(parseProgress(body, 'b7c1-uid'), 45.678);
  assert.equal(formatProgress(45.678), '45.68%');
  assert.equal(formatProgress(100), '100.00%');
  assert.equal(parseProgress(body, 'missing'), undefined);
  assert.equal(parseProgress('garbage', 'b7c1-uid'), undefined);
});

void test('the metrics URL is only that of the importer pod the PVC names, controls and labels', () => {
  const pvc = {
    metadata: {
      name: 'dv',
      uid: 'pvc-uid',
      annotations: { 'cdi.kubevirt.io/storage.import.importPodName': 'importer-dv' },
    },
  };
  const pod = {
    metadata: {
      name: 'importer-dv',
      labels: { app: 'containerized-data-importer', 'cdi.kubevirt.io': 'importer' },
      ownerReferences: [
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: 'dv', uid: 'pvc-uid', controller: true },
      ],
    },
    spec: { containers: [{ name: 'i', ports: [{ name: 'metrics', containerPort: 8443 }] }] },
    status: { phase: 'Running', podIP: '10.0.0.5' },
  };
  assert.deepEqual(importerMetricsUrl(pvc, pod), { url: 'https://10.0.0.5:8443/metrics' });
  assert.deepEqual(importerMetricsUrl(pvc, { ...pod, status: { phase: 'Running', podIP: 'fd00::5' } }), {
    url: 'https://[fd00::5]:8443/metrics',
  });
  const refused = (p: unknown, why: RegExp): void => {
    const r = importerMetricsUrl(pvc, p as typeof pod);
    assert.ok('reason' in r && why.test(r.reason), JSON.stringify(r));
  };
  refused({ ...pod, status: { phase: 'Running' } }, /no IP/);
  refused({ ...pod, status: { phase: 'Pending', podIP: '10.0.0.5' } }, /not running/);
  refused({ ...pod, metadata: { ...pod.metadata, name: 'other' } }, /does not exist/);
  refused({ ...pod, metadata: { ...pod.metadata, ownerReferences: [] } }, /not controlled by PVC dv/);
  refused(
    { ...pod, metadata: { ...pod.metadata, labels: { app: 'containerized-data-importer' } } },
    /labels/,
  );
  refused(
    { ...pod, spec: { containers: [{ name: 'i', ports: [{ name: 'metrics', containerPort: 9999 }] }] } },
    /metrics port 8443/,
  );
});
