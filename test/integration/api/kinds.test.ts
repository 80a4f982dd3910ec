// The kinds besides DataVolume, CDIConfig, StorageProfile and CDI (DataSource, DataImportCron, the three
// populator sources, ObjectTransfer) on a real API server: upstream-style objects are accepted with nothing
// pruned, `kubectl explain` describes them, short names, categories and printer columns work, and
// ObjectTransfer warns that it is deprecated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeClient, KubeObject, Resource } from '../../../src/kube/index.ts';
import {
  parseDataImportCron,
  parseDataSource,
  parseObjectTransfer,
  parseVolumeCloneSource,
  parseVolumeImportSource,
  parseVolumeUploadSource,
} from '../../../src/api/index.ts';
import { eventually, kubectl, useTestNamespace } from '../kube/cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('api-kinds', (c, n) => ((client = c), (ns = n)), { crds: true });

const res = (kind: string, plural: string, namespaced: boolean): Resource => ({
  group: 'cdi.kubevirt.io',
  version: 'v1beta1',
  kind,
  plural,
  namespaced,
});

type Spec = KubeObject & { spec: Record<string, unknown> };

const examples: { resource: Resource; parse: (v: unknown) => unknown; spec: Record<string, unknown> }[] = [
  {
    resource: res('DataSource', 'datasources', true),
    parse: parseDataSource,
    spec: { source: { pvc: { namespace: 'golden-images', name: 'fedora-42' } } },
  },
  {
    resource: res('DataSource', 'datasources', true),
    parse: parseDataSource,
    spec: { source: { dataSource: { namespace: 'golden-images', name: 'fedora' } } },
  },
  {
    resource: res('DataImportCron', 'dataimportcrons', true),
    parse: parseDataImportCron,
    spec: {
      schedule: '30 1/12 * * *',
      garbageCollect: 'Outdated',
      importsToKeep: 2,
      managedDataSource: 'fedora',
      retentionPolicy: 'RetainAll',
      serviceAccountName: 'importer',
      template: {
        spec: {
          source: {
            registry: {
              url: 'docker://quay.io/containerdisks/fedora:latest',
              pullMethod: 'node',
              platform: { architecture: 'amd64' },
            },
          },
          storage: { resources: { requests: { storage: '5Gi' } } },
        },
      },
    },
  },
  {
    resource: res('VolumeImportSource', 'volumeimportsources', true),
    parse: parseVolumeImportSource,
    spec: {
      source: {
        vddk: { url: 'https://vcenter.example.invalid', uuid: '52260566', backingFile: '[ds] vm/vm.vmdk' },
      },
      contentType: 'kubevirt',
      preallocation: true,
      targetClaim: 'vm-disk',
      checkpoints: [{ previous: '', current: 'snapshot-1' }],
      finalCheckpoint: false,
    },
  },
  {
    resource: res('VolumeUploadSource', 'volumeuploadsources', true),
    parse: parseVolumeUploadSource,
    spec: { contentType: 'archive', preallocation: false },
  },
  {
    resource: res('VolumeCloneSource', 'volumeclonesources', true),
    parse: parseVolumeCloneSource,
    spec: {
      source: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'fedora-snap' },
      preallocation: false,
      priorityClassName: 'high',
    },
  },
  {
    resource: res('ObjectTransfer', 'objecttransfers', false),
    parse: parseObjectTransfer,
    spec: {
      source: {
        kind: 'PersistentVolumeClaim',
        namespace: 'a',
        name: 'disk',
        requiredAnnotations: { 'cdi.kubevirt.io/storage.pod.phase': 'Succeeded' },
      },
      target: { namespace: 'b', name: 'disk-moved' },
    },
  },
];

void test('upstream-style objects of every other kind are accepted with nothing pruned, and parse', async () => {
  for (const [i, ex] of examples.entries()) {
    const metadata = ex.resource.namespaced ? { name: `ex-${i}`, namespace: ns } : { name: `ex-${i}-${ns}` };
    const created = await client
      .create<Spec>(ex.resource, { metadata, spec: ex.spec }, { dryRun: true })
      .catch((e: unknown) => {
        throw new Error(`${ex.resource.kind} #${i} was rejected: ${(e as Error).message}`);
      });
    assert.deepEqual(created.spec, ex.spec, `${ex.resource.kind} #${i}: the server pruned or changed fields`);
    assert.doesNotThrow(() => ex.parse(created), `${ex.resource.kind} #${i}: parse of the server's answer`);
  }
});

void test('a DataImportCron template keeps no metadata fields, as upstream (the schema says only "object")', async () => {
  const spec = {
    schedule: '',
    managedDataSource: 'x',
    template: { metadata: { labels: { a: 'b' } }, spec: { source: { registry: { url: 'docker://r/i' } } } },
  };
  const created = await client.create<Spec>(
    res('DataImportCron', 'dataimportcrons', true),
    { metadata: { name: 'meta', namespace: ns }, spec },
    { dryRun: true },
  );
  assert.deepEqual((created.spec.template as { metadata?: unknown }).metadata, {});
});

