/**
 * The GCS source against fake-gcs-server on loopback (Google's own emulator for client tests): gs:// URLs through
 * STORAGE_EMULATOR_HOST and http(s):// endpoint URLs, every disk format HTTP accepts (md5 checked; qcow2 and friends
 * by ranged reads), service-account keys exchanged for a token at the key's token_uri, checksums, and errors.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { GcsSource, gcsMediaUrl, type GcsSourceOptions } from '../../../src/importer/source/gcs.ts';
import { importFails, importFile } from '../../support/import.ts';
import { startCuttingRelay } from '../../support/relay.ts';
import {
  DISK_VARIANTS,
  makeSeededDisk,
  makeVariant,
  md5File,
  variantFile,
  type SeededDisk,
} from '../../support/images.ts';
import { startGcs, startOAuthServer, type OAuthServer, type Server } from '../../support/servers.ts';

const run = promisify(execFile);
const SIZE = 4 << 20;
const FORMATS = DISK_VARIANTS;
const file = variantFile;

let dir: string;
let disk: SeededDisk;
let gcs: Server;
let oauth: OAuthServer;
let keyFile: string;
let wrongKeyFile: string;

const emulator = (): Record<string, string> => ({ STORAGE_EMULATOR_HOST: gcs.address });

const importTo = (o: GcsSourceOptions, checksum?: string): ReturnType<typeof importFile> =>
  importFile(new GcsSource(o), dir, checksum ? { checksum } : {});

const fails = (o: GcsSourceOptions, pattern: RegExp, checksum?: string): Promise<void> =>
  importFails(new GcsSource(o), dir, pattern, checksum ? { checksum } : {});

async function serviceAccount(name: string, tokenUri: string): Promise<{ file: string; publicKey: string }> {
  const key = path.join(dir, `${name}.key`);
  await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
  const { stdout: publicKey } = await run('openssl', ['pkey', '-in', key, '-pubout']);
  const f = path.join(dir, `${name}.json`);
  await writeFile(
    f,
    JSON.stringify({
      type: 'service_account',
      project_id: 'cdi-test',
      private_key_id: `${name}-1`,
      private_key: await readFile(key, 'utf8'),
      client_email: `${name}@cdi-test.iam.gserviceaccount.com`,
      token_uri: tokenUri,
    }),
  );
  return { file: f, publicKey };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-gcs-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'gcs' });
  // fake-gcs-server loads <data>/<bucket>/<object> at start.
  const data = path.join(dir, 'data');
  await mkdir(path.join(data, 'cdi-images', 'vm'), { recursive: true });
  for (const f of FORMATS)
    await copyFile(await makeVariant(disk.path, src, f), path.join(data, 'cdi-images', 'vm', file(f)));
  gcs = await startGcs(data);
  // The key names its token_uri, and the token server needs the key's public half: make the key, then the
  // server, then point the key at it.
  const sa = await serviceAccount('importer', 'http://placeholder/token');
  oauth = await startOAuthServer(sa.publicKey);
  const saJson = JSON.parse(await readFile(sa.file, 'utf8')) as Record<string, string>;
  await writeFile(sa.file, JSON.stringify({ ...saJson, token_uri: oauth.tokenUri }));
  keyFile = sa.file;
  wrongKeyFile = (await serviceAccount('intruder', oauth.tokenUri)).file;
});

after(async () => {
  await gcs?.close();
  await oauth?.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('GCS source', () => {
  void it('maps gs:// and http(s):// URLs to JSON API media URLs, as upstream names them', () => {
    assert.equal(
      gcsMediaUrl('gs://b/dir/disk.img', {}),
      'https://storage.googleapis.com/storage/v1/b/b/o/dir%2Fdisk.img?alt=media',
    );
    assert.equal(
      gcsMediaUrl('gs://b/x', { STORAGE_EMULATOR_HOST: 'localhost:4443' }),
      'http://localhost:4443/storage/v1/b/b/o/x?alt=media',
    );
    assert.equal(
      gcsMediaUrl('https://storage.cloud.google.com/b/o.qcow2', {}),
      'https://storage.googleapis.com/storage/v1/b/b/o/o.qcow2?alt=media',
    );
    assert.throws(() => gcsMediaUrl('gs://bucket-only', {}), /no object name/);
  });

  void it('imports every disk format through gs://, md5 verified; qcow2 and friends by ranged reads', async () => {
    for (const f of FORMATS) {
      const { r, out } = await importTo({ url: `gs://cdi-images/vm/${file(f)}`, env: emulator() });
      assert.equal(await md5File(out, SIZE), disk.md5, f);
      if (f === 'qcow2' || f === 'vmdk') assert.equal(r.path, 'extents', `${f}: ${r.path}`);
      if (f === 'raw' || f === 'xz') assert.equal(r.path, 'direct');
    }
  });

  void it('imports through an http:// endpoint URL', async () => {
    const { out } = await importTo({ url: `${gcs.url}/cdi-images/vm/disk.qcow2.gz` });
    assert.equal(await md5File(out, SIZE), disk.md5);
  });

  void it('with a service-account key: a signed JWT exchanged at its token_uri', async () => {
    const before = oauth.assertions.length;
    const { out } = await importTo({
      url: `gs://cdi-images/vm/disk.zst`,
      env: emulator(),
      credentialsFile: keyFile,
    });
    assert.equal(await md5File(out, SIZE), disk.md5);
    const seen = oauth.assertions.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.valid, true);
    assert.equal(seen[0]!.claims.iss, 'importer@cdi-test.iam.gserviceaccount.com');
    assert.equal(seen[0]!.claims.scope, 'https://www.googleapis.com/auth/devstorage.read_only');
    assert.equal(seen[0]!.claims.aud, oauth.tokenUri);
  });

  void it('a key the token server refuses, a missing object or bucket, a bad key file: each says so', async () => {
    await fails(
      { url: 'gs://cdi-images/vm/disk.raw', env: emulator(), credentialsFile: wrongKeyFile },
      /the token server 127\.0\.0\.1:\d+ refused the GCS credentials \(HTTP 400 invalid_grant: Invalid JWT Signature\.\)/,
    );
    await fails(
      { url: 'gs://cdi-images/vm/missing.img', env: emulator() },
      /^Unable to connect to gcs data source: expected status code 200, got 404\. Status: 404 Not Found \(gs:\/\/cdi-images\/vm\/missing\.img: check the bucket and object name\)$/,
    );
    await fails(
      { url: 'gs://no-bucket/disk.img', env: emulator() },
      /^Unable to connect to gcs data source: expected status code 200, got 404\. Status: 404 Not Found \(gs:\/\/no-bucket\/disk\.img: check the bucket/,
    );
    const notJson = path.join(dir, 'bad.json');
    await writeFile(notJson, 'not json');
    await fails(
      { url: 'gs://cdi-images/vm/disk.raw', env: emulator(), credentialsFile: notJson },
      /the GCS credentials file .*bad\.json is not JSON/,
    );
  });

  void it('a body that breaks is continued by range (If-Range its ETag): right bytes, fetched about once', async () => {
    const relay = await startCuttingRelay(gcs.url, (r) =>
      r.url.includes('disk.raw') && r.range === 'bytes=0-' ? 1 << 20 : undefined,
    );
    try {
      const { r, out } = await importTo({
        url: 'gs://cdi-images/vm/disk.raw',
        env: { STORAGE_EMULATOR_HOST: new URL(relay.url).host },
      });
      assert.equal(await md5File(out, SIZE), disk.md5);
      assert.equal(r.resumes, 1);
      const rest = relay.records.find((x) => x.range === `bytes=${1 << 20}-`);
      assert.match(rest?.ifRange ?? '', /^".+"$/, 'the rest is asked of the same version (its ETag)');
      assert.equal(rest?.status, 206);
      assert.ok(relay.sentFor(/disk\.raw/) < SIZE * 1.2, `${relay.sentFor(/disk\.raw/)} bytes sent`);
    } finally {
      await relay.close();
    }
  });

  void it('verifies a checksum over the object', async () => {
    const sum = await md5File(path.join(dir, 'data', 'cdi-images', 'vm', 'disk.vmdk'));
    const { out } = await importTo({ url: 'gs://cdi-images/vm/disk.vmdk', env: emulator() }, `md5:${sum}`);
    assert.equal(await md5File(out, SIZE), disk.md5);
    await fails(
      { url: 'gs://cdi-images/vm/disk.vmdk', env: emulator() },
      /checksum mismatch/,
      `md5:${'1'.repeat(32)}`,
    );
  });
});
