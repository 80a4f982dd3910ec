/**
 * The ImportSource contract from the side of a new source: a one-way source (an HTTP request body, as the upload
 * server passes it) and a source that publishes its own digest. Both only implement the interface; the planner
 * chooses the path (plan.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import type { Checksum } from '../../src/importer/checksum.ts';
import { describe as oneLine } from '../../src/importer/errors.ts';
import { runImport, type ImportResult } from '../../src/importer/import.ts';
import { FileSource } from '../../src/importer/source/file.ts';
import type { ImportSource, SourceInfo } from '../../src/importer/source/source.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';

let dir: string;
let disk: SeededDisk;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-sources-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: 4 << 20, seed: 'sources' });
  await makeVariant(disk.path, src, 'gz');
  await makeVariant(disk.path, src, 'qcow2');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A request body: readable once, no ranges, its length from Content-Length. */
class RequestBodySource implements ImportSource {
  readonly description = 'upload';
  private readonly req: http.IncomingMessage;
  private opened = false;
  constructor(req: http.IncomingMessage) {
    this.req = req;
  }
  info(): Promise<SourceInfo> {
    const cl = this.req.headers['content-length'];
    return Promise.resolve({ ranges: false, oneWay: true, ...(cl ? { size: Number(cl) } : {}) });
  }
  open(): Promise<Readable> {
    if (this.opened) return Promise.reject(new Error('a request body can be read once'));
    this.opened = true;
    return Promise.resolve(this.req);
  }
  async close(): Promise<void> {}
}

/** POSTs `file` to a loopback server whose handler imports the request body. */
async function upload(
  file: string,
  o: { scratch: boolean },
): Promise<{ result?: ImportResult; error?: string; out: string }> {
  const out = path.join(dir, `up-${path.basename(file)}-${o.scratch}.img`);
  let outcome: { result?: ImportResult; error?: string } = {};
  const server = http.createServer((req, res) => {
    runImport({
      source: new RequestBodySource(req),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
      ...(o.scratch ? { scratchDir: path.join(dir, 'scratch') } : {}),
    }).then(
      (result) => {
        outcome = { result };
        res.end('ok');
      },
      (err: unknown) => {
        outcome = { error: oneLine(err) };
        req.resume();
        res.statusCode = 400;
        res.end();
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    const size = (await stat(file)).size;
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'content-length': size } },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      pipeline(createReadStream(file), req).catch(reject);
    });
  } finally {
    server.close();
  }
  return { ...outcome, out };
}

/** A local file that publishes a digest, as a registry publishes a layer's. */
class DigestSource extends FileSource {
  private readonly sum: Checksum;
  constructor(p: string, sum: Checksum) {
    super(p);
    this.sum = sum;
  }
  override async info(): Promise<SourceInfo> {
    const { localPath: _, ...rest } = await super.info();
    return { ...rest, ranges: false, checksum: this.sum };
  }
}

void describe('a one-way source (a request body)', () => {
  void it('raw.gz is decompressed straight to the target', async () => {
    const r = await upload(path.join(dir, 'src', 'disk.gz'), { scratch: false });
    assert.equal(r.error, undefined);
    assert.equal(r.result?.path, 'direct');
    assert.equal(await md5File(r.out), disk.md5);
  });

  void it('qcow2 goes through scratch (a body cannot be read by range), or asks for scratch space', async () => {
    const q = path.join(dir, 'src', 'disk.qcow2');
    const r = await upload(q, { scratch: true });
    assert.equal(r.error, undefined);
    assert.equal(r.result?.path, 'scratch');
    assert.equal(await md5File(r.out), disk.md5);
    const none = await upload(q, { scratch: false });
    assert.equal(none.error, 'scratch space required and none found');
  });
});

void describe('a source that publishes a digest', () => {
  void it('is verified where every byte is read: a wrong digest fails as a checksum error and leaves no target', async () => {
    const gz = path.join(dir, 'src', 'disk.gz');
    const right = createHash('sha256')
      .update(await readFile(gz))
      .digest('hex');
    const out = path.join(dir, 'digest.img');
    const ok = await runImport({
      source: new DigestSource(gz, { algorithm: 'sha256', hex: right }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
    });
    assert.equal(ok.path, 'direct');
    assert.equal(await md5File(out), disk.md5);
    await assert.rejects(
      runImport({
        source: new DigestSource(gz, { algorithm: 'sha256', hex: '0'.repeat(64) }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
      }),
      (err: Error & { kind?: string }) => err.kind === 'checksum' && /checksum mismatch/.test(err.message),
    );
    assert.equal(await stat(out).catch(() => undefined), undefined);
  });
});
