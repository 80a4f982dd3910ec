import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nodePullProbeCommand, nodePullServerCommand } from '../api/nodepull.ts';
import { installServer } from './image-server.ts';
import { nodePullEndpoint, touchDoneFile } from './node-pull.ts';

// The server runs as the controller starts it in the user's image: the copied loader, node and server file, on port
// 8100 of loopback (the test needs that port free, as the pod does).
async function withInstalled(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'image-server-'));
  try {
    await installServer(path.join(dir, 'shared'));
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function start(dir: string, imageDir: string): { done: Promise<[number | null]>; stderr: () => string } {
  const [cmd, ...args] = nodePullServerCommand('amd64', path.join(dir, 'shared'), imageDir);
  const child = spawn(cmd!, args, { env: {}, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  return { done: once(child, 'exit') as Promise<[number | null]>, stderr: () => err };
}

void test('node pull: the copied server serves the one /disk file with ranges until the done file appears', async () => {
  await withInstalled(async (dir) => {
    const disk = path.join(dir, 'disk');
    await mkdir(disk);
    const data = randomBytes(3 << 20);
    await writeFile(path.join(disk, 'fedora.qcow2'), data);
    const srv = start(dir, disk);
    const env = {
      IMPORTER_READY_FILE: path.join(dir, 'shared', 'ready'),
      IMPORTER_DONE_FILE: path.join(dir, 'shared', 'done'),
    };
    const url = await nodePullEndpoint(env, 'http://localhost:8100/disk.img');
    assert.equal(url, 'http://localhost:8100/fedora.qcow2');
    const whole = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.equal(createHash('md5').update(whole).digest('hex'), createHash('md5').update(data).digest('hex'));
    const part = await fetch(url, { headers: { range: 'bytes=1048576-1048585' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1048576-1048585/${data.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), data.subarray(1048576, 1048586));
    assert.equal((await fetch(url, { headers: { range: `bytes=${data.length}-` } })).status, 416);
    assert.equal((await fetch('http://localhost:8100/etc/passwd')).status, 404);
    const info = (await (await fetch('http://localhost:8100/info')).json()) as { Env: string[] };
    assert.ok(Array.isArray(info.Env));
    await touchDoneFile(env);
    const [code] = await srv.done;
    assert.equal(code, 0, srv.stderr());
    // the server removes both files when it leaves
    assert.equal(await stat(env.IMPORTER_READY_FILE).catch(() => 'gone'), 'gone');
    assert.equal(await stat(env.IMPORTER_DONE_FILE).catch(() => 'gone'), 'gone');
  });
});

void test('node pull: an image with two files under /disk/ fails with a message that says so', async () => {
  await withInstalled(async (dir) => {
    const disk = path.join(dir, 'disk');
    await mkdir(disk);
    await writeFile(path.join(disk, 'a.img'), 'a');
    await writeFile(path.join(disk, 'b.img'), 'b');
    const srv = start(dir, disk);
    const [code] = await srv.done;
    assert.equal(code, 1);
    assert.match(
      srv.stderr(),
      /Invalid container image \(found 2 entries: a\.img, b\.img; a container disk has exactly one file under \/disk\/\)/,
    );
    assert.equal(await readFile(path.join(dir, 'shared', 'ready')).catch(() => 'none'), 'none');
  });
});

void test("DataImportCron node-pull poller: the copied server's -h prints the usage and exits 0, as Go's flag package", async () => {
  await withInstalled(async (dir) => {
    const [cmd, ...args] = nodePullProbeCommand('amd64', path.join(dir, 'shared'));
    assert.equal(args.at(-1), '-h');
    const child = spawn(cmd!, args, { env: {}, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, err);
    assert.match(err, /^Usage of server:/);
  });
});
