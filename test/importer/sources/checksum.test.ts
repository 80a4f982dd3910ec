/**
 * A requested checksum (IMPORTER_CHECKSUM, from spec.source.{http,s3,gcs,registry}.checksum) through the sources
 * that stream their bytes, against the real servers (versitygw, fake-gcs-server, docker-registry on loopback), on
 * every path those bytes take: raw and raw.gz streamed to the target, raw.xz/zst written by the decompressor child,
 * qcow2 (which would go by extent copy without a checksum) and qcow2.xz through scratch. What is hashed is the
 * source's bytes as they arrive: the object as stored for S3 and GCS; for a registry image the disk file as stored in
 * its layer (out of the layer's tar, before the file itself is decompressed), by a pod pull, from an oci-archive, or
 * from the image's own server as a node pull reads it. The right digest imports (md5 of the disk checked); a wrong
 * one fails with the fatal mismatch naming the digest of exactly those bytes, and leaves nothing in the target's
 * directory or in scratch (no disk, no partial file, no resume record).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseChecksum } from '../../../src/importer/checksum.ts';
import { ImportError } from '../../../src/importer/errors.ts';
import { serveImage } from '../../../src/importer/image-server.ts';
import { ContentType, runImport, type ImportResult } from '../../../src/importer/import.ts';
import { GcsSource } from '../../../src/importer/source/gcs.ts';
import { HttpSource } from '../../../src/importer/source/http.ts';
import { RegistrySource } from '../../../src/importer/source/registry.ts';
import { S3Source } from '../../../src/importer/source/s3.ts';
import type { ImportSource } from '../../../src/importer/source/source.ts';
import {
  makeSeededDisk,
  makeVariant,
  md5File,
  variantFile,
  type SeededDisk,
  type Variant,
} from '../../support/images.ts';
import { buildLayout, ociArchive, skopeoPush, type Layout } from '../../support/oci.ts';
import { startCuttingRelay } from '../../support/relay.ts';
import {
  freePort,
  startGcs,
  startRegistry,
  startS3,
  type RegistryServer,
  type S3Server,
  type Server,
} from '../../support/servers.ts';

const SIZE = 4 << 20;
const CREDS = { accessKeyId: 'cdi-access', secretKey: 'cdi-secret-key-123' };
/** Each variant and the path a checksum leaves it (the decompressor child for raw.xz/zst; scratch for a qcow2). */
const PATHS: [Variant, string, string | undefined][] = [
  ['raw', 'direct', undefined],
  ['gz', 'direct', undefined],
  ['xz', 'direct', 'xz'],
  ['zst', 'direct', 'zstd'],
  ['qcow2', 'scratch', undefined],
  ['qcow2.xz', 'scratch', undefined],
];
const ZERO_MD5 = `md5:${'0'.repeat(32)}`;

let dir: string;
let src: string;
let disk: SeededDisk;
let s3: S3Server;
let gcs: Server;
let registry: RegistryServer;
/** The md5 of each variant's file as stored. */
const sums = new Map<Variant, string>();
const layouts = new Map<Variant, Layout>();
let n = 0;

const tagOf = (f: Variant): string => f.replace('.', '-');

const SOURCES: Record<string, (f: Variant) => ImportSource> = {
  s3: (f) => new S3Source({ ...CREDS, url: `${s3.url}/images/${variantFile(f)}` }),
  gcs: (f) =>
    new GcsSource({ url: `gs://cdi-images/${variantFile(f)}`, env: { STORAGE_EMULATOR_HOST: gcs.address } }),
  registry: (f) =>
    new RegistrySource({ url: `docker://${registry.address}/sums/${tagOf(f)}:v1`, insecure: true }),
};

interface Attempt {
  target: string;
  scratch: string;
}

function place(): Attempt {
  const at = path.join(dir, `run-${n++}`);
  return { target: path.join(at, 'target', 'disk.img'), scratch: path.join(at, 'scratch') };
}

async function entries(d: string): Promise<string[]> {
  return readdir(d).catch(() => []);
}

async function importWith(
  source: ImportSource,
  checksum: string | undefined,
  o: { scratch?: boolean } = {},
): Promise<{ r: ImportResult; at: Attempt }> {
  const at = place();
  await mkdir(path.dirname(at.target), { recursive: true });
  const r = await runImport({
    source,
    contentType: ContentType.KubeVirt,
    target: { kind: 'file', path: at.target },
    ...(checksum ? { checksum: parseChecksum(checksum) } : {}),
    ...(o.scratch === false ? {} : { scratchDir: at.scratch }),
    retry: { delayMs: 1 },
  });
  return { r, at };
}

