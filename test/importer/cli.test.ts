/** The `cdi` command as a user runs it (bin/cdi.js): exit codes, stdout/stderr lines, and the files it leaves. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/cdi.js');
const SIZE = 4 << 20;
let dir: string;
let src: string;
let disk: SeededDisk;
let srv: FileServer;
let auth: FileServer;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-cli-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'cli' });
  await makeVariant(disk.path, src, 'qcow2');
  await makeVariant(disk.path, src, 'xz');
  await makeVariant(disk.path, src, 'tar');
  await makeVariant(disk.path, src, 'qcow2.xz');
  srv = await startFileServer({ root: src });
  auth = await startFileServer({ root: src, basicAuth: { user: 'bob', password: 'pw' } });
});

after(async () => {
  await srv.close();
  await auth.close();
  await rm(dir, { recursive: true, force: true });
});

function cdi(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('cdi: error: '));
}

void describe('cdi import', () => {
  void it('imports qcow2 to a file of exactly --size, printing progress and a summary', async () => {
    const out = path.join(dir, 'a.img');
    const r = await cdi('import', `${srv.url}/disk.qcow2`, '--to', out, '--size', '8Mi');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^imported .*disk\.qcow2 \(qcow2, virtual size 4\.00 MiB\) to .*a\.img \(8\.00 MiB, via extents\)/,
    );
    assert.match(r.stderr, /progress: 100\.0%/);
    assert.equal((await stat(out)).size, 8 << 20);
    assert.equal(await md5File(out, SIZE), disk.md5);
  });

  void it('on a terminal, progress is one bar redrawn in place, ending at 100%', async () => {
    // `script` gives the command a pseudo-terminal (util-linux); its output is what the terminal showed.
    const out = path.join(dir, 'tty.img');
    const slow = await startFileServer({ root: src, throttleBytesPerSec: 8 << 20 });
    try {
      const cmd = [process.execPath, BIN, 'import', `${slow.url}/disk.xz`, '--to', out].join(' ');
      const child = spawn('script', ['-qefc', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let shown = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (shown += d));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0, shown);
      const frames = shown.split('\r').filter((f) => f.startsWith('['));
      assert.ok(frames.length >= 2, `several redraws of one line:\n${JSON.stringify(shown)}`);
      assert.match(frames.at(-1)!, /^\[#{30}\] 100\.0% \d+\.\d\d MiB read, .*\/s, /);
      assert.ok(
        frames.slice(0, -1).some((f) => /^\[#{0,29}\.+\] +\d+\.\d%/.test(f)),
        'a partial bar along the way',
      );
      assert.doesNotMatch(shown, /progress: /, 'no plain progress lines on a terminal');
      assert.match(shown, /imported .*disk\.xz \(xz → raw/);
    } finally {
      await slow.close();
    }
    assert.equal(await md5File(out), disk.md5);
  });

  void it('without --size the file is the virtual size; a directory target gets disk.img', async () => {
    const d = path.join(dir, 'vol');
    await mkdir(d);
    const r = await cdi('import', `${srv.url}/disk.xz`, '--to', d, '--no-progress');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal((await stat(path.join(d, 'disk.img'))).size, SIZE);
    assert.equal(await md5File(path.join(d, 'disk.img')), disk.md5);
  });

  void it('basic auth with --user and --password-file; a wrong password is one clear line and exit 1', async () => {
    const pw = path.join(dir, 'pw');
    await writeFile(pw, 'pw\n');
    const out = path.join(dir, 'auth.img');
    assert.equal(
      (await cdi('import', `${auth.url}/disk.qcow2`, '--to', out, '--user', 'bob', '--password-file', pw))
        .code,
      0,
    );
    assert.equal(await md5File(out), disk.md5);
    await writeFile(pw, 'nope');
    const bad = await cdi(
      'import',
      `${auth.url}/seed.raw`,
      '--to',
      path.join(dir, 'auth2.img'),
      '--user',
      'bob',
      '--password-file',
      pw,
    );
    assert.equal(bad.code, 1);
    assert.deepEqual(errorLines(bad.stderr), [
      `cdi: error: Unable to connect to http data source: expected status code 200, got 401. Status: 401 Unauthorized (${auth.url}/seed.raw: check the user name, password and headers)`,
    ]);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await stat(path.join(dir, 'auth2.img')).catch(() => undefined), undefined);
  });

  void it('a checksum mismatch exits 1 and leaves no target', async () => {
    const out = path.join(dir, 'sum.img');
    const r = await cdi(
      'import',
      `${srv.url}/disk.qcow2.xz`,
      '--to',
      out,
      '--checksum',
      `sha1:${'0'.repeat(40)}`,
    );
    assert.equal(r.code, 1);
    assert.match(
      errorLines(r.stderr)[0] ?? '',
      /^cdi: error: checksum validation failed: checksum mismatch: expected sha1:0{40}, calculated sha1:[0-9a-f]{40}$/,
    );
    assert.equal(await stat(out).catch(() => undefined), undefined);
  });

  void it('archive content extracts into a directory', async () => {
    const out = path.join(dir, 'extract');
    const r = await cdi('import', `${srv.url}/disk.tar`, '--to', out, '--content-type', 'archive');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await md5File(path.join(out, 'seed.raw')), disk.md5);
  });

  void it('warns when the server labels the data text/*', async () => {
    const html = await startFileServer({ root: src, contentType: 'text/html' });
    try {
      const r = await cdi(
        'import',
        `${html.url}/seed.raw`,
        '--to',
        path.join(dir, 'html.img'),
        '--no-progress',
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        r.stderr,
        "cdi: warning: Unexpected content type 'text/html'. Content might not be a KubeVirt image.\n",
      );
    } finally {
      await html.close();
    }
  });

  void it('usage errors exit 2 with one line', async () => {
    for (const args of [
      ['import', `${srv.url}/seed.raw`],
      ['import', `${srv.url}/seed.raw`, '--to', path.join(dir, 'x.img'), '--size', 'lots'],
      ['import', `${srv.url}/seed.raw`, '--to', path.join(dir, 'x.img'), '--checksum', 'crc32:1234'],
      ['import', `${srv.url}/seed.raw`, '--to', path.join(dir, 'x.img'), '--content-type', 'iso'],
      ['frobnicate'],
    ]) {
      const r = await cdi(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});

void describe('cdi inspect', () => {
  void it('reports layers, sizes and the verdict for a good image (text and --json), writing nothing', async () => {
    const r = await cdi('inspect', `${srv.url}/disk.qcow2.xz`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /layers: +xz → qcow2/);
    assert.match(r.stdout, /virtual size: +4194304/);
    assert.match(r.stdout, /accepted: +yes/);
    const j = await cdi('inspect', `${srv.url}/disk.qcow2`, '--json');
    const report = JSON.parse(j.stdout) as Record<string, unknown>;
    assert.equal(report.format, 'qcow2');
    assert.equal(report.virtualSize, SIZE);
    assert.equal(report.transfer, 'extents');
    assert.match(j.stdout, /"broken": "retry"/);
    assert.match(r.stdout, /on a break: +continued from the byte where it broke/);
    assert.equal(report.accepted, true);
    const local = JSON.parse((await cdi('inspect', path.join(src, 'disk.qcow2'), '--json')).stdout) as Record<
      string,
      unknown
    >;
    assert.equal(local.transfer, 'local');
  });

  void it('says why an image would be refused, and exits 1', async () => {
    const r = await cdi('inspect', `${srv.url}/disk.qcow2`, '--size', '1Mi');
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /accepted: +no: virtual image size 4194304 is larger than the reported available storage 1048576\. A larger PVC is required/,
    );
  });
});

void test('cdi upload without any kubeconfig says which file is missing and what to pass', async () => {
  const home = await mkdtemp(path.join(tmpdir(), 'cdi-nohome-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    delete env['KUBECONFIG'];
    delete env['KUBERNETES_SERVICE_HOST'];
    const child = spawn(
      process.execPath,
      [
        BIN,
        'upload',
        'dv',
        'disk',
        '--no-create',
        '--image-path',
        BIN,
        '--uploadproxy-url',
        'https://127.0.0.1:1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.notEqual(code, 0);
    assert.equal(
      stderr.trim(),
      `cdi: error: no kubeconfig: ${path.join(home, '.kube', 'config')} does not exist; pass --kubeconfig or set KUBECONFIG`,
    );
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
