/**
 * The S3 source against a real S3 server on loopback (versitygw, posix backend, as the cluster harness runs it):
 * every disk format HTTP accepts, md5 checked; qcow2 and friends by ranged reads (extent copy, no scratch); TLS with
 * a custom CA; checksums; and the failures a user can meet.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseS3Url, S3Source, type S3SourceOptions } from '../../../src/importer/source/s3.ts';
import { importFails, importFile } from '../../support/import.ts';
import {
  DISK_VARIANTS,
  makeSeededDisk,
  makeVariant,
  md5File,
  variantFile,
  type SeededDisk,
} from '../../support/images.ts';
import { startCuttingRelay } from '../../support/relay.ts';
import { startS3, type S3Server } from '../../support/servers.ts';
import { makeTestPki, type TestPki } from '../../support/tls.ts';

const SIZE = 4 << 20;
const FORMATS = DISK_VARIANTS;
const CREDS = { accessKeyId: 'cdi-access', secretKey: 'cdi-secret-key-123' };
const file = variantFile;

let dir: string;
let disk: SeededDisk;
let pki: TestPki;
let s3: S3Server;
let s3tls: S3Server;

const importTo = (
  o: Partial<S3SourceOptions> & { url: string },
  checksum?: string,
): ReturnType<typeof importFile> =>
  importFile(new S3Source({ ...CREDS, ...o }), dir, checksum ? { checksum } : {});

const fails = (o: S3SourceOptions, pattern: RegExp, checksum?: string): Promise<void> =>
  importFails(new S3Source(o), dir, pattern, checksum ? { checksum } : {});

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-s3-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 's3' });
  pki = await makeTestPki(path.join(dir, 'pki'));
  [s3, s3tls] = await Promise.all([
    startS3(path.join(dir, 'plain'), CREDS),
    startS3(path.join(dir, 'tls'), CREDS, pki),
  ]);
  // The posix backend serves the files of a bucket directory as its objects.
  for (const root of [s3.root, s3tls.root]) {
    await mkdir(path.join(root, 'images', 'nested'), { recursive: true });
  }
  for (const f of FORMATS) {
    const p = await makeVariant(disk.path, src, f);
    await copyFile(p, path.join(s3.root, 'images', 'nested', file(f)));
  }
  await copyFile(path.join(src, 'disk.qcow2'), path.join(s3tls.root, 'images', 'disk.qcow2'));
  await writeFile(path.join(dir, 'ca.crt'), pki.caCert);
});

after(async () => {
  await Promise.all([s3?.close(), s3tls?.close()]);
  await rm(dir, { recursive: true, force: true });
});

void describe('S3 source', () => {
  void it('parses s3:// and endpoint URLs as upstream does (path-style)', () => {
    assert.deepEqual(parseS3Url('s3://bucket/dir/disk.img', {}), {
      region: 'us-east-1',
      bucket: 'bucket',
      key: 'dir/disk.img',
    });
    assert.deepEqual(parseS3Url('s3://b/k', { AWS_REGION: 'eu-west-3' }).region, 'eu-west-3');
    // Where the controller says s3:// goes (ADR 0045): the AWS SDKs' variables, the service-specific one first.
    assert.equal(
      parseS3Url('s3://b/k', { AWS_ENDPOINT_URL_S3: 'http://s3.local:9000/', AWS_ENDPOINT_URL: 'http://x' })
        .endpoint,
      'http://s3.local:9000',
    );
    assert.equal(parseS3Url('s3://b/k', { AWS_ENDPOINT_URL: 'https://store' }).endpoint, 'https://store');
    assert.deepEqual(parseS3Url('https://s3.us-west-2.amazonaws.com/b/k.qcow2'), {
      endpoint: 'https://s3.us-west-2.amazonaws.com',
      region: 'us-west-2',
      bucket: 'b',
      key: 'k.qcow2',
    });
    assert.equal(parseS3Url('http://minio.local:9000/b/k').region, 'us-east-1');
    assert.throws(() => parseS3Url('http://minio.local:9000/bucket-only'), /no bucket and key in the path/);
  });

  void it('imports every disk format, md5 verified; qcow2 and friends by ranged reads (no scratch copy)', async () => {
    for (const f of FORMATS) {
      // Our own SigV4 signatures on the bare-socket transport: versitygw checks every one.
      const { r, out } = await importTo({ url: `${s3.url}/images/nested/${file(f)}` });
      assert.equal(await md5File(out, SIZE), disk.md5, f);
      if (f === 'qcow2' || f === 'vmdk' || f === 'vdi' || f === 'vhd')
        assert.equal(r.path, 'extents', `${f}: ${r.path}`);
      if (f === 'vhdx') assert.equal(r.path, 'nbd');
      if (f === 'raw' || f === 'gz' || f === 'xz' || f === 'zst') assert.equal(r.path, 'direct');
    }
  });

  void it('reads on the bare socket, also an object whose stored Content-Encoding is aws-chunked (the SDK put it so)', async () => {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const client = await sdkClient();
    try {
      // A stream body: the SDK sends it aws-chunked with a trailing checksum, and versitygw keeps that encoding.
      await client.send(
        new PutObjectCommand({
          Bucket: 'images',
          Key: 'chunked/disk.qcow2',
          Body: createReadStream(path.join(s3.root, 'images', 'nested', 'disk.qcow2')),
          ContentLength: (await stat(path.join(s3.root, 'images', 'nested', 'disk.qcow2'))).size,
        }),
      );
    } finally {
      client.destroy();
    }
    for (const url of [`${s3.url}/images/chunked/disk.qcow2`, `${s3.url}/images/nested/disk.raw`]) {
      const src = new S3Source({ ...CREDS, url });
      const { r, out } = await importFile(src, dir);
      assert.equal(await md5File(out, SIZE), disk.md5, url);
      assert.equal(src.transport, 'socket', url);
      if (url.endsWith('qcow2')) assert.equal(r.path, 'extents');
    }
  });

  void it('signs keys with spaces, non-ASCII and reserved characters as S3 canonicalizes them', async () => {
    const key = 'dir x/ü+(1)=&;,$@~.raw';
    await mkdir(path.join(s3.root, 'images', 'dir x'), { recursive: true });
    await copyFile(disk.path, path.join(s3.root, 'images', key));
    const url = `${s3.url}/images/${key.split('/').map(encodeURIComponent).join('/')}`;
    const { out } = await importTo({ url });
    assert.equal(await md5File(out, SIZE), disk.md5);
  });

  void it('a server error (503 SlowDown) is tried again; one that stays names S3’s code after 3 attempts', async () => {
    // A loopback front for versitygw that answers SlowDown to the first `fail` requests and passes the rest on with
    // their headers verbatim (so the signatures stay valid).
    let seen = 0;
    let fail = 1;
    const to = new URL(s3.url);
    const front = http.createServer((req, res) => {
      if (seen++ < fail) {
        const xml =
          '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
        res.end(xml);
        return;
      }
      const up = http.request(
        { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
        (u) => {
          res.writeHead(u.statusCode ?? 502, u.headers);
          u.pipe(res);
        },
      );
      req.pipe(up);
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    try {
      const { out } = await importTo({ url: `${base}/images/nested/disk.raw` });
      assert.equal(await md5File(out, SIZE), disk.md5);
      seen = 0;
      fail = 100;
      await fails(
        { ...CREDS, url: `${base}/images/nested/disk.raw` },
        /disk\.raw: HTTP 503 SlowDown: Please reduce your request rate\./,
      );
      assert.equal(seen, 3, 'three attempts');
    } finally {
      await new Promise<void>((r) => front.close(() => r()));
    }
  });

  void it('trusts a custom CA (certConfigMap), and says what to do without it', async () => {
    const src = new S3Source({ ...CREDS, url: `${s3tls.url}/images/disk.qcow2`, caDirs: [dir] });
    const { r, out } = await importFile(src, dir);
    assert.equal(await md5File(out, SIZE), disk.md5);
    assert.equal(src.transport, 'undici', 'TLS through undici');
    assert.equal(r.path, 'extents');
    await fails(
      { ...CREDS, url: `${s3tls.url}/images/disk.qcow2` },
      /TLS verification of https:\/\/127\.0\.0\.1:\d+ failed .*certConfigMap/,
    );
  });

  void it('verifies a checksum over the object (then by scratch copy: every byte is read once)', async () => {
    const url = `${s3.url}/images/nested/disk.qcow2`;
    const sum = await md5File(path.join(s3.root, 'images', 'nested', 'disk.qcow2'));
    const { r, out } = await importTo({ url }, `md5:${sum}`);
    assert.equal(r.path, 'scratch');
    assert.equal(await md5File(out, SIZE), disk.md5);
    await fails(
      { ...CREDS, url },
      /checksum mismatch: expected md5:f{32}, calculated md5:/,
      `md5:${'f'.repeat(32)}`,
    );
  });

  /** The SDK's client for the test server, path-style, with the suite's credentials (tests put objects with it). */
  async function sdkClient(): Promise<import('@aws-sdk/client-s3').S3Client> {
    const { S3Client } = await import('@aws-sdk/client-s3');
    return new S3Client({
      region: 'us-east-1',
      endpoint: s3.url,
      forcePathStyle: true,
      credentials: { accessKeyId: CREDS.accessKeyId, secretAccessKey: CREDS.secretKey },
    });
  }

  /** An object stored through the S3 API (it gets an ETag; the posix backend's own files have none). */
  async function put(key: string, file: string): Promise<string> {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const client = await sdkClient();
    try {
      const r = await client.send(
        new PutObjectCommand({ Bucket: 'images', Key: key, Body: await readFile(file) }),
      );
      return r.ETag ?? '';
    } finally {
      client.destroy();
    }
  }

  void it('a body that breaks is continued by range (If-Match its ETag): right bytes, fetched about once', async () => {
    const etag = await put('resume/disk.raw', disk.path);
    assert.ok(etag, 'versitygw gives objects put through the API an ETag');
    const relay = await startCuttingRelay(s3.url, (r) =>
      r.method === 'GET' && r.url.includes('/resume/disk.raw') && !r.range ? 1 << 20 : undefined,
    );
    try {
      const { r, out } = await importTo({ url: `${relay.url}/images/resume/disk.raw` });
      assert.equal(await md5File(out, SIZE), disk.md5);
      assert.equal(r.resumes, 1);
      assert.equal(r.restarts, 0);
      const rest = relay.records.find((x) => x.range === `bytes=${1 << 20}-`);
      assert.equal(rest?.ifMatch, etag, 'the rest is asked of the same version');
      assert.ok(relay.sentFor(/resume\/disk\.raw/) < SIZE * 1.2, `${relay.sentFor(/resume/)} bytes sent`);
    } finally {
      await relay.close();
    }
  });

  void it('an object replaced while its body was broken is imported whole from byte 0, never spliced', async () => {
    const o = path.join(dir, 'replacement');
    await mkdir(o, { recursive: true });
    const next = await makeSeededDisk(o, { size: SIZE, seed: 's3-replacement' });
    await put('replaced/disk.raw', disk.path);
    const relay = await startCuttingRelay(
      s3.url,
      (r) => (r.method === 'GET' && !r.range && r.n < 3 ? 1 << 20 : undefined),
      { onCut: async () => void (await put('replaced/disk.raw', next.path)) },
    );
    try {
      const { r, out } = await importTo({ url: `${relay.url}/images/replaced/disk.raw` });
      assert.equal(await md5File(out, SIZE), next.md5, 'the new version, whole');
      assert.equal(r.restarts, 1);
      assert.equal(relay.records.find((x) => x.ifMatch !== undefined)?.status, 412);
    } finally {
      await relay.close();
    }
  });

  void it('wrong credentials, no credentials, a missing object or bucket: each says so', async () => {
    const url = `${s3.url}/images/nested/disk.raw`;
    await fails(
      { url, accessKeyId: CREDS.accessKeyId, secretKey: 'wrong' },
      /access denied \(HTTP 403.*\): check the access key ID and secret key/,
    );
    await fails(
      { url, accessKeyId: 'nobody', secretKey: 'x' },
      /access denied \(HTTP \d+ \w+\): check the access key ID and secret key/,
    );
    await fails(
      { url },
      /access denied \(HTTP 403.*\): the object is not public: give credentials with a secretRef/,
    );
    await fails(
      { ...CREDS, url: `${s3.url}/images/nested/missing.img` },
      /\/images\/nested\/missing\.img: not found \(HTTP 404 NoSuchKey\): check the bucket and the object key/,
    );
    await fails(
      { ...CREDS, url: `${s3.url}/nobucket/disk.img` },
      /nobucket\/disk\.img: not found \(HTTP 404 NoSuchBucket\)/,
    );
  });
});