/** Imports with the right digest: the disk arrives, by `path`. */
async function importsRight(source: ImportSource, checksum: string, what: string): Promise<ImportResult> {
  const { r, at } = await importWith(source, checksum);
  assert.equal(await md5File(at.target, SIZE), disk.md5, what);
  assert.deepEqual(await entries(path.dirname(at.target)), ['disk.img'], `${what}: only the disk`);
  assert.deepEqual(await entries(at.scratch), [], `${what}: scratch emptied`);
  return r;
}

/** A wrong digest: the fatal mismatch naming the digest of the bytes hashed, and nothing left behind. */
async function failsWrong(
  source: ImportSource,
  checksum: string,
  calculated: string,
  what: string,
): Promise<void> {
  const at = place();
  await mkdir(path.dirname(at.target), { recursive: true });
  const expected = parseChecksum(checksum);
  await assert.rejects(
    runImport({
      source,
      contentType: ContentType.KubeVirt,
      target: { kind: 'file', path: at.target },
      checksum: expected,
      scratchDir: at.scratch,
      retry: { delayMs: 1 },
    }),
    (err: Error) => {
      assert.ok(err instanceof ImportError, `${what}: ${err.message}`);
      assert.equal(err.kind, 'checksum', what);
      assert.equal(
        err.message,
        `checksum validation failed: checksum mismatch: expected ${expected.algorithm}:${expected.hex}, calculated ${calculated}`,
        what,
      );
      return true;
    },
  );
  assert.deepEqual(await entries(path.dirname(at.target)), [], `${what}: no disk, partial file or record`);
  assert.deepEqual(await entries(at.scratch), [], `${what}: nothing in scratch`);
}

async function digestFile(algorithm: string, p: string): Promise<string> {
  return `${algorithm}:${createHash(algorithm)
    .update(await readFile(p))
    .digest('hex')}`;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-checksum-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'checksum' });
  const s3Dir = path.join(dir, 's3');
  const gcsData = path.join(dir, 'gcs-data');
  await mkdir(path.join(gcsData, 'cdi-images'), { recursive: true });
  [s3, registry] = await Promise.all([startS3(s3Dir, CREDS), startRegistry(path.join(dir, 'registry'))]);
  await mkdir(path.join(s3.root, 'images'), { recursive: true });
  for (const [f] of PATHS) {
    const file = await makeVariant(disk.path, src, f);
    sums.set(f, await md5File(file));
    await copyFile(file, path.join(s3.root, 'images', variantFile(f)));
    await copyFile(file, path.join(gcsData, 'cdi-images', variantFile(f)));
    // The disk file under /disk/ in one gzip layer: the layer's tar is undone, the file itself is not.
    const layout = await buildLayout(dir, `sums-${tagOf(f)}`, [
      { layers: [{ compression: 'gzip', files: { 'disk/disk.img': file } }] },
    ]);
    await skopeoPush(layout, `docker://${registry.address}/sums/${tagOf(f)}:v1`);
    layouts.set(f, layout);
  }
  gcs = await startGcs(gcsData); // fake-gcs-server loads <data>/<bucket>/<object> at start
});

after(async () => {
  await Promise.all([s3?.close(), gcs?.close(), registry?.close()]);
  await rm(dir, { recursive: true, force: true });
});

for (const [name, make] of Object.entries(SOURCES)) {
  void describe(`a checksum with the ${name} source`, () => {
    void it('the right digest of the stored file imports, on every path (and a checksum sends a qcow2 through scratch)', async () => {
      for (const [f, p, decompressedBy] of PATHS) {
        const r = await importsRight(make(f), `md5:${sums.get(f)}`, `${name} ${f}`);
        assert.equal(r.path, p, `${name} ${f}: ${r.path}`);
        assert.equal(r.decompressedBy, decompressedBy, `${name} ${f}`);
      }
      // sha512 as well, over the same bytes
      const xz = path.join(src, variantFile('xz'));
      await importsRight(make('xz'), await digestFile('sha512', xz), `${name} xz sha512`);
    });

    void it('a wrong digest fails with the mismatch, on every path, and leaves no target, partial file or scratch copy', async () => {
      for (const [f] of PATHS) {
        await failsWrong(make(f), ZERO_MD5, `md5:${sums.get(f)}`, `${name} ${f}`);
      }
    });

    void it('a qcow2 that would go by extent copy reads every byte once when a checksum is asked, and needs scratch for it', async () => {
      if (name !== 'registry') {
        // without a checksum the object is read by range (only its data extents), so the checksum is what moved it
        const { r } = await importWith(make('qcow2'), undefined);
        assert.equal(r.path, 'extents');
      }
      // without scratch space the checksum is not skipped by reading ranges: upstream's scratch request instead
      await assert.rejects(
        importWith(make('qcow2'), `md5:${sums.get('qcow2')}`, { scratch: false }),
        (err: Error) => {
          assert.equal(err.message, 'scratch space required and none found');
          return true;
        },
      );
    });
  });
}

