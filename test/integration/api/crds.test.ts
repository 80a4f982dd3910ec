// The generated CRDs on a real API server: installable, explainable, accepting upstream-style manifests
// unchanged, printing the upstream columns, and writing status only through the status subresource.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import {
  Resources,
  isInvalid,
  type KubeClient,
  type KubeObject,
  type Resource,
} from '../../../src/kube/index.ts';
import {
  parseCDI,
  parseCDIConfig,
  parseDataVolume,
  parseStorageProfile,
  type DataVolume,
} from '../../../src/api/index.ts';
import { eventually, kubectl, repoRoot, useTestNamespace } from '../kube/cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('api-crds', (c, n) => ((client = c), (ns = n)), { crds: true });

/** The server drops nulls of non-nullable fields; everything else must come back as written. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== null)
        .map(([k, x]) => [k, withoutNulls(x)]),
    );
  }
  return v;
}

const fixtures = join(repoRoot, 'test', 'fixtures', 'manifests');
const kinds: Record<string, { resource: Resource; parse: (v: unknown) => unknown }> = {
  DataVolume: { resource: Resources.DataVolume, parse: parseDataVolume },
  CDIConfig: { resource: Resources.CDIConfig, parse: parseCDIConfig },
  StorageProfile: { resource: Resources.StorageProfile, parse: parseStorageProfile },
  CDI: { resource: Resources.CDI, parse: parseCDI },
};

void test('upstream-style manifests are accepted unchanged (server-side dry run, nothing pruned) and parse', async () => {
  const files = (await readdir(fixtures)).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(files.length >= 15, 'the fixtures are there');
  for (const file of files) {
    const manifest = YAML.parse(await readFile(join(fixtures, file), 'utf8')) as KubeObject & {
      spec: unknown;
    };
    const kind = kinds[manifest.kind ?? ''];
    assert.ok(kind, `${file}: unexpected kind ${manifest.kind}`);
    // Cluster-scoped singletons (CDIConfig "config", CDI "cdi") may already exist: dry-run under another name.
    const metadata = kind.resource.namespaced
      ? { ...manifest.metadata, namespace: ns }
      : { ...manifest.metadata, name: `${manifest.metadata?.name}-${ns}` };
    const obj = { ...manifest, metadata };
    const created = await client
      .create<KubeObject & { spec: unknown }>(kind.resource, obj, { dryRun: true })
      .catch((e: unknown) => {
        throw new Error(`${file} was rejected: ${(e as Error).message}`);
      });
    assert.deepEqual(
      created.spec,
      withoutNulls(manifest.spec),
      `${file}: the server pruned or changed fields`,
    );
    assert.doesNotThrow(() => kind.parse(created), `${file}: parse of the server's answer`);
  }
});

void test('a checksum on s3, gcs and registry (ours: upstream has it on http only) is kept, not pruned', async () => {
  const checksum = 'sha256:' + 'ab'.repeat(32);
  for (const source of [
    { s3: { url: 'http://minio.example:9000/b/disk.qcow2', checksum } },
    { gcs: { url: 'gs://b/disk.img.xz', checksum } },
    { registry: { url: 'docker://quay.io/x/disk:1', pullMethod: 'node', checksum } },
  ]) {
    const created = await client.create<KubeObject & { spec: DataVolume['spec'] }>(
      Resources.DataVolume,
      {
        metadata: { name: 'sum', namespace: ns },
        spec: { source, storage: { resources: { requests: { storage: '1Gi' } } } },
      },
      { dryRun: true },
    );
    assert.deepEqual(created.spec.source, source, JSON.stringify(source));
  }
});

void test('kubectl explain datavolume.spec.source.http shows our descriptions', async () => {
  const out = await eventually('the CRD schema to be published in OpenAPI', async () => {
    const r = await kubectl('explain', 'datavolume.spec.source.http');
    return r.code === 0 && r.stdout.includes('checksum') ? r.stdout : undefined;
  });
  assert.match(out, /Import an image from an HTTP or HTTPS URL\./);
  assert.match(out, /url\s+<string> -required-/);
  assert.match(out, /The expected digest of the downloaded file/);
  assert.match(out, /secretExtraHeaders\s+<\[\]string>/);
  const status = await kubectl('explain', 'dv.status.restartCount');
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /How many times the pod populating the DataVolume has restarted/);
});

void test('the server rejects an invalid DataVolume with a 422 naming the field', async () => {
  const bad = {
    metadata: { name: 'bad', namespace: ns },
    spec: { contentType: 'tarball', source: { http: {} } },
  };
  await assert.rejects(client.create(Resources.DataVolume, bad), (e: unknown) => {
    assert.ok(isInvalid(e));
    assert.match((e as Error).message, /spec\.contentType/);
    assert.match((e as Error).message, /spec\.source\.http\.url/);
    return true;
  });
});

// A CDI controller may be running in the cluster (the `full` profile) and write its own status to these
// objects at any time; the assertions below hold either way.
void test('status goes through the status subresource only, and kubectl get dv prints Phase, Progress, Restarts', async () => {
  const created = await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name: 'columns', namespace: ns },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
  });
  assert.equal(created.status, undefined);
  // A status in a write to the main resource is ignored…
  const viaMain = await client.mergePatch<DataVolume & KubeObject>(
    Resources.DataVolume,
    'columns',
    { status: { phase: 'Failed', restartCount: 99 } },
    { namespace: ns },
  );
  assert.notEqual(viaMain.status?.restartCount, 99);
  // …and a spec in a write to the status subresource too.
  const viaStatus = await client.mergePatch<DataVolume & KubeObject>(
    Resources.DataVolume,
    'columns',
    {
      spec: { preallocation: true },
      status: { phase: 'ImportInProgress', progress: '45.10%', restartCount: 2, claimName: 'columns' },
    },
    { namespace: ns, subresource: 'status' },
  );
  assert.equal(viaStatus.status?.phase, 'ImportInProgress');
  assert.equal(viaStatus.status?.restartCount, 2);
  assert.equal(viaStatus.spec.preallocation, undefined);
  assert.equal(
    viaStatus.metadata?.generation,
    created.metadata?.generation,
    'a status write does not bump generation',
  );

  // The columns show the status fields: compare with a read that brackets the kubectl call unchanged.
  const [header, row, status] = await eventually('a stable read around kubectl get dv', async () => {
    const before = await client.get<DataVolume & KubeObject>(Resources.DataVolume, 'columns', ns);
    const r = await kubectl('get', 'dv', '-n', ns);
    const after = await client.get<DataVolume & KubeObject>(Resources.DataVolume, 'columns', ns);
    if (r.code !== 0 || before.metadata?.resourceVersion !== after.metadata?.resourceVersion)
      return undefined;
    const [h, line] = r.stdout.trim().split('\n');
    return [h, line, before.status] as const;
  });
  assert.deepEqual(header?.split(/\s+/), ['NAME', 'PHASE', 'PROGRESS', 'RESTARTS', 'AGE']);
  assert.deepEqual(row?.split(/\s+/).slice(0, 4), [
    'columns',
    status?.phase || '<none>',
    status?.progress || '<none>',
    String(status?.restartCount ?? '<none>'),
  ]);
  const all = await kubectl('get', 'all', '-n', ns);
  assert.match(all.stdout, /datavolume\.cdi\.kubevirt\.io\/columns/);
  const short = await kubectl('get', 'dvs', '-n', ns, '-o', 'name');
  assert.equal(short.stdout.trim(), 'datavolume.cdi.kubevirt.io/columns');
});

// StorageProfiles without a StorageClass may be removed by a running CDI controller, so these are dry runs.
void test('StorageProfile is cluster-scoped and checks access modes', async () => {
  const name = `sp-${ns}`;
  const sets = (mode: string) => ({ claimPropertySets: [{ accessModes: [mode], volumeMode: 'Filesystem' }] });
  const ok = await client.create<KubeObject & { spec: unknown }>(
    Resources.StorageProfile,
    { metadata: { name }, spec: sets('ReadWriteOnce') },
    { dryRun: true },
  );
  assert.equal(ok.metadata?.namespace, undefined);
  assert.deepEqual(ok.spec, sets('ReadWriteOnce'));
  await assert.rejects(
    client.create<KubeObject & { spec: unknown }>(
      Resources.StorageProfile,
      { metadata: { name }, spec: sets('WriteAlways') },
      { dryRun: true },
    ),
    /Illegal AccessMode/,
  );
});
