import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedLines, outOfMemory, prlimitArgv, TextHead, TextTail } from './child.ts';

void describe('TextTail', () => {
  void it('keeps the end of a flood, so the last line survives', () => {
    const t = new TextTail(1000);
    for (let i = 0; i < 10_000; i++) t.add(`warning: noise ${i}\n`);
    t.add('the error\n');
    const s = t.toString();
    assert.ok(s.length <= 1000);
    assert.ok(s.endsWith('warning: noise 9999\nthe error\n'));
  });
});

void describe('TextHead', () => {
  void it('keeps everything up to the cap, then says it overflowed and drops it', () => {
    const h = new TextHead(10);
    h.add('12345');
    h.add('678');
    assert.equal(h.toString(), '12345678');
    assert.equal(h.overflowed, false);
    h.add('901');
    assert.equal(h.overflowed, true);
    assert.equal(h.toString(), '');
  });
});

void describe('BoundedLines', () => {
  void it('splits lines across chunks', () => {
    const l = new BoundedLines(100);
    assert.deepEqual(l.add('one\ntw'), ['one']);
    assert.deepEqual(l.add('o\nthree'), ['two']);
    assert.deepEqual(l.add('\n'), ['three']);
  });

  void it('cuts a line at the cap, drops its rest, and holds nothing of a line that never ends', () => {
    const l = new BoundedLines(8);
    assert.deepEqual(l.add('12345'), []);
    assert.deepEqual(l.add('6789abc'), ['12345678']);
    for (let i = 0; i < 10_000; i++) assert.deepEqual(l.add('x'.repeat(1000)), []);
    assert.deepEqual(l.add('yy\nnext\n'), ['next']);
    assert.deepEqual(l.add('exactly8\n'), ['exactly8']);
  });
});

void describe('prlimitArgv', () => {
  void it('bounds address space and thread stacks, and optionally size, CPU and time', () => {
    assert.deepEqual(prlimitArgv({ addressSpace: 1024 }, ['xz', '-dc']), [
      'prlimit',
      '--as=1024',
      `--stack=${2 << 20}`,
      '--',
      'xz',
      '-dc',
    ]);
    assert.deepEqual(
      prlimitArgv({ addressSpace: 1, fileSize: 2, cpuSeconds: 3, timeoutSec: 4 }, ['qemu-img']).join(' '),
      `prlimit --as=1 --stack=${2 << 20} --fsize=2 --cpu=3:8 -- timeout --kill-after=5 4 qemu-img`,
    );
  });
});

void describe('outOfMemory', () => {
  void it('names the bound and what to raise when a tool failed to allocate', () => {
    assert.equal(outOfMemory('the vdi image', 'qemu-img: invalid header', 1 << 30), undefined);
    assert.match(
      outOfMemory('the vdi image', "qemu-img: Could not open 'x': Cannot allocate memory\n", 344 << 20) ?? '',
      /^the vdi image needs more memory than the 344 MiB .* raise the importer pod's memory limit/,
    );
    assert.match(
      outOfMemory('the xz data', 'xz: (stdin): Memory usage limit reached', 1 << 27) ?? '',
      /128 MiB/,
    );
  });
});
