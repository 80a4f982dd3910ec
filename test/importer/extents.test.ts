/**
 * The extent copy (src/importer/image/extents.ts) against real qemu-img images served by range over loopback HTTP:
 * data clusters stored out of guest order, clusters shared with an internal snapshot, zeroed clusters; and the cases
 * that must go through qemu-img convert instead (compressed clusters, block devices, preallocation).
 * Every expected disk is built by applying the same qemu-io writes to a raw file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runImport } from '../../src/importer/import.ts';
import { Progress } from '../../src/importer/progress.ts';
import { HttpSource } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { md5File } from '../support/images.ts';

const run = promisify(execFile);
const SIZE = 8 << 20;
let dir: string;
let srv: FileServer;

async function qemuIo(format: string, file: string, cmds: string[]): Promise<void> {
  await run('qemu-io', ['-f', format, ...cmds.flatMap((c) => ['-c', c]), file]);
}

/** The same writes into a raw file and a qcow2; returns the md5 of the raw one. */
async function build(
  name: string,
  before: string[],
  afterSnapshot: string[] = [],
  qcow2Opts: string[] = [],
): Promise<string> {
  const raw = path.join(dir, `${name}.raw`);
  const qcow2 = path.join(dir, 'srv', `${name}.qcow2`);
  await run('qemu-img', ['create', '-f', 'raw', raw, String(SIZE)]);
  await run('qemu-img', ['create', '-f', 'qcow2', ...qcow2Opts, qcow2, String(SIZE)]);
  await qemuIo('raw', raw, [...before, ...afterSnapshot]);
  await qemuIo('qcow2', qcow2, before);
  if (afterSnapshot.length > 0) {
    await run('qemu-img', ['snapshot', '-c', 'before', qcow2]);
    await qemuIo('qcow2', qcow2, afterSnapshot);
  }
  return md5File(raw);
}

async function importIt(name: string, extra: Partial<Parameters<typeof runImport>[0]> = {}) {
  const out = path.join(dir, `${name}.out`);
  const r = await runImport({
    source: new HttpSource({ url: `${srv.url}/${name}.qcow2` }),
    contentType: 'kubevirt',
    target: { kind: 'file', path: out },
    ...extra,
  });
  return { r, out };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-extents-'));
  await run('mkdir', [path.join(dir, 'srv')]);
  srv = await startFileServer({ root: path.join(dir, 'srv') });
});

after(async () => {
  await srv.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('extent copy of qcow2 over HTTP with ranges', () => {
  void it('clusters written in reverse order, overwritten after an internal snapshot, and zeroed: same bytes as the raw disk', async () => {
    // 32 clusters of 64 KiB written last-to-first, so the file stores them in the opposite order of the disk.
    const writes = Array.from({ length: 32 }, (_, i) => 31 - i).map(
      (i) => `write -P ${i + 1} ${i * 256}k 64k`,
    );
    const later = ['write -P 238 512k 64k', 'write -P 239 1M 192k', 'write -z 2M 64k', 'write -P 7 7M 1M'];
    const md5 = await build('shuffled', writes, later);
    const p = new Progress();
    const seen: number[] = [];
    p.on('update', () => seen.push(p.fraction() ?? -1));
    const { r, out } = await importIt('shuffled', { progress: p });
    assert.equal(r.path, 'extents');
    assert.equal(r.virtualSize, SIZE);
    assert.equal((await stat(out)).size, SIZE);
    assert.equal(await md5File(out), md5);
    assert.ok((await stat(out)).blocks * 512 < SIZE / 2, 'only the data clusters take space');
    assert.equal(seen.at(-1), 1);
  });

  void it('grows the file to --size and leaves the rest a hole', async () => {
    const md5 = await build('grown', ['write -P 1 0 1M', 'write -P 2 6M 1M']);
    const { r, out } = await importIt('grown', { size: 2 * SIZE, available: 2 * SIZE });
    assert.equal(r.path, 'extents');
    assert.equal((await stat(out)).size, 2 * SIZE);
    assert.equal(await md5File(out, SIZE), md5);
  });

  void it('an image with compressed clusters is converted by qemu-img instead (NBD), with the same bytes', async () => {
    const raw = path.join(dir, 'text.raw');
    const text = Buffer.from('a disk full of compressible words\n'.repeat(Math.ceil(SIZE / 34))).subarray(
      0,
      SIZE / 2,
    );
    await writeFile(raw, text);
    await run('truncate', ['-s', String(SIZE), raw]);
    await run('qemu-img', [
      'convert',
      '-c',
      '-f',
      'raw',
      '-O',
      'qcow2',
      raw,
      path.join(dir, 'srv', 'text.qcow2'),
    ]);
    const { r, out } = await importIt('text');
    assert.equal(r.path, 'nbd');
    assert.equal(await md5File(out), await md5File(raw));
  });

  void it('preallocation and block devices go through qemu-img convert (NBD)', async () => {
    const md5 = await build('other', ['write -P 3 1M 2M']);
    const pre = await importIt('other', { preallocate: true, size: SIZE, available: SIZE });
    assert.equal(pre.r.path, 'nbd');
    assert.equal(await md5File(pre.out), md5);
    const dev = path.join(dir, 'fake-block');
    await writeFile(dev, Buffer.alloc(SIZE, 0xaa)); // stale data that must not survive
    const blk = await importIt('other', { target: { kind: 'block', path: dev }, available: SIZE });
    assert.equal(blk.r.path, 'nbd');
    assert.equal(await md5File(dev), md5);
  });
});
