import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PersistentVolumeClaim } from '../../kube/index.ts';
import type { DataImportCron, DataVolume, StorageClass, StorageProfile } from '../shared/types.ts';
import {
  advisedRestoreSize,
  applyReadWriteOnceDefault,
  cronSnapshotClass,
  cronStorageClass,
  dataSourceSource,
  desiredSnapshot,
  digestedUrl,
  importName,
  inferredVolumeMode,
  sourceFormatOf,
} from './controller.ts';

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

const sc = (name: string, annotations: Record<string, string> = {}): StorageClass => ({
  metadata: { name, annotations },
  provisioner: 'hostpath.csi.k8s.io',
});
const cronWith = (storage: Record<string, unknown> | undefined, contentType?: string): DataImportCron =>
  ({
    metadata: {
      name: 'fedora',
      namespace: 'golden',
      labels: { 'instancetype.kubevirt.io/default-preference': 'fedora' },
    },
    spec: {
      managedDataSource: 'fedora',
      schedule: '0 3 * * *',
      template: {
        spec: {
          source: { registry: { url: 'docker://r/f:1' } },
          ...(storage ? { storage } : {}),
          ...(contentType ? { contentType } : {}),
        },
      },
    },
  }) as DataImportCron;
const profile = (
  status: StorageProfile['status'],
  annotations: Record<string, string> = {},
): StorageProfile => ({
  metadata: { name: 'fast', annotations },
  status,
});

void test('the import class is the template one, else the default virt class (not for archives), else the default', () => {
  const classes = [
    sc('slow', { 'storageclass.kubernetes.io/is-default-class': 'true' }),
    sc('virt', { 'storageclass.kubevirt.io/is-default-virt-class': 'true' }),
    sc('fast'),
  ];
  assert.equal(cronStorageClass(cronWith({ storageClassName: 'fast' }), classes)?.metadata.name, 'fast');
  assert.equal(cronStorageClass(cronWith({}), classes)?.metadata.name, 'virt');
  assert.equal(cronStorageClass(cronWith(undefined, 'archive'), classes)?.metadata.name, 'slow');
  assert.equal(cronStorageClass(cronWith({ storageClassName: 'gone' }), classes), undefined);
  assert.equal(cronStorageClass(cronWith({}), [sc('fast')]), undefined);
});

void test("the source format is the profile's verdict, pvc without one", () => {
  assert.equal(sourceFormatOf(undefined), 'pvc');
  assert.equal(sourceFormatOf(profile({})), 'pvc');
  assert.equal(sourceFormatOf(profile({ dataImportCronSourceFormat: 'pvc' })), 'pvc');
  assert.equal(sourceFormatOf(profile({ dataImportCronSourceFormat: 'snapshot' })), 'snapshot');
});

void test('the DataSource names the last import as a pvc, or as the snapshot of the same name', () => {
  const last = { namespace: 'golden', name: 'fedora-0123456789ab' };
  assert.deepEqual(dataSourceSource('pvc', last), { pvc: last });
  assert.deepEqual(dataSourceSource('snapshot', last), { snapshot: last });
  assert.equal(dataSourceSource('snapshot', undefined), undefined);
});

void test("the snapshot class: the profile's snapshotClassForDataImportCron, else its snapshotClass", () => {
  assert.equal(cronSnapshotClass(profile({ snapshotClass: 'plain' })), 'plain');
  assert.equal(
    cronSnapshotClass(
      profile({ snapshotClass: 'plain' }, { 'cdi.kubevirt.io/snapshotClassForDataImportCron': 'images' }),
    ),
    'images',
  );
  assert.equal(cronSnapshotClass(profile({})), undefined);
});

void test('the advised restore size: the asked size, else the PVC size, unless the snapshot restores larger', () => {
  const asked = cronWith({ resources: { requests: { storage: '64Mi' } } });
  assert.equal(advisedRestoreSize(asked, undefined, '70Mi'), '64Mi');
  assert.equal(advisedRestoreSize(asked, '67108864'), '64Mi');
  assert.equal(advisedRestoreSize(asked, '1Gi'), '1Gi');
  assert.equal(advisedRestoreSize(cronWith({}), undefined, '70Mi'), '70Mi');
  assert.equal(advisedRestoreSize(cronWith({}), '80Mi'), '80Mi');
  assert.equal(advisedRestoreSize(cronWith({}), undefined), undefined);
});

