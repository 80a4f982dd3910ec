/** The planner's decisions: every row of the table in plan.ts, and the refusals. Pure: no servers needed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorKind, ImportError } from './errors.ts';
import type { MapEntry } from './image/qemu.ts';
import type { ImageFacts } from './image/validate.ts';
import {
  breakPolicy,
  childDecoder,
  offerOf,
  planTransfer,
  settleRange,
  type ContentFacts,
  type PlanRequest,
} from './plan.ts';
import type { SourceInfo } from './source/source.ts';

const req = (o: Partial<PlanRequest> = {}): PlanRequest => ({
  contentType: 'kubevirt',
  target: { kind: 'file', path: '/data/disk.img' },
  preallocate: false,
  checksum: false,
  scratch: true,
  stream: true,
  extentCopy: true,
  ...o,
});
const ranged: SourceInfo = { size: 1 << 20, ranges: true };
const plain: SourceInfo = { size: 1 << 20, ranges: false };
const offer = (info: SourceInfo, readRange = true): { info: SourceInfo; readRange: boolean } => ({
  info,
  readRange,
});
const qcow2: ContentFacts = { layers: [], format: 'qcow2' };

function refusal(f: () => unknown): ImportError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ImportError, String(err));
    return err;
  }
  return assert.fail('expected a refusal');
}

void describe('planTransfer', () => {
  void it('raw, and raw under in-process layers, go straight to the sink', () => {
    const p = planTransfer(offer(plain), req(), { layers: [], format: 'raw' });
    assert.equal(p.transfer, 'raw');
    assert.equal(p.path, 'direct');
    const gz = planTransfer(offer(plain), req(), { layers: ['gz'], format: 'raw' });
    assert.equal(gz.transfer, 'raw');
    assert.match(gz.reason, /decompressed while streaming/);
  });

  void it('raw under one xz/zst layer is written by the decompressor child when the body was left compressed', () => {
    const p = planTransfer(offer(plain), req(), { layers: ['zst'], format: 'raw', compressed: 'zst' });
    assert.equal(p.transfer, 'decompressor');
    assert.equal(p.path, 'direct');
    assert.equal(p.decompressedBy, 'zstd');
    assert.equal(childDecoder(req(), ['xz'], 'raw'), 'xz');
    assert.equal(childDecoder(req({ preallocate: true }), ['xz'], 'raw'), undefined);
    assert.equal(childDecoder(req(), ['gz'], 'raw'), undefined);
    assert.equal(childDecoder(req(), ['xz'], 'qcow2'), undefined);
  });

  void it('disk formats by range: extents to a file, NBD to a block device or with preallocation', () => {
    assert.equal(planTransfer(offer(ranged), req(), qcow2).path, 'extents');
    const block = planTransfer(offer(ranged), req({ target: { kind: 'block', path: '/dev/x' } }), qcow2);
    assert.deepEqual([block.transfer, block.path], ['range', 'nbd']);
    assert.equal(planTransfer(offer(ranged), req({ preallocate: true }), qcow2).path, 'nbd');
    assert.equal(planTransfer(offer(ranged), req({ extentCopy: false }), qcow2).path, 'nbd');
  });

  void it('a checksum, no ranges, a layer, no readRange, a one-way source or --no-stream mean scratch', () => {
    for (const [o, r, c] of [
      [offer(ranged), req({ checksum: true }), qcow2],
      [offer(plain), req(), qcow2],
      [offer(ranged), req(), { layers: ['gz'], format: 'qcow2' }],
      [offer(ranged, false), req(), qcow2],
      [offer({ ...ranged, oneWay: true }), req(), qcow2],
      [offer(ranged), req({ stream: false }), qcow2],
      [offer({ ranges: true }), req(), qcow2], // size unknown
    ] as const) {
      assert.equal(planTransfer(o, r, c).transfer, 'scratch');
    }
    assert.match(planTransfer(offer(ranged), req({ checksum: true }), qcow2).reason, /checksum/);
  });

  void it('verifies the request checksum always, the source digest where every byte is read anyway', () => {
    const digest = { ...ranged, checksum: { algorithm: 'sha256', hex: '0'.repeat(64) } };
    assert.equal(planTransfer(offer(ranged), req({ checksum: true }), qcow2).verify, 'request');
    assert.equal(planTransfer(offer(digest), req(), qcow2).verify, undefined); // by range: not every byte
    assert.equal(planTransfer(offer(digest), req(), { layers: ['gz'], format: 'qcow2' }).verify, 'source');
    assert.equal(planTransfer(offer(digest), req(), { layers: [], format: 'raw' }).verify, 'source');
  });

  void it('scratch needed but none: the scratch-required error (upstream text)', () => {
    const e = refusal(() => planTransfer(offer(plain), req({ scratch: false }), qcow2));
    assert.equal(e.kind, ErrorKind.ScratchRequired);
    assert.equal(e.message, 'scratch space required and none found');
  });

  void it('a local file is converted where it is', () => {
    const p = planTransfer(offer({ ...ranged, localPath: '/tmp/x.qcow2' }), req(), qcow2);
    assert.equal(p.transfer, 'local');
  });

  void it('archive content: tar only, into a directory; a disk image never into a directory', () => {
    const dir = { kind: 'dir' as const, path: '/data' };
    const p = planTransfer(offer(plain), req({ contentType: 'archive', target: dir }), {
      layers: ['gz'],
      format: 'tar',
    });
    assert.equal(p.transfer, 'archive');
    assert.match(
      refusal(() => planTransfer(offer(plain), req({ contentType: 'archive', target: dir }), qcow2)).message,
      /archive content must be a tar archive .*found qcow2/,
    );
    assert.match(
      refusal(() => planTransfer(offer(plain), req({ target: dir }), qcow2)).message,
      /is a directory/,
    );
  });

  void it('a disk source is planned from its offer alone: the disk path, whatever the request allows besides', () => {
    const disk = { info: ranged, readRange: true, disk: true };
    for (const r of [req(), req({ target: { kind: 'block', path: '/dev/x' } }), req({ scratch: false })]) {
      const p = planTransfer(disk, r);
      assert.equal(p.transfer, 'disk');
      assert.equal(p.path, 'disk');
      assert.equal(p.format, 'raw');
      assert.deepEqual(p.layers, []);
      assert.equal(p.resume.broken, 'retry');
      assert.equal(p.verify, undefined);
    }
    assert.match(planTransfer(disk, req()).reason, /zero extents stay holes/);
    assert.match(
      planTransfer(disk, req({ target: { kind: 'block', path: '/dev/x' } })).reason,
      /zero extents written as zeros/,
    );
    const dir = { kind: 'dir' as const, path: '/data' };
    const archive = refusal(() => planTransfer(disk, req({ contentType: 'archive', target: dir })));
    assert.equal(archive.kind, ErrorKind.Invalid);
    assert.match(archive.message, /^Unsupported content type archive for a VM disk read by its extents/);
    // refused for good: the pod reports it as fatal (exit 0, fatalReason) instead of being restarted
    const sum = refusal(() => planTransfer(disk, req({ checksum: true })));
    assert.equal(sum.kind, ErrorKind.Refused);
    assert.match(sum.message, /^a checksum cannot be verified for a VM disk read by its extents/);
    // Any other source needs its content examined first.
    assert.equal(refusal(() => planTransfer(offer(ranged), req())).kind, ErrorKind.Internal);
  });
});

void describe('offerOf', () => {
  void it('reads what the source implements: ranges, open(offset), disk()', () => {
    const base = {
      description: 'x',
      info: () => Promise.resolve(ranged),
      open: () => Promise.reject(new Error()),
    };
    const close = (): Promise<void> => Promise.resolve();
    assert.deepEqual(offerOf({ ...base, close }, ranged), {
      info: ranged,
      readRange: false,
      resumable: false,
      disk: false,
    });
    const full = {
      ...base,
      close,
      resumable: true,
      readRange: () => Promise.resolve([]),
      disk: () => Promise.resolve({ size: 0, extents: [], delta: false }),
    };
    assert.deepEqual(offerOf(full, ranged), { info: ranged, readRange: true, resumable: true, disk: true });
  });
});

void describe('settleRange', () => {
  const facts = (extents: MapEntry[]): ImageFacts => ({
    format: 'qcow2',
    virtualSize: 1 << 20,
    info: { format: 'qcow2', 'virtual-size': 1 << 20, filename: 'x' },
    extents,
  });
  const plan = planTransfer(offer(ranged), req(), qcow2);

  void it('extents when every data range has a plain offset; NBD otherwise', () => {
    const plainMap = facts([{ start: 0, length: 1 << 20, zero: false, data: true, offset: 4096 }]);
    assert.equal(settleRange(plan, plainMap, 2 << 20).path, 'extents');
    const compressed = facts([{ start: 0, length: 1 << 20, zero: false, data: true }]);
    assert.equal(settleRange(plan, compressed, 2 << 20).path, 'nbd');
    const nbdPlan = planTransfer(offer(ranged), req({ extentCopy: false }), qcow2);
    assert.equal(settleRange(nbdPlan, plainMap, 2 << 20).path, 'nbd');
  });
});

void describe('what a break does (breakPolicy, plan.resume)', () => {
  const named: SourceInfo = { ...ranged, validator: '"v1"' };
  const raw: ContentFacts = { layers: [], format: 'raw' };

  void it('continue only with ranges, a validator and open(offset); restart otherwise; fail for one-way bodies', () => {
    assert.equal(breakPolicy({ info: named, readRange: true, resumable: true }).policy, 'continue');
    assert.equal(breakPolicy({ info: ranged, readRange: true, resumable: true }).policy, 'restart');
    assert.equal(
      breakPolicy({ info: { ...plain, validator: 'x' }, readRange: true, resumable: true }).policy,
      'restart',
    );
    assert.equal(breakPolicy({ info: named, readRange: true }).policy, 'restart');
    assert.equal(
      breakPolicy({ info: { ...named, oneWay: true }, readRange: true, resumable: true }).policy,
      'fail',
    );
  });

  void it('a progress record for raw without layers into a file, from a source that can continue', () => {
    const o = { info: named, readRange: true, resumable: true };
    assert.equal(planTransfer(o, req(), raw).resume.record, true);
    assert.equal(planTransfer(o, req({ resumeRecord: false }), raw).resume.record, false);
    assert.equal(
      planTransfer(o, req({ target: { kind: 'block', path: '/dev/x' } }), raw).resume.record,
      false,
    );
    assert.equal(planTransfer(o, req(), { layers: ['gz'], format: 'raw' }).resume.record, false);
    assert.equal(planTransfer({ ...o, resumable: false }, req(), raw).resume.record, false);
    assert.equal(planTransfer(o, req(), qcow2).resume.broken, 'retry');
  });
});
