/**
 * The registry source against Debian's docker-registry on loopback (plain, TLS, htpasswd, token auth), with images
 * the test builds as OCI layouts and pushes with skopeo: every disk format through gzip, zstd and uncompressed
 * layers (md5 checked), Docker v2 manifests, multi-arch indexes, whiteouts and replaced files, oci-archive://, and
 * the failures a user can meet (each with its message, and no target left behind).
 */
import assert from 'node:assert/strict';
import { open, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImportResult } from '../../../src/importer/import.ts';
import { inspectSource } from '../../../src/importer/inspect.ts';
import { RegistrySource, type RegistrySourceOptions } from '../../../src/importer/source/registry.ts';
import { importFails, importFile } from '../../support/import.ts';
import {
  DISK_VARIANTS,
  makeSeededDisk,
  makeVariant,
  md5File,
  variantFile,
  type SeededDisk,
} from '../../support/images.ts';
import {
  buildLayout,
  httpPush,
  ociArchive,
  skopeoPush,
  type ImageSpec,
  type Layout,
} from '../../support/oci.ts';
import {
  startRegistry,
  startTokenServer,
  type RegistryServer,
  type TokenServer,
} from '../../support/servers.ts';
import { startCuttingRelay, type CuttingRelay, type RelayRecord } from '../../support/relay.ts';
import { makeTestPki, type TestPki } from '../../support/tls.ts';

const SIZE = 4 << 20;
const FORMATS = DISK_VARIANTS;
const COMPRESSIONS = ['gzip', 'zstd', 'none'] as const;

let dir: string;
let src: string;
let disk: SeededDisk;
let other: SeededDisk;
let pki: TestPki;
let plain: RegistryServer;
let tls: RegistryServer;
let basic: RegistryServer;
let tokened: RegistryServer;
let tokens: TokenServer;
let n = 0;

async function push(
  reg: RegistryServer,
  repo: string,
  images: ImageSpec[],
  o: Parameters<typeof skopeoPush>[2] = {},
): Promise<Layout> {
  const layout = await buildLayout(dir, `${repo.replace(/\W/g, '-')}-${n++}`, images);
  if (images.some((i) => i.layers.some((l) => l.compression === 'none'))) {
    const [name, tag] = repo.split(':') as [string, string];
    await httpPush(layout, reg.url, name, tag);
  } else await skopeoPush(layout, `docker://${reg.address}/${repo}`, o);
  return layout;
}

const diskImage = (
  file: string,
  compression: (typeof COMPRESSIONS)[number] = 'gzip',
  extra: ImageSpec = { layers: [] },
): ImageSpec => ({
  ...extra,
  layers: [...extra.layers, { compression, files: { 'disk/disk.img': file } }],
});

async function importTo(
  o: RegistrySourceOptions,
  extra: { checksum?: string; scratch?: boolean } = {},
): Promise<{ r: ImportResult; out: string; source: RegistrySource }> {
  const source = new RegistrySource(o);
  return { ...(await importFile(source, dir, extra)), source };
}

const fails = (o: RegistrySourceOptions, pattern: RegExp, extra: { checksum?: string } = {}): Promise<void> =>
  importFails(new RegistrySource(o), dir, pattern, extra);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-registry-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'registry' });
  const o = path.join(dir, 'other');
  await mkdir(o);
  other = await makeSeededDisk(o, { size: SIZE, seed: 'registry-other' });
  for (const f of FORMATS) await makeVariant(disk.path, src, f);
  pki = await makeTestPki(path.join(dir, 'pki'));
  tokens = await startTokenServer(pki, { alice: 'wonderland' });
  [plain, tls, basic, tokened] = await Promise.all([
    startRegistry(path.join(dir, 'plain')),
    startRegistry(path.join(dir, 'tls'), { tls: pki }),
    startRegistry(path.join(dir, 'basic'), { htpasswd: { user: 'bob', password: 'builder' } }),
    startRegistry(path.join(dir, 'token'), {
      token: {
        realm: tokens.realm,
        service: tokens.service,
        issuer: tokens.issuer,
        rootCertBundle: pki.caCertPath,
      },
    }),
  ]);
});

