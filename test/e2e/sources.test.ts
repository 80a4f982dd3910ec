// Registry, S3 and GCS imports end to end on the full cluster: container disks built here as OCI layouts and pushed
// with skopeo to the cluster's registry (one storage behind localhost:5000 for the kubelet, 10.99.0.1:5000 plain,
// :5443 TLS with the test CA, :5001 with htpasswd), objects put into the harness's versitygw and fake-gcs-server,
// and a verifier pod that checks the md5 of what landed on the volume. The harness's operator hands the controller
// AWS_ENDPOINT_URL_S3 and STORAGE_EMULATOR_HOST so that s3:// and gs:// URLs reach those servers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  ApiError,
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
} from '../../src/kube/index.ts';
import type { DataVolume, DataVolumeSource } from '../../src/controller/shared/types.ts';
import { buildLayout, skopeoPush } from '../support/oci.ts';
import { startOAuthServer, type OAuthServer } from '../support/servers.ts';
import { clusterClient, createNamespace, eventually, repoRoot } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  deployCdi,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  type Fixtures,
  addInsecureRegistries,
} from './harness.ts';

const run = promisify(execFile);
const A = 'cdi.kubevirt.io/';

interface TestServers {
  caCertPath: string;
  registry: { plain: string; tls: string; auth: { host: string; user: string; password: string } };
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  gcs: { endpoint: string; bucket: string };
}
const servers = JSON.parse(
  readFileSync(path.join(repoRoot, '.cluster', 'test-servers', 'test-servers.json'), 'utf8'),
) as TestServers;

let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let fx: Fixtures;
let oauth: OAuthServer;
let undeploy: () => Promise<void> = async () => {};
let restoreConfig: () => Promise<void> = async () => {};
// one run's names: the registry and the buckets outlive the namespace
const run_ = `e2e-${Date.now().toString(36)}`;
const repo = `e2e-sources/${run_}`;
const objects = { qcow2: `${run_}/disk.qcow2`, rawGz: `${run_}/disk.raw.gz` };

async function putObjects(): Promise<void> {
  const s3 = new S3Client({
    endpoint: servers.s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: servers.s3.accessKeyId, secretAccessKey: servers.s3.secretAccessKey },
  });
  for (const [key, file] of [
    [objects.qcow2, fx.files.qcow2],
    [objects.rawGz, fx.files.rawGz],
  ] as const) {
    await s3.send(
      new PutObjectCommand({
        Bucket: servers.s3.bucket,
        Key: key,
        Body: await readFile(path.join(fx.dir, file)),
      }),
    );
    const res = await fetch(
      `${servers.gcs.endpoint}/upload/storage/v1/b/${servers.gcs.bucket}/o?uploadType=media&name=${encodeURIComponent(key)}`,
      { method: 'POST', body: await readFile(path.join(fx.dir, file)) },
    );
    if (!res.ok) throw new Error(`fake-gcs upload of ${key}: HTTP ${res.status} ${await res.text()}`);
  }
  s3.destroy();
}

/** A Google service-account key whose token_uri is the OAuth stand-in on the node address. */
async function serviceAccount(): Promise<string> {
  const key = path.join(fx.dir, 'sa.key');
  await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
  const { stdout: publicKey } = await run('openssl', ['pkey', '-in', key, '-pubout']);
  oauth = await startOAuthServer(publicKey, NODE_IP);
  return JSON.stringify({
    type: 'service_account',
    project_id: 'cdi-test',
    private_key_id: 'importer-1',
    private_key: await readFile(key, 'utf8'),
    client_email: 'importer@cdi-test.iam.gserviceaccount.com',
    token_uri: oauth.tokenUri,
  });
}

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undeploy = await deployCdi(client);
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-src'));
  fx = await makeFixtures();
  // container disks: the compressed raw disk and the qcow2, each in a gzip layer
  for (const [tag, file] of [
    ['rawgz', fx.files.rawGz],
    ['qcow2', fx.files.qcow2],
  ] as const) {
    const layout = await buildLayout(fx.dir, tag, [
      {
        env: ['INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small'],
        layers: [{ compression: 'gzip', files: { [`disk/${file}`]: path.join(fx.dir, file) } }],
      },
    ]);
    await skopeoPush(layout, `docker://localhost:5000/${repo}:${tag}`, { tlsVerify: false });
  }
  // a two-platform index: the disk is in the arm64 image, the amd64 one (the node's) holds a different disk
  const decoy = path.join(fx.dir, 'decoy.raw');
  await writeFile(decoy, Buffer.alloc(1 << 20, 0x5a));
  const multi = await buildLayout(fx.dir, 'multiarch', [
    { arch: 'amd64', layers: [{ compression: 'gzip', files: { 'disk/decoy.raw': decoy } }] },
    {
      arch: 'arm64',
      layers: [
        { compression: 'gzip', files: { [`disk/${fx.files.rawGz}`]: path.join(fx.dir, fx.files.rawGz) } },
      ],
    },
  ]);
  await skopeoPush(multi, `docker://localhost:5000/${repo}:multiarch`, { tlsVerify: false });
  await putObjects();
  const saJson = await serviceAccount();
  for (const [name, data] of [
    [
      'registry-creds',
      { accessKeyId: servers.registry.auth.user, secretKey: servers.registry.auth.password },
    ],
    ['registry-wrong', { accessKeyId: servers.registry.auth.user, secretKey: 'not-the-password' }],
    ['s3-creds', { accessKeyId: servers.s3.accessKeyId, secretKey: servers.s3.secretAccessKey }],
    ['s3-wrong', { accessKeyId: servers.s3.accessKeyId, secretKey: 'not-the-secret-key' }],
    ['gcs-key', { 'credentials.json': saJson }],
  ] as const) {
    await client.create(Resources.Secret, {
      metadata: { name, namespace: ns },
      stringData: data,
    } as KubeObject);
  }
  await client.create(Resources.ConfigMap, {
    metadata: { name: 'test-ca', namespace: ns },
    data: { 'ca.crt': await readFile(servers.caCertPath, 'utf8') },
  } as KubeObject);
  // the plain-HTTP registries are insecure registries (upstream's cdi-insecure-registries), through CDI.spec.config
  restoreConfig = await addInsecureRegistries(client, [servers.registry.plain, servers.registry.auth.host]);
});

