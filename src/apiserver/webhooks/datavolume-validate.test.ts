import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataVolumeSpec } from '../../api/datavolume.ts';
import { WebhookRegistrations } from '../../deploy/webhooks.ts';
import { checksumError, validateDataVolumeSpec } from './datavolume-validate.ts';
import { webhooks } from './index.ts';
import type { KubeClient } from '../../kube/index.ts';
import type { TokenGenerator } from '../../token/token.ts';

const size = (s: string | number) => ({ resources: { requests: { storage: s } } });
const http = (url: string, extra: Record<string, unknown> = {}) => ({ http: { url, ...extra } });
const spec = (s: Record<string, unknown>): DataVolumeSpec => s;
const first = (s: Record<string, unknown>) => validateDataVolumeSpec(spec(s))[0];

void test('a valid DataVolume passes: storage API, pvc API, sourceRef, blank, registry, external population', () => {
  for (const ok of [
    { source: http('https://example.org/disk.qcow2'), storage: size('1Gi') },
    {
      source: http('http://example.org/d.img', { checksum: 'sha256:' + 'a'.repeat(64) }),
      pvc: { accessModes: ['ReadWriteOnce'], ...size('1Gi') },
    },
    { sourceRef: { kind: 'DataSource', name: 'fedora' }, storage: {} },
    { source: { pvc: { namespace: 'a', name: 'b' } }, storage: {} },
    { source: { blank: {} }, storage: size('1Mi') },
    { source: { registry: { url: 'docker://quay.io/x/y:1' } }, storage: size('1Gi') },
    { source: { registry: { imageStream: 'fedora', pullMethod: 'node' } }, storage: size('1Gi') },
    { storage: { ...size('1Gi'), dataSourceRef: { apiGroup: 'x.io', kind: 'Pop', name: 'p' } } },
    {
      source: { s3: { url: 'https://s3.example.org/b/k' } },
      storage: { ...size('1Gi'), accessModes: ['ReadWriteOnce', 'ReadOnlyMany'] },
    },
  ])
    assert.deepEqual(validateDataVolumeSpec(spec(ok)), [], JSON.stringify(ok));
});

