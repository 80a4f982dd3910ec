/**
 * The HTTP source against real loopback servers: basic auth, extra headers, redirects (auth and headers kept),
 * TLS with a test CA directory, insecure-skip-verify, connections dropped mid-body, throttled servers, and an
 * idle watchdog; both for streamed raw data and for qcow2 read by range through the NBD server (image/nbd-server.ts).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImportError } from '../../src/importer/errors.ts';
import { runImport } from '../../src/importer/import.ts';
import { Progress } from '../../src/importer/progress.ts';
import { HttpSource, type HttpSourceOptions } from '../../src/importer/source/http.ts';
import { startForwardProxy } from '../support/servers.ts';
import { startFileServer, type FileServerOptions } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';

const SIZE = 4 << 20;
let dir: string;
let src: string;
let disk: SeededDisk;
let pki: TestPki;
let caDir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-http-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'http' });
  await makeVariant(disk.path, src, 'qcow2');
  await makeVariant(disk.path, src, 'zst');
  pki = await makeTestPki(path.join(dir, 'pki'), { ips: ['127.0.0.1'], hostnames: ['localhost'] });
  caDir = path.join(dir, 'ca');
  await mkdir(caDir);
  await writeFile(path.join(caDir, 'my-ca.crt'), pki.caCert);
  await writeFile(path.join(caDir, 'README'), 'not a certificate');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function importWith(
  server: Omit<FileServerOptions, 'root'>,
  file: string,
  o: Partial<HttpSourceOptions> = {},
  progress?: Progress,
): Promise<{ out: string; path: string }> {
  const srv = await startFileServer({ root: src, ...server });
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}.img`);
  try {
    const r = await runImport({
      source: new HttpSource({ url: `${srv.url}/${file}`, ...o }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
      scratchDir: path.join(dir, 'scratch'),
      ...(progress ? { progress } : {}),
    });
    return { out, path: r.path };
  } finally {
    await srv.close();
  }
}

async function refused(p: Promise<unknown>): Promise<ImportError> {
  const err = await p.then(
    () => assert.fail('should fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ImportError, String(err));
  return err;
}

void describe('http source', () => {
  for (const file of ['seed.raw', 'disk.qcow2']) {
    void it(`basic auth and extra headers (${file})`, async () => {
      const server = {
        basicAuth: { user: 'alice', password: 's3cret' },
        requireHeaders: { 'X-Token': 'abc' },
      };
      const { out } = await importWith(server, file, {
        user: 'alice',
        password: 's3cret',
        headers: ['X-Token: abc'],
      });
      assert.equal(await md5File(out), disk.md5);
      const err = await refused(
        importWith(server, file, { user: 'alice', password: 'wrong', headers: ['X-Token: abc'] }),
      );
      assert.match(
        err.message,
        /^Unable to connect to http data source: expected status code 200, got 401\. Status: 401 Unauthorized \(.*: check the user name, password and headers\)$/,
      );
    });

    void it(`redirects keep auth and headers (${file})`, async () => {
      const srv = await startFileServer({
        root: src,
        basicAuth: { user: 'u', password: 'p' },
        requireHeaders: { 'X-Token': 't' },
        redirects: { '/r1': '/r2', '/r2': `/${file}` },
      });
      const out = path.join(dir, `redir-${file}.img`);
      try {
        await runImport({
          source: new HttpSource({ url: `${srv.url}/r1`, user: 'u', password: 'p', headers: ['X-Token: t'] }),
          contentType: 'kubevirt',
          target: { kind: 'file', path: out },
        });
        assert.equal(await md5File(out), disk.md5);
        const hits = srv.requests.filter((r) => r.path === `/${file}`);
        assert.ok(hits.length > 0);
        for (const h of hits) assert.equal(h.status === 200 || h.status === 206, true, `status ${h.status}`);
      } finally {
        await srv.close();
      }
    });

    void it(`TLS with a CA directory, and a clear error without it (${file})`, async () => {
      const tls = { cert: pki.cert, key: pki.key };
      const { out } = await importWith({ tls }, file, { caDir });
      assert.equal(await md5File(out), disk.md5);
      const err = await refused(importWith({ tls }, file));
      assert.match(
        err.message,
        /^Unable to connect to http data source: HTTP request errored: TLS verification .* failed .*--ca-dir/,
      );
      const { out: out2 } = await importWith({ tls }, file, { insecureSkipVerify: true });
      assert.equal(await md5File(out2), disk.md5);
    });
  }

  void it('a connection dropped mid-body by a server without ranges fails with a clear error and leaves no target', async () => {
    const err = await refused(importWith({ dropAfterBytes: 1 << 20, ranges: false }, 'seed.raw'));
    assert.match(err.message, /(broke|ended) after \d+ of 4194304 bytes.*does not serve byte ranges/);
    const err2 = await refused(importWith({ dropAfterBytes: 100_000, ranges: false }, 'disk.zst'));
    assert.match(err2.message, /broke|ended|corrupt|truncated/);
  });

  void it('connections dropped mid-body on the first GETs do not stop a qcow2 copied by range (retries: image/range.ts)', async () => {
    const { out, path: how } = await importWith({ dropAfterBytes: 256 << 10, dropTimes: 2 }, 'disk.qcow2');
    assert.equal(how, 'extents');
    assert.equal(await md5File(out), disk.md5);
  });

  void it('a server that keeps dropping ranged reads fails with the reason, not an I/O error, and leaves no target', async () => {
    const srv = await startFileServer({ root: src, dropAfterBytes: 256 << 10 });
    const out = path.join(dir, 'always-drops.img');
    try {
      const err = await refused(
        runImport({
          source: new HttpSource({ url: `${srv.url}/disk.qcow2` }),
          contentType: 'kubevirt',
          target: { kind: 'file', path: out },
        }),
      );
      assert.match(err.message, /broke after \d+ of \d+ bytes of range bytes=\d+-\d+/);
      assert.equal(await stat(out).catch(() => undefined), undefined);
    } finally {
      await srv.close();
    }
  });

  void it('a throttled server still completes, reporting progress along the way', async () => {
    const p = new Progress();
    const seen: number[] = [];
    p.on('update', () => {
      const f = p.fraction();
      if (f !== undefined) seen.push(f);
    });
    const { out } = await importWith({ throttleBytesPerSec: 8 << 20 }, 'seed.raw', {}, p);
    assert.equal(await md5File(out), disk.md5);
    assert.ok(
      seen.some((f) => f > 0 && f < 1),
      'intermediate progress',
    );
    assert.equal(seen.at(-1), 1);
  });

  void it('the idle watchdog gives up on a server that stops sending', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(SIZE) });
      res.write(Buffer.alloc(1000, 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
    const out = path.join(dir, 'idle.img');
    try {
      const err = await refused(
        runImport({
          source: new HttpSource({ url, idleTimeoutMs: 500 }),
          contentType: 'kubevirt',
          target: { kind: 'file', path: out },
        }),
      );
      assert.match(err.message, /no data from .* for 0\.5s; giving up/);
      assert.equal(await stat(out).catch(() => undefined), undefined);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  void it('HTTP_PROXY is honoured (a real forward proxy on loopback sees the request)', async () => {
    const srv = await startFileServer({ root: src });
    const proxy = await startForwardProxy();
    const old = {
      http_proxy: process.env.http_proxy,
      no_proxy: process.env.no_proxy,
      NO_PROXY: process.env.NO_PROXY,
    };
    process.env.http_proxy = proxy.url;
    delete process.env.no_proxy;
    delete process.env.NO_PROXY;
    const out = path.join(dir, 'proxied.img');
    try {
      await runImport({
        source: new HttpSource({ url: `${srv.url}/seed.raw` }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
      });
      assert.equal(await md5File(out), disk.md5);
      assert.ok(
        proxy.seen.some((u) => u.endsWith('/seed.raw')),
        `proxy saw ${proxy.seen.join(', ')}`,
      );
    } finally {
      for (const [k, v] of Object.entries(old)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await proxy.close();
      await srv.close();
    }
  });
});