after(async () => {
  await restoreConfig();
  await cleanupNs();
  await oauth?.close();
  await fx?.cleanup();
  await undeploy();
});

const getDv = (name: string): Promise<DataVolume | undefined> =>
  client.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, name, ns);

async function importDv(name: string, source: DataVolumeSource): Promise<void> {
  await client.create<DataVolume & KubeObject>(Resources.DataVolume, {
    metadata: { name, namespace: ns },
    spec: {
      source,
      storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '64Mi' } } },
    },
  });
}

async function succeeded(name: string): Promise<DataVolume> {
  const dv = await eventually(
    `DataVolume ${name} Succeeded`,
    async () => {
      const d = await getDv(name);
      if (d?.status?.phase === 'Failed')
        throw new Error(`DataVolume ${name} Failed: ${JSON.stringify(d.status.conditions)}`);
      return d?.status?.phase === 'Succeeded' ? d : undefined;
    },
    300_000,
    1000,
  );
  assert.equal(dv.status?.progress, '100.0%');
  assert.equal(await md5OnVolume(client, ns, name, { bytes: fx.rawSize }), fx.rawMd5);
  return dv;
}

/** The DataVolume's Running condition once `match` accepts it. */
async function running(
  name: string,
  match: (c: { reason?: string; message?: string }) => boolean,
): Promise<{ reason?: string; message?: string }> {
  return eventually(
    `DataVolume ${name} Running condition`,
    async () => {
      const c = (await getDv(name))?.status?.conditions?.find((x) => x.type === 'Running');
      return c && match(c) ? c : undefined;
    },
    300_000,
    1000,
  );
}

const pvcLabels = async (name: string): Promise<Record<string, string>> =>
  (await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns)).metadata?.labels ?? {};

const pvcAnnotations = async (name: string): Promise<Record<string, string>> =>
  (await client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns)).metadata
    ?.annotations ?? {};

void test('registry, pod pull, compressed raw from an insecure registry: no scratch volume, bytes match', async () => {
  await importDv('reg-rawgz', { registry: { url: `docker://${servers.registry.plain}/${repo}:rawgz` } });
  await succeeded('reg-rawgz');
  // the importer streamed the disk out of its layer: it never asked for scratch space
  assert.equal((await pvcAnnotations('reg-rawgz'))[`${A}storage.import.requiresScratch`], undefined);
});

void test('registry, pod pull, qcow2 over TLS with certConfigMap: scratch asked for and used, bytes match', async () => {
  await importDv('reg-qcow2', {
    registry: { url: `docker://${servers.registry.tls}/${repo}:qcow2`, certConfigMap: 'test-ca' },
  });
  await succeeded('reg-qcow2');
  assert.equal((await pvcAnnotations('reg-qcow2'))[`${A}storage.import.requiresScratch`], 'false');
  assert.equal((await pvcLabels('reg-qcow2'))['instancetype.kubevirt.io/default-instancetype'], 'u1.small');
});

void test('registry, pod pull with credentials from a Secret (htpasswd registry)', async () => {
  await importDv('reg-auth', {
    registry: { url: `docker://${servers.registry.auth.host}/${repo}:rawgz`, secretRef: 'registry-creds' },
  });
  await succeeded('reg-auth');
});

