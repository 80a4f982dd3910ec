import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataVolume } from '../shared/types.ts';
import { checkSource, specEditNotice } from './sources.ts';

const dv = (spec: Record<string, unknown>, generation = 1): DataVolume => ({
  metadata: { name: 'd', namespace: 'ns', generation },
  spec: { storage: { resources: { requests: { storage: '1Gi' } } }, ...spec },
});

void test('http and blank are served by the import controller', () => {
  assert.deepEqual(checkSource(dv({ source: { http: { url: 'https://x/y.img' } } })), {
    ok: true,
    kind: 'http',
  });
  assert.deepEqual(checkSource(dv({ source: { blank: {} } })), { ok: true, kind: 'blank' });
  assert.deepEqual(checkSource(dv({ source: { pvc: { namespace: 'ns', name: 'src' } } })), {
    ok: true,
    kind: 'pvc',
  });
  assert.deepEqual(checkSource(dv({ source: { snapshot: { namespace: 'ns', name: 's' } } })), {
    ok: true,
    kind: 'snapshot',
  });
});

void test('every other source says it is not supported yet, by name', () => {
  const sources: Record<string, unknown> = {
    registry: { url: 'docker://quay.io/x' },
    s3: { url: 'https://s3/b/o' },
    gcs: { url: 'gs://b/o' },
    imageio: { url: 'https://e/ovirt-engine/api', secretRef: 's', diskId: 'd', certConfigMap: 'c' },
    vddk: { url: 'https://vc', uuid: 'u', backingFile: 'f', thumbprint: 't', secretRef: 's' },
    upload: {},
  };
  for (const [kind, source] of Object.entries(sources)) {
    assert.deepEqual(checkSource(dv({ source: { [kind]: source } })), {
      ok: false,
      kind,
      reason: 'UnsupportedSource',
      message: `the ${kind} source is not supported yet`,
    });
  }
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
