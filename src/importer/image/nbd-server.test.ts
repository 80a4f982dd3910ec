/**
 * The NBD server against real clients: qemu-img reading an image through it (md5 of the result), and a hand-written
 * protocol client checking the refusals (writes, reads past the end, a read that keeps failing).
 * The remote side is a RangeReader over bytes in memory here; test/importer/http.test.ts covers it over real HTTP(S).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ErrorKind, ImportError } from '../errors.ts';
import { startNbdServer, type RangeReader } from './nbd-server.ts';

const run = promisify(execFile);
let dir: string;
const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(1 << 20), randomBytes(12345)]);
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

function memReader(bytes: Buffer, failFirst = 0): RangeReader & { calls: number } {
  let failures = failFirst;
  return {
    size: bytes.length,
    calls: 0,
    read(offset, length) {
      this.calls++;
      if (failures > 0) {
        failures--;
        return Promise.reject(new ImportError(ErrorKind.Transfer, 'the connection broke (test)'));
      }
      // Two pieces, like an HTTP body arriving in chunks.
      const mid = offset + Math.floor(length / 2);
      return Promise.resolve([bytes.subarray(offset, mid), bytes.subarray(mid, offset + length)]);
    },
  };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-nbd-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const spec = (socket: string): string =>
  'json:' +
  JSON.stringify({ driver: 'raw', file: { driver: 'nbd', server: { type: 'unix', path: socket } } });

/** A minimal NBD client: fixed newstyle, NBD_OPT_GO, then raw requests; replies are collected by cookie. */
async function client(socket: string): Promise<{
  size: number;
  request: (
    type: number,
    offset: number,
    length: number,
    payload?: Buffer,
  ) => Promise<{ error: number; data: Buffer }>;
  close: () => void;
}> {
  const s = net.connect(socket);
  let buf = Buffer.alloc(0);
  let waiting: (() => void) | undefined;
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiting?.();
  });
  const need = async (n: number): Promise<Buffer> => {
    while (buf.length < n) await new Promise<void>((r) => (waiting = r));
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  const hello = await need(18);
  assert.equal(hello.subarray(0, 16).toString('latin1'), 'NBDMAGICIHAVEOPT');
  s.write(Buffer.from([0, 0, 0, 3]));
  const opt = Buffer.alloc(16 + 6);
  opt.write('IHAVEOPT', 0, 'latin1');
  opt.writeUInt32BE(7, 8); // NBD_OPT_GO
  opt.writeUInt32BE(6, 12); // name length 0, no info requests
  s.write(opt);
  let size = -1;
  let flags = 0;
  for (;;) {
    const h = await need(20);
    const body = await need(h.readUInt32BE(16));
    if (h.readUInt32BE(12) === 1) break; // NBD_REP_ACK
    assert.equal(h.readUInt32BE(12), 3); // NBD_REP_INFO
    if (body.readUInt16BE(0) === 0) {
      size = Number(body.readBigUInt64BE(2));
      flags = body.readUInt16BE(10);
    }
  }
  assert.equal(flags & 2, 2, 'read-only flag');
  let cookie = 0;
  return {
    size,
    close: () => s.destroy(),
    request: async (type, offset, length, payload) => {
      const h = Buffer.alloc(28);
      h.writeUInt32BE(0x25609513, 0);
      h.writeUInt16BE(type, 6);
      h.writeBigUInt64BE(BigInt(++cookie), 8);
      h.writeBigUInt64BE(BigInt(offset), 16);
      h.writeUInt32BE(length, 24);
      s.write(payload ? Buffer.concat([h, payload]) : h);
      const r = await need(16);
      assert.equal(r.readUInt32BE(0), 0x67446698);
      assert.equal(Number(r.readBigUInt64BE(8)), cookie);
      const error = r.readUInt32BE(4);
      return { error, data: type === 0 && error === 0 ? Buffer.from(await need(length)) : Buffer.alloc(0) };
    },
  };
}

void describe('NBD server', { timeout: 60_000 }, () => {
  void it('qemu-img converts the exported bytes exactly (parallel reads)', async () => {
    const srv = await startNbdServer(memReader(data));
    try {
      const out = path.join(dir, 'out.raw');
      await run('qemu-img', ['convert', '-m', '16', '-W', '-f', 'raw', '-O', 'raw', spec(srv.socket), out]);
      // qemu-img rounds a raw output up to whole 512-byte sectors (the export is not a multiple of 512: the tail read
      // must work too).
      const got = await readFile(out);
      assert.equal(md5(got.subarray(0, data.length)), md5(data));
      assert.ok(got.subarray(data.length).every((b) => b === 0));
      const { stdout } = await run('qemu-img', ['info', '-f', 'raw', '--output=json', spec(srv.socket)]);
      assert.equal(
        (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'],
        Math.ceil(data.length / 512) * 512,
      );
    } finally {
      await srv.stop();
    }
  });

  void it('refuses writes and reads past the end, and serves reads around them', async () => {
    const srv = await startNbdServer(memReader(data));
    const c = await client(srv.socket);
    try {
      assert.equal(c.size, data.length);
      assert.equal((await c.request(1, 0, 4, Buffer.from('evil'))).error, 1); // WRITE: EPERM
      assert.equal((await c.request(6, 0, 4096)).error, 1); // WRITE_ZEROES: EPERM
      assert.equal((await c.request(0, data.length - 10, 20)).error, 22); // past the end: EINVAL
      const r = await c.request(0, 100, 5000);
      assert.equal(r.error, 0);
      assert.deepEqual(r.data, data.subarray(100, 5100));
    } finally {
      c.close();
      await srv.stop();
    }
  });

  void it('retries a failed read, and after the last retry answers EIO and keeps the reason', async () => {
    const flaky = memReader(data, 2);
    const srv = await startNbdServer(flaky, { retries: 3, retryDelayMs: 10 });
    const c = await client(srv.socket);
    try {
      const r = await c.request(0, 0, 4096);
      assert.equal(r.error, 0);
      assert.deepEqual(r.data, data.subarray(0, 4096));
      assert.equal(srv.lastError(), undefined);
    } finally {
      c.close();
      await srv.stop();
    }
    const broken = memReader(data, 1000);
    const srv2 = await startNbdServer(broken, { retries: 2, retryDelayMs: 10 });
    const c2 = await client(srv2.socket);
    try {
      assert.equal((await c2.request(0, 0, 4096)).error, 5);
      assert.equal(broken.calls, 3);
      assert.match(srv2.lastError()?.message ?? '', /connection broke/);
    } finally {
      c2.close();
      await srv2.stop();
    }
  });
});