void test('registry, node pull: the kubelet pulls the container disk and its server hands the qcow2 over', async () => {
  await importDv('node-qcow2', {
    registry: { url: `docker://localhost:5000/${repo}:qcow2`, pullMethod: 'node' },
  });
  await succeeded('node-qcow2');
  // ranged reads from the image's server: qcow2 by extent copy, no scratch either
  assert.equal((await pvcAnnotations('node-qcow2'))[`${A}storage.import.requiresScratch`], undefined);
  // the image's KUBEVIRT_IO_* env, read from the server's /info, labels the PVC as for a pod pull
  assert.equal((await pvcLabels('node-qcow2'))['instancetype.kubevirt.io/default-instancetype'], 'u1.small');
});

void test('registry, node pull of a missing image: Running reason ImagePullFailed', async () => {
  await importDv('node-missing', {
    registry: { url: `docker://localhost:5000/${repo}:no-such-tag`, pullMethod: 'node' },
  });
  const c = await running('node-missing', (x) => x.reason === 'ImagePullFailed');
  assert.match(c.message ?? '', new RegExp(`failed to pull image: localhost:5000/${repo}:no-such-tag`));
});

void test('registry, pod pull of a missing tag: Running reason ImagePullFailed, the message names the tag', async () => {
  await importDv('reg-missing', {
    registry: { url: `docker://${servers.registry.plain}/${repo}:no-such-tag` },
  });
  const c = await running('reg-missing', (x) => x.reason === 'ImagePullFailed');
  assert.match(c.message ?? '', /failed to pull image/);
  assert.match(c.message ?? '', /no-such-tag/);
});

void test('registry with a wrong password: the condition says the registry refused the credentials', async () => {
  await importDv('reg-wrong', {
    registry: { url: `docker://${servers.registry.auth.host}/${repo}:rawgz`, secretRef: 'registry-wrong' },
  });
  const c = await running('reg-wrong', (x) => /HTTP 401/.test(x.message ?? ''));
  assert.equal(c.reason, 'ImagePullFailed');
  assert.match(c.message ?? '', /accessKeyId and secretKey/);
});

void test('S3: qcow2 from an http endpoint URL with credentials from a Secret', async () => {
  await importDv('s3-qcow2', {
    s3: { url: `${servers.s3.endpoint}/${servers.s3.bucket}/${objects.qcow2}`, secretRef: 's3-creds' },
  });
  await succeeded('s3-qcow2');
});

void test("registry, platform.architecture arm64 picks the arm64 image of an index (not the node's amd64)", async () => {
  await importDv('reg-arm64', {
    registry: {
      url: `docker://${servers.registry.plain}/${repo}:multiarch`,
      platform: { architecture: 'arm64' },
    },
  });
  await succeeded('reg-arm64');
});

