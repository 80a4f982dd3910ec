/**
 * The registry, S3 and GCS sources through the two front ends a user meets, run as child processes against real
 * servers on loopback: the `cdi` command (import and inspect, flags, one-line errors, exit codes) and the importer
 * pod entrypoint (upstream's env contract, termination message with the image's labels, scratch protocol, and the
 * node-pull ready/done files).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFileServer, type FileServer } from '../../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../../support/images.ts';
import { buildLayout, skopeoPush, type ImageSpec, type LayerSpec } from '../../support/oci.ts';
import {
  freePort,
  startForwardProxy,
  startGcs,
  startRegistry,
  startS3,
  type RegistryServer,
  type S3Server,
  type Server,
} from '../../support/servers.ts';

const BIN = path.resolve(import.meta.dirname, '../../../bin/cdi.js');
const ENTRY = path.resolve(import.meta.dirname, '../../../src/cmd/importer.ts');
const SERVER = path.resolve(import.meta.dirname, '../../../src/importer/image-server.ts');
const SIZE = 4 << 20;
const CREDS = { accessKeyId: 'frontend-key', secretKey: 'frontend-secret-1' };

let dir: string;
let disk: SeededDisk;
let arm: SeededDisk;
let reg: RegistryServer;
let s3: S3Server;
let gcs: Server;
let files: FileServer;
let secretFile: string;

function exec(
  args: string[],
  env: Record<string, string> = {},
  onStderr?: (s: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    onStderr?.(d);
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const cdi = (...args: string[]): ReturnType<typeof exec> =>
  exec([BIN, ...args], { STORAGE_EMULATOR_HOST: gcs.address });

async function podDirs(
  scratch = false,
): Promise<{ data: string; term: string; env: Record<string, string> }> {
  const root = await mkdtemp(path.join(dir, 'pod-'));
  const data = path.join(root, 'data');
  await mkdir(data);
  if (scratch) await mkdir(path.join(root, 'scratch'));
  const term = path.join(root, 'termination-log');
  return {
    data,
    term,
    env: {
      CDI_IMPORTER_DATA_DIR: data,
      CDI_IMPORTER_SCRATCH_DIR: path.join(root, 'scratch'),
      CDI_IMPORTER_TERMINATION_LOG: term,
      CDI_IMPORTER_BLOCK_PATH: path.join(root, 'block'),
      CDI_IMPORTER_METRICS_PORT: 'off',
      IMPORTER_IMAGE_SIZE: '8Mi',
    },
  };
}

/** One pod run that must succeed with the seeded disk in disk.img; returns its log. */
async function podImport(env: Record<string, string>): Promise<string> {
  const p = await podDirs();
  const r = await exec([ENTRY], { ...p.env, ...env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
  return r.stderr;
}

const registryEnv = (tag: string): Record<string, string> => ({
  IMPORTER_SOURCE: 'registry',
  IMPORTER_ENDPOINT: `docker://${reg.address}/fe/${tag}`,
  INSECURE_TLS: 'true',
});

let s3Env: Record<string, string>;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-frontends-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'frontends' });
  const a = path.join(dir, 'arm');
  await mkdir(a);
  arm = await makeSeededDisk(a, { size: SIZE, seed: 'frontends-arm' });
  const qcow2 = await makeVariant(disk.path, src, 'qcow2');
  const gz = await makeVariant(disk.path, src, 'gz');
  const data = path.join(dir, 'gcs');
  await mkdir(path.join(data, 'gbucket'), { recursive: true });
  await copyFile(qcow2, path.join(data, 'gbucket', 'disk.qcow2'));
  [reg, s3, gcs] = await Promise.all([
    startRegistry(path.join(dir, 'registry')),
    startS3(path.join(dir, 's3'), CREDS),
    startGcs(data),
  ]);
  await mkdir(path.join(s3.root, 'sbucket'));
  await copyFile(qcow2, path.join(s3.root, 'sbucket', 'disk.qcow2'));
  files = await startFileServer({ root: src });
  s3Env = {
    IMPORTER_SOURCE: 's3',
    IMPORTER_ENDPOINT: `${s3.url}/sbucket/disk.qcow2`,
    IMPORTER_ACCESS_KEY_ID: CREDS.accessKeyId,
    IMPORTER_SECRET_KEY: CREDS.secretKey,
  };
  secretFile = path.join(dir, 'secret');
  await writeFile(secretFile, `${CREDS.secretKey}\n`);
  const disk1: LayerSpec = { compression: 'gzip', files: { 'disk/disk.img': gz } };
  const images: [string, ImageSpec[]][] = [
    [
      'raw:v1',
      [
        {
          layers: [disk1],
          env: ['KUBEVIRT_IO_OS=fedora', 'INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora'],
        },
      ],
    ],
    ['qcow2:v1', [{ layers: [{ compression: 'zstd', files: { 'disk/disk.qcow2': qcow2 } }] }]],
    [
      'multi:v1',
      [
        { arch: 'amd64', layers: [disk1] },
        { arch: 'arm64', layers: [{ compression: 'gzip', files: { 'disk/disk.img': arm.path } }] },
      ],
    ],
  ];
  for (const [tag, specs] of images) {
    await skopeoPush(
      await buildLayout(dir, tag.replace(':', '-'), specs),
      `docker://${reg.address}/fe/${tag}`,
    );
  }
});

