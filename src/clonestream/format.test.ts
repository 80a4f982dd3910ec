import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloneStreamParser, dataFrameHeader, Frame, MAGIC, metaFrame, type StreamEvent } from './format.ts';

const header = metaFrame(Frame.Header, { kind: 'filesystem', total: 100, data: 10 });
const file = (size: number, path = 'disk.img') =>
  metaFrame(Frame.Entry, { path, type: 'file', mode: 0o660, mtimeMs: 1, size });
const data = (offset: number, bytes: Buffer) => Buffer.concat([dataFrameHeader(offset, bytes.length), bytes]);
const trailer = (entries: number, dataBytes: number) => metaFrame(Frame.Trailer, { entries, dataBytes });

/** Feeds the stream in pieces of `step` bytes; returns the events, with the data gathered per event. */
function parse(stream: Buffer, step = stream.length): { events: StreamEvent[]; bytes: Buffer } {
  const p = new CloneStreamParser();
  const events: StreamEvent[] = [];
  for (let i = 0; i < stream.length; i += step) events.push(...p.push(stream.subarray(i, i + step)));
  p.end();
  const bytes = Buffer.concat(events.flatMap((e) => (e.kind === 'data' ? e.chunks : [])));
  return { events, bytes };
}

void describe('clone stream parser', () => {
  const good = Buffer.concat([
    MAGIC,
    header,
    file(100),
    data(0, Buffer.from('abc')),
    data(50, Buffer.from('0123456')),
    trailer(1, 10),
  ]);

  void it('parses records split anywhere (one byte at a time), data as slices at their offsets', () => {
    for (const step of [1, 3, 7, good.length]) {
      const { events, bytes } = parse(good, step);
      assert.deepEqual(
        events.map((e) => e.kind).filter((k, i, a) => k !== 'data' || a[i - 1] !== 'data'),
        ['header', 'entry', 'data', 'trailer'],
      );
      assert.equal(bytes.toString(), 'abc0123456');
      const offsets = events.filter((e) => e.kind === 'data').map((e) => (e as { offset: number }).offset);
      assert.equal(offsets[0], 0);
      assert.ok(offsets.includes(50) || step < 7);
    }
  });

  void it('refuses what breaks the structure, saying how', () => {
    const bad = (parts: Buffer[], re: RegExp): void => {
      assert.throws(() => parse(Buffer.concat(parts)), re);
    };
    bad([Buffer.from('ustar\0\0\0')], /not a cdi-ts clone stream \(wrong magic bytes\)/);
    bad([MAGIC, file(10)], /does not start with a header/);
    bad([MAGIC, header, data(0, Buffer.from('x'))], /data outside a file entry/);
    bad([MAGIC, header, file(10), data(8, Buffer.from('xyz'))], /past its size 10/);
    bad([MAGIC, header, file(10), data(5, Buffer.from('x')), data(2, Buffer.from('y'))], /out of order/);
    bad(
      [MAGIC, header, file(10), trailer(1, 5)],
      /trailer counts 1 entries and 5 data bytes, 1 and 0 arrived/,
    );
    bad([MAGIC, header, file(10), trailer(1, 0), Buffer.from('more')], /goes on after its trailer/);
    bad([MAGIC, header, file(10)], /ended before its trailer/);
    bad(
      [MAGIC, header, metaFrame(Frame.Entry, { path: '../etc/passwd', type: 'file', size: 1 })],
      /not a plain relative path/,
    );
    bad([MAGIC, header, metaFrame(Frame.Entry, { path: '/etc', type: 'dir' })], /not a plain relative path/);
    bad([MAGIC, header, Buffer.from([0x5a])], /unknown record type 0x5a/);
  });
});