void test("upstream's messages and fields for every rule", () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ source: http('https://x/y') }, 'Missing Data volume PVC', 'spec.PVC'],
    [
      { source: http('https://x/y'), pvc: size('1Gi'), storage: size('1Gi') },
      'Duplicate storage definition, both target storage and target pvc defined',
      'spec.PVC.Storage',
    ],
    [
      { source: http('https://x/y'), storage: {} },
      'Storage size is missing',
      'spec.Storage.resources.requests.size',
    ],
    [
      { source: http('https://x/y'), pvc: { accessModes: ['ReadWriteOnce'] } },
      'PVC size is missing',
      'spec.PVC.resources.requests.size',
    ],
    [
      { source: http('https://x/y'), storage: size('0') },
      "Storage size can't be equal or less than zero",
      'spec.Storage.resources.requests.size',
    ],
    [
      { source: http('https://x/y'), storage: size('1Ki') },
      'Storage size should be at least 1MiB',
      'spec.Storage.resources.requests.size',
    ],
    [
      { source: http('https://x/y'), pvc: size('1Gi') },
      'Required value: at least 1 access mode is required',
      'spec.PVC.accessModes',
    ],
    [
      {
        source: http('https://x/y'),
        pvc: { accessModes: ['ReadWriteOnce', 'ReadOnlyMany'], ...size('1Gi') },
      },
      'PVC multiple accessModes',
      'spec.PVC.accessModes',
    ],
    [
      { source: http('https://x/y'), storage: { accessModes: ['ReadWriteSometimes'], ...size('1Gi') } },
      'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
      'spec.PVC.accessModes',
    ],
    [
      {
        source: http('https://x/y'),
        storage: { ...size('1Gi'), dataSource: { kind: 'PersistentVolumeClaim', name: 'p' } },
      },
      'External population is incompatible with Source and SourceRef',
      'spec.source',
    ],
    [
      { storage: size('1Gi') },
      'Data volume should have either Source or SourceRef, or be externally populated',
      'spec.source',
    ],
    [
      { source: http('https://x/y'), sourceRef: { kind: 'DataSource', name: 'n' }, storage: size('1Gi') },
      'Data volume should have either Source or SourceRef, or be externally populated',
      'spec.source',
    ],
    [
      { sourceRef: { kind: 'PVC', name: 'n' }, storage: size('1Gi') },
      'Unsupported sourceRef kind PVC, currently only DataSource is supported',
      'spec.sourceRef.Kind',
    ],
    [
      { sourceRef: { kind: 'DataSource', name: '' }, storage: size('1Gi') },
      'Missing sourceRef name',
      'spec.sourceRef.Name',
    ],
    [{ source: {}, storage: size('1Gi') }, 'Missing Data volume source', 'spec.source'],
    [
      { source: { ...http('https://x/y'), blank: {} }, storage: size('1Gi') },
      'Multiple Data volume sources',
      'spec.source',
    ],
    [
      { source: http('ftp://x/y'), storage: size('1Gi') },
      'spec.source Invalid source URL scheme: ftp://x/y',
      'spec.source.HTTP.url',
    ],
    [
      { source: http('not a url'), storage: size('1Gi') },
      'spec.source Invalid source URL: not a url',
      'spec.source.HTTP.url',
    ],
    [{ source: http(''), storage: size('1Gi') }, 'spec.source source URL is empty', 'spec.source.HTTP.url'],
    [
      { source: http('https://x/y', { checksum: 'md5:abc' }), storage: size('1Gi') },
      'Invalid checksum format: invalid md5 hash length: expected 32 hex characters, got 3',
      'spec.source.HTTP.checksum',
    ],
    [
      { source: { blank: {} }, contentType: 'archive', storage: size('1Gi') },
      'SourceType cannot be blank and the contentType be archive',
      'spec.contentType',
    ],
    [
      { source: { registry: { url: 'docker://x/y' } }, contentType: 'archive', storage: size('1Gi') },
      'ContentType must be kubevirt when Source is Registry',
      'spec.contentType',
    ],
    [
      { source: { registry: {} }, storage: size('1Gi') },
      'Source registry should have either URL or ImageStream',
      'spec.source.Registry',
    ],
    [
      { source: { registry: { url: 'https://x/y' } }, storage: size('1Gi') },
      'Illegal registry source URL scheme https://x/y',
      'spec.source.Registry.URL',
    ],
    [
      { source: { registry: { imageStream: 'is' } }, storage: size('1Gi') },
      'Source registry ImageStream is supported only with node pull import method',
      'spec.source.Registry.importMethod',
    ],
    [
      {
        source: { imageio: { url: 'https://e/ovirt-engine/api', secretRef: 's', diskId: 'd' } },
        storage: size('1Gi'),
      },
      'spec.source.Imageio source Imageio requires CertConfigMap or InsecureSkipVerify',
      'spec.source.Imageio',
    ],
    [
      { source: { vddk: { url: 'https://vc/sdk', secretRef: 's', uuid: 'u' } }, storage: size('1Gi') },
      'spec.source.VDDK source VDDK is not valid',
      'spec.source.VDDK',
    ],
    [
      { source: { pvc: { namespace: '', name: 'x' } }, storage: size('1Gi') },
      'spec.source.PVC source PVC is not valid',
      'spec.source.PVC',
    ],
    [
      { source: { snapshot: { namespace: 'a', name: '' } }, storage: size('1Gi') },
      'spec.source.Snapshot source snapshot is not valid',
      'spec.source.Snapshot',
    ],
    [
      { source: { blank: {} }, contentType: 'tar', storage: size('1Gi') },
      'ContentType not one of: kubevirt, archive',
      'spec.contentType',
    ],
  ];
  for (const [s, message, field] of cases) {
    const c = first(s);
    assert.equal(c?.message, message, JSON.stringify(s));
    assert.equal(c?.field, field, JSON.stringify(s));
  }
});

