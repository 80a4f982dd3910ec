import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { seededBytes } from '../../../test/support/images.ts';
import { ImportError } from '../errors.ts';
import { decompressInto, probeDirect, toolMessage } from './direct.ts';

const MEM = 2 * 1024 ** 3;

function xz(b: Buffer): Buffer {
  return execFileSync('xz', ['-c', '-T1'], { input: b, maxBuffer: 1 << 28 });
}
function zstd(b: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c'], { input: b, maxBuffer: 1 << 28 });
}

/** A stream of `b` in chunks of `size` bytes, one per tick (so the probe sees the body arrive over time). */
function chunked(b: Buffer, size: number): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (let o = 0; o < b.length; o += size) {
      await new Promise((r) => setImmediate(r));
      yield b.subarray(o, o + size);
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

async function md5(s: Readable): Promise<string> {
  const h = createHash('md5');
  for await (const c of s) h.update(c as Buffer);
  return h.digest('hex');
}
const md5Of = (b: Buffer): string => createHash('md5').update(b).digest('hex');

// Half random, half zero: xz stores the random part nearly as is, so output arrives soon after input.
const disk = Buffer.concat([seededBytes('direct', 1 << 20), Buffer.alloc(1 << 20)]);
const qcow2 = Buffer.concat([Buffer.from('QFI\xfb\x00\x00\x00\x03', 'latin1'), Buffer.alloc(1 << 20, 7)]);

void describe('probeDirect', () => {
  for (const [name, body, want] of [
    ['raw.xz', xz(disk), { compression: 'xz', format: 'raw' }],
    ['raw.zst', zstd(disk), { compression: 'zst', format: 'raw' }],
    ['qcow2.xz', xz(qcow2), undefined],
    ['qcow2.zst', zstd(qcow2), undefined],
    ['raw.gz', zlib.gzipSync(disk), undefined],
    ['raw (uncompressed)', disk, undefined],
    ['raw.gz.xz (nested)', xz(zlib.gzipSync(disk)), undefined],
    ['an empty body', Buffer.alloc(0), undefined],
  ] as const) {
    void it(`${name}: ${want ? 'the decompressor can write it' : 'generic path'}, every byte replayed`, async () => {
      for (const size of [64 * 1024, 1000]) {
        const p = await probeDirect(chunked(body, size), MEM);
        assert.deepEqual(p.direct, want, `chunks of ${size}`);
        assert.equal(await md5(p.stream), md5Of(body), `chunks of ${size}`);
      }
    });
  }

  void it('a tiny raw.xz (less than the sniff size decompressed) still goes direct', async () => {
    const body = xz(Buffer.from('hello'));
    const p = await probeDirect(chunked(body, 7), MEM);
    assert.deepEqual(p.direct, { compression: 'xz', format: 'raw' });
    assert.equal(await md5(p.stream), md5Of(body));
  });

  void it('past the hold limit the generic path gets every byte', async () => {
    const body = xz(disk);
    const p = await probeDirect(chunked(body, 4096), MEM, 0);
    assert.equal(p.direct, undefined);
    assert.equal(await md5(p.stream), md5Of(body));
  });

  void it('an xz whose first block is corrupt goes to the generic path (which reports it)', async () => {
    // The stream header, then garbage where the block header belongs.
    const body = Buffer.concat([xz(disk).subarray(0, 12), Buffer.alloc(1 << 16, 0x55)]);
    const p = await probeDirect(chunked(body, 4096), MEM);
    assert.equal(p.direct, undefined);
    assert.equal(await md5(p.stream), md5Of(body));
  });

  void it('a body that fails while probing rejects with its error', async () => {
    const body = xz(disk);
    async function* gen(): AsyncGenerator<Buffer> {
      yield body.subarray(0, 600);
      await new Promise((r) => setImmediate(r));
      throw new Error('connection reset');
    }
    const s = Readable.from(gen(), { objectMode: false });
    // Either the probe fails, or the failure reaches whoever reads the replayed stream.
    await assert.rejects(async () => md5((await probeDirect(s, MEM)).stream), /connection reset/);
  });
});

void describe('toolMessage', () => {
  void it("keeps the last line of xz's and zstd's stderr without the stdin prefixes", () => {
    assert.equal(toolMessage('xz: (stdin): Unexpected end of input\n'), 'Unexpected end of input');
    assert.equal(
      toolMessage('noise\n/*stdin*\\ : Read error (39) : premature end \n'),
      'Read error (39) : premature end',
    );
    assert.equal(toolMessage('zstd: /*stdin*\\: unsupported format\n'), 'unsupported format');
    assert.equal(toolMessage(''), '');
  });
});

void describe('decompressInto', () => {
  void it('stops a zero bomb at the CPU limit (zeros become holes, so the size limit alone would wait)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cdi-direct-'));
    try {
      // 64 concatenated streams of 64 MiB of zeros: 4 GiB, about 8 s of xz CPU time, 600 KiB compressed.
      const one = xz(Buffer.alloc(64 << 20));
      const bomb = Buffer.concat(Array.from({ length: 64 }, () => one));
      const out = path.join(dir, 'out.img');
      await assert.rejects(
        decompressInto({
          compression: 'xz',
          input: Readable.from([bomb]),
          target: { kind: 'file', path: out },
          available: 2 ** 40,
          memoryBytes: MEM,
          cpuSeconds: 1,
        }),
        (err: unknown) =>
          err instanceof ImportError &&
          /^decompressing the xz data took more than 1 s of CPU time for at most 1099511627776 bytes of space; refused as a likely decompression bomb$/.test(
            err.message,
          ),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const kind of ['xz', 'zst'] as const) {
    void it(`${kind}: a file ending in zeros gets its exact size`, async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'cdi-direct-'));
      try {
        const data = Buffer.concat([seededBytes('end', 100_000), Buffer.alloc(3 << 20)]);
        const out = path.join(dir, 'out.img');
        const n = await decompressInto({
          compression: kind,
          input: Readable.from([kind === 'xz' ? xz(data) : zstd(data)]),
          target: { kind: 'file', path: out },
          memoryBytes: MEM,
        });
        assert.equal(n, data.length);
        assert.equal((await stat(out)).size, data.length);
        assert.equal(md5Of(await readFile(out)), md5Of(data));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