after(async () => {
  await Promise.all([reg?.close(), s3?.close(), gcs?.close(), files?.close()]);
  await rm(dir, { recursive: true, force: true });
});

void describe('cdi import / inspect: registry, S3, GCS', () => {
  void it('imports a container disk (docker://, an insecure registry) and picks an architecture', async () => {
    const out = path.join(dir, 'cli-raw.img');
    const r = await cdi(
      'import',
      `docker://${reg.address}/fe/raw:v1`,
      '--insecure-skip-verify',
      '--to',
      out,
      '--no-progress',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^imported docker:\/\/127\.0\.0\.1:\d+\/fe\/raw:v1 \(gz → raw, .*\) to .*cli-raw\.img \(.*via direct\)/,
    );
    assert.equal(await md5File(out), disk.md5);
    const armOut = path.join(dir, 'cli-arm.img');
    const m = await cdi(
      'import',
      `docker://${reg.address}/fe/multi:v1`,
      '--insecure-skip-verify',
      '--arch',
      'arm64',
      '--to',
      armOut,
      '--no-progress',
    );
    assert.equal(m.code, 0, m.stderr);
    assert.equal(await md5File(armOut), arm.md5);
  });

  void it('fails with one error line: a plain-HTTP registry not marked insecure; --arch for a non-registry URL', async () => {
    const out = path.join(dir, 'cli-fail.img');
    const r = await cdi('import', `docker://${reg.address}/fe/raw:v1`, '--to', out, '--no-progress');
    assert.equal(r.code, 1);
    assert.deepEqual(r.stderr.split('\n').filter((l) => l.startsWith('cdi: error: ')).length, 1, r.stderr);
    assert.match(
      r.stderr,
      /^cdi: error: failed to pull image: 127\.0\.0\.1:\d+ does not answer TLS \(wrong version number\); .*--insecure-skip-verify\)$/m,
    );
    assert.equal(await stat(out).catch(() => undefined), undefined);
    const u = await cdi('import', 's3://bucket/key', '--arch', 'arm64', '--to', out);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /cdi: error: --arch is for docker:\/\/ and oci-archive:\/\/ images/);
  });

  void it('inspects a registry image: the disk inside, and how it would be moved', async () => {
    const r = await cdi('inspect', `docker://${reg.address}/fe/qcow2:v1`, '--insecure-skip-verify', '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(j.format, 'qcow2');
    assert.equal(j.virtualSize, SIZE);
    assert.equal(j.transfer, 'scratch');
    assert.equal(j.accepted, true);
  });

  void it('S3 endpoint URLs with --source s3, --user and --password-file: qcow2 by extent copy', async () => {
    const url = `${s3.url}/sbucket/disk.qcow2`;
    const out = path.join(dir, 'cli-s3.img');
    const creds = ['--user', CREDS.accessKeyId, '--password-file', secretFile];
    const r = await cdi('import', '--source', 's3', url, ...creds, '--to', out, '--no-progress');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /via extents/);
    assert.equal(await md5File(out, SIZE), disk.md5);
    const i = await cdi('inspect', '--source', 's3', url, ...creds);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /transfer: +extents/);
    const bad = await cdi('import', '--source', 's3', url, '--to', out + '.x', '--no-progress');
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /cdi: error: cannot read .*: access denied \(HTTP 403 AccessDenied\): the object is not public/,
    );
  });

  void it('gs:// URLs (STORAGE_EMULATOR_HOST): import and inspect', async () => {
    const out = path.join(dir, 'cli-gcs.img');
    const r = await cdi('import', 'gs://gbucket/disk.qcow2', '--to', out, '--no-progress');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^imported gs:\/\/gbucket\/disk\.qcow2 \(qcow2, .*via extents\)/);
    assert.equal(await md5File(out, SIZE), disk.md5);
    const i = await cdi('inspect', 'gs://gbucket/disk.qcow2');
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /format: +qcow2/);
  });
});

