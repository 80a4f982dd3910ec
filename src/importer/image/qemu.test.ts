/** `qemu-img map --output=json` parsed as a stream, on the real output of qemu-img for an image of alternating clusters. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ImportError } from '../errors.ts';
import { map, MapParser, type MapEntry } from './qemu.ts';
import { DEFAULT_LIMITS } from './run.ts';

const run = promisify(execFile);
let dir: string;
let image: string;
let printed: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-qemu-'));
  image = path.join(dir, 'alternating.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', image, '16M']);
  // Every other 64 KiB cluster written: 256 entries alternating data and zero.
  const writes = Array.from({ length: 128 }, (_, i) => ['-c', `write -P ${(i % 250) + 1} ${i * 128}k 64k`]);
  await run('qemu-io', ['-f', 'qcow2', ...writes.flat(), image]);
  printed = (await run('qemu-img', ['map', '-f', 'qcow2', '--output=json', image])).stdout;
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function parseInChunks(text: string, size: number): MapEntry[] {
  const out: MapEntry[] = [];
  const p = new MapParser((e) => out.push(e));
  for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size));
  p.end();
  return out;
}

void describe('MapParser', () => {
  void it('yields the same entries as parsing the whole output, however it is split', () => {
    const whole = JSON.parse(printed) as MapEntry[];
    assert.equal(whole.length, 256);
    for (const size of [1, 2, 7, 64, 100, 4096, printed.length])
      assert.deepEqual(parseInChunks(printed, size), whole);
  });

  void it('refuses output that is not the expected JSON array', () => {
    for (const bad of [
      '',
      '[{"start": 0}',
      '{"start": 0}',
      '[{"start": 0}] x',
      '[1]',
      `[{"s":"${'x'.repeat(5000)}"}]`,
    ]) {
      assert.throws(() => parseInChunks(bad, 3), ImportError, JSON.stringify(bad.slice(0, 20)));
    }
    assert.deepEqual(parseInChunks('[]\n', 1), []);
    assert.deepEqual(parseInChunks('[{ "a": "}{\\"" }]', 2), [{ a: '}{"' }]);
  });
});

void describe('map', () => {
  void it('streams every entry of a real qemu-img map to the callback', async () => {
    const seen: MapEntry[] = [];
    await map('qcow2', { file: image }, DEFAULT_LIMITS, (e) => seen.push(e));
    assert.deepEqual(seen, JSON.parse(printed));
  });
});
