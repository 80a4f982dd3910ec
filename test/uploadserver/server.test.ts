/**
 * The upload server pod entrypoint (src/cmd/uploadserver.ts) as a real child process on loopback with real mutual
 * TLS: images written to the volume (md5), archives extracted, a loop device as a Block target, upstream's status
 * codes (401/409/503/400/500), the exit protocol (termination message, deadline), and the cdi-ts extensions:
 * checksums and resumed uploads.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';
import { UploadServer } from '../../src/uploadserver/server.ts';
import { targetPaths } from '../../src/uploadserver/target.ts';
import { UploadServerClientName } from '../../src/certs/reconcile.ts';
import {
  killUploadPods,
  makeMarkupTar,
  makeUploadPki,
  rawTls,
  request,
  startUploadPod,
  type UploadPki,
} from '../support/upload.ts';

const run = promisify(execFile);
const SIZE = 4 << 20;
let dir: string;
let src: string;
let disk: SeededDisk;
let pki: UploadPki;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-uploadserver-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'upload' });
  for (const v of ['qcow2', 'gz', 'xz', 'tar'] as const) await makeVariant(disk.path, src, v);
  pki = await makeUploadPki();
});

after(async () => {
  killUploadPods();
  await rm(dir, { recursive: true, force: true });
});

const file = (name: string): string => path.join(src, name);
const sha256 = async (p: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

void describe('upload server', () => {
  void it('writes a qcow2 (sync) to disk.img, grown to the space, then exits with Upload Complete', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '8Mi' });
    const r = await request(pod.port, '/v1beta1/upload', { body: file('disk.qcow2'), cert: pki.client });
    assert.equal(r.status, 200, r.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await pod.termination(), '{"preallocationApplied":false,"message":"Upload Complete"}');
    const img = path.join(pod.data, 'disk.img');
    assert.equal((await stat(img)).size, 8 << 20);
    assert.equal(await md5File(img, SIZE), disk.md5);
  });

  void it('takes raw.gz on the async path after the HEAD probe (200 once the bytes are in)', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi' });
    assert.equal((await request(pod.port, '/v1beta1/upload-async', { method: 'HEAD' })).status, 200);
    assert.equal((await request(pod.port, '/v1beta1/upload', { method: 'HEAD' })).status, 404);
    const r = await request(pod.port, '/v1alpha1/upload-async', { body: file('disk.gz'), cert: pki.client });
    assert.equal(r.status, 200, r.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  void it('extracts an archive into the volume (upload-archive)', async () => {
    const pod = await startUploadPod(dir, pki);
    const r = await request(pod.port, '/v1beta1/upload-archive', {
      body: file('disk.tar'),
      cert: pki.client,
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'seed.raw')), disk.md5);
  });

  void it('takes the `file` part of a multipart form (upload-form), skipping other parts', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi' });
    const boundary = 'cdiBoundary7MA4YWxk';
    const body = new PassThrough();
    const done = request(pod.port, '/v1beta1/upload-form', {
      body,
      cert: pki.client,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    body.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello --${boundary.slice(0, 5)}\r\n`,
    );
    body.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="disk.xz"\r\n`);
    body.write('Content-Type: application/octet-stream\r\n\r\n');
    for await (const c of createReadStream(file('disk.xz'), { highWaterMark: 7777 })) body.write(c);
    body.end(`\r\n--${boundary}--\r\n`);
    const r = await done;
    assert.equal(r.status, 200, r.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  void it('answers 401 without a verified client certificate with the expected CN', async () => {
    const pod = await startUploadPod(dir, pki);
    for (const cert of [undefined, pki.wrongName, pki.foreign]) {
      const r = await request(pod.port, '/v1beta1/upload', {
        body: Buffer.alloc(1024),
        ...(cert ? { cert } : {}),
      });
      assert.equal(r.status, 401);
    }
    assert.equal((await request(pod.port, '/healthz', { method: 'GET' })).body, 'OK');
    pod.kill();
    await pod.exited;
  });

  void it('answers 503 while another upload runs, then finishes the first', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi' });
    const raw = await readFile(disk.path);
    const slow = new PassThrough();
    const first = request(pod.port, '/v1beta1/upload', {
      body: slow,
      cert: pki.client,
      headers: { 'content-length': String(raw.length) },
    });
    slow.write(raw.subarray(0, 1 << 20));
    // the first upload is under way once the server has logged it
    while (!pod.log().includes('upload started')) await new Promise((r) => setImmediate(r));
    const second = await request(pod.port, '/v1beta1/upload', { body: raw, cert: pki.client });
    assert.equal(second.status, 503);
    slow.end(raw.subarray(1 << 20));
    assert.equal((await first).status, 200);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  void it('answers 409 to an upload that arrives after the success (until it is closed)', async () => {
    // In process: the pod entrypoint closes the server right after the success, which leaves no window to aim at.
    const root = await mkdtemp(path.join(dir, 'inproc-'));
    await mkdir(path.join(root, 'data'));
    const server = new UploadServer({
      bindAddress: '127.0.0.1',
      port: 0,
      tls: { cert: pki.server.certPem, key: pki.server.keyPem, clientCa: pki.clientCa.certPem },
      clientName: UploadServerClientName,
      paths: targetPaths({
        CDI_IMPORTER_DATA_DIR: path.join(root, 'data'),
        CDI_IMPORTER_SCRATCH_DIR: path.join(root, 'none'),
      }),
      imageSize: SIZE,
      filesystemOverhead: 0,
      preallocation: false,
      log: () => {},
    });
    const port = await server.listen();
    try {
      assert.equal(
        (await request(port, '/v1beta1/upload', { body: disk.path, cert: pki.client })).status,
        200,
      );
      assert.deepEqual(await server.result(), {
        cloneTarget: false,
        preallocationApplied: false,
        deadlinePassed: false,
      });
      for (const p of ['/v1beta1/upload', '/v1beta1/upload-async', '/v1beta1/upload-archive']) {
        // a small body: the 409 comes before reading it
        assert.equal((await request(port, p, { body: Buffer.alloc(16), cert: pki.client })).status, 409, p);
      }
    } finally {
      await server.close();
    }
    assert.equal(await md5File(path.join(root, 'data', 'disk.img')), disk.md5);
  });

  void it('answers 400 when the image is larger than the volume, and stays up', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '2Mi' });
    const r = await request(pod.port, '/v1beta1/upload', { body: file('disk.qcow2'), cert: pki.client });
    assert.equal(r.status, 400);
    assert.match(
      r.body,
      /^Saving stream failed: effective image size is larger than the reported available storage: .*A larger PVC is required/,
    );
    const raw = await request(pod.port, '/v1beta1/upload', { body: disk.path, cert: pki.client });
    assert.equal(raw.status, 400);
    await assert.rejects(stat(path.join(pod.data, 'disk.img')));
    assert.equal((await request(pod.port, '/healthz', { method: 'GET' })).status, 200);
    pod.kill();
    await pod.exited;
  });

  void it('answers 500 for a corrupt image, HTML-escaped, and leaves no disk.img', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '8Mi' });
    const q = await readFile(file('disk.qcow2'));
    const r = await request(pod.port, '/v1beta1/upload', { body: q.subarray(0, 64 << 10), cert: pki.client });
    assert.equal(r.status, 500);
    assert.match(r.body, /^Saving stream failed: /);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    await assert.rejects(stat(path.join(pod.data, 'disk.img')));
    // an archive entry name with markup is echoed escaped
    const evil = await makeMarkupTar(dir);
    const a = await request(pod.port, '/v1beta1/upload-archive', {
      body: evil,
      cert: pki.client,
    });
    assert.ok(a.status >= 400, a.body);
    assert.ok(!a.body.includes('<script>'), a.body);
    assert.match(a.body, /&lt;script&gt;/);
    pod.kill();
    await pod.exited;
  });

  void it('checks x-cdi-checksum on the bytes received: a mismatch fails (400), the right one succeeds', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi' });
    const good = await sha256(file('disk.xz'));
    const bad = good.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const r = await request(pod.port, '/v1beta1/upload', {
      body: file('disk.xz'),
      cert: pki.client,
      headers: { 'x-cdi-checksum': `sha256:${bad}` },
    });
    assert.equal(r.status, 400);
    assert.match(r.body, new RegExp(`checksum mismatch: expected sha256:${bad}, calculated sha256:${good}`));
    await assert.rejects(stat(path.join(pod.data, 'disk.img')));
    const bogus = await request(pod.port, '/v1beta1/upload', {
      body: Buffer.alloc(10),
      cert: pki.client,
      headers: { 'x-cdi-checksum': 'crc32:1234' },
    });
    assert.equal(bogus.status, 400);
    const ok = await request(pod.port, '/v1beta1/upload', {
      body: file('disk.xz'),
      cert: pki.client,
      headers: { 'x-cdi-checksum': `sha256:${good}` },
    });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  for (const variant of ['raw', 'gz'] as const) {
    void it(`resumes a cut-off ${variant} upload where it stopped; only the rest is sent`, async () => {
      const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi' });
      const bytes = await readFile(variant === 'raw' ? disk.path : file('disk.gz'));
      const id = `test-${variant}`;
      const sum = createHash('sha256').update(bytes).digest('hex');
      const headers = { 'x-cdi-upload-id': id, 'x-cdi-checksum': `sha256:${sum}` };
      // First request: full length declared, connection dropped after about 60%.
      const sock = await rawTls(pod.port, pki.client);
      const cut = Math.floor(bytes.length * 0.6);
      sock.write(
        `POST /v1beta1/upload HTTP/1.1\r\nhost: x\r\ncontent-length: ${bytes.length}\r\nx-cdi-upload-id: ${id}\r\nx-cdi-checksum: sha256:${sum}\r\n\r\n`,
      );
      await new Promise<void>((r) => sock.write(bytes.subarray(0, cut), () => r()));
      sock.destroy();
      // The server says how much it holds, and that is what continues.
      const q = await request(pod.port, '/v1beta1/upload', { method: 'HEAD', cert: pki.client, headers });
      assert.equal(q.status, 200);
      const offset = Number(q.headers['x-cdi-upload-offset']);
      assert.ok(offset > 0 && offset <= cut, `offset ${offset}`);
      // a continuation at the wrong offset is refused with the right one
      const wrong = await request(pod.port, '/v1beta1/upload', {
        body: bytes.subarray(offset + 1),
        cert: pki.client,
        headers: { ...headers, 'x-cdi-upload-offset': String(offset + 1) },
      });
      assert.equal(wrong.status, 412);
      assert.equal(wrong.headers['x-cdi-upload-offset'], String(offset));
      const rest = await request(pod.port, '/v1beta1/upload', {
        body: bytes.subarray(offset),
        cert: pki.client,
        headers: { ...headers, 'x-cdi-upload-offset': String(offset) },
      });
      assert.equal(rest.status, 200, rest.body);
      assert.equal(await pod.exited, 0);
      assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
      assert.match(pod.log(), new RegExp(`continues at byte ${offset}`));
    });
  }

  void it('drops a cut-off upload that is not continued within the resume window; a new upload starts over', async () => {
    const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi', CDI_UPLOAD_RESUME_WINDOW: '0.2' });
    const raw = await readFile(disk.path);
    const sock = await rawTls(pod.port, pki.client);
    sock.write(
      `POST /v1beta1/upload HTTP/1.1\r\nhost: x\r\ncontent-length: ${raw.length}\r\nx-cdi-upload-id: gone\r\n\r\n`,
    );
    await new Promise<void>((r) => sock.write(raw.subarray(0, 1 << 20), () => r()));
    sock.destroy();
    while (!pod.log().includes('was not continued')) await new Promise((r) => setTimeout(r, 20));
    const q = await request(pod.port, '/v1beta1/upload', {
      method: 'HEAD',
      cert: pki.client,
      headers: { 'x-cdi-upload-id': 'gone' },
    });
    assert.equal(q.status, 500);
    assert.match(
      String(q.headers['x-cdi-upload-error']),
      /cut off after \d+ of \d+ bytes and was not continued/,
    );
    const again = await request(pod.port, '/v1beta1/upload', { body: raw, cert: pki.client });
    assert.equal(again.status, 200, again.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  void it('writes a qcow2 to a Block target (a loop device), every byte in place', async () => {
    const backing = path.join(dir, 'block.img');
    await writeFile(backing, Buffer.alloc(8 << 20, 0xee));
    let dev: string;
    try {
      dev = (await run('losetup', ['-f', '--show', backing])).stdout.trim();
    } catch (e) {
      assert.fail(
        `no loop device could be made for the Block test (needs root and /dev/loop*): ${(e as Error).message}`,
      );
    }
    try {
      const pod = await startUploadPod(dir, pki, { DESTINATION: dev }, { scratch: true });
      const r = await request(pod.port, '/v1beta1/upload', { body: file('disk.qcow2'), cert: pki.client });
      assert.equal(r.status, 200, r.body);
      assert.equal(await pod.exited, 0);
      // the seeded disk's zero regions overwrote the device's 0xee bytes too
      assert.equal(await md5File(dev, SIZE), disk.md5);
    } finally {
      await run('losetup', ['-d', dev]).catch(() => undefined);
    }
  });

  void it('exits with deadlinePassed when the deadline comes with no upload', async () => {
    const pod = await startUploadPod(dir, pki, { DEADLINE: new Date(Date.now() + 500).toISOString() });
    assert.equal(await pod.exited, 0);
    assert.equal(await pod.termination(), '{"deadlinePassed":true,"message":"Deadline Passed"}');
  });

  void it('refuses to start without its TLS files, saying which', async () => {
    await assert.rejects(startUploadPod(dir, pki, { TLS_CERT_FILE: '' }), /TLS_CERT_FILE is not set/);
  });
});
