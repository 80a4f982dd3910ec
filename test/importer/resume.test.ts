/**
 * Resumable downloads (docs/adr/0009-resumable-downloads.md) against real loopback servers that count the bytes
 * they send: a body that breaks is continued where it broke (raw, raw.gz decompressed in-process, raw.xz written by
 * the xz child, a checksum over all of it); a server without ranges restarts from byte 0 and says so; a file that
 * changes between the break and the continuation is never spliced; a killed `cdi import` or importer pod continues
 * on the next run from its progress record, which is gone after success.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { renameSync, watch } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImportError } from '../../src/importer/errors.ts';
import { runImport, type ImportResult } from '../../src/importer/import.ts';
import { HttpSource } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer, type FileServerOptions } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SIZE = 8 << 20;
let dir: string;
let src: string;
let disk: SeededDisk;
const servers: FileServer[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-resume-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'resume' });
  await makeVariant(disk.path, src, 'gz');
  await makeVariant(disk.path, src, 'xz');
});

after(async () => {
  for (const s of servers) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(o: Omit<FileServerOptions, 'root'>, root = src): Promise<FileServer> {
  const s = await startFileServer({ root, ...o });
  servers.push(s);
  return s;
}

let n = 0;
async function importFrom(
  url: string,
  extra: { checksum?: { algorithm: string; hex: string } } = {},
): Promise<{ r: ImportResult; out: string; log: string[] }> {
  const out = path.join(dir, `out-${n++}.img`);
  const log: string[] = [];
  const r = await runImport({
    source: new HttpSource({ url }),
    contentType: 'kubevirt',
    target: { kind: 'file', path: out },
    retry: { delayMs: 1 },
    log: (l) => log.push(l),
    ...extra,
  });
  return { r, out, log };
}

void describe('a body that breaks is continued where it broke', () => {
  for (const [file, decompressedBy] of [
    ['seed.raw', undefined],
    ['disk.gz', undefined],
    ['disk.xz', 'xz'],
  ] as const) {
    void it(`three drops mid-body: one image, md5 right, under 1.2x the bytes (${file})`, async () => {
      const bytes = (await stat(path.join(src, file))).size;
      const s = await serve({ etag: true, dropAfterBytes: Math.floor(bytes / 5), dropTimes: 3 });
      const sum = { algorithm: 'md5', hex: await md5File(path.join(src, file)) };
      const { r, out, log } = await importFrom(`${s.url}/${file}`, { checksum: sum });
      assert.equal(await md5File(out), disk.md5);
      assert.equal(r.resumes, 3);
      assert.equal(r.restarts, 0);
      assert.equal(r.decompressedBy, decompressedBy);
      assert.equal(
        log.filter((l) => /; continuing from byte \d+ \(attempt 1 of 5\)$/.test(l)).length,
        3,
        log.join('\n'),
      );
      assert.ok(s.bytesSent() < 1.2 * bytes, `sent ${s.bytesSent()} for ${bytes}`);
      // Each continuation asked for the rest of the same version.
      const continued = s.requests.filter((q) => q.headers['if-range'] !== undefined);
      assert.equal(continued.length, 3);
      for (const q of continued) assert.equal(q.status, 206);
    });
  }

  void it('a server that keeps breaking without a byte of progress: gives up with the reason, keeps what arrived', async () => {
    // Half of the body, then only heads: every continuation brings no byte.
    const whole = await readFile(disk.path);
    let first = true;
    const server = http.createServer((req, res) => {
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(206, {
        'content-range': `bytes ${start}-${SIZE - 1}/${SIZE}`,
        'content-length': String(SIZE - start),
        etag: '"v1"',
      });
      if (first) res.write(whole.subarray(0, SIZE / 2));
      else res.flushHeaders();
      first = false;
      setTimeout(() => res.socket?.destroy(), 20);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/disk.raw`;
    try {
      const target = path.join(dir, 'gives-up', 'disk.img');
      await mkdir(path.dirname(target));
      const log: string[] = [];
      const err = await runImport({
        source: new HttpSource({ url }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: target },
        retry: { delayMs: 1 },
        log: (l) => log.push(l),
      }).then(
        () => assert.fail('should fail'),
        (e: unknown) => e as ImportError,
      );
      assert.equal(err.kind, 'transfer');
      assert.match(
        err.message,
        /^the connection to .*disk\.raw (ended|broke) after 0 of 4194304 bytes.* \(gave up after 5 attempts to continue from byte 4194304\)$/,
      );
      // For the next run (a restarted pod): the partial file and its record, never a disk.img.
      const record = JSON.parse(await readFile(path.join(dir, 'gives-up', '.disk.img.resume'), 'utf8')) as {
        offset: number;
      };
      assert.equal(record.offset, SIZE / 2);
      assert.match(log.at(-1) ?? '', /^kept the first 4194304 bytes in .*\.disk\.img\.partial/);
      assert.equal(await stat(target).catch(() => undefined), undefined);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

void describe('a body that cannot be continued starts again from byte 0', () => {
  void it('a server without ranges: a restart, said in the log', async () => {
    const s = await serve({ ranges: false, dropAfterBytes: SIZE / 2, dropTimes: 1 });
    const { r, out, log } = await importFrom(`${s.url}/seed.raw`);
    assert.equal(await md5File(out), disk.md5);
    assert.deepEqual([r.resumes, r.restarts], [0, 1]);
    assert.equal(log.length, 1, log.join('\n'));
    assert.match(
      log[0]!,
      /^the connection to .*seed\.raw (ended|broke) after \d+ of 8388608 bytes.*; the server does not serve byte ranges: the transfer starts again from byte 0 \(restart 1 of 2\)$/,
    );
    assert.equal(s.requests.length, 2);
  });

  for (const validator of ['etag', 'last-modified'] as const) {
    void it(`the file changes between the break and the continuation (${validator}): never spliced`, async () => {
      const root = await mkdtemp(path.join(dir, 'changing-'));
      const other = await makeSeededDisk(root, { size: SIZE, seed: 'the other file', name: 'next.raw' });
      await copyFile(disk.path, path.join(root, 'disk.raw'));
      const s = await serve(
        {
          etag: validator === 'etag',
          dropAfterBytes: SIZE / 3,
          dropTimes: 1,
          // Same size, a later modification time: a new version under the same URL.
          onDrop: () => renameSync(path.join(root, 'next.raw'), path.join(root, 'disk.raw')),
        },
        root,
      );
      await utimes(path.join(root, 'next.raw'), new Date(), new Date(Date.now() + 60_000));
      const { r, out, log } = await importFrom(`${s.url}/disk.raw`);
      assert.equal(await md5File(out), other.md5, 'the new version, whole');
      assert.deepEqual([r.resumes, r.restarts], [0, 1]);
      assert.match(
        log.join('\n'),
        /cannot continue from byte \d+: it changed \(.* is now .*\): the transfer starts again/,
      );
    });
  }
});

/** The two front ends as child processes: the importer pod entrypoint and `cdi import`. */
const FRONT_ENDS = {
  pod: (url: string, data: string, sum: string) => ({
    argv: [path.join(ROOT, 'src/cmd/importer.ts')],
    env: {
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: url,
      IMPORTER_IMAGE_SIZE: '96Mi',
      IMPORTER_CHECKSUM: `md5:${sum}`,
      CDI_IMPORTER_DATA_DIR: data,
      CDI_IMPORTER_SCRATCH_DIR: path.join(data, '..', 'scratch'),
      CDI_IMPORTER_TERMINATION_LOG: path.join(data, '..', 'termination-log'),
      CDI_IMPORTER_BLOCK_PATH: path.join(data, '..', 'block'),
      CDI_IMPORTER_SECRET_HEADERS_DIR: path.join(data, '..', 'extraheaders'),
      CDI_IMPORTER_METRICS_PORT: 'off',
    },
  }),
  cdi: (url: string, data: string, sum: string) => ({
    argv: [
      path.join(ROOT, 'bin/cdi.js'),
      'import',
      url,
      '--to',
      data,
      '--checksum',
      `md5:${sum}`,
      '--no-progress',
    ],
    env: {},
  }),
};

