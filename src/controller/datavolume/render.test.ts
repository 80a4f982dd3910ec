import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildImportEnv, makeImportEnv } from '../import/pod.ts';
import { newPvcForDataVolume, renderPvcSpec, sourceAnnotations, type RenderWorld } from './render.ts';
import type { DataVolume, StorageClass, StorageProfile } from '../shared/types.ts';

const sc = (
  name: string,
  annotations: Record<string, string> = {},
  provisioner = 'hostpath.csi.k8s.io',
): StorageClass => ({ metadata: { name, annotations }, provisioner });
const profile = (name: string, sets: StorageProfile['status']): StorageProfile => ({
  metadata: { name },
  status: sets,
});
const world = (over: Partial<RenderWorld> = {}): RenderWorld => {
  const profiles = [
    profile('csi', {
      claimPropertySets: [
        { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
        { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
      ],
    }),
    profile('virt', { claimPropertySets: [{ accessModes: ['ReadWriteMany'], volumeMode: 'Block' }] }),
  ];
  return {
    storageClasses: [
      sc('csi', { 'storageclass.kubernetes.io/is-default-class': 'true' }),
      sc('virt'),
      sc('other'),
    ],
    storageProfile: (n) => profiles.find((p) => p.metadata.name === n),
    config: {
      metadata: { name: 'config' },
      status: {
        filesystemOverhead: { global: '0.06', storageClass: { csi: '0.06', virt: '0.1', other: '0.06' } },
      },
    },
    ...over,
  };
};
const dv = (spec: Partial<DataVolume['spec']>, annotations: Record<string, string> = {}): DataVolume => ({
  metadata: { name: 'disk', namespace: 'ns', uid: 'dv-uid', annotations, labels: { team: 'a' } },
  spec: { source: { http: { url: 'http://h/disk.qcow2' } }, ...spec },
});

void test('storage API: access and volume mode from the default class profile, size with filesystem overhead', () => {
  const spec = renderPvcSpec(
    dv({ storage: { resources: { requests: { storage: '1Gi' } } } }),
    undefined,
    world(),
  );
  assert.equal(spec.storageClassName, 'csi');
  assert.deepEqual(spec.accessModes, ['ReadWriteOnce']);
  assert.equal(spec.volumeMode, 'Filesystem');
  assert.equal(spec.resources?.requests?.['storage'], '1138166334'); // ceil(1Gi × 1.06)
});

void test('storage API: Block gets no overhead; a given volume mode picks matching access modes', () => {
  const spec = renderPvcSpec(
    dv({ storage: { volumeMode: 'Block', resources: { requests: { storage: '1Gi' } } } }),
    undefined,
    world(),
  );
  assert.deepEqual(spec.accessModes, ['ReadWriteOnce']);
  assert.equal(spec.resources?.requests?.['storage'], '1073741824');
});

void test('storage API: the default virt class beats the Kubernetes default, with its own overhead', () => {
  const w = world();
  w.storageClasses[1] = sc('virt', { 'storageclass.kubevirt.io/is-default-virt-class': 'true' });
  const spec = renderPvcSpec(
    dv({
      storage: {
        volumeMode: 'Filesystem',
        accessModes: ['ReadWriteMany'],
        resources: { requests: { storage: '10Gi' } },
      },
    }),
    undefined,
    w,
  );
  assert.equal(spec.storageClassName, 'virt');
  assert.equal(spec.resources?.requests?.['storage'], String(Math.ceil(10 * 1073741824 * 1.1)));
});

void test('storage API: a size given as a number (int-or-string in the schema) works like the string', () => {
  const spec = renderPvcSpec(
    dv({ storage: { volumeMode: 'Block', resources: { requests: { storage: 1073741824 } } } }),
    undefined,
    world(),
  );
  assert.equal(spec.resources?.requests?.['storage'], '1073741824');
  const pvc = renderPvcSpec(dv({ pvc: { resources: { requests: { storage: 5 } } } }), undefined, world());
  assert.equal(pvc.resources?.requests?.['storage'], '5');
});

void test('pvc API is used as given', () => {
  const pvc = {
    accessModes: ['ReadWriteOnce'],
    resources: { requests: { storage: '1Gi' } },
    storageClassName: 'other',
  };
  assert.deepEqual(renderPvcSpec(dv({ pvc }), undefined, world()), pvc);
});

void test('bad input gives a clear reason: no size, too small, no class, archive on Block', () => {
  assert.throws(() => renderPvcSpec(dv({ storage: {} }), undefined, world()), /missing storage size/);
  assert.throws(
    () => renderPvcSpec(dv({ storage: { resources: { requests: { storage: '1Ki' } } } }), undefined, world()),
    /at least 1MiB/,
  );
  assert.throws(
    () =>
      renderPvcSpec(
        dv({ storage: { resources: { requests: { storage: '1Gi' } } } }),
        undefined,
        world({ storageClasses: [] }),
      ),
    /no storageClass/,
  );
  assert.throws(
    () =>
      renderPvcSpec(
        dv({
          contentType: 'archive',
          storage: { volumeMode: 'Block', resources: { requests: { storage: '1Gi' } } },
        }),
        undefined,
        world(),
      ),
    /Archive cannot have block/,
  );
  assert.throws(
    () => renderPvcSpec(dv({ source: undefined, storage: undefined }), undefined, world()),
    /one of spec.pvc or spec.storage/,
  );
});

void test('the PVC: same name, owned by the DV, import annotations, DV labels and annotations', () => {
  const d = dv(
    {
      storage: { resources: { requests: { storage: '1Gi' } } },
      source: {
        http: {
          url: 'http://h/d.img',
          secretRef: 's',
          certConfigMap: 'ca',
          extraHeaders: ['A: 1'],
          secretExtraHeaders: ['hs'],
          checksum: 'md5:x',
          insecureSkipVerify: true,
        },
      },
      priorityClassName: 'high',
    },
    { 'cdi.kubevirt.io/storage.bind.immediate.requested': 'true' },
  );
  const pvc = newPvcForDataVolume(d, renderPvcSpec(d, undefined, world()), false);
  assert.equal(pvc.metadata?.name, 'disk');
  assert.deepEqual(pvc.metadata?.ownerReferences, [
    {
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'DataVolume',
      name: 'disk',
      uid: 'dv-uid',
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  assert.deepEqual(pvc.metadata?.labels, {
    app: 'containerized-data-importer',
    'alerts.k8s.io/KubePersistentVolumeFillingUp': 'disabled',
    team: 'a',
  });
  assert.deepEqual(pvc.metadata?.annotations, {
    'cdi.kubevirt.io/storage.bind.immediate.requested': 'true',
    'cdi.kubevirt.io/storage.pod.restarts': '0',
    'cdi.kubevirt.io/storage.contentType': 'kubevirt',
    'cdi.kubevirt.io/storage.pod.priorityclassname': 'high',
    'cdi.kubevirt.io/storage.preallocation.requested': 'false',
    'cdi.kubevirt.io/createdForDataVolume': 'dv-uid',
    'cdi.kubevirt.io/storage.import.endpoint': 'http://h/d.img',
    'cdi.kubevirt.io/storage.import.source': 'http',
    'cdi.kubevirt.io/storage.import.secretName': 's',
    'cdi.kubevirt.io/storage.import.certConfigMap': 'ca',
    'cdi.kubevirt.io/storage.import.checksum': 'md5:x',
    'cdi.kubevirt.io/storage.import.insecureSkipVerify': 'true',
    'cdi.kubevirt.io/storage.import.extraHeaders.0': 'A: 1',
    'cdi.kubevirt.io/storage.import.secretExtraHeaders.0': 'hs',
  });
});

void test('an s3, gcs or registry checksum (ours: upstream has http only) becomes the checksum annotation, then IMPORTER_CHECKSUM', () => {
  const sum = 'sha256:' + 'ab'.repeat(32);
  const cases: [NonNullable<DataVolume['spec']['source']>, string, string][] = [
    [{ s3: { url: 'http://minio:9000/b/disk.qcow2', secretRef: 's3-creds', checksum: sum } }, 's3', 's3'],
    [{ gcs: { url: 'gs://b/disk.img.xz', checksum: sum } }, 'gcs', 'gcs'],
    [{ registry: { url: 'docker://quay.io/x/disk:1', checksum: sum } }, 'registry', 'registry'],
    // node pull: the importer reads the image's own server over http, and still gets the checksum
    [
      { registry: { url: 'docker://quay.io/x/disk:1', pullMethod: 'node', checksum: sum } },
      'registry',
      'http',
    ],
  ];
  for (const [source, annotated, podSource] of cases) {
    const d = dv({ storage: { resources: { requests: { storage: '1Gi' } } }, source });
    const pvc = newPvcForDataVolume(d, renderPvcSpec(d, undefined, world()), false);
    const a = pvc.metadata?.annotations ?? {};
    assert.equal(a['cdi.kubevirt.io/storage.import.source'], annotated, JSON.stringify(source));
    assert.equal(a['cdi.kubevirt.io/storage.import.checksum'], sum, JSON.stringify(source));
    const env = makeImportEnv(
      buildImportEnv({ ...pvc, metadata: { ...pvc.metadata, uid: 'u' } }, undefined, '0'),
    );
    const value = (n: string): string | undefined => env.find((e) => e.name === n)?.value;
    assert.equal(value('IMPORTER_SOURCE'), podSource, JSON.stringify(source));
    assert.equal(value('IMPORTER_CHECKSUM'), sum, JSON.stringify(source));
  }
  // without one, no annotation (and an empty IMPORTER_CHECKSUM, as for http)
  for (const source of [
    { s3: { url: 'http://m/b/k' } },
    { gcs: { url: 'gs://b/k' } },
    { registry: { url: 'docker://q/x' } },
  ]) {
    const a = sourceAnnotations(dv({ storage: {}, source }));
    assert.equal(a['cdi.kubevirt.io/storage.import.checksum'], undefined, JSON.stringify(source));
  }
});
