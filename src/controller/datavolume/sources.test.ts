import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataVolume } from '../shared/types.ts';
import { checkSource, specEditNotice } from './sources.ts';

const dv = (spec: Record<string, unknown>, generation = 1): DataVolume => ({
  metadata: { name: 'd', namespace: 'ns', generation },
  spec: { storage: { resources: { requests: { storage: '1Gi' } } }, ...spec },
});

void test('http, blank, registry, s3, gcs, imageio and vddk are served by the import controller', () => {
  assert.deepEqual(checkSource(dv({ source: { http: { url: 'https://x/y.img' } } })), {
    ok: true,
    kind: 'http',
  });
  assert.deepEqual(checkSource(dv({ source: { blank: {} } })), { ok: true, kind: 'blank' });
  assert.deepEqual(checkSource(dv({ source: { upload: {} } })), { ok: true, kind: 'upload' });
  const served: [string, unknown][] = [
    ['registry', { url: 'docker://quay.io/x' }],
    ['registry', { url: 'oci-archive:///images/x.tar', pullMethod: 'pod' }],
    ['registry', { imageStream: 'fedora', pullMethod: 'node' }],
    ['s3', { url: 'https://s3/b/o' }],
    ['s3', { url: 's3://b/o' }],
    ['gcs', { url: 'gs://b/o' }],
    ['gcs', { url: 'https://storage.googleapis.com/b/o' }],
    ['imageio', { url: 'https://e/ovirt-engine/api', secretRef: 's', diskId: 'd', certConfigMap: 'c' }],
    ['imageio', { url: 'https://e/ovirt-engine/api', secretRef: 's', diskId: 'd', insecureSkipVerify: true }],
    ['vddk', { url: 'https://vc/sdk', uuid: 'u', backingFile: 'f', thumbprint: 't', secretRef: 's' }],
  ];
  for (const [kind, source] of served)
    assert.deepEqual(checkSource(dv({ source: { [kind]: source } })), { ok: true, kind });
});

void test("registry, s3 and gcs specs upstream's webhook refuses are refused with its words", () => {
  const refused = (source: Record<string, unknown>, contentType?: string): string => {
    const c = checkSource(dv({ source, ...(contentType ? { contentType } : {}) }));
    assert.equal(c.ok, false);
    return c.ok ? '' : `${c.reason}: ${c.message}`;
  };
  assert.equal(
    refused({ registry: { url: 'docker://r/x' } }, 'archive'),
    'ErrInvalidDataVolume: ContentType must be kubevirt when Source is Registry',
  );
  assert.equal(
    refused({ registry: {} }),
    'ErrInvalidDataVolume: Source registry should have either URL or ImageStream',
  );
  assert.equal(
    refused({ registry: { url: 'docker://r/x', imageStream: 'x', pullMethod: 'node' } }),
    'ErrInvalidDataVolume: Source registry should have either URL or ImageStream',
  );
  assert.equal(
    refused({ registry: { url: 'https://r/x' } }),
    'ErrInvalidDataVolume: Illegal registry source URL scheme https://r/x (use docker:// or oci-archive://)',
  );
  assert.equal(
    refused({ registry: { url: 'docker://r/x', pullMethod: 'kubelet' } }),
    'ErrInvalidDataVolume: ImportMethod kubelet is neither pod, node or ""',
  );
  assert.equal(
    refused({ registry: { imageStream: 'fedora' } }),
    'ErrInvalidDataVolume: Source registry ImageStream is supported only with node pull import method',
  );
  assert.equal(
    refused({ s3: { url: 'ftp://h/b/o' } }),
    'ErrInvalidDataVolume: spec.source Invalid source URL scheme: ftp://h/b/o (use http or https or s3)',
  );
  assert.equal(
    refused({ imageio: { url: 'https://e/api', diskId: 'd', certConfigMap: 'c' } }),
    'ErrInvalidDataVolume: spec.source.Imageio source Imageio is not valid',
  );
  assert.equal(
    refused({ imageio: { url: 'https://e/api', diskId: 'd', secretRef: 's' } }),
    'ErrInvalidDataVolume: spec.source.Imageio source Imageio requires CertConfigMap or InsecureSkipVerify',
  );
  assert.equal(
    refused({ vddk: { url: 'https://vc/sdk', uuid: 'u', backingFile: 'f', secretRef: 's' } }),
    'ErrInvalidDataVolume: spec.source.VDDK source VDDK is not valid (secretRef, uuid, backingFile and thumbprint are required)',
  );
  assert.equal(
    refused({ gcs: { url: 's3://b/o' } }),
    'ErrInvalidDataVolume: spec.source Invalid source URL scheme: s3://b/o (use http or https or gs)',
  );
  assert.deepEqual(checkSource(dv({ source: { pvc: { namespace: 'ns', name: 'src' } } })), {
    ok: true,
    kind: 'pvc',
  });
  assert.deepEqual(checkSource(dv({ source: { snapshot: { namespace: 'ns', name: 's' } } })), {
    ok: true,
    kind: 'snapshot',
  });
});