void test("checksums as upstream's ParseAndValidate", () => {
  assert.equal(checksumError('sha512:' + 'F'.repeat(128)), undefined);
  assert.match(checksumError('sha256') ?? '', /expected 'algorithm:hash', got 'sha256'/);
  assert.match(checksumError('crc32:00') ?? '', /unsupported hash algorithm 'crc32'/);
  assert.match(checksumError('md5:') ?? '', /cannot be empty/);
  assert.equal(
    checksumError('md5:' + 'g'.repeat(32)),
    "checksum hash is not valid hexadecimal: encoding/hex: invalid byte: U+0067 'g'",
  );
});

void test("s3, gcs and registry checksums (ours: upstream has http only) are checked as http's, same message", () => {
  const md5 = 'md5:' + 'a'.repeat(32);
  const sources: [string, Record<string, unknown>][] = [
    ['S3', { s3: { url: 'https://s3.example.org/b/k.qcow2' } }],
    ['S3', { s3: { url: 'http://minio.local:9000/b/k.img.xz' } }],
    ['GCS', { gcs: { url: 'gs://b/k.qcow2' } }],
    ['Registry', { registry: { url: 'docker://quay.io/x/y:1' } }],
    ['Registry', { registry: { url: 'oci-archive:///images/x.tar' } }],
    ['Registry', { registry: { imageStream: 'fedora', pullMethod: 'node' } }],
  ];
  for (const [field, source] of sources) {
    const [kind, value] = Object.entries(source)[0] as [string, Record<string, unknown>];
    const withSum = (checksum: string): Record<string, unknown> => ({
      source: { [kind]: { ...value, checksum } },
      storage: size('1Gi'),
    });
    for (const ok of [md5, 'SHA1: ' + 'B'.repeat(40), 'sha512:' + 'c'.repeat(128)])
      assert.deepEqual(validateDataVolumeSpec(spec(withSum(ok))), [], `${kind} ${ok}`);
    for (const [bad, message] of [
      ['md5:abc', 'Invalid checksum format: invalid md5 hash length: expected 32 hex characters, got 3'],
      [
        'crc32:00',
        "Invalid checksum format: unsupported hash algorithm 'crc32': supported algorithms are: md5, sha1, sha256, sha512",
      ],
      ['sha256', "Invalid checksum format: invalid checksum format: expected 'algorithm:hash', got 'sha256'"],
    ] as const) {
      assert.deepEqual(
        validateDataVolumeSpec(spec(withSum(bad))),
        [{ message, field: `spec.source.${field}.checksum`, reason: 'FieldValueInvalid' }],
        `${kind} ${bad}`,
      );
    }
  }
  // the source's own rules still answer first, as http's URL rule does
  assert.equal(
    first({ source: { registry: { url: 'https://x/y', checksum: 'md5:1' } }, storage: size('1Gi') })?.message,
    'Illegal registry source URL scheme https://x/y',
  );
  // http's rule is unchanged: the URL's cause and the checksum's together
  assert.deepEqual(
    validateDataVolumeSpec(
      spec({ source: http('ftp://x/y', { checksum: 'md5:1' }), storage: size('1Gi') }),
    ).map((c) => c.field),
    ['spec.source.HTTP.url', 'spec.source.HTTP.checksum'],
  );
  // a DataImportCron's template is checked by the same rules (the field path under Template)
  const template = {
    source: { registry: { url: 'docker://q/x:1', checksum: 'md5:zz' } },
    storage: size('1Gi'),
  };
  assert.equal(
    validateDataVolumeSpec(spec(template), 'Template')[0]?.field,
    'Template.source.Registry.checksum',
  );
});

void test('every webhook the operator registers is served by cdi-apiserver, and every one served is registered', () => {
  const served = new Set(
    webhooks({ kube: {} as KubeClient, namespace: 'cdi', cloneTokens: {} as TokenGenerator }).map(
      (w) => w.path,
    ),
  );
  for (const r of WebhookRegistrations) assert.ok(served.has(r.path), `${r.configuration} → ${r.path}`);
  const registered = new Set(WebhookRegistrations.map((r) => r.path));
  for (const p of served)
    assert.ok(registered.has(p), `${p} is served but the operator registers nothing for it`);
});
