/**
 * The HTTP source's rules (src/importer/source/http.ts) against real loopback servers: credentials and extra headers
 * only to the URL's own origin across redirects (curl's rule), one request for the body per attempt against a
 * flaky server like upstream's cdi-bad-webserver `/flaky/`, upstream's messages for a source that cannot be reached,
 * and upstream's warning for a text/* content type.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describe as oneLine, ErrorKind, ImportError } from '../../src/importer/errors.ts';
import { runImport, type ImportResult } from '../../src/importer/import.ts';
import { HttpSource, type HttpSourceOptions } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';

let dir: string;
let src: string;
let disk: SeededDisk;
let pki: TestPki;
const servers: FileServer[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-http-rules-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: 4 << 20, seed: 'rules' });
  await makeVariant(disk.path, src, 'qcow2');
  await makeVariant(disk.path, src, 'tar');
  pki = await makeTestPki(path.join(dir, 'pki'), { ips: ['127.0.0.1'] });
});

after(async () => {
  for (const s of servers) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(o: Parameters<typeof startFileServer>[0]): Promise<FileServer> {
  const s = await startFileServer(o);
  servers.push(s);
  return s;
}

let n = 0;
async function importUrl(
  url: string,
  o: Partial<HttpSourceOptions> = {},
): Promise<ImportResult & { out: string }> {
  const out = path.join(dir, `out-${n++}.img`);
  const r = await runImport({
    source: new HttpSource({ url, ...o }),
    contentType: 'kubevirt',
    target: { kind: 'file', path: out },
    scratchDir: path.join(dir, 'scratch'),
  });
  return { ...r, out };
}

const secretOpts: Partial<HttpSourceOptions> = {
  user: 'alice',
  password: 's3cret',
  headers: ['X-Extra: plain'],
  secretHeaders: ['X-Secret: hush'],
};
const leaked = (h: http.IncomingHttpHeaders): string[] =>
  ['authorization', 'x-extra', 'x-secret'].filter((k) => h[k] !== undefined);

void describe('redirects: credentials and extra headers go to the URL origin only', () => {
  for (const file of ['seed.raw', 'disk.qcow2']) {
    void it(`to another origin (another port) they are dropped; the first origin gets them (${file})`, async () => {
      const b = await serve({ root: src });
      const a = await serve({
        root: src,
        redirects: { '/img': `${b.url}/${file}` },
      });
      const r = await importUrl(`${a.url}/img`, secretOpts);
      assert.equal(await md5File(r.out), disk.md5);
      assert.ok(b.requests.length > 0);
      for (const req of b.requests)
        assert.deepEqual(leaked(req.headers), [], `${req.path} on the other origin`);
      assert.deepEqual(leaked(a.requests[0]!.headers), ['authorization', 'x-extra', 'x-secret']);
      // The ranged reads (qcow2) went to where the redirect led, without credentials too.
      if (file === 'disk.qcow2') assert.ok(b.requests.some((q) => q.status === 206));
    });
  }

  void it('from https to http on the same host they are dropped', async () => {
    const plain = await serve({ root: src });
    const tls = await serve({
      root: src,
      tls: { cert: pki.cert, key: pki.key },
      redirects: { '/img': `${plain.url}/seed.raw` },
    });
    const r = await importUrl(`${tls.url}/img`, { ...secretOpts, insecureSkipVerify: true });
    assert.equal(await md5File(r.out), disk.md5);
    for (const req of plain.requests) assert.deepEqual(leaked(req.headers), []);
  });

  void it('the same origin keeps them (upstream re-applies basic auth; so do we, there)', async () => {
    const a = await serve({
      root: src,
      basicAuth: { user: 'alice', password: 's3cret' },
      requireHeaders: { 'X-Secret': 'hush' },
      redirects: { '/img': '/seed.raw' },
    });
    const r = await importUrl(`${a.url}/img`, secretOpts);
    assert.equal(await md5File(r.out), disk.md5);
  });

  void it('a 401 where the redirect led says the credentials were kept for their origin', async () => {
    const b = await serve({ root: src, basicAuth: { user: 'alice', password: 's3cret' } });
    const a = await serve({ root: src, redirects: { '/img': `${b.url}/seed.raw` } });
    const err = await importUrl(`${a.url}/img`, secretOpts).then(
      () => assert.fail('should fail'),
      (e: unknown) => e as ImportError,
    );
    assert.equal(err.kind, ErrorKind.Connect);
    assert.equal(
      err.message,
      `Unable to connect to http data source: expected status code 200, got 401. Status: 401 Unauthorized (${b.url}/seed.raw: check the user name, password and headers; they are sent to ${a.url} only, not to ${b.url} where it redirected)`,
    );
  });
});

/**
 * Upstream's cdi-bad-webserver `/flaky/`: 503 to HEAD and to most GETs; every 4th GET (counter % 4 == 3: the 3rd,
 * 7th, 11th …) redirects to the file on the real file server.
 */