after(async () => {
  await Promise.all([plain, tls, basic, tokened].map((r) => r?.close()));
  await tokens?.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('registry source: formats', () => {
  void it('imports every disk format from gzip, zstd and uncompressed layers, md5 verified', async () => {
    for (const [i, f] of FORMATS.entries()) {
      const c = COMPRESSIONS[i % COMPRESSIONS.length]!;
      const file = path.join(src, variantFile(f));
      await push(plain, `formats/${f.replace('.', '-')}:v1`, [diskImage(file, c)]);
      const m = (await (
        await fetch(`${plain.url}/v2/formats/${f.replace('.', '-')}/manifests/v1`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).json()) as { layers: { mediaType: string }[] };
      const suffix = { gzip: '+gzip', zstd: '+zstd', none: '' }[c];
      assert.equal(m.layers[0]!.mediaType, `application/vnd.oci.image.layer.v1.tar${suffix}`, 'as pushed');
      const { r, out } = await importTo({
        url: `docker://${plain.address}/formats/${f.replace('.', '-')}:v1`,
        insecure: true,
      });
      assert.equal(await md5File(out, SIZE), disk.md5, `${f} in a ${c} layer`);
      if (f === 'raw' || f === 'iso' || f === 'gz' || f === 'xz' || f === 'zst') {
        // Raw and compressed raw stream straight to the target: no scratch space.
        assert.equal(r.path, 'direct', `${f}: ${r.path}`);
      }
    }
  });

  void it('raw and compressed raw need no scratch directory at all', async () => {
    await push(plain, 'noscratch:v1', [diskImage(path.join(src, 'disk.xz'), 'none')]);
    const { r, out } = await importTo(
      { url: `docker://${plain.address}/noscratch:v1`, insecure: true },
      { scratch: false },
    );
    assert.equal(r.path, 'direct');
    assert.equal(await md5File(out, SIZE), disk.md5);
  });

  void it('reads Docker v2 schema 2 manifests (skopeo --format v2s2)', async () => {
    await push(plain, 'docker-v2:v1', [diskImage(path.join(src, 'disk.qcow2'), 'gzip')], { format: 'v2s2' });
    const manifest = await fetch(`${plain.url}/v2/docker-v2/manifests/v1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    assert.equal(
      manifest.headers.get('content-type'),
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    const { out } = await importTo({ url: `docker://${plain.address}/docker-v2:v1`, insecure: true });
    assert.equal(await md5File(out, SIZE), disk.md5);
  });

  void it('verifies IMPORTER_CHECKSUM over the disk file, for registry images too', async () => {
    await push(plain, 'sum:v1', [diskImage(disk.path, 'zstd')]);
    const url = `docker://${plain.address}/sum:v1`;
    const { out } = await importTo({ url, insecure: true }, { checksum: `md5:${disk.md5}` });
    assert.equal(await md5File(out, SIZE), disk.md5);
    await fails({ url, insecure: true }, /checksum mismatch: expected md5:0{32}, calculated md5:/, {
      checksum: `md5:${'0'.repeat(32)}`,
    });
  });

  void it('imports from an oci-archive:// file', async () => {
    const layout = await buildLayout(dir, 'archive', [diskImage(path.join(src, 'disk.gz'), 'gzip')]);
    const file = await ociArchive(layout, path.join(dir, 'image.tar'));
    const { out } = await importTo({ url: `oci-archive://${file}` });
    assert.equal(await md5File(out, SIZE), disk.md5);
  });
});

void describe('registry source: layers', () => {
  void it('takes the disk as the final filesystem has it: a later layer replaces it', async () => {
    await push(plain, 'replaced:v1', [
      {
        layers: [
          { compression: 'gzip', files: { 'disk/disk.img': other.path } },
          { compression: 'gzip', files: { 'disk/disk.img': disk.path } },
        ],
      },
    ]);
    const { out, source } = await importTo({ url: `docker://${plain.address}/replaced:v1`, insecure: true });
    assert.equal(await md5File(out, SIZE), disk.md5);
    assert.deepEqual(
      source.layersRead,
      [2, 1],
      'top layer first; the lower one read to check for a second file',
    );
  });

  void it('honours whiteouts and opaque directories', async () => {
    await push(plain, 'whiteout:v1', [
      {
        layers: [
          { compression: 'none', files: { 'disk/old.img': other.path } },
          { compression: 'zstd', files: { 'disk/.wh.old.img': '', 'disk/disk.img': disk.path } },
        ],
      },
    ]);
    const w = await importTo({ url: `docker://${plain.address}/whiteout:v1`, insecure: true });
    assert.equal(await md5File(w.out, SIZE), disk.md5);
    await push(plain, 'opaque:v1', [
      {
        layers: [
          { compression: 'gzip', files: { 'disk/a.img': other.path, 'disk/b.img': other.path } },
          { compression: 'gzip', files: { 'disk/.wh..wh..opq': '', 'disk/disk.img': disk.path } },
        ],
      },
    ]);
    const o = await importTo({ url: `docker://${plain.address}/opaque:v1`, insecure: true });
    assert.equal(await md5File(o.out, SIZE), disk.md5);
    assert.deepEqual(o.source.layersRead, [2], 'nothing below an opaque /disk is read');
  });

  void it('refuses an image with no file under /disk/, or with two', async () => {
    await push(plain, 'nodisk:v1', [
      { layers: [{ compression: 'gzip', files: { 'etc/hostname': disk.path } }] },
    ]);
    await fails({ url: `docker://${plain.address}/nodisk:v1`, insecure: true }, /has no file under \/disk\//);
    await push(plain, 'deleted:v1', [
      {
        layers: [
          { compression: 'gzip', files: { 'disk/disk.img': disk.path } },
          { compression: 'gzip', files: { 'disk/.wh.disk.img': '' } },
        ],
      },
    ]);
    await fails(
      { url: `docker://${plain.address}/deleted:v1`, insecure: true },
      /has no file under \/disk\//,
    );
    await push(plain, 'two:v1', [
      { layers: [{ compression: 'gzip', files: { 'disk/a.img': disk.path, 'disk/b.img': other.path } }] },
    ]);
    await fails(
      { url: `docker://${plain.address}/two:v1`, insecure: true },
      /more than one file under \/disk\/ \(\/disk\/a\.img and \/disk\/b\.img\)/,
    );
    await push(plain, 'two-layers:v1', [
      {
        layers: [
          { compression: 'gzip', files: { 'disk/a.img': other.path } },
          { compression: 'none', files: { 'disk/b.img': disk.path } },
        ],
      },
    ]);
    await fails(
      { url: `docker://${plain.address}/two-layers:v1`, insecure: true },
      /more than one file under \/disk\/ \(\/disk\/b\.img and \/disk\/a\.img\)/,
    );
    await push(plain, 'link:v1', [
      { layers: [{ compression: 'gzip', files: { 'disk/disk.img': { symlink: '/etc/passwd' } } }] },
    ]);
    await fails(
      { url: `docker://${plain.address}/link:v1`, insecure: true },
      /\/disk\/disk\.img .* is a symbolic link, not a regular file/,
    );
  });

  void it('fails on a tampered layer, names it, and leaves no target', async () => {
    // An uncompressed layer: the tar still parses and the disk still streams, only the digest can tell.
    const layout = await push(plain, 'tampered:v1', [diskImage(disk.path, 'none')]);
    const layer = layout.images[0]!.layers[0]!;
    const fh = await open(plain.blobPath(layer.digest), 'r+');
    await fh.write(Buffer.from([0x42]), 0, 1, 4096);
    await fh.close();
    await fails(
      { url: `docker://${plain.address}/tampered:v1`, insecure: true },
      new RegExp(
        `layer 1 \\(${layer.digest}\\) of docker://.* is corrupt or was tampered with: its bytes hash to sha256:[0-9a-f]{64}`,
      ),
    );
    // The same in a gzip layer: reported as tampered, not as corrupt gzip.
    const gz = await push(plain, 'tampered-gz:v1', [diskImage(disk.path, 'gzip')]);
    const gzLayer = gz.images[0]!.layers[0]!;
    const g = await open(plain.blobPath(gzLayer.digest), 'r+');
    await g.write(Buffer.from('garbage!'), 0, 8, 2000);
    await g.close();
    await fails(
      { url: `docker://${plain.address}/tampered-gz:v1`, insecure: true },
      /is corrupt or was tampered with: its bytes hash to/,
    );
  });
});

void describe('registry source: a blob read that breaks', () => {
  const KiB = 1024;
  /** The layer blob's requests through the relay (the disk is in the image's one layer). */
  const blobGets = (relay: CuttingRelay, digest: string): RelayRecord[] =>
    relay.records.filter((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${digest}`));

  void it('is continued by range below the digest check: the right bytes, the blob fetched about once', async () => {
    const layout = await push(plain, 'broken-blob:v1', [diskImage(disk.path, 'gzip')]);
    const layer = layout.images[0]!.layers[0]!;
    assert.ok(layer.size > 1024 * KiB, `the layer is ${layer.size} bytes`);
    const relay = await startCuttingRelay(plain.url, (r) =>
      r.url.endsWith(`/blobs/${layer.digest}`) && !r.range ? 512 * KiB : undefined,
    );
    try {
      const lines: string[] = [];
      const { out } = await importTo({
        url: `docker://${new URL(relay.url).host}/broken-blob:v1`,
        insecure: true,
        retry: { delayMs: 1 },
        log: (l) => lines.push(l),
      });
      assert.equal(await md5File(out, SIZE), disk.md5);
      const gets = blobGets(relay, layer.digest);
      assert.deepEqual(
        gets.map((g) => [g.range, g.cut]),
        [
          [undefined, true],
          [`bytes=${512 * KiB}-`, false],
        ],
      );
      assert.ok(
        relay.sentFor(/\/blobs\//) < layer.size * 1.2,
        `${relay.sentFor(/\/blobs\//)} bytes of blobs`,
      );
      assert.ok(
        lines.some((l) => l.includes(`continuing from byte ${512 * KiB} (attempt 1 of 5)`)),
        lines.join('\n'),
      );
    } finally {
      await relay.close();
    }
  });

  void it('continued with other bytes (a splice of another blob) fails the digest check, and leaves no target', async () => {
    const layout = await push(plain, 'spliced-blob:v1', [diskImage(disk.path, 'none')]);
    const layer = layout.images[0]!.layers[0]!;
    const relay = await startCuttingRelay(
      plain.url,
      (r) => (r.url.endsWith(`/blobs/${layer.digest}`) && !r.range ? 1024 * KiB : undefined),
      // The continuation is not the same blob: one byte differs, in a file's data (the tar still parses).
      {
        mangle: (r, chunk) => {
          if (!r.range || r.sent > 0) return chunk;
          const c = Buffer.from(chunk);
          c[c.length - 1]! ^= 0xff;
          return c;
        },
      },
    );
    try {
      await fails(
        {
          url: `docker://${new URL(relay.url).host}/spliced-blob:v1`,
          insecure: true,
          retry: { delayMs: 1 },
        },
        new RegExp(
          `layer 1 \\(${layer.digest}\\) of docker://.* is corrupt or was tampered with: its bytes hash to`,
        ),
      );
      assert.equal(blobGets(relay, layer.digest).length, 2, 'continued once');
    } finally {
      await relay.close();
    }
  });
});

void describe('registry source: platforms', () => {
  before(async () => {
    await push(plain, 'multi:v1', [
      diskImage(disk.path, 'gzip', { arch: 'amd64', layers: [] }),
      diskImage(other.path, 'zstd', { arch: 'arm64', layers: [] }),
    ]);
  });

  void it('picks platform.architecture from an image index', async () => {
    const arm = await importTo({
      url: `docker://${plain.address}/multi:v1`,
      insecure: true,
      architecture: 'arm64',
    });
    assert.equal(await md5File(arm.out, SIZE), other.md5);
    const amd = await importTo({
      url: `docker://${plain.address}/multi:v1`,
      insecure: true,
      architecture: 'amd64',
    });
    assert.equal(await md5File(amd.out, SIZE), disk.md5);
  });

  void it('refuses an architecture the index lacks, or a single image of another architecture', async () => {
    await fails(
      { url: `docker://${plain.address}/multi:v1`, insecure: true, architecture: 's390x' },
      /has no linux\/s390x image \(it has linux\/amd64, linux\/arm64\)/,
    );
    await push(plain, 'single-arm:v1', [diskImage(disk.path, 'gzip', { arch: 'arm64', layers: [] })]);
    await fails(
      { url: `docker://${plain.address}/single-arm:v1`, insecure: true, architecture: 'amd64' },
      /manifest image architecture: "arm64" doesn't match requested architecture: "amd64"/,
    );
  });
});

void describe('registry source: connections and auth', () => {
  void it('TLS: trusts the CA from the cert dir, and says what to do without it', async () => {
    const caDir = path.join(dir, 'ca');
    await mkdir(caDir, { recursive: true });
    await writeFile(path.join(caDir, 'ca.crt'), pki.caCert);
    await push(tls, 'secure:v1', [diskImage(disk.path)], { certDir: caDir });
    const { out } = await importTo({ url: `docker://${tls.address}/secure:v1`, caDirs: [caDir] });
    assert.equal(await md5File(out, SIZE), disk.md5);
    await fails(
      { url: `docker://${tls.address}/secure:v1` },
      /failed to pull image: TLS verification of 127\.0\.0\.1:\d+ failed .*certConfigMap/,
    );
    // insecure: TLS not verified
    const ins = await importTo({ url: `docker://${tls.address}/secure:v1`, insecure: true });
    assert.equal(await md5File(ins.out, SIZE), disk.md5);
  });

  void it('a plain-HTTP registry needs to be listed as insecure', async () => {
    await push(plain, 'plain:v1', [diskImage(disk.path)]);
    await fails({ url: `docker://${plain.address}/plain:v1` }, /does not answer TLS .*insecureRegistries/);
  });

  void it('basic auth (htpasswd): the right credentials, wrong ones, none', async () => {
    await push(basic, 'private:v1', [diskImage(disk.path)], { creds: 'bob:builder' });
    const url = `docker://${basic.address}/private:v1`;
    const { out } = await importTo({ url, insecure: true, user: 'bob', password: 'builder' });
    assert.equal(await md5File(out, SIZE), disk.md5);
    await fails(
      { url, insecure: true, user: 'bob', password: 'nope' },
      /failed to pull image: .*access denied \(HTTP 401.*check the user name and password/,
    );
    await fails(
      { url, insecure: true },
      /refused the request \(HTTP 401\): it needs credentials: a secretRef with accessKeyId and secretKey/,
    );
  });

  void it('bearer tokens from the registry token server', async () => {
    await push(tokened, 'tokened:v1', [diskImage(disk.path, 'zstd')], { creds: 'alice:wonderland' });
    const url = `docker://${tokened.address}/tokened:v1`;
    const before = tokens.requests.length;
    const { out } = await importTo({ url, insecure: true, user: 'alice', password: 'wonderland' });
    assert.equal(await md5File(out, SIZE), disk.md5);
    assert.ok(
      tokens.requests.slice(before).some((r) => r.user === 'alice' && r.granted),
      'a token was issued',
    );
    await fails(
      { url, insecure: true, user: 'alice', password: 'wrong' },
      /the token server 127\.0\.0\.1:\d+ refused the credentials for tokened \(HTTP 401\)/,
    );
  });

  void it('a missing tag or repository', async () => {
    await push(plain, 'exists:v1', [diskImage(disk.path)]);
    await fails(
      { url: `docker://${plain.address}/exists:v2`, insecure: true },
      /failed to pull image: reading manifest v2 of .*: not found \(HTTP 404 MANIFEST_UNKNOWN/,
    );
    await fails(
      { url: `docker://${plain.address}/nothing:v1`, insecure: true },
      /nothing:v1: not found \(HTTP 404 (MANIFEST|NAME)_UNKNOWN/,
    );
  });

  void it('a "registry" that answers with HTML', async () => {
    const srv = http.createServer((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<!DOCTYPE html><html><body>Welcome</body></html>');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as AddressInfo).port;
      await fails(
        { url: `docker://127.0.0.1:${port}/some/image:v1`, insecure: true },
        /is an HTML page, not an image manifest: is this really a container registry\?/,
      );
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

void describe('registry source: inspect', () => {
  void it('cdi inspect reads the disk entry without writing anything', async () => {
    await push(plain, 'inspect:v1', [diskImage(path.join(src, 'disk.qcow2'), 'gzip')]);
    const r = await inspectSource(
      new RegistrySource({ url: `docker://${plain.address}/inspect:v1`, insecure: true }),
    );
    assert.equal(r.format, 'qcow2');
    assert.equal(r.virtualSize, SIZE);
    assert.equal(r.accepted, true);
  });
});