void test("a DataVolume with an s3:// URL is refused by datavolume-validate, in upstream's words (s3:// is the annotated-PVC form)", async () => {
  await assert.rejects(
    importDv('s3-url', { s3: { url: `s3://${servers.s3.bucket}/${objects.rawGz}`, secretRef: 's3-creds' } }),
    (e: Error) => {
      assert.match(e.message, /Invalid source URL scheme: s3:\/\//);
      return true;
    },
  );
  assert.equal(await getDv('s3-url'), undefined);
});

void test('S3 with a wrong secret key: the condition says to check the Secret', async () => {
  await importDv('s3-wrong', {
    s3: { url: `${servers.s3.endpoint}/${servers.s3.bucket}/${objects.qcow2}`, secretRef: 's3-wrong' },
  });
  const c = await running('s3-wrong', (x) => /access denied/.test(x.message ?? ''));
  assert.match(
    c.message ?? '',
    /check the access key ID and secret key \(the Secret's accessKeyId and secretKey/,
  );
});

void test('GCS: gs:// with a service-account key mounted at /google', async () => {
  await importDv('gcs-rawgz', {
    gcs: { url: `gs://${servers.gcs.bucket}/${objects.rawGz}`, secretRef: 'gcs-key' },
  });
  await succeeded('gcs-rawgz');
  // the importer signed a token request with the key from the Secret
  assert.ok(oauth.assertions.some((a) => a.valid));
});

void test('the annotated-PVC API with an s3:// endpoint', async () => {
  await client.create(Resources.PersistentVolumeClaim, {
    metadata: {
      name: 's3-golden',
      namespace: ns,
      annotations: {
        [`${A}storage.import.source`]: 's3',
        [`${A}storage.import.endpoint`]: `s3://${servers.s3.bucket}/${objects.qcow2}`,
        [`${A}storage.import.secretName`]: 's3-creds',
      },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: STORAGE_CLASS,
      resources: { requests: { storage: '64Mi' } },
    },
  } as KubeObject);
  await eventually(
    'PVC s3-golden imported',
    async () => (await pvcAnnotations('s3-golden'))[`${A}storage.pod.phase`] === 'Succeeded',
    300_000,
    1000,
  );
  assert.equal(await md5OnVolume(client, ns, 's3-golden', { bytes: fx.rawSize }), fx.rawMd5);
});

/** `algorithm:hex` of a fixture file as stored (what a checksum on s3, gcs or registry covers). */
const digestOf = async (algorithm: string, file: string): Promise<string> =>
  `${algorithm}:${createHash(algorithm)
    .update(await readFile(path.join(fx.dir, file)))
    .digest('hex')}`;

async function checksumFailed(name: string): Promise<void> {
  const dv = await eventually(
    `DataVolume ${name} Failed`,
    async () => {
      const d = await getDv(name);
      if (d?.status?.phase === 'Succeeded')
        throw new Error(`DataVolume ${name} Succeeded despite a wrong checksum`);
      return d?.status?.phase === 'Failed' ? d : undefined;
    },
    300_000,
    1000,
  );
  const c = dv.status?.conditions?.find((x) => x.type === 'Running');
  assert.equal(c?.reason, 'ChecksumError', JSON.stringify(c));
  assert.match(
    c?.message ?? '',
    /checksum validation failed: checksum mismatch: expected md5:0{32}, calculated md5:/,
  );
}

void test('checksum (ours) on s3, gcs and registry: the right digest of the stored file imports, bytes match', async () => {
  // a qcow2 read by range without a checksum: with one it is read whole through scratch (asked for, then used)
  await importDv('sum-s3', {
    s3: {
      url: `${servers.s3.endpoint}/${servers.s3.bucket}/${objects.qcow2}`,
      secretRef: 's3-creds',
      checksum: await digestOf('md5', fx.files.qcow2),
    },
  });
  await importDv('sum-gcs', {
    gcs: {
      url: `gs://${servers.gcs.bucket}/${objects.rawGz}`,
      checksum: await digestOf('sha256', fx.files.rawGz),
    },
  });
  // the disk file as stored in the layer: the raw.gz's digest, not the disk's
  await importDv('sum-reg', {
    registry: {
      url: `docker://${servers.registry.plain}/${repo}:rawgz`,
      checksum: await digestOf('sha512', fx.files.rawGz),
    },
  });
  for (const name of ['sum-s3', 'sum-gcs', 'sum-reg']) {
    await succeeded(name);
    assert.match((await pvcAnnotations(name))[`${A}storage.import.checksum`] ?? '', /^(md5|sha256|sha512):/);
  }
  assert.equal((await pvcAnnotations('sum-s3'))[`${A}storage.import.requiresScratch`], 'false');
});

void test('checksum (ours) on s3, gcs and registry (pod and node pull): a wrong digest fails the DataVolume with ChecksumError', async () => {
  const wrong = `md5:${'0'.repeat(32)}`;
  await importDv('badsum-s3', {
    s3: {
      url: `${servers.s3.endpoint}/${servers.s3.bucket}/${objects.rawGz}`,
      secretRef: 's3-creds',
      checksum: wrong,
    },
  });
  await importDv('badsum-gcs', {
    gcs: { url: `gs://${servers.gcs.bucket}/${objects.qcow2}`, checksum: wrong },
  });
  await importDv('badsum-reg', {
    registry: { url: `docker://${servers.registry.plain}/${repo}:qcow2`, checksum: wrong },
  });
  await importDv('badsum-node', {
    registry: { url: `docker://localhost:5000/${repo}:rawgz`, pullMethod: 'node', checksum: wrong },
  });
  for (const name of ['badsum-s3', 'badsum-gcs', 'badsum-reg', 'badsum-node']) await checksumFailed(name);
});

void test("checksum (ours): a malformed one on s3, gcs or registry is refused by datavolume-validate with http's message", async () => {
  for (const [name, source, field] of [
    ['malsum-s3', { s3: { url: `${servers.s3.endpoint}/b/k`, checksum: 'md5:abc' } }, 'S3'],
    ['malsum-gcs', { gcs: { url: 'gs://b/k', checksum: 'crc32:00' } }, 'GCS'],
    [
      'malsum-reg',
      { registry: { url: `docker://${servers.registry.plain}/x:1`, checksum: 'sha256' } },
      'Registry',
    ],
  ] as const) {
    await assert.rejects(importDv(name, source), (e: Error) => {
      assert.match(e.message, /Invalid checksum format: /);
      const causes = e instanceof ApiError ? (e.status?.details?.causes ?? []) : [];
      assert.ok(
        causes.some((c) => c.field === `spec.source.${field}.checksum`),
        `${e.message} ${JSON.stringify(causes)}`,
      );
      return true;
    });
    assert.equal(await getDv(name), undefined);
  }
});