async function flakyServer(real: string): Promise<{ url: string; gets: () => number; close: () => void }> {
  let gets = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && ++gets % 4 === 3) {
      res.writeHead(301, { location: `${real}/${path.basename(req.url ?? '')}` });
    } else res.writeHead(503);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/flaky`,
    gets: () => gets,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

void describe('one request for the body per attempt', () => {
  for (const file of ['seed.raw', 'disk.qcow2']) {
    void it(`a flaky server (503, every 4th GET redirects) gets through on its one good answer: 3 attempts, one GET each (${file})`, async () => {
      const real = await serve({ root: src });
      const flaky = await flakyServer(real.url);
      try {
        const errors: string[] = [];
        let result: (ImportResult & { out: string }) | undefined;
        // Each attempt is what a restarted importer pod does: a new source, a new request.
        for (let attempt = 1; attempt <= 8 && !result; attempt++) {
          result = await importUrl(`${flaky.url}/${file}`).catch((err: unknown) => {
            errors.push(oneLine(err));
            return undefined;
          });
        }
        assert.ok(result, errors.join('\n'));
        assert.equal(await md5File(result.out), disk.md5);
        assert.equal(errors.length, 2, errors.join('\n'));
        assert.equal(flaky.gets(), 3, 'one GET per attempt');
        for (const e of errors)
          assert.match(
            e,
            /^Unable to connect to http data source: expected status code 200, got 503\. Status: 503 Service Unavailable \(/,
          );
        // The body came from the one good answer: the real server saw one request for it (plus ranged reads).
        assert.equal(real.requests.filter((q) => q.headers.range === 'bytes=0-').length, 1);
      } finally {
        flaky.close();
      }
    });
  }

  void it('info() and open() share one request', async () => {
    const s = await serve({ root: src });
    const source = new HttpSource({ url: `${s.url}/seed.raw` });
    const info = await source.info();
    assert.deepEqual([info.size, info.ranges], [4 << 20, true]);
    const body = await source.open();
    let bytes = 0;
    for await (const c of body as AsyncIterable<Buffer>) bytes += c.length;
    await source.close();
    assert.equal(bytes, 4 << 20);
    assert.equal(s.requests.length, 1);
    assert.equal(source.requests, 1);
  });
});

void describe("upstream's messages for a source that cannot be reached", () => {
  void it('a refused connection', async () => {
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const { port } = free.address() as AddressInfo;
    await new Promise<void>((r) => free.close(() => r()));
    const err = await importUrl(`http://127.0.0.1:${port}/x.img`).then(
      () => assert.fail('should fail'),
      (e: unknown) => e as ImportError,
    );
    assert.equal(err.kind, ErrorKind.Connect);
    assert.match(
      err.message,
      new RegExp(
        `^Unable to connect to http data source: HTTP request errored: Get "http://127\\.0\\.0\\.1:${port}/x\\.img": .*ECONNREFUSED.* \\(nothing accepts connections there: check the URL and that the server runs\\)$`,
      ),
    );
  });

  void it('a 404', async () => {
    const s = await serve({ root: src });
    const err = await importUrl(`${s.url}/missing.img`).then(
      () => assert.fail('should fail'),
      (e: unknown) => e as ImportError,
    );
    assert.equal(
      err.message,
      `Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found (${s.url}/missing.img: check the URL)`,
    );
  });
});

void describe('content type', () => {
  void it("text/html draws upstream's warning, word for word, and the import goes on", async () => {
    const s = await serve({ root: src, contentType: 'text/html' });
    const lines: string[] = [];
    const out = path.join(dir, 'html.img');
    const r = await runImport({
      source: new HttpSource({ url: `${s.url}/seed.raw` }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
      log: (l) => lines.push(l),
    });
    const warning = "Unexpected content type 'text/html'. Content might not be a KubeVirt image.";
    assert.deepEqual(r.warnings, [warning]);
    assert.deepEqual(lines, [`warning: ${warning}`]);
    assert.equal(await md5File(out), disk.md5);
  });

  void it('binary types, and text/* for archive content, draw no warning (as upstream)', async () => {
    const s = await serve({ root: src, contentType: 'application/octet-stream' });
    assert.deepEqual((await importUrl(`${s.url}/seed.raw`)).warnings, []);
    const t = await serve({ root: src, contentType: 'text/plain' });
    const into = path.join(dir, 'archive');
    await mkdir(into);
    const r = await runImport({
      source: new HttpSource({ url: `${t.url}/disk.tar` }),
      contentType: 'archive',
      target: { kind: 'dir', path: into },
    });
    assert.deepEqual(r.warnings, []);
    assert.equal(await md5File(path.join(into, 'seed.raw')), disk.md5);
  });
});