void test('a DataVolume with no source whose claim names a populator is externally populated; with a source it is refused', () => {
  const ref = { apiGroup: 'populator.example.test', kind: 'Sample', name: 'hello' };
  assert.deepEqual(checkSource(dv({ storage: { dataSourceRef: ref } })), { ok: true, kind: 'external' });
  assert.deepEqual(checkSource(dv({ pvc: { dataSource: ref } })), { ok: true, kind: 'external' });
  assert.deepEqual(checkSource(dv({ source: { blank: {} }, storage: { dataSourceRef: ref } })), {
    ok: false,
    reason: 'ErrInvalidDataVolume',
    message: 'External population is incompatible with Source and SourceRef',
  });
});

void test('an unresolved sourceRef has no controller of its own (the reconcilers resolve it first)', () => {
  assert.deepEqual(checkSource(dv({ sourceRef: { kind: 'DataSource', name: 'fedora' } })), {
    ok: false,
    kind: 'sourceRef',
    reason: 'UnsupportedSource',
    message: 'the sourceRef source is not supported yet',
  });
});

void test("what upstream's webhook refuses is refused with its words", () => {
  const refused = (spec: Record<string, unknown>): string => {
    const c = checkSource(dv(spec));
    assert.equal(c.ok, false);
    return c.ok ? '' : `${c.reason}: ${c.message}`;
  };
  assert.equal(
    refused({ source: { http: { url: 'https://x' }, blank: {} } }),
    'ErrInvalidDataVolume: Multiple Data volume sources (http, blank): set exactly one',
  );
  assert.equal(refused({ source: {} }), 'ErrInvalidDataVolume: Missing Data volume source');
  assert.equal(
    refused({}),
    'ErrInvalidDataVolume: Data volume should have either Source or SourceRef, or be externally populated',
  );
  assert.equal(
    refused({ source: { http: { url: 'ftp://host/disk.img' } } }),
    'ErrInvalidDataVolume: spec.source Invalid source URL scheme: ftp://host/disk.img (use http or https)',
  );
  assert.equal(
    refused({ source: { http: { url: 'not a url' } } }),
    'ErrInvalidDataVolume: spec.source Invalid source URL: not a url',
  );
  assert.equal(
    refused({ source: { http: { url: '' } } }),
    'ErrInvalidDataVolume: spec.source source URL is empty',
  );
  assert.equal(
    refused({ source: { blank: {} }, contentType: 'archive' }),
    'ErrInvalidDataVolume: SourceType cannot be blank and the contentType be archive',
  );
  assert.equal(
    refused({ source: { blank: {} }, pvc: { accessModes: ['ReadWriteOnce'] } }),
    'ErrInvalidDataVolume: Duplicate storage definition, both target storage and target pvc defined',
  );
});

void test('a spec edited after creation (generation > 1) gets the notice upstream gives at admission', () => {
  assert.equal(specEditNotice(dv({ source: { blank: {} } })), undefined);
  assert.match(
    specEditNotice(dv({ source: { blank: {} } }, 2))?.message ?? '',
    /^Cannot update DataVolume Spec: /,
  );
});

void test("a multi-stage DataVolume's checkpoints may be edited (upstream admits that): no notice", () => {
  const vddk = { url: 'https://vc/sdk', uuid: 'u', backingFile: 'f', thumbprint: 't', secretRef: 's' };
  const spec = { source: { vddk }, checkpoints: [{ previous: '', current: 'snap-1' }] };
  assert.equal(specEditNotice(dv(spec, 3)), undefined);
});
