/**
 * A real block device (a loop device over a file): `cdi import --to /dev/loopN` detects it, writes the raw disk in
 * place (overwriting stale data, zeros included) and refuses images larger than the device. Needs root and
 * loop devices: where `losetup` cannot attach one the tests fail with a message saying so (never a silent skip).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runImport } from '../../src/importer/import.ts';
import { HttpSource } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';

const run = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../../bin/cdi.js');
const SIZE = 4 << 20;
let dir: string;
let disk: SeededDisk;
let srv: FileServer;
let backing: string;
let dev: string | undefined;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-block-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'block' });
  await makeVariant(disk.path, src, 'qcow2');
  await makeVariant(disk.path, src, 'gz');
  await makeVariant(disk.path, src, 'xz');
  await makeVariant(disk.path, src, 'zst');
  // 16 MiB of non-zero bytes: twice the device.
  await writeFile(path.join(src, 'big.bin'), Buffer.alloc(16 << 20, 1));
  await run('sh', [
    '-c',
    `cd '${src}' && xz -T0 -c big.bin > big.raw.xz && zstd -q -c big.bin > big.raw.zst`,
  ]);
  srv = await startFileServer({ root: src });
  backing = path.join(dir, 'device.img');
  await writeFile(backing, Buffer.alloc(8 << 20, 0xee));
  try {
    dev = (await run('losetup', ['-f', '--show', backing])).stdout.trim();
  } catch (err) {
    throw new Error(
      `block-device tests need a loop device (root and the loop module: modprobe loop), and losetup could not attach one: ${(err as Error).message.split('\n')[0]}`,
    );
  }
});

after(async () => {
  if (dev) await run('losetup', ['-d', dev]).catch(() => undefined);
  await srv.close();
  await rm(dir, { recursive: true, force: true });
});

function cdi(...args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args, '--no-progress'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

void describe('block device target', () => {
  for (const file of ['disk.qcow2', 'disk.gz']) {
    void it(`${file} is written onto a loop device, replacing stale bytes`, async () => {
      await writeFile(dev!, Buffer.alloc(8 << 20, 0xee));
      const r = await cdi('import', `${srv.url}/${file}`, '--to', dev!);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await md5File(dev!, SIZE), disk.md5);
    });
  }

  void it('an image larger than the device is refused', async () => {
    const r = await cdi('import', `${srv.url}/disk.qcow2`, '--to', dev!, '--size', '2Mi');
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^cdi: error: virtual image size 4194304 is larger than the reported available storage 2097152\. A larger PVC is required$/m,
    );
    const tooBig = await cdi('import', `${srv.url}/disk.qcow2`, '--to', dev!, '--size', '1Gi');
    assert.equal(tooBig.code, 1);
    assert.match(
      tooBig.stderr,
      /^cdi: error: --size 1073741824 is larger than the block device .* \(8388608 bytes\)$/m,
    );
    const big = path.join(dir, 'src', 'big.raw');
    await writeFile(big, Buffer.alloc(16 << 20, 1));
    const r2 = await cdi('import', `${srv.url}/big.raw`, '--to', dev!);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /^cdi: error: the image is larger than the available space of 8388608 bytes/m);
  });
});

/** raw.xz / raw.zst: the decompressor child writes the device itself (no holes: every byte, zeros included). */
void describe('block device target written by the decompressor', () => {
  for (const kind of ['xz', 'zst'] as const) {
    void it(`disk.${kind} is written onto a loop device by ${kind === 'xz' ? 'xz' : 'zstd'}, zeros included`, async () => {
      await writeFile(dev!, Buffer.alloc(8 << 20, 0xee));
      const r = await runImport({
        source: new HttpSource({ url: `${srv.url}/disk.${kind}` }),
        contentType: 'kubevirt',
        target: { kind: 'block', path: dev! },
        available: 8 << 20,
      });
      assert.equal(r.decompressedBy, kind === 'xz' ? 'xz' : 'zstd');
      assert.equal(r.virtualSize, SIZE);
      assert.equal(await md5File(dev!, SIZE), disk.md5);
    });

    void it(`a raw.${kind} larger than the device is refused and the device no longer looks like a disk`, async () => {
      await writeFile(dev!, Buffer.alloc(8 << 20, 0xee));
      const r = await cdi('import', `${srv.url}/big.raw.${kind}`, '--to', dev!);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^cdi: error: the image is larger than the block device \/dev\/loop\d+\. A larger PVC is required$/m,
      );
      const head = Buffer.alloc(1 << 20);
      const fh = await open(dev!, 'r');
      await fh.read(head, 0, head.length, 0);
      await fh.close();
      assert.ok(head.equals(Buffer.alloc(1 << 20)), 'the first MiB is zeroed');
    });

    void it(`a raw.${kind} larger than --size (but not the device) is refused naming the space`, async () => {
      const r = await cdi('import', `${srv.url}/disk.${kind}`, '--to', dev!, '--size', '2Mi');
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^cdi: error: the image is larger than the available space of 2097152 bytes.*A larger PVC is required$/m,
      );
    });
  }
});