void describe('which bytes a registry checksum covers', () => {
  void it('the disk file as stored in its layer: not the disk inside it, not the layer blob', async () => {
    const xz = path.join(src, variantFile('xz'));
    const stored = await digestFile('sha256', xz);
    const r = await importsRight(SOURCES.registry!('xz'), stored, 'the disk.img.xz bytes');
    assert.equal(r.decompressedBy, 'xz');
    // the digest of the decompressed disk is not it
    await failsWrong(SOURCES.registry!('xz'), `md5:${disk.md5}`, `md5:${sums.get('xz')}`, 'the raw disk');
    // nor the layer's digest, which the registry source checks on its own
    const layer = layouts.get('xz')!.images[0]!.layers[0]!;
    assert.notEqual(layer.digest, stored);
    await failsWrong(SOURCES.registry!('xz'), layer.digest, stored, 'the layer blob');
  });

  void it('an oci-archive:// image is checked over the same bytes', async () => {
    const file = await ociArchive(layouts.get('qcow2')!, path.join(dir, 'qcow2.tar'));
    const url = `oci-archive://${file}`;
    const r = await importsRight(
      new RegistrySource({ url }),
      `md5:${sums.get('qcow2')}`,
      'oci-archive qcow2',
    );
    assert.equal(r.path, 'scratch');
    await failsWrong(new RegistrySource({ url }), ZERO_MD5, `md5:${sums.get('qcow2')}`, 'oci-archive qcow2');
  });

  void it("a node pull (the image's own server, read as http) is checked over the same bytes", async () => {
    for (const f of ['gz', 'qcow2'] as const) {
      const imageDir = path.join(dir, `node-pull-${tagOf(f)}`);
      await mkdir(imageDir);
      await copyFile(path.join(src, variantFile(f)), path.join(imageDir, 'disk.img'));
      const port = await freePort();
      const doneFile = path.join(imageDir, '..', `done-${tagOf(f)}`);
      const served = serveImage({
        port,
        host: '127.0.0.1',
        imageDir,
        readyFile: path.join(dir, `ready-${tagOf(f)}`),
        doneFile,
        log: () => undefined,
      });
      try {
        await waitFor(path.join(dir, `ready-${tagOf(f)}`));
        const http = (): HttpSource => new HttpSource({ url: `http://127.0.0.1:${port}/disk.img` });
        const r = await importsRight(http(), `md5:${sums.get(f)}`, `node pull ${f}`);
        assert.equal(r.path, f === 'gz' ? 'direct' : 'scratch');
        await failsWrong(http(), ZERO_MD5, `md5:${sums.get(f)}`, `node pull ${f}`);
      } finally {
        await writeFile(doneFile, '');
        await served;
      }
    }
  });
});

void describe('a checksum across a broken body', () => {
  void it('a GCS body continued by range is hashed once, in order: right digest imports, wrong one names the whole', async () => {
    for (const checksum of [`md5:${sums.get('raw')}`, ZERO_MD5]) {
      const relay = await startCuttingRelay(gcs.url, (r) =>
        r.url.includes('disk.raw') && r.range === 'bytes=0-' ? 1 << 20 : undefined,
      );
      try {
        const source = new GcsSource({
          url: 'gs://cdi-images/disk.raw',
          env: { STORAGE_EMULATOR_HOST: new URL(relay.url).host },
        });
        if (checksum === ZERO_MD5)
          await failsWrong(source, checksum, `md5:${sums.get('raw')}`, 'broken, wrong');
        else assert.equal((await importsRight(source, checksum, 'broken, right')).resumes, 1);
        assert.ok(
          relay.records.some((x) => x.range === `bytes=${1 << 20}-`),
          'the rest was asked by range',
        );
      } finally {
        await relay.close();
      }
    }
  });

  void it('a registry blob read continued by range is hashed once too', async () => {
    const layer = layouts.get('raw')!.images[0]!.layers[0]!;
    for (const checksum of [`md5:${sums.get('raw')}`, ZERO_MD5]) {
      const relay = await startCuttingRelay(registry.url, (r) =>
        r.url.endsWith(`/blobs/${layer.digest}`) && !r.range ? 512 << 10 : undefined,
      );
      try {
        const source = new RegistrySource({
          url: `docker://${new URL(relay.url).host}/sums/raw:v1`,
          insecure: true,
          retry: { delayMs: 1 },
        });
        if (checksum === ZERO_MD5)
          await failsWrong(source, checksum, `md5:${sums.get('raw')}`, 'broken, wrong');
        else await importsRight(source, checksum, 'broken, right');
        assert.ok(
          relay.records.some((x) => x.range === `bytes=${512 << 10}-`),
          'the rest was asked by range',
        );
      } finally {
        await relay.close();
      }
    }
  });
});

async function waitFor(file: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await entries(path.dirname(file))).includes(path.basename(file))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${file} did not appear`);
}
