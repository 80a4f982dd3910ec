import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DataVolumeSpec } from '../../api/datavolume.ts';
import { sameJson, validateDataVolumeSpec } from './datavolume-validate.ts';

const size = { resources: { requests: { storage: '1Gi' } } };
const msg = (spec: unknown): string[] => validateDataVolumeSpec(spec as DataVolumeSpec).map((c) => c.message);

void describe('datavolume-validate: the spec rules (upstream messages)', () => {
  void it('clone sources: namespace and name required; the size may be left out with storage', () => {
    assert.deepEqual(msg({ source: { pvc: { namespace: 'golden', name: 'fedora' } }, storage: {} }), []);
    assert.deepEqual(msg({ source: { snapshot: { namespace: 'g', name: 's' } }, storage: {} }), []);
    assert.deepEqual(msg({ sourceRef: { kind: 'DataSource', name: 'fedora' }, storage: {} }), []);
    assert.deepEqual(msg({ source: { pvc: { namespace: '', name: 'fedora' } }, storage: size }), [
      'spec.source.PVC source PVC is not valid',
    ]);
    assert.deepEqual(msg({ source: { snapshot: { namespace: 'g', name: '' } }, storage: size }), [
      'spec.source.Snapshot source snapshot is not valid',
    ]);
    // the pvc API (no StorageProfile) needs its size even for a clone
    assert.deepEqual(
      msg({ source: { pvc: { namespace: 'g', name: 'f' } }, pvc: { accessModes: ['ReadWriteOnce'] } }),
      ['PVC size is missing'],
    );
    assert.deepEqual(msg({ source: { http: { url: 'http://x/y' } }, storage: {} }), [
      'Storage size is missing',
    ]);
  });

  void it('sourceRef: kind DataSource with a name; never with source', () => {
    assert.deepEqual(msg({ sourceRef: { kind: 'PVC', name: 'x' }, storage: size }), [
      'Unsupported sourceRef kind PVC, currently only DataSource is supported',
    ]);
    assert.deepEqual(msg({ sourceRef: { kind: 'DataSource', name: '' }, storage: size }), [
      'Missing sourceRef name',
    ]);
    assert.deepEqual(
      msg({ source: { blank: {} }, sourceRef: { kind: 'DataSource', name: 'x' }, storage: size }),
      ['Data volume should have either Source or SourceRef, or be externally populated'],
    );
    assert.deepEqual(msg({ storage: size }), [
      'Data volume should have either Source or SourceRef, or be externally populated',
    ]);
  });

  void it('sizes, storage definitions, access modes, sources', () => {
    assert.deepEqual(msg({ source: { blank: {} } }), ['Missing Data volume PVC']);
    assert.deepEqual(msg({ source: { blank: {} }, storage: size, pvc: size }), [
      'Duplicate storage definition, both target storage and target pvc defined',
    ]);
    assert.deepEqual(msg({ source: { blank: {} }, storage: { resources: { requests: { storage: '0' } } } }), [
      "Storage size can't be equal or less than zero",
    ]);
    assert.deepEqual(
      msg({ source: { blank: {} }, storage: { resources: { requests: { storage: '1Ki' } } } }),
      ['Storage size should be at least 1MiB'],
    );
    assert.deepEqual(
      msg({ source: { blank: {} }, pvc: { ...size, accessModes: ['ReadWriteOnce', 'ReadOnlyMany'] } }),
      ['PVC multiple accessModes'],
    );
    assert.deepEqual(msg({ source: { blank: {} }, storage: { ...size, accessModes: ['Sometimes'] } }), [
      'Unsupported value: "Sometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
    ]);
    assert.deepEqual(msg({ source: { blank: {}, upload: {} }, storage: size }), [
      'Multiple Data volume sources',
    ]);
    assert.deepEqual(msg({ source: {}, storage: size }), ['Missing Data volume source']);
    assert.deepEqual(msg({ source: { blank: {} }, contentType: 'archive', storage: size }), [
      'SourceType cannot be blank and the contentType be archive',
    ]);
    assert.deepEqual(msg({ source: { http: { url: 'ftp://x/y' } }, storage: size }), [
      'spec.source Invalid source URL scheme: ftp://x/y',
    ]);
    assert.match(
      msg({ source: { http: { url: 'http://x/y', checksum: 'md5:12' } }, storage: size })[0]!,
      /^Invalid checksum format: /,
    );
    assert.deepEqual(msg({ source: { registry: { url: 'http://r/x' } }, storage: size }), [
      'Illegal registry source URL scheme http://r/x',
    ]);
    assert.deepEqual(msg({ source: { registry: { imageStream: 'is' } }, storage: size }), [
      'Source registry ImageStream is supported only with node pull import method',
    ]);
    assert.deepEqual(
      msg({ source: { imageio: { url: 'https://e/api', diskId: 'd', secretRef: 's' } }, storage: size }),
      ['spec.source.Imageio source Imageio requires CertConfigMap or InsecureSkipVerify'],
    );
  });

  void it('external population: dataSourceRef without source, namespaces refused', () => {
    const ref = { apiGroup: 'cdi.kubevirt.io', kind: 'VolumeImportSource', name: 'x' };
    assert.deepEqual(msg({ storage: { ...size, dataSourceRef: ref } }), []);
    assert.deepEqual(msg({ source: { blank: {} }, storage: { ...size, dataSourceRef: ref } }), [
      'External population is incompatible with Source and SourceRef',
    ]);
    assert.deepEqual(msg({ storage: { ...size, dataSourceRef: { ...ref, namespace: 'other' } } }), [
      'Invalid value: DataSourceRef namespace not supported',
    ]);
  });

  void it('sameJson ignores key order and undefined members', () => {
    assert.equal(sameJson({ a: 1, b: { c: [1, 2], d: undefined } }, { b: { c: [1, 2] }, a: 1 }), true);
    assert.equal(sameJson({ a: [1, 2] }, { a: [2, 1] }), false);
  });
});
