/**
 * The plain-HTTP body on a bare socket (src/importer/source/http-socket.ts) against real loopback servers: which
 * responses take it and which fall back to undici, back-pressure (a reader that stops and resumes), a server that
 * sends more than it announced, redirects and auth on the way.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { HttpSource } from '../../src/importer/source/http.ts';
import { RANGE_SLACK } from '../../src/importer/source/source.ts';
import { startFileServer, type FileServer, type FileServerOptions } from '../support/fileserver.ts';
import { makeSeededDisk, type SeededDisk } from '../support/images.ts';
import { makeTestPki } from '../support/tls.ts';

const SIZE = 16 << 20;
let dir: string;
let disk: SeededDisk;
const servers: FileServer[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-socket-'));
  disk = await makeSeededDisk(dir, { size: SIZE, seed: 'socket' });
});

after(async () => {
  for (const s of servers) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(o: Omit<FileServerOptions, 'root'> = {}): Promise<FileServer> {
  const s = await startFileServer({ root: dir, ...o });
  servers.push(s);
  return s;
}

/** md5 of a stream read `pauseEvery` chunks at a time with a pause in between (long enough for the buffer to fill). */
async function md5Of(body: Readable, pauseEvery = 0): Promise<string> {
  const h = createHash('md5');
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    h.update(c);
    if (pauseEvery && ++n % pauseEvery === 0) await sleep(150);
  }
  return h.digest('hex');
}

async function open(url: string, o: Partial<ConstructorParameters<typeof HttpSource>[0]> = {}) {
  const src = new HttpSource({ url, ...o });
  await src.info();
  return { src, body: await src.open() };
}

void describe('plain HTTP body on a bare socket', () => {
  void it(
    'a plain 200 with a length takes the socket, with the same bytes, also through a reader that keeps stopping',
    { timeout: 60_000 },
    async () => {
      const srv = await serve();
      const a = await open(`${srv.url}/seed.raw`);
      assert.equal(a.src.transport, 'socket');
      assert.equal(await md5Of(a.body, 20), disk.md5);
      await a.src.close();
    },
  );

  void it('keeps auth and follows the redirect the probe found', async () => {
    const srv = await serve({
      basicAuth: { user: 'u', password: 'p w' },
      redirects: { '/old.raw': '/seed.raw' },
    });
    const a = await open(`${srv.url}/old.raw`, { user: 'u', password: 'p w' });
    assert.equal(a.src.transport, 'socket');
    assert.equal(await md5Of(a.body), disk.md5);
    await a.src.close();
  });

  void it('chunked bodies and TLS go through undici', async () => {
    const chunked = await serve({ contentLength: false });
    const a = await open(`${chunked.url}/seed.raw`);
    assert.equal(a.src.transport, 'undici');
    assert.equal(await md5Of(a.body), disk.md5);
    await a.src.close();

    const pki = await makeTestPki(path.join(dir, 'pki'), { ips: ['127.0.0.1'] });
    const tls = await serve({ tls: { cert: pki.cert, key: pki.key } });
    const b = await open(`${tls.url}/seed.raw`, { insecureSkipVerify: true });
    assert.equal(b.src.transport, 'undici');
    assert.equal(await md5Of(b.body), disk.md5);
    await b.src.close();
  });

  void it('a connection cut mid-body is an error that says how far it got', async () => {
    const srv = await serve({ dropAfterBytes: 3 << 20 });
    const a = await open(`${srv.url}/seed.raw`);
    assert.equal(a.src.transport, 'socket');
    await assert.rejects(
      md5Of(a.body),
      /the connection to .*seed\.raw (ended|broke) after \d+ of 16777216 bytes/,
    );
    await a.src.close();
  });

  void it('a server that accepts and then says nothing gets one clear error, after one wait (not two)', async () => {
    let connections = 0;
    const silent = net.createServer((c) => {
      connections++;
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as AddressInfo;
    try {
      const src = new HttpSource({ url: `http://127.0.0.1:${port}/disk.raw`, idleTimeoutMs: 300 });
      await assert.rejects(
        src.info(),
        /no data from http:\/\/127\.0\.0\.1:\d+\/disk\.raw for 0\.3s; giving up/,
      );
      assert.equal(connections, 1);
      await src.close();
    } finally {
      silent.close();
    }
  });

  void it('ranged reads: exactly the bytes asked for; a server that ignores ranges is named', async () => {
    const srv = await serve();
    const src = new HttpSource({ url: `${srv.url}/seed.raw` });
    await src.info();
    const whole = await readFile(disk.path);
    for (const [offset, length] of [
      [0, 1],
      [12345, 8 << 20],
      [SIZE - 100, 100],
    ] as const) {
      assert.ok(
        Buffer.concat(await src.readRange(offset, length)).equals(whole.subarray(offset, offset + length)),
      );
    }
    // Into the caller's memory (the extent copy reuses one buffer per worker): views of it, the same bytes.
    const into = Buffer.alloc((8 << 20) + RANGE_SLACK);
    const got = await src.readRange(12345, 8 << 20, into);
    assert.ok(got.every((c) => c.buffer === into.buffer));
    assert.ok(Buffer.concat(got).equals(whole.subarray(12345, 12345 + (8 << 20))));
    await src.close();
    const plain = await serve({ ranges: false });
    const p = new HttpSource({ url: `${plain.url}/seed.raw` });
    await assert.rejects(p.readRange(0, 10), /stopped answering byte ranges/);
    await p.close();
  });
});
