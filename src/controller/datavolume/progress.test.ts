import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../kube/index.ts';
import type { Kube } from '../shared/client.ts';
import { formatProgress, importerMetricsUrl, parseProgress, ProgressScraper } from './progress.ts';

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

void test("a scoped view shares the pool but keeps its keys apart: the populators' targets beside the DataVolumes", async () => {
  // the prime of a populator target and its importer pod, as the cache would give them (a reader, not a cluster)
  const prime = {
    metadata: {
      name: 'prime-t-uid',
      namespace: 'ns',
      uid: 'prime-uid',
      annotations: { 'cdi.kubevirt.io/storage.import.importPodName': 'importer-prime-t-uid' },
    },
  };
  const pod = {
    metadata: {
      name: 'importer-prime-t-uid',
      namespace: 'ns',
      labels: { app: 'containerized-data-importer', 'cdi.kubevirt.io': 'importer' },
      ownerReferences: [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          name: prime.metadata.name,
          uid: 'prime-uid',
          controller: true,
        },
      ],
    },
    spec: { containers: [{ name: 'i', ports: [{ name: 'metrics', containerPort: 8443 }] }] },
    status: { phase: 'Running', podIP: '10.0.0.7' },
  };
  const objects: Record<string, unknown> = { 'prime-t-uid': prime, 'importer-prime-t-uid': pod };
  const kube = { get: (_r: unknown, name: string) => Promise.resolve(objects[name]) } as unknown as Kube;
  const changed: string[] = [];
  const ac = new AbortController();
  const scraper = new ProgressScraper({
    kube,
    onChange: (key) => changed.push(`DataVolume ${key}`),
    log: { info: () => {}, child: () => undefined } as unknown as Logger,
    intervalMs: 10,
    fetch: (url) =>
      Promise.resolve(
        url === 'https://10.0.0.7:8443/metrics'
          ? 'kubevirt_cdi_import_progress_total{ownerUID="t-uid"} 37.5\n'
          : '',
      ),
  });
  const populators = scraper.scoped('import-populator:', (key) => {
    changed.push(`import-populator ${key}`);
    ac.abort();
  });
  const run = scraper.run(ac.signal);
  populators.track({ key: 'ns/target', ownerUID: 't-uid', namespace: 'ns', pvcName: 'prime-t-uid' });
  await run;
  assert.deepEqual(changed, ['import-populator ns/target']);
  assert.equal(populators.progress('ns/target'), 37.5);
  assert.equal(scraper.progress('ns/target'), undefined, 'a DataVolume of that name sees nothing of it');
  populators.untrack('ns/target');
  assert.equal(scraper.tracked, 0);
});
