/**
 * Every supported format round-trips to the same raw bytes, over a real HTTP server on loopback with real
 * qemu-img: served with ranges (streamed by range through the NBD server), without ranges (scratch copy), and as local files.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runImport } from '../../src/importer/import.ts';
import { FileSource } from '../../src/importer/source/file.ts';
import { HttpSource } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, VARIANTS, type SeededDisk } from '../support/images.ts';

const SIZE = 8 << 20;
let dir: string;
let disk: SeededDisk;
let ranged: FileServer;
let plain: FileServer;
const files = new Map<string, string>();

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-formats-'));
  const srcDir = path.join(dir, 'src');
  await import('node:fs/promises').then((fs) => fs.mkdir(srcDir));
  disk = await makeSeededDisk(srcDir, { size: SIZE, seed: 'formats' });
  for (const v of VARIANTS) files.set(v, await makeVariant(disk.path, srcDir, v));
  ranged = await startFileServer({ root: srcDir });
  plain = await startFileServer({ root: srcDir, ranges: false });
});

after(async () => {
  await ranged.close();
  await plain.close();
  await rm(dir, { recursive: true, force: true });
});

const diskVariants = VARIANTS.filter((v) => !v.startsWith('tar'));

void describe('kubevirt content over HTTP with ranges', () => {
  for (const v of diskVariants) {
    void it(`${v} imports to a raw disk with the original md5`, async () => {
      const out = path.join(dir, `ranged-${v}.img`);
      const r = await runImport({
        source: new HttpSource({ url: `${ranged.url}/${path.basename(files.get(v)!)}` }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        scratchDir: path.join(dir, 'scratch'),
      });
      assert.equal(r.virtualSize, SIZE);
      assert.equal((await stat(out)).size, SIZE);
      assert.equal(await md5File(out), disk.md5);
      const compressed = v.includes('.') || ['gz', 'xz', 'zst'].includes(v);
      const expected = ['raw', 'iso', 'gz', 'xz', 'zst'].includes(v)
        ? 'direct'
        : compressed
          ? 'scratch'
          : v === 'vhdx'
            ? 'nbd' // qemu 7.2's vhdx driver does not report where the data lies: qemu-img converts it
            : 'extents';
      assert.equal(r.path, expected);
    });
  }
});

void describe('kubevirt content over HTTP without ranges (scratch copy)', () => {
  for (const v of ['qcow2', 'vmdk', 'vdi', 'vhd', 'vhdx', 'qcow2.zst', 'gz'] as const) {
    void it(`${v} imports with the original md5`, async () => {
      const out = path.join(dir, `plain-${v}.img`);
      const r = await runImport({
        source: new HttpSource({ url: `${plain.url}/${path.basename(files.get(v)!)}` }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        scratchDir: path.join(dir, 'scratch'),
      });
      assert.equal(await md5File(out), disk.md5);
      assert.equal(r.path, v === 'gz' ? 'direct' : 'scratch');
    });
  }
});

void describe('local files', () => {
  for (const v of ['qcow2', 'vhdx', 'xz'] as const) {
    void it(`${v} from a local path imports with the original md5`, async () => {
      const out = path.join(dir, `local-${v}.img`);
      await runImport({
        source: new FileSource(files.get(v)!),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        scratchDir: path.join(dir, 'scratch'),
      });
      assert.equal(await md5File(out), disk.md5);
    });
  }
});

void describe('sizes and block targets', () => {
  void it('a requested size grows the file (sparse), keeping the image bytes', async () => {
    const out = path.join(dir, 'grown.img');
    const r = await runImport({
      source: new HttpSource({ url: `${ranged.url}/disk.qcow2` }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
      size: SIZE * 2,
      available: SIZE * 2,
    });
    assert.equal(r.size, SIZE * 2);
    assert.equal((await stat(out)).size, SIZE * 2);
    assert.equal(await md5File(out, SIZE), disk.md5);
    assert.ok((await stat(out)).blocks * 512 < SIZE * 2, 'the grown file is sparse');
  });

  void it('writes to a block target in place (a regular file stands in for the device) and zeroes stale data', async () => {
    const dev = path.join(dir, 'fake-block');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(dev, Buffer.alloc(SIZE, 0xaa));
    for (const v of ['gz', 'qcow2'] as const) {
      await runImport({
        source: new HttpSource({ url: `${ranged.url}/${path.basename(files.get(v)!)}` }),
        contentType: 'kubevirt',
        target: { kind: 'block', path: dev },
        available: SIZE,
      });
      assert.equal(await md5File(dev), disk.md5, v);
      await writeFile(dev, Buffer.alloc(SIZE, 0xaa));
    }
  });

  void it('preallocation gives a fully allocated file', async () => {
    const out = path.join(dir, 'prealloc.img');
    const r = await runImport({
      source: new HttpSource({ url: `${ranged.url}/disk.gz` }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
      size: SIZE * 2,
      available: SIZE * 2,
      preallocate: true,
    });
    assert.equal(r.preallocationApplied, true);
    assert.ok((await stat(out)).blocks * 512 >= SIZE * 2);
    assert.equal(await md5File(out, SIZE), disk.md5);
  });
});

void describe('archive content', () => {
  for (const v of ['tar', 'tar.gz'] as const) {
    void it(`${v} extracts into the target directory`, async () => {
      const out = path.join(dir, `archive-${v}`);
      const r = await runImport({
        source: new HttpSource({ url: `${ranged.url}/${path.basename(files.get(v)!)}` }),
        contentType: 'archive',
        target: { kind: 'dir', path: out },
      });
      assert.equal(r.format, 'tar');
      assert.equal(await md5File(path.join(out, 'seed.raw')), disk.md5);
    });
  }
});

/** raw.xz / raw.zst: the decompressor child writes the target itself (docs/adr/0004-decompressor-writes-target.md). */
void describe('compressed raw written by the decompressor', () => {
  const tool = { xz: 'xz', zst: 'zstd' } as const;
  const url = (f: string): string => `${plain.url}/${path.basename(f)}`;
  const sh = (cmd: string): Promise<unknown> => promisify(execFile)('sh', ['-c', cmd]);

  void it('the seeded disk ends in a MiB of zeros (so the sparse end is exercised)', async () => {
    const b = await readFile(disk.path);
    assert.ok(b.subarray(SIZE - (1 << 20)).equals(Buffer.alloc(1 << 20)));
  });

  for (const v of ['xz', 'zst'] as const) {
    void it(`${v}: exact size, original md5, sparse, available space exactly the image size`, async () => {
      const out = path.join(dir, `direct-${v}.img`);
      const r = await runImport({
        source: new HttpSource({ url: url(files.get(v)!) }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        available: SIZE,
        size: SIZE,
      });
      assert.equal(r.decompressedBy, tool[v]);
      assert.deepEqual(
        [r.path, r.layers, r.format, r.virtualSize, r.size],
        ['direct', [v], 'raw', SIZE, SIZE],
      );
      const st = await stat(out);
      assert.equal(st.size, SIZE);
      assert.equal(await md5File(out), disk.md5);
      assert.ok(
        st.blocks * 512 < SIZE * 0.75,
        `half-zero disk is sparse (${st.blocks * 512} bytes allocated)`,
      );
      assert.equal(st.mode & 0o777, 0o660);
    });

    void it(`${v}: a requested size larger than the image grows the file`, async () => {
      const out = path.join(dir, `direct-grown-${v}.img`);
      const r = await runImport({
        source: new HttpSource({ url: url(files.get(v)!) }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        size: SIZE * 3,
        available: SIZE * 3,
      });
      assert.equal(r.decompressedBy, tool[v]);
      assert.equal(r.virtualSize, SIZE);
      assert.equal(r.size, SIZE * 3);
      assert.equal((await stat(out)).size, SIZE * 3);
      assert.equal(await md5File(out, SIZE), disk.md5);
      const zeros = createHash('md5')
        .update(Buffer.alloc(SIZE * 3 - SIZE))
        .digest('hex');
      const h = createHash('md5');
      for await (const c of createReadStream(out, { start: SIZE })) h.update(c as Buffer);
      assert.equal(h.digest('hex'), zeros);
    });

    void it(`${v}: a block target (a regular file standing in) gets every byte, stale data overwritten`, async () => {
      const dev = path.join(dir, `fake-block-${v}`);
      await writeFile(dev, Buffer.alloc(SIZE + (1 << 20), 0xaa));
      const r = await runImport({
        source: new HttpSource({ url: url(files.get(v)!) }),
        contentType: 'kubevirt',
        target: { kind: 'block', path: dev },
        available: SIZE + (1 << 20),
      });
      assert.equal(r.decompressedBy, tool[v]);
      assert.equal(r.virtualSize, SIZE);
      assert.equal(await md5File(dev, SIZE), disk.md5);
    });

    void it(`${v}: a matching checksum of the compressed bytes passes`, async () => {
      const hex = createHash('sha256')
        .update(await readFile(files.get(v)!))
        .digest('hex');
      const out = path.join(dir, `direct-sum-${v}.img`);
      const r = await runImport({
        source: new HttpSource({ url: url(files.get(v)!) }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        checksum: { algorithm: 'sha256', hex },
      });
      assert.equal(r.decompressedBy, tool[v]);
      assert.equal(await md5File(out), disk.md5);
    });
  }

  void it('a local raw.xz file goes the same way', async () => {
    const out = path.join(dir, 'direct-local.img');
    const r = await runImport({
      source: new FileSource(files.get('xz')!),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
    });
    assert.equal(r.decompressedBy, 'xz');
    assert.equal(await md5File(out), disk.md5);
  });

  for (const v of ['qcow2.xz', 'qcow2.zst'] as const) {
    void it(`${v} is not raw inside: the generic path (scratch, qemu-img) imports it`, async () => {
      const out = path.join(dir, `fallback-${v}.img`);
      const r = await runImport({
        source: new HttpSource({ url: url(files.get(v)!) }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        scratchDir: path.join(dir, 'scratch'),
      });
      assert.equal(r.decompressedBy, undefined);
      assert.deepEqual([r.path, r.layers, r.format], ['scratch', [v.split('.')[1]], 'qcow2']);
      assert.equal(await md5File(out), disk.md5);
    });
  }

  void it('nested compression (raw.gz inside xz) takes the generic path', async () => {
    const nested = path.join(path.dirname(files.get('gz')!), 'disk.gz.xz');
    await sh(`xz -1 -c '${files.get('gz')!}' > '${nested}'`);
    const out = path.join(dir, 'fallback-nested.img');
    const r = await runImport({
      source: new HttpSource({ url: url(nested) }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
    });
    assert.equal(r.decompressedBy, undefined);
    assert.deepEqual([r.path, r.layers, r.format], ['direct', ['xz', 'gz'], 'raw']);
    assert.equal(await md5File(out), disk.md5);
  });

  void it('preallocation keeps the in-process path (fully allocated file)', async () => {
    const out = path.join(dir, 'prealloc-xz.img');
    const r = await runImport({
      source: new HttpSource({ url: url(files.get('xz')!) }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
      size: SIZE,
      available: SIZE,
      preallocate: true,
    });
    assert.equal(r.decompressedBy, undefined);
    assert.equal(r.preallocationApplied, true);
    assert.ok((await stat(out)).blocks * 512 >= SIZE);
    assert.equal(await md5File(out), disk.md5);
  });

  void it('tar.xz archive content still extracts', async () => {
    const tarXz = path.join(path.dirname(files.get('tar')!), 'disk.tar.xz');
    await sh(`xz -1 -c '${files.get('tar')!}' > '${tarXz}'`);
    const out = path.join(dir, 'archive-tar.xz');
    const r = await runImport({
      source: new HttpSource({ url: url(tarXz) }),
      contentType: 'archive',
      target: { kind: 'dir', path: out },
    });
    assert.deepEqual([r.layers, r.format], [['xz'], 'tar']);
    assert.equal(await md5File(path.join(out, 'seed.raw')), disk.md5);
  });
});