function start(cmd: { argv: string[]; env: Record<string, string> }): {
  kill: () => void;
  done: Promise<{ code: number | null; stderr: string }>;
} {
  const child = spawn(process.execPath, cmd.argv, {
    env: { PATH: process.env.PATH ?? '', ...cmd.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return {
    kill: () => child.kill('SIGKILL'),
    done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr }))),
  };
}

/** Resolves once the progress record in `data` says at least `bytes` are on disk. */
function recordReaches(data: string, bytes: number): Promise<number> {
  return new Promise((resolve) => {
    const w = watch(data, () => {
      readFile(path.join(data, '.disk.img.resume'), 'utf8')
        .then((t) => {
          const offset = (JSON.parse(t) as { offset: number }).offset;
          if (offset >= bytes) {
            w.close();
            resolve(offset);
          }
        })
        .catch(() => undefined); // not there yet, or being replaced
    });
  });
}

void describe('a killed run is continued by the next run on the same target', () => {
  const BIG = 64 << 20;
  let big: SeededDisk;
  before(async () => {
    big = await makeSeededDisk(await mkdtemp(path.join(dir, 'big-')), { size: BIG, seed: 'killed' });
  });

  for (const frontEnd of ['pod', 'cdi'] as const) {
    void it(`${frontEnd}: killed mid-download, run again: continues (well under 2x the bytes), md5 right, no record left`, async () => {
      const s = await serve({ etag: true, throttleBytesPerSec: 24 << 20 }, path.dirname(big.path));
      const data = path.join(await mkdtemp(path.join(dir, `${frontEnd}-`)), 'data');
      await mkdir(data);
      const cmd = FRONT_ENDS[frontEnd](`${s.url}/seed.raw`, data, big.md5);

      const first = start(cmd);
      const kept = await recordReaches(data, 1);
      first.kill();
      await first.done;
      assert.equal(
        await stat(path.join(data, 'disk.img')).catch(() => undefined),
        undefined,
        'no disk.img yet',
      );
      assert.ok((await stat(path.join(data, '.disk.img.partial'))).size >= kept);
      const firstBytes = s.bytesSent();

      const second = await start(cmd).done;
      assert.equal(second.code, 0, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`continuing the download of .*seed\\.raw from byte \\d+ of ${BIG}`),
      );
      assert.equal(await md5File(path.join(data, 'disk.img'), BIG), big.md5);
      assert.deepEqual(await readdir(data), ['disk.img'], 'the record and the partial file are gone');
      const secondBytes = s.bytesSent() - firstBytes;
      assert.ok(secondBytes <= BIG - kept, `second run fetched ${secondBytes} with ${kept} kept`);
      assert.ok(s.bytesSent() < 1.5 * BIG, `sent ${s.bytesSent()} for ${BIG}`);
      const resumed = s.requests.at(-1)!;
      assert.equal(resumed.headers.range, `bytes=${BIG - secondBytes}-`);
      assert.equal(resumed.status, 206);
    });
  }
});
