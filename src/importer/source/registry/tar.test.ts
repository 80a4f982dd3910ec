import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { TarReader, type TarEntry } from './tar.ts';

const run = promisify(execFile);
let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-tar-'));
  const long = `disk/${'d'.repeat(120)}/${'f'.repeat(110)}.img`;
  await mkdir(path.join(dir, 'src', path.dirname(long)), { recursive: true });
  await writeFile(path.join(dir, 'src', long), Buffer.alloc(1000, 7));
  await writeFile(path.join(dir, 'src', 'disk', 'small'), 'hello');
  await writeFile(path.join(dir, 'src', 'disk', 'sparse.img'), '');
  await truncate(path.join(dir, 'src', 'disk', 'sparse.img'), 1 << 20);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function entries(file: string): Promise<{ e: TarEntry; data: Buffer }[]> {
  const r = new TarReader(createReadStream(file) as AsyncIterable<Buffer>, file);
  const out: { e: TarEntry; data: Buffer }[] = [];
  for (let e = await r.next(); e; e = await r.next()) {
    const chunks: Buffer[] = [];
    for await (const c of r.data()) chunks.push(Buffer.from(c));
    out.push({ e, data: Buffer.concat(chunks) });
  }
  return out;
}

void describe('TarReader', () => {
  for (const format of ['gnu', 'pax', 'ustar']) {
    void it(`reads ${format} archives: long names, sizes, data offsets`, async () => {
      const file = path.join(dir, `${format}.tar`);
      const names = format === 'ustar' ? ['disk/small'] : ['disk/small', `disk/${'d'.repeat(120)}`];
      await run('tar', [`--format=${format}`, '-C', path.join(dir, 'src'), '-cf', file, ...names]);
      const got = await entries(file);
      const small = got.find((x) => x.e.name === 'disk/small')!;
      assert.equal(small.e.type, 'file');
      assert.equal(small.data.toString(), 'hello');
      const raw = await readFile(file);
      assert.equal(raw.subarray(small.e.dataOffset, small.e.dataOffset + 5).toString(), 'hello');
      if (format !== 'ustar') {
        const big = got.find((x) => x.e.name.endsWith('.img'))!;
        assert.equal(big.e.name, `disk/${'d'.repeat(120)}/${'f'.repeat(110)}.img`);
        assert.equal(big.data.length, 1000);
        assert.ok(got.some((x) => x.e.type === 'directory'));
      }
    });
  }

  void it('marks GNU sparse files (old GNU and PAX forms) as sparse', async () => {
    for (const format of ['gnu', 'pax']) {
      const file = path.join(dir, `sparse-${format}.tar`);
      await run('tar', [
        `--format=${format}`,
        '--sparse',
        '-C',
        path.join(dir, 'src'),
        '-cf',
        file,
        'disk/sparse.img',
      ]);
      const [x] = await entries(file);
      assert.equal(x!.e.type, 'sparse', format);
      assert.equal(x!.e.name, 'disk/sparse.img');
    }
  });

  void it('refuses a truncated archive and a corrupt header', async () => {
    const file = path.join(dir, 'pax.tar');
    const raw = await readFile(file);
    const cut = path.join(dir, 'cut.tar');
    await writeFile(cut, raw.subarray(0, 1024 + 100));
    await assert.rejects(entries(cut), /is not a valid tar archive: it ends inside/);
    const bad = Buffer.from(raw);
    bad[10] = bad[10]! ^ 0xff;
    await writeFile(cut, bad);
    await assert.rejects(entries(cut), /is not a valid tar archive: bad header checksum at offset 0/);
  });
});