void test("a snapshot made before it was annotated: the template's volume mode, else the profile's for its access modes", () => {
  const sets = profile({
    claimPropertySets: [
      { accessModes: ['ReadWriteMany'], volumeMode: 'Block' },
      { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
    ],
  });
  assert.equal(
    inferredVolumeMode(cronWith({ volumeMode: 'Block', accessModes: ['ReadWriteOnce'] }), sets),
    'Block',
  );
  assert.equal(inferredVolumeMode(cronWith({ accessModes: ['ReadWriteOnce'] }), sets), 'Filesystem');
  assert.equal(inferredVolumeMode(cronWith({}), sets), 'Block');
  assert.equal(inferredVolumeMode(cronWith({}), undefined), undefined);
});

void test("an import's snapshot: its name, CDI's and the cron's labels, the PVC's volume mode and size, the cron class", () => {
  const cron = cronWith({ storageClassName: 'fast' });
  cron.spec.retentionPolicy = 'None';
  const pvc: PersistentVolumeClaim = {
    metadata: {
      name: 'fedora-0123456789ab',
      namespace: 'golden',
      labels: {
        'instancetype.kubevirt.io/default-preference': 'other',
        'kubevirt.io/os': 'fedora',
        unrelated: 'x',
      },
    },
    spec: {
      volumeMode: 'Filesystem',
      storageClassName: 'fast',
      resources: { requests: { storage: '70Mi' } },
    },
  };
  const now = new Date('2026-12-03T16:00:00Z');
  const snap = desiredSnapshot(cron, pvc, profile({ snapshotClass: 'plain' }), now);
  assert.deepEqual(snap, {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name: 'fedora-0123456789ab',
      namespace: 'golden',
      labels: {
        app: 'containerized-data-importer',
        'cdi.kubevirt.io': '',
        'app.kubernetes.io/component': 'storage',
        'app.kubernetes.io/managed-by': 'cdi-controller',
        // the cron's label wins over the PVC's (upstream CopyAllowedLabels without overwrite)
        'instancetype.kubevirt.io/default-preference': 'fedora',
        'kubevirt.io/os': 'fedora',
        'cdi.kubevirt.io/dataImportCron': 'fedora',
        'cdi.kubevirt.io/dataImportCron.cleanup': 'true',
      },
      annotations: {
        'cdi.kubevirt.io/storage.import.lastUseTime': now.toISOString(),
        'cdi.kubevirt.io/storage.import.advisedRestoreSize': '70Mi',
        'cdi.kubevirt.io/storage.import.sourceVolumeMode': 'Filesystem',
      },
    },
    spec: { source: { persistentVolumeClaimName: 'fedora-0123456789ab' }, volumeSnapshotClassName: 'plain' },
  });
  assert.equal(desiredSnapshot(cron, pvc, profile({}), now).spec?.volumeSnapshotClassName, undefined);
});

void test('useReadWriteOnceForDataImportCron: a storage template without access modes imports ReadWriteOnce; others stay as written', () => {
  const rwo = {
    metadata: { name: 'c', annotations: { 'cdi.kubevirt.io/useReadWriteOnceForDataImportCron': 'true' } },
  } as StorageProfile;
  const spec = (s: NonNullable<DataVolume['spec']>): NonNullable<DataVolume['spec']> => structuredClone(s);
  const bare = spec({ storage: { storageClassName: 'c' } });
  applyReadWriteOnceDefault(bare, rwo);
  assert.deepEqual(bare.storage?.accessModes, ['ReadWriteOnce']);
  const named = spec({ storage: { accessModes: ['ReadWriteMany'] } });
  applyReadWriteOnceDefault(named, rwo);
  assert.deepEqual(named.storage?.accessModes, ['ReadWriteMany']);
  const pvcApi = spec({ pvc: { accessModes: [] } });
  applyReadWriteOnceDefault(pvcApi, rwo);
  assert.deepEqual(pvcApi.pvc?.accessModes, []);
  const without = spec({ storage: {} });
  applyReadWriteOnceDefault(without, { metadata: { name: 'c' } });
  assert.equal(without.storage?.accessModes, undefined);
  applyReadWriteOnceDefault(without, undefined);
  assert.equal(without.storage?.accessModes, undefined);
});
