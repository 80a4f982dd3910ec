import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { crdFiles, crds } from './crds.ts';

const dir = join(import.meta.dirname, '..', '..', 'deploy', 'crds');

void test('deploy/crds matches what src/api generates', async () => {
  const committed = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  const generated = crdFiles();
  assert.deepEqual(
    committed,
    generated.map((f) => f.file).sort(),
    'deploy/crds has other files than src/api generates: run `npm run gen`',
  );
  for (const f of generated) {
    const onDisk = await readFile(join(dir, f.file), 'utf8');
    assert.equal(onDisk, f.yaml, `deploy/crds/${f.file} is stale: run \`npm run gen\` and commit the result`);
  }
});

void test('the DataVolume CRD has the upstream names, columns and status subresource', () => {
  const dv = crds().find((c) => (c.metadata as { name: string }).name === 'datavolumes.cdi.kubevirt.io');
  assert.ok(dv);
  const spec = dv.spec as {
    names: Record<string, unknown>;
    scope: string;
    versions: Record<string, unknown>[];
  };
  assert.deepEqual(spec.names.shortNames, ['dv', 'dvs']);
  assert.deepEqual(spec.names.categories, ['all']);
  assert.equal(spec.scope, 'Namespaced');
  const v = spec.versions[0]!;
  assert.deepEqual(
    (v.additionalPrinterColumns as { name: string; jsonPath: string }[]).map((c) => [c.name, c.jsonPath]),
    [
      ['Phase', '.status.phase'],
      ['Progress', '.status.progress'],
      ['Restarts', '.status.restartCount'],
      ['Age', '.metadata.creationTimestamp'],
    ],
  );
  assert.deepEqual(v.subresources, { status: {} });
});

void test('cluster-scoped kinds are cluster-scoped', () => {
  const scopes = Object.fromEntries(
    crds().map((c) => [
      (c.spec as { names: { kind: string } }).names.kind,
      (c.spec as { scope: string }).scope,
    ]),
  );
  assert.deepEqual(scopes, {
    DataVolume: 'Namespaced',
    CDIConfig: 'Cluster',
    StorageProfile: 'Cluster',
    CDI: 'Cluster',
    DataSource: 'Namespaced',
    DataImportCron: 'Namespaced',
    VolumeImportSource: 'Namespaced',
    VolumeUploadSource: 'Namespaced',
    VolumeCloneSource: 'Namespaced',
    ObjectTransfer: 'Cluster',
  });
});

void test('the generated YAML parses back to the CRD objects', () => {
  for (const [i, f] of crdFiles().entries()) assert.deepEqual(YAML.parse(f.yaml), crds()[i]);
});

void test('status subresources are where upstream has them', () => {
  const sub = Object.fromEntries(
    crds().map((c) => {
      const spec = c.spec as { names: { kind: string }; versions: { subresources?: unknown }[] };
      return [spec.names.kind, spec.versions[0]?.subresources !== undefined];
    }),
  );
  assert.deepEqual(sub, {
    DataVolume: true,
    CDIConfig: false,
    StorageProfile: true,
    CDI: false,
    DataSource: false,
    DataImportCron: false,
    VolumeImportSource: false,
    VolumeUploadSource: false,
    VolumeCloneSource: false,
    ObjectTransfer: true,
  });
});

void test("short names, categories and printer columns of the other kinds are upstream's", () => {
  const byKind = Object.fromEntries(
    crds().map((c) => {
      const spec = c.spec as {
        names: { kind: string; shortNames?: string[]; categories?: string[] };
        versions: { additionalPrinterColumns?: { name: string; jsonPath: string }[]; deprecated?: boolean }[];
      };
      const v = spec.versions[0]!;
      return [
        spec.names.kind,
        {
          shortNames: spec.names.shortNames,
          categories: spec.names.categories,
          columns: v.additionalPrinterColumns?.map((col) => `${col.name}=${col.jsonPath}`),
          deprecated: v.deprecated,
        },
      ];
    }),
  );
  assert.deepEqual(byKind.DataSource, {
    shortNames: ['das'],
    categories: ['all'],
    columns: undefined,
    deprecated: undefined,
  });
  assert.deepEqual(byKind.DataImportCron, {
    shortNames: ['dic', 'dics'],
    categories: ['all'],
    columns: ['Format=.status.sourceFormat'],
    deprecated: undefined,
  });
  assert.deepEqual(byKind.ObjectTransfer, {
    shortNames: ['ot', 'ots'],
    categories: undefined,
    columns: ['Age=.metadata.creationTimestamp', 'Phase=.status.phase'],
    deprecated: true,
  });
  for (const k of ['VolumeImportSource', 'VolumeUploadSource', 'VolumeCloneSource'])
    assert.deepEqual(byKind[k], {
      shortNames: undefined,
      categories: undefined,
      columns: undefined,
      deprecated: undefined,
    });
});
