import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProgress, metricsUrl, parseProgress } from './progress.ts';

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

void test('metrics URL from the pod IP and the port named metrics', () => {
  const pod = {
    spec: { containers: [{ name: 'i', ports: [{ name: 'metrics', containerPort: 8443 }] }] },
    status: { podIP: '10.0.0.5' },
  };
  assert.equal(metricsUrl(pod), 'https://10.0.0.5:8443/metrics');
  assert.equal(metricsUrl({ ...pod, status: { podIP: 'fd00::5' } }), 'https://[fd00::5]:8443/metrics');
  assert.equal(metricsUrl({ ...pod, status: {} }), undefined);
});