void describe('importer pod: registry, S3, GCS, node pull', () => {
  void it('registry: imports, and puts the image KUBEVIRT_IO_* env in the termination message as labels', async () => {
    const p = await podDirs();
    const r = await exec([ENTRY], {
      ...p.env,
      IMPORTER_SOURCE: 'registry',
      IMPORTER_ENDPOINT: `docker://${reg.address}/fe/raw:v1`,
      INSECURE_TLS: 'true',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(await readFile(p.term, 'utf8')), {
      scratchSpaceRequired: false,
      preallocationApplied: false,
      labels: { 'kubevirt.io/os': 'fedora', 'instancetype.kubevirt.io/default-preference': 'fedora' },
      message: 'Import Complete',
    });
    assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
  });

  void it('registry: a qcow2 disk asks for scratch space, then imports with it; archive content is refused', async () => {
    const env = {
      IMPORTER_SOURCE: 'registry',
      IMPORTER_ENDPOINT: `docker://${reg.address}/fe/qcow2:v1`,
      INSECURE_TLS: 'true',
      IMPORTER_REGISTRY_IMAGE_ARCHITECTURE: 'amd64',
    };
    const p = await podDirs();
    const r = await exec([ENTRY], { ...p.env, ...env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (JSON.parse(await readFile(p.term, 'utf8')) as { scratchSpaceRequired: boolean }).scratchSpaceRequired,
      true,
    );
    const q = await podDirs(true);
    const r2 = await exec([ENTRY], { ...q.env, ...env });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await md5File(path.join(q.data, 'disk.img'), SIZE), disk.md5);
    const a = await podDirs();
    const r3 = await exec([ENTRY], { ...a.env, ...env, IMPORTER_CONTENTTYPE: 'archive' });
    assert.equal(r3.code, 1);
    assert.equal(
      await readFile(a.term, 'utf8'),
      'Unable to process data: Unsupported content type archive when importing from registry',
    );
  });

  void it('registry and S3 through HTTP_PROXY (CDIConfig importProxy): a real forward proxy on loopback sees the requests', async () => {
    const proxy = await startForwardProxy();
    try {
      const seen = (part: string): void =>
        assert.ok(
          proxy.seen.some((u) => u.includes(part)),
          `proxy saw ${proxy.seen.join(', ')}`,
        );
      await podImport({ ...registryEnv('raw:v1'), http_proxy: proxy.url });
      seen('/v2/fe/raw/manifests/v1');
      seen('/v2/fe/raw/blobs/sha256:');
      await podImport({ ...s3Env, http_proxy: proxy.url });
      seen('/sbucket/disk.qcow2');
    } finally {
      await proxy.close();
    }
  });

  void it('S3 with the Secret as env, and GCS anonymously', async () => {
    assert.match(await podImport(s3Env), /via extents/);
    await podImport({ IMPORTER_SOURCE: 'gcs', IMPORTER_ENDPOINT: `${gcs.url}/gbucket/disk.qcow2` });
  });

  void it('node pull: the image server hands the disk over, its env becomes labels, the done file ends it', async () => {
    const p = await podDirs();
    const shared = await mkdtemp(path.join(dir, 'shared-'));
    const image = await mkdtemp(path.join(dir, 'image-disk-'));
    await copyFile(path.join(dir, 'src', 'disk.qcow2'), path.join(image, 'disk.qcow2'));
    const ready = path.join(shared, 'ready');
    const done = path.join(shared, 'done');
    const port = await freePort();
    // the image's server container, as the controller starts it (src/api/nodepull.ts), with the image's env
    const server = spawn(
      process.execPath,
      [SERVER, '-p', String(port), '-image-dir', image, '-ready-file', ready, '-done-file', done],
      { env: { INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE: 'u1.small' }, stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((resolve) => server.on('exit', resolve));
    const r = await exec([ENTRY], {
      ...p.env,
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `http://localhost:${port}/disk.img`,
      IMPORTER_PULL_METHOD: 'node',
      IMPORTER_READY_FILE: ready,
      IMPORTER_DONE_FILE: done,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await exited, 0, 'the done file tells the server container to exit');
    assert.equal(await md5File(path.join(p.data, 'disk.img'), SIZE), disk.md5);
    assert.deepEqual(
      (JSON.parse(await readFile(p.term, 'utf8')) as { labels?: Record<string, string> }).labels,
      { 'instancetype.kubevirt.io/default-instancetype': 'u1.small' },
    );
  });
});