void test('the server refuses objects that miss a required field, naming it', async () => {
  const r = res('DataSource', 'datasources', true);
  await assert.rejects(
    client.create(r, { metadata: { name: 'bad', namespace: ns }, spec: { source: { pvc: { name: 'p' } } } }),
    /spec\.source\.pvc\.namespace: Required value/,
  );
  await assert.rejects(
    client.create(res('VolumeCloneSource', 'volumeclonesources', true), {
      metadata: { name: 'bad', namespace: ns },
      spec: { source: { kind: 'PersistentVolumeClaim' } },
    }),
    /spec\.source\.name: Required value/,
  );
});

void test('kubectl explain describes every kind', async () => {
  const cases: [string, RegExp[]][] = [
    ['datasource.spec', [/source\s+<Object> -required-/, /The source this DataSource names/]],
    ['datasource.spec.source', [/dataSource\s+<Object>/, /pvc\s+<Object>/, /snapshot\s+<Object>/]],
    ['datasource.status', [/conditions\s+<\[\]Object>/]],
    [
      'dataimportcron.spec',
      [
        /managedDataSource\s+<string> -required-/,
        /schedule\s+<string> -required-/,
        /template\s+<Object> -required-/,
      ],
    ],
    ['dataimportcron.spec.template.spec.source.registry', [/pullMethod\s+<string>/]],
    ['dataimportcron.status', [/currentImports\s+<\[\]Object>/, /sourceFormat\s+<string>/]],
    ['volumeimportsource.spec', [/targetClaim\s+<string>/, /checkpoints\s+<\[\]Object>/]],
    ['volumeimportsource.spec.source.http', [/url\s+<string> -required-/]],
    ['volumeuploadsource.spec', [/contentType\s+<string>/, /preallocation\s+<boolean>/]],
    ['volumeclonesource.spec.source', [/kind\s+<string> -required-/, /name\s+<string> -required-/]],
    ['objecttransfer.spec.source', [/requiredAnnotations\s+<map\[string\]string>/]],
    ['storageprofile.status', [/claimPropertySets\s+<\[\]Object>/, /snapshotClass\s+<string>/]],
    ['cdi.spec.infra.affinity.nodeAffinity', [/requiredDuringSchedulingIgnoredDuringExecution\s+<Object>/]],
  ];
  for (const [path, patterns] of cases) {
    const out = await eventually(`kubectl explain ${path}`, async () => {
      const r = await kubectl('explain', path);
      return r.code === 0 && patterns.every((p) => p.test(r.stdout)) ? r.stdout : undefined;
    });
    for (const p of patterns) assert.match(out, p, path);
  }
});

void test('short names, category all, printer columns and the ObjectTransfer deprecation warning', async () => {
  const dsr = res('DataSource', 'datasources', true);
  await client.create(dsr, {
    metadata: { name: 'fedora', namespace: ns },
    spec: { source: { pvc: { namespace: ns, name: 'fedora-42' } } },
  });
  await client.create(res('DataImportCron', 'dataimportcrons', true), {
    metadata: { name: 'fedora', namespace: ns },
    spec: {
      schedule: '',
      managedDataSource: 'fedora',
      template: { spec: { source: { registry: { url: 'docker://r/i' } } } },
    },
  });
  const short = await kubectl('get', 'das,dic', '-n', ns, '-o', 'name');
  assert.equal(short.code, 0, short.stderr);
  assert.deepEqual(short.stdout.trim().split('\n').sort(), [
    'dataimportcron.cdi.kubevirt.io/fedora',
    'datasource.cdi.kubevirt.io/fedora',
  ]);
  const all = await kubectl('get', 'all', '-n', ns, '-o', 'name');
  assert.match(all.stdout, /datasource\.cdi\.kubevirt\.io\/fedora/);
  assert.match(all.stdout, /dataimportcron\.cdi\.kubevirt\.io\/fedora/);
  const dic = await kubectl('get', 'dics', '-n', ns);
  assert.deepEqual(dic.stdout.trim().split('\n')[0]?.split(/\s+/), ['NAME', 'FORMAT']);
  const ot = await kubectl('get', 'ots');
  assert.equal(ot.code, 0, ot.stderr);
  assert.match(
    ot.stderr,
    /Warning: cdi\.kubevirt\.io\/v1beta1 ObjectTransfers is now deprecated and will be removed in v1\./,
  );
  for (const r of ['vis', 'volumeimportsources', 'volumeuploadsources', 'volumeclonesources']) {
    const got = await kubectl('get', r, '-n', ns);
    // "vis" is no short name of ours (upstream has none): kubectl must not find it
    assert.equal(got.code === 0, r !== 'vis', `${r}: ${got.stderr}`);
  }
});
