/**
 * The importer pod entrypoint (src/cmd/importer.ts) run for real as a child process on the host, with its paths
 * moved into a temporary directory: termination message, exit codes, filesystem overhead, scratch protocol,
 * blank images, and the HTTPS progress endpoint.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { usableSpace } from '../../src/importer/size.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';
import { makeTestPki } from '../support/tls.ts';

const ENTRY = path.resolve(import.meta.dirname, '../../src/cmd/importer.ts');
const SIZE = 4 << 20;
let dir: string;
let src: string;
let disk: SeededDisk;
let srv: FileServer;
let slow: FileServer;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-pod-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'pod' });
  await makeVariant(disk.path, src, 'qcow2');
  await makeVariant(disk.path, src, 'qcow2.gz');
  srv = await startFileServer({ root: src });
  slow = await startFileServer({ root: src, throttleBytesPerSec: 2 << 20 });
});

after(async () => {
  await srv.close();
  await slow.close();
  await rm(dir, { recursive: true, force: true });
});

interface Pod {
  root: string;
  data: string;
  scratch: string;
  term: string;
}

async function pod(
  opts: { scratch?: boolean; block?: number } = {},
): Promise<Pod & { env: Record<string, string> }> {
  const root = await mkdtemp(path.join(dir, 'pod-'));
  const p = {
    root,
    data: path.join(root, 'data'),
    scratch: path.join(root, 'scratch'),
    term: path.join(root, 'termination-log'),
  };
  await mkdir(p.data);
  if (opts.scratch) await mkdir(p.scratch);
  const env: Record<string, string> = {
    CDI_IMPORTER_DATA_DIR: p.data,
    CDI_IMPORTER_SCRATCH_DIR: p.scratch,
    CDI_IMPORTER_TERMINATION_LOG: p.term,
    CDI_IMPORTER_BLOCK_PATH: path.join(root, 'block'),
    CDI_IMPORTER_METRICS_PORT: 'off',
    CDI_IMPORTER_SECRET_HEADERS_DIR: path.join(root, 'extraheaders'),
  };
  if (opts.block !== undefined) await writeFile(env.CDI_IMPORTER_BLOCK_PATH!, Buffer.alloc(opts.block, 0x33));
  return { ...p, env };
}

function runPod(
  env: Record<string, string>,
  onStderr?: (s: string) => void,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [ENTRY], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr += d;
    onStderr?.(d);
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

void describe('importer pod entrypoint', () => {
  void it('imports qcow2 over http into disk.img sized by IMPORTER_IMAGE_SIZE minus filesystem overhead', async () => {
    const p = await pod();
    const { code, stderr } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/disk.qcow2`,
      IMPORTER_IMAGE_SIZE: '10Mi',
      FILESYSTEM_OVERHEAD: '0.055',
      OWNER_UID: 'uid-1',
    });
    assert.equal(code, 0, stderr);
    const term = JSON.parse(await readFile(p.term, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(term, {
      scratchSpaceRequired: false,
      preallocationApplied: false,
      message: 'Import Complete',
    });
    const img = path.join(p.data, 'disk.img');
    assert.equal((await stat(img)).size, usableSpace(0.055, 10 << 20));
    assert.equal((await stat(img)).size, 9 << 20);
    assert.equal(await md5File(img, SIZE), disk.md5);
    assert.equal((await stat(img)).mode & 0o777, 0o660);
  });

  void it('asks for scratch space (exit 0, scratchSpaceRequired) when streaming is impossible, then uses it', async () => {
    const p = await pod();
    const env = {
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/disk.qcow2.gz`,
      IMPORTER_IMAGE_SIZE: '8Mi',
    };
    const first = await runPod(env);
    assert.equal(first.code, 0);
    assert.deepEqual(JSON.parse(await readFile(p.term, 'utf8')), {
      scratchSpaceRequired: true,
      preallocationApplied: false,
      message: 'Import Complete',
    });
    assert.equal(await stat(path.join(p.data, 'disk.img')).catch(() => undefined), undefined);
    await mkdir(p.scratch);
    const second = await runPod(env);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(
      (JSON.parse(await readFile(p.term, 'utf8')) as Record<string, unknown>).scratchSpaceRequired,
      false,
    );
    assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
  });

  void it('CACHE_MODE=TRYNONE imports (with -t none where O_DIRECT works, writeback otherwise)', async () => {
    const p = await pod();
    const { code, stderr } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/disk.qcow2`,
      IMPORTER_IMAGE_SIZE: '8Mi',
      CACHE_MODE: 'TRYNONE',
    });
    assert.equal(code, 0, stderr);
    assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
  });

  void it('trusts the CAs of IMPORTER_CERT_DIR and of the proxy CA dir, and fails clearly without them', async () => {
    const pki = await makeTestPki(path.join(dir, 'pod-pki'), { ips: ['127.0.0.1'] });
    const tlsSrv = await startFileServer({ root: src, tls: { cert: pki.cert, key: pki.key } });
    try {
      for (const which of ['IMPORTER_CERT_DIR', 'CDI_IMPORTER_PROXY_CERT_DIR'] as const) {
        const p = await pod();
        const caDir = path.join(p.root, 'certs');
        await mkdir(caDir);
        await writeFile(path.join(caDir, which === 'IMPORTER_CERT_DIR' ? 'tls.crt' : 'ca.crt'), pki.caCert);
        const base = {
          ...p.env,
          IMPORTER_SOURCE: 'http',
          IMPORTER_ENDPOINT: `${tlsSrv.url}/disk.qcow2`,
          IMPORTER_IMAGE_SIZE: '8Mi',
        };
        const ok = await runPod({ ...base, [which]: caDir });
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
      }
      const p = await pod();
      const bad = await runPod({
        ...p.env,
        CDI_IMPORTER_PROXY_CERT_DIR: path.join(p.root, 'none'),
        IMPORTER_SOURCE: 'http',
        IMPORTER_ENDPOINT: `${tlsSrv.url}/disk.qcow2`,
        IMPORTER_IMAGE_SIZE: '8Mi',
      });
      assert.equal(bad.code, 1);
      assert.match(
        await readFile(p.term, 'utf8'),
        /^Unable to connect to http data source: HTTP request errored: TLS verification of 127\.0\.0\.1:\d+ failed/,
      );
    } finally {
      await tlsSrv.close();
    }
  });

  void it('a checksum mismatch is fatal: exit 0 with a JSON message, no disk.img', async () => {
    const p = await pod();
    const { code } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/seed.raw`,
      IMPORTER_CHECKSUM: `md5:${'1'.repeat(32)}`,
      IMPORTER_IMAGE_SIZE: '8Mi',
    });
    assert.equal(code, 0);
    const term = JSON.parse(await readFile(p.term, 'utf8')) as { message: string };
    assert.match(
      term.message,
      /^Unable to process data: checksum validation failed: checksum mismatch: expected md5:1{32}, calculated md5:[0-9a-f]{32}$/,
    );
    assert.equal(await stat(path.join(p.data, 'disk.img')).catch(() => undefined), undefined);
  });

  void it('a matching checksum succeeds', async () => {
    const p = await pod();
    const { code } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/seed.raw`,
      IMPORTER_CHECKSUM: `md5:${disk.md5}`,
      IMPORTER_IMAGE_SIZE: '8Mi',
    });
    assert.equal(code, 0);
    assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
  });

  void it('retryable errors exit 1 with a plain-text message', async () => {
    const p = await pod();
    const { code } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/missing.img`,
      IMPORTER_IMAGE_SIZE: '8Mi',
    });
    assert.equal(code, 1);
    assert.equal(
      await readFile(p.term, 'utf8'),
      `Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found (${srv.url}/missing.img: check the URL)`,
    );
  });

  void it('sends the secretExtraHeaders mounted under /extraheaders/<n>/ (secret volume layout) and the env headers', async () => {
    const p = await pod();
    const secret = path.join(p.env.CDI_IMPORTER_SECRET_HEADERS_DIR!, '0');
    await mkdir(path.join(secret, '..2026_01_01_00_00_00.1'), { recursive: true });
    await writeFile(path.join(secret, '..2026_01_01_00_00_00.1', 'token'), 'X-Secret: hush\n');
    await symlink('..2026_01_01_00_00_00.1', path.join(secret, '..data'));
    await symlink('..data/token', path.join(secret, 'token'));
    const guarded = await startFileServer({
      root: src,
      requireHeaders: { 'X-Secret': 'hush', 'X-Extra': 'e' },
    });
    try {
      const { code, stderr } = await runPod({
        ...p.env,
        IMPORTER_SOURCE: 'http',
        IMPORTER_ENDPOINT: `${guarded.url}/seed.raw`,
        IMPORTER_EXTRA_HEADER_0: 'X-Extra: e',
        IMPORTER_IMAGE_SIZE: '8Mi',
      });
      assert.equal(code, 0, stderr);
      assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
      assert.doesNotMatch(stderr, /hush/, 'secret header values are never logged');
    } finally {
      await guarded.close();
    }
  });

  void it("a text/html content type: upstream's warning in the log and in the termination message", async () => {
    const html = await startFileServer({ root: src, contentType: 'text/html' });
    try {
      const p = await pod();
      const { code, stderr } = await runPod({
        ...p.env,
        IMPORTER_SOURCE: 'http',
        IMPORTER_ENDPOINT: `${html.url}/seed.raw`,
        IMPORTER_IMAGE_SIZE: '8Mi',
      });
      assert.equal(code, 0, stderr);
      const warning = "Unexpected content type 'text/html'. Content might not be a KubeVirt image.";
      assert.ok(stderr.includes(warning), stderr);
      assert.deepEqual(JSON.parse(await readFile(p.term, 'utf8')), {
        scratchSpaceRequired: false,
        preallocationApplied: false,
        warnings: [warning],
        message: 'Import Complete',
      });
    } finally {
      await html.close();
    }
  });

  void it('a too-small volume fails with "A larger PVC is required"', async () => {
    const p = await pod();
    const { code } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/disk.qcow2`,
      IMPORTER_IMAGE_SIZE: '2Mi',
    });
    assert.equal(code, 1);
    assert.match(
      await readFile(p.term, 'utf8'),
      /^Unable to process data: virtual image size 4194304 is larger than the reported available storage 2097152\. A larger PVC is required$/,
    );
  });

  void it('sources that are not implemented yet fail clearly', async () => {
    const p = await pod();
    const { code } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'upload',
      IMPORTER_ENDPOINT: 'https://upload.example.invalid/',
    });
    assert.equal(code, 1);
    assert.match(
      await readFile(p.term, 'utf8'),
      /^Unable to process data: Unknown data source: upload \(not implemented yet/,
    );
  });

  void it('PREALLOCATION with a wrong value exits 1', async () => {
    const p = await pod();
    const { code } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'none',
      IMPORTER_IMAGE_SIZE: '1Mi',
      PREALLOCATION: 'maybe',
    });
    assert.equal(code, 1);
    assert.match(
      await readFile(p.term, 'utf8'),
      /PREALLOCATION environment variable is with a wrong value "maybe"/,
    );
  });

  void it('blank: a sparse file of the usable size; preallocated when asked', async () => {
    for (const pre of ['false', 'true']) {
      const p = await pod();
      const { code } = await runPod({
        ...p.env,
        IMPORTER_SOURCE: 'none',
        IMPORTER_IMAGE_SIZE: '16Mi',
        FILESYSTEM_OVERHEAD: '0',
        PREALLOCATION: pre,
      });
      assert.equal(code, 0);
      const st = await stat(path.join(p.data, 'disk.img'));
      assert.equal(st.size, 16 << 20);
      assert.equal(
        (JSON.parse(await readFile(p.term, 'utf8')) as Record<string, unknown>).preallocationApplied,
        pre === 'true',
      );
      if (pre === 'true') assert.ok(st.blocks * 512 >= 16 << 20);
      else assert.ok(st.blocks * 512 < 1 << 20);
    }
  });

  void it('block volume: writes the device (here a regular file standing in for /dev/cdi-block-volume)', async () => {
    const p = await pod({ block: 8 << 20 });
    const { code, stderr } = await runPod({
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/disk.qcow2`,
      IMPORTER_IMAGE_SIZE: '8Mi',
    });
    assert.equal(code, 0, stderr);
    assert.equal(await md5File(p.env.CDI_IMPORTER_BLOCK_PATH!, SIZE), disk.md5);
    assert.equal(await stat(path.join(p.data, 'disk.img')).catch(() => undefined), undefined);
  });

  void it('serves kubevirt_cdi_import_progress_total{ownerUID} over HTTPS while importing', async () => {
    const p = await pod();
    let port = 0;
    const samples: number[] = [];
    let scraping: Promise<void> | undefined;
    const scrape = async (): Promise<void> => {
      while (port) {
        const body = await new Promise<string>((resolve) => {
          https
            .get({ host: '127.0.0.1', port, path: '/metrics', rejectUnauthorized: false }, (res) => {
              let b = '';
              res.setEncoding('utf8');
              res.on('data', (d: string) => (b += d));
              res.on('end', () => resolve(b));
            })
            .on('error', () => resolve(''));
        });
        const m = /kubevirt_cdi_import_progress_total\{ownerUID="dv-uid-7"\} ([\d.]+)/.exec(body);
        if (m) samples.push(Number(m[1]));
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const { code } = await runPod(
      {
        ...p.env,
        CDI_IMPORTER_METRICS_PORT: '0',
        OWNER_UID: 'dv-uid-7',
        IMPORTER_SOURCE: 'http',
        IMPORTER_ENDPOINT: `${slow.url}/seed.raw`,
        IMPORTER_IMAGE_SIZE: '8Mi',
      },
      (s) => {
        const m = /metrics on https:\/\/0\.0\.0\.0:(\d+)\/metrics/.exec(s);
        if (m && !scraping) {
          port = Number(m[1]);
          scraping = scrape();
        }
      },
    );
    port = 0;
    await scraping;
    assert.equal(code, 0);
    assert.ok(samples.length > 0, 'scraped the endpoint');
    assert.ok(
      samples.some((v) => v > 0 && v < 100),
      `intermediate progress, saw ${samples.join(',')}`,
    );
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i]! >= samples[i - 1]!, 'monotonic');
  });
});
