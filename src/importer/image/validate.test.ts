/**
 * The prescreen on real headers (made by qemu-img, then patched the way a hostile image would be), and the order in
 * which inspectImage runs qemu-img: `info` alone, and `check`/`map` only once info's answer names no other file.
 * The order is observed through a wrapper in front of the real qemu-img on PATH that logs each subcommand.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  vdiDifferencing,
  vhdDifferencing,
  vmdkDescriptor,
  vmdkEmbeddedDescriptor,
  vmdkParentHint,
} from '../../../test/support/hostile-images.ts';
import { ImportError } from '../errors.ts';
import type { DiskFormat } from '../format/sniff.ts';
import { DEFAULT_LIMITS } from './run.ts';
import { inspectImage, prescreen } from './validate.ts';

const run = promisify(execFile);
let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-validate-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function head(file: string): Promise<Buffer> {
  return (await readFile(file)).subarray(0, 512);
}

function refusal(format: DiskFormat, h: Buffer): string | undefined {
  try {
    prescreen(format, h);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ImportError);
    return err.message;
  }
}

void describe('prescreen', () => {
  void it('accepts the images qemu-img makes', async () => {
    for (const [format, opts] of [
      ['qcow2', []],
      ['vmdk', ['-o', 'subformat=monolithicSparse']],
      ['vmdk', ['-o', 'subformat=streamOptimized']],
      ['vpc', ['-o', 'subformat=dynamic']],
      ['vdi', []],
    ] as const) {
      const out = path.join(dir, `ok-${format}-${opts.join('')}`);
      await run('qemu-img', ['create', '-q', '-f', format, ...opts, out, '4M']);
      assert.equal(refusal(format, await head(out)), undefined, `${format} ${opts.join(' ')}`);
    }
  });

  void it('refuses a sparse vmdk header that embeds a descriptor (capacity 0, descriptor offset set)', async () => {
    const out = path.join(dir, 'embedded.vmdk');
    await vmdkEmbeddedDescriptor(out, vmdkDescriptor('monolithicFlat', 'FLAT', '/etc/passwd'));
    assert.match(refusal('vmdk', await head(out)) ?? '', /embeds a descriptor/);
  });

  void it('refuses differencing vhd and vdi headers, and truncated ones', async () => {
    const vhd = path.join(dir, 'diff.vhd');
    await vhdDifferencing(vhd, '/parent.vhd');
    assert.match(refusal('vpc', await head(vhd)) ?? '', /differencing disk/);
    const vdi = path.join(dir, 'diff.vdi');
    await vdiDifferencing(vdi);
    assert.match(refusal('vdi', await head(vdi)) ?? '', /differencing image/);
    assert.match(refusal('vmdk', Buffer.from('KDMV')) ?? '', /truncated/);
    assert.match(refusal('vdi', (await head(vdi)).subarray(0, 0x100)) ?? '', /truncated/);
  });
});

void describe('inspectImage', () => {
  let log: string;
  let savedPath: string | undefined;
  before(async () => {
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    log = path.join(dir, 'qemu-img.log');
    const real = (await run('sh', ['-c', 'command -v qemu-img'])).stdout.trim();
    // Not a fake: the real qemu-img runs, the wrapper only records which subcommand was asked for.
    await writeFile(path.join(bin, 'qemu-img'), `#!/bin/sh\necho "$1" >> '${log}'\nexec '${real}' "$@"\n`);
    await chmod(path.join(bin, 'qemu-img'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath ?? ''}`;
  });
  after(() => {
    process.env.PATH = savedPath;
  });

  void it('runs info alone first: an image whose info names another file never gets check or map', async () => {
    const out = path.join(dir, 'hint.vmdk');
    await vmdkParentHint(out, '/some/parent.vmdk');
    await writeFile(log, '');
    const err = await inspectImage('vmdk', { file: out }, undefined, undefined, DEFAULT_LIMITS).then(
      () => assert.fail('should be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ImportError);
    assert.match(err.message, /backing file/);
    assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), ['info']);
  });

  void it('runs check and map after an info that passed', async () => {
    const out = path.join(dir, 'fine.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', out, '4M']);
    await writeFile(log, '');
    const facts = await inspectImage('qcow2', { file: out }, undefined, undefined, DEFAULT_LIMITS);
    assert.equal(facts.virtualSize, 4 << 20);
    const ran = (await readFile(log, 'utf8')).trim().split('\n');
    assert.equal(ran[0], 'info');
    assert.deepEqual(ran.slice(1).sort(), ['check', 'map']);
  });
});
