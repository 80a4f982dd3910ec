import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { copyExtents, ExtentCollector, planExtents, slice, windows, WINDOW } from './extents.ts';
import type { MapEntry } from './qemu.ts';

const MiB = 1 << 20;
const e = (start: number, length: number, data: boolean, zero: boolean, offset?: number): MapEntry => ({
  start,
  length,
  data,
  zero,
  ...(offset !== undefined ? { offset } : {}),
});

void describe('ExtentCollector', () => {
  const collect = (entries: MapEntry[], max?: number): ExtentCollector => {
    const c = new ExtentCollector(max);
    for (const x of entries) c.add(x);
    return c;
  };

  void it('merges zero and unallocated runs, and data runs contiguous in the file too; the plan is the same', () => {
    const entries = [
      e(0, MiB, false, true),
      e(MiB, MiB, false, false),
      e(2 * MiB, MiB, true, true, 9 * MiB),
      e(3 * MiB, MiB, true, false, 5 * MiB),
      e(4 * MiB, MiB, true, false, 6 * MiB),
      e(5 * MiB, MiB, true, false, 2 * MiB),
    ];
    const c = collect(entries);
    assert.deepEqual(c.entries, [
      e(0, 3 * MiB, false, true),
      e(3 * MiB, 2 * MiB, true, false, 5 * MiB),
      e(5 * MiB, MiB, true, false, 2 * MiB),
    ]);
    assert.equal(c.seen, 6);
    assert.deepEqual(planExtents(c.entries, 6 * MiB, 10 * MiB), {
      pieces: [
        { host: 2 * MiB, guest: 5 * MiB, length: MiB },
        { host: 5 * MiB, guest: 3 * MiB, length: 2 * MiB },
      ],
      dataBytes: 3 * MiB,
    });
  });

  void it('holds at most max separate extents, then gives up the plan (tooMany)', () => {
    // Alternating data and zero clusters cannot merge.
    const alternating = Array.from({ length: 10 }, (_, i) =>
      i % 2 === 0 ? e(i * MiB, MiB, true, false, i * MiB) : e(i * MiB, MiB, false, true),
    );
    assert.equal(collect(alternating, 10).entries?.length, 10);
    const c = collect([...alternating, e(10 * MiB, MiB, true, false, 10 * MiB)], 10);
    assert.equal(c.entries, undefined);
    assert.equal(c.tooMany, true);
    assert.equal(c.seen, 11);
  });

  void it('gives up the plan at data without a file offset (compressed clusters), not counting it as too many', () => {
    const c = collect([e(0, MiB, true, false, 0), e(MiB, MiB, true, false)]);
    assert.equal(c.entries, undefined);
    assert.equal(c.tooMany, false);
  });
});

void describe('planExtents', () => {
  void it('keeps data ranges with their file offsets, skips zero and unallocated ranges, sorts by file offset', () => {
    const plan = planExtents(
      [
        e(0, MiB, false, true),
        e(MiB, MiB, true, false, 5 * MiB),
        e(2 * MiB, MiB, true, true, 9 * MiB),
        e(3 * MiB, MiB, true, false, 3 * MiB),
      ],
      4 * MiB,
      10 * MiB,
    );
    assert.deepEqual(plan, {
      pieces: [
        { host: 3 * MiB, guest: 3 * MiB, length: MiB },
        { host: 5 * MiB, guest: MiB, length: MiB },
      ],
      dataBytes: 2 * MiB,
    });
  });

  void it('splits long ranges into reads of at most one window', () => {
    const plan = planExtents([e(0, 2 * WINDOW + 5, true, false, 100)], 2 * WINDOW + 5, 3 * WINDOW);
    assert.deepEqual(
      plan?.pieces.map((p) => [p.host, p.guest, p.length]),
      [
        [100, 0, WINDOW],
        [100 + WINDOW, WINDOW, WINDOW],
        [100 + 2 * WINDOW, 2 * WINDOW, 5],
      ],
    );
  });

  void it('gives up (qemu-img converts instead) on data without a plain offset, gaps, overlaps, a short map or offsets past the file', () => {
    assert.equal(planExtents([e(0, MiB, true, false)], MiB, 10 * MiB), undefined, 'compressed/encrypted');
    assert.equal(
      planExtents([e(0, MiB, false, true), e(2 * MiB, MiB, false, true)], 3 * MiB, MiB),
      undefined,
    );
    assert.equal(
      planExtents([e(0, 2 * MiB, false, true), e(MiB, MiB, false, true)], 2 * MiB, MiB),
      undefined,
    );
    assert.equal(planExtents([e(0, MiB, false, true)], 2 * MiB, MiB), undefined);
    assert.equal(planExtents([e(0, MiB, true, false, 9 * MiB + 1)], MiB, 10 * MiB), undefined);
    assert.equal(planExtents([e(0, MiB, true, false, -1)], MiB, 10 * MiB), undefined);
  });
});

void describe('windows and slice', () => {
  void it('merges nearby pieces into one read, starts a new read after a big gap or a full window', () => {
    const w = windows([
      { host: 0, guest: 10 * MiB, length: MiB },
      { host: MiB + 4096, guest: 0, length: MiB },
      { host: 100 * MiB, guest: 20 * MiB, length: WINDOW },
      { host: 100 * MiB + WINDOW, guest: 40 * MiB, length: MiB },
    ]);
    assert.deepEqual(
      w.map((x) => [x.start, x.length, x.pieces.length]),
      [
        [0, 2 * MiB + 4096, 2],
        [100 * MiB, WINDOW, 1],
        [100 * MiB + WINDOW, MiB, 1],
      ],
    );
  });

  void it('slices byte ranges across chunk boundaries without copying', () => {
    const chunks = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('hi')];
    assert.equal(Buffer.concat(slice(chunks, 2, 6)).toString(), 'cdefgh');
    assert.equal(Buffer.concat(slice(chunks, 3, 4)).toString(), 'defg');
    assert.equal(slice(chunks, 2, 6)[1]!.buffer, chunks[1]!.buffer);
  });
});

void describe('copyExtents', () => {
  const file = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
  const reader = (failAt?: number) => ({
    size: file.length,
    read: (o: number, l: number): Promise<Buffer[]> =>
      failAt !== undefined && o <= failAt && failAt < o + l
        ? Promise.reject(new Error(`no bytes at ${failAt}`))
        : Promise.resolve([file.subarray(o, o + l)]),
  });

  void it('puts every piece at its guest offset', async () => {
    const disk = Buffer.alloc(32);
    const plan = planExtents(
      [e(0, 8, true, false, 40), e(8, 16, false, true), e(24, 8, true, false, 4)],
      32,
      64,
    )!;
    await copyExtents(plan, reader(), (chunks, guest) => {
      Buffer.concat(chunks).copy(disk, guest);
      return Promise.resolve();
    });
    assert.deepEqual([...disk.subarray(0, 8)], [40, 41, 42, 43, 44, 45, 46, 47]);
    assert.deepEqual([...disk.subarray(24)], [4, 5, 6, 7, 8, 9, 10, 11]);
    assert.ok(disk.subarray(8, 24).every((b) => b === 0));
  });

  void it('fails with the read error', async () => {
    const plan = planExtents([e(0, 8, true, false, 40)], 8, 64)!;
    await assert.rejects(
      copyExtents(plan, reader(42), () => Promise.resolve()),
      /no bytes at 42/,
    );
  });
});
