/**
 * Memory is bounded: every child's limit comes from the importer's cgroup memory limit, the generic xz path is
 * limited like the direct one, and an image whose map would be a huge plan is converted by qemu-img instead of being
 * held in memory. The cgroup tests run in a real cgroup v1 memory cgroup made by the bench's runner (root only;
 * skipped elsewhere); the reader of the cgroup files is also checked on laid-out copies of the v1 and v2 trees (plain
 * text files, as the kernel shows them).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { cgroupProblem, runInCgroup, type CgroupRun } from '../../bench/cgroup.ts';
import { ImportError } from '../../src/importer/errors.ts';
import { inspectImage } from '../../src/importer/image/validate.ts';
import { DEFAULT_LIMITS, type Limits } from '../../src/importer/image/run.ts';
import { runImport, type ImportRequest } from '../../src/importer/import.ts';
import { cgroupMemoryLimit, limitsFor } from '../../src/importer/memory.ts';
import { FileSource } from '../../src/importer/source/file.ts';
import { HttpSource } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { eventually } from '../integration/kube/cluster.ts';
import { md5File } from '../support/images.ts';
import { freePort } from '../support/servers.ts';
import { makeUploadPki, request, uploadPodFiles, UPLOAD_SERVER_ENTRY } from '../support/upload.ts';

const run = promisify(execFile);
const MiB = 1 << 20;
const ROOT = path.resolve(import.meta.dirname, '../..');
let dir: string;
let srv: FileServer;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-memory-'));
  await mkdir(path.join(dir, 'srv'));
  srv = await startFileServer({ root: path.join(dir, 'srv') });
});
after(async () => {
  await srv.close();
  await rm(dir, { recursive: true, force: true });
});

/** Lays out `files` (path → content) under a fresh directory. */
async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(dir, 'tree-'));
  for (const [p, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), text);
  }
  return root;
}

void describe('cgroupMemoryLimit', () => {
  void it('v2: memory.max of the cgroup or an ancestor, the smallest; "max" is none', async () => {
    const root = await tree({
      'cgroup.procs': '',
      'kubepods/cgroup.procs': '',
      'kubepods/memory.max': '1073741824\n',
      'kubepods/pod1/cgroup.procs': '',
      'kubepods/pod1/memory.max': 'max\n',
      'kubepods/pod1/c1/cgroup.procs': '',
      'kubepods/pod1/c1/memory.max': '629145600\n',
      self: '0::/kubepods/pod1/c1\n',
      parent: '0::/kubepods/pod1\n',
      none: '0::/\n',
    });
    const at = (self: string) => cgroupMemoryLimit({ root, self: path.join(root, self) });
    assert.deepEqual(await at('self'), {
      bytes: 629145600,
      file: path.join(root, 'kubepods/pod1/c1/memory.max'),
    });
    assert.equal((await at('parent'))?.bytes, 1073741824);
    assert.equal(await at('none'), undefined);
  });

  void it('v2 inside a container without a cgroup namespace: the mount root is the container', async () => {
    const root = await tree({
      'cgroup.procs': '',
      'memory.max': '629145600',
      self: '0::/kubepods/pod1/c1\n',
    });
    assert.equal((await cgroupMemoryLimit({ root, self: path.join(root, 'self') }))?.bytes, 629145600);
  });

  void it('v1: memory.limit_in_bytes under the memory controller; ~2^63 is none; other controllers ignored', async () => {
    const root = await tree({
      'memory/cgroup.procs': '',
      'memory/memory.limit_in_bytes': '9223372036854771712\n',
      'memory/cdi/cgroup.procs': '',
      'memory/cdi/memory.limit_in_bytes': '629145600\n',
      self: '12:pids:/x\n11:memory:/cdi\n0::/y\n',
      top: '11:memory:/\n',
      container: '11:memory:/kubepods/burstable/pod1/c1\n',
    });
    const at = (self: string) => cgroupMemoryLimit({ root, self: path.join(root, self) });
    assert.equal((await at('self'))?.bytes, 629145600);
    assert.equal(await at('top'), undefined);
    // Without a cgroup namespace the path is the host's; the mount root is the container's own cgroup.
    await writeFile(path.join(root, 'memory/memory.limit_in_bytes'), '314572800\n');
    assert.equal((await at('container'))?.bytes, 314572800);
  });

  void it('no cgroup information: none', async () => {
    assert.equal(await cgroupMemoryLimit({ root: dir, self: path.join(dir, 'does-not-exist') }), undefined);
  });
});

void describe('limitsFor', () => {
  void it('leaves a reserve for the importer and gives the rest to each child, within bounds', () => {
    assert.deepEqual(limitsFor(undefined), DEFAULT_LIMITS);
    // The pod default (600M) and 600 MiB: a quarter, at least 256 MiB, stays with Node.
    assert.equal(limitsFor(600e6).memoryBytes, 600e6 - 256 * MiB);
    assert.equal(limitsFor(600 * MiB).memoryBytes, 344 * MiB);
    assert.equal(limitsFor(2048 * MiB).memoryBytes, 1536 * MiB);
    assert.equal(
      limitsFor(64 * 1024 * MiB).memoryBytes,
      DEFAULT_LIMITS.memoryBytes,
      'never above the default',
    );
    assert.equal(limitsFor(200 * MiB).memoryBytes, 128 * MiB, 'never below what qemu-img needs');
  });
});

/**
 * A 1 KiB vdi whose header claims 400 Mi blocks: to open it, qemu-img allocates and zero-fills a 1600 MiB block map
 * (within the old 2 GiB bound, far beyond a 600 MiB pod).
 */
async function vdiBomb(out: string): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'vdi', out, '1M']);
  const b = await readFile(out);
  const blocks = 400 * MiB;
  b.writeBigUInt64LE(BigInt(blocks) * BigInt(MiB), 0x170); // disk size
  b.writeUInt32LE(blocks, 0x180); // blocks in image
  b.writeUInt32LE(0x200 + blocks * 4, 0x158); // data after the block map
  await writeFile(out, b);
}

/** Runs `argv` with `env` (and nothing else of ours) in a real 600 MiB memory cgroup (bench/cgroup.ts). */
async function inCgroup(
  t: TestContext,
  env: Record<string, string>,
  argv: string[],
  signal?: AbortSignal,
): Promise<CgroupRun | undefined> {
  const problem = cgroupProblem();
  if (problem) {
    t.skip(problem);
    return undefined;
  }
  const vars = Object.entries({ PATH: process.env.PATH ?? '', ...env }).map(([k, v]) => `${k}=${v}`);
  return runInCgroup(['env', '-i', ...vars, ...argv], { memoryBytes: 600 * MiB }, signal ? { signal } : {});
}

void describe('in a real memory cgroup of 600 MiB', () => {
  void it('the importer reads its own limit', async (t) => {
    const out = path.join(dir, 'limit.txt');
    const code = `import { cgroupMemoryLimit } from '${ROOT}/src/importer/memory.ts'; import { writeFileSync } from 'node:fs'; writeFileSync('${out}', String((await cgroupMemoryLimit())?.bytes));`;
    const r = await inCgroup(t, {}, [process.execPath, '--input-type=module', '-e', code]);
    if (!r) return;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(out, 'utf8'), String(600 * MiB));
  });

  void it('the pod refuses an image that needs more memory than its children may use, and nothing is OOM-killed', async (t) => {
    await vdiBomb(path.join(dir, 'srv', 'bomb.vdi'));
    const root = await mkdtemp(path.join(dir, 'pod-'));
    await mkdir(path.join(root, 'data'));
    const term = path.join(root, 'termination-log');
    const env = {
      IMPORTER_SOURCE: 'http',
      IMPORTER_ENDPOINT: `${srv.url}/bomb.vdi`,
      CDI_IMPORTER_DATA_DIR: path.join(root, 'data'),
      CDI_IMPORTER_SCRATCH_DIR: path.join(root, 'scratch'),
      CDI_IMPORTER_TERMINATION_LOG: term,
      CDI_IMPORTER_BLOCK_PATH: path.join(root, 'block'),
      CDI_IMPORTER_METRICS_PORT: 'off',
    };
    const r = await inCgroup(t, env, [process.execPath, `${ROOT}/src/cmd/importer.ts`]);
    if (!r) return;
    assert.match(
      r.stderr,
      /memory limit 600 MiB \(.*memory\.(limit_in_bytes|max)\): each qemu-img\/xz child gets at most 344 MiB/,
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      await readFile(term, 'utf8'),
      /^Unable to process data: the vdi image needs more memory than the 344 MiB a child process of the importer may use .*raise the importer pod's memory limit/,
    );
    assert.equal(r.oomKills, 0, 'something in the pod was OOM-killed');
  });

  void it('the upload server pod sizes its children from its limit too, and refuses the same image', async (t) => {
    const problem = cgroupProblem();
    if (problem) return t.skip(problem);
    const bomb = path.join(dir, 'srv', 'upload-bomb.vdi');
    await vdiBomb(bomb);
    const pki = await makeUploadPki();
    const port = await freePort();
    const pod = await uploadPodFiles(dir, pki, { LISTEN_PORT: String(port) });
    const stop = new AbortController();
    const running = inCgroup(t, pod.env, [process.execPath, UPLOAD_SERVER_ENTRY], stop.signal);
    try {
      await eventually('the upload server listens', () =>
        request(port, '/healthz', { method: 'GET', cert: pki.client }),
      );
      const r = await request(port, '/v1beta1/upload', { body: bomb, cert: pki.client });
      assert.equal(r.status, 500, r.body);
      assert.match(
        r.body,
        // (the body is HTML-escaped, as everything the server echoes)
        /the vdi image needs more memory than the 344 MiB a child process of the importer may use .*raise the importer pod&#39;s memory limit/,
      );
    } finally {
      stop.abort();
    }
    const done = await running;
    assert.ok(done);
    assert.match(done.stderr, /memory limit 600 MiB \(.*\): each qemu-img\/xz child gets at most 344 MiB/);
    assert.equal(done.oomKills, 0, 'something in the pod was OOM-killed');
  });
});

void describe('xz on every path is bounded by the child memory limit', () => {
  const small: Limits = { ...DEFAULT_LIMITS, memoryBytes: 128 * MiB };

  /** `input` compressed by xz with a 256 MiB dictionary (the decoder needs 257 MiB). */
  async function bigDictionary(input: string, name: string): Promise<string> {
    const out = path.join(dir, 'srv', name);
    await run('sh', ['-c', `xz --lzma2=preset=1,dict=256MiB -c < '${input}' > '${out}'`]);
    return out;
  }

  async function refused(req: Omit<ImportRequest, 'limits'>): Promise<string> {
    const err = await runImport({ ...req, limits: small }).then(
      () => assert.fail('should be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ImportError, String(err));
    return err.message;
  }

  void it('raw.xz (the decompressor writes the target, or the generic path after it)', async () => {
    const raw = path.join(dir, 'some.raw');
    await writeFile(raw, Buffer.alloc(MiB, 7));
    const xz = await bigDictionary(raw, 'dict.raw.xz');
    const msg = await refused({
      source: new FileSource(xz),
      contentType: 'kubevirt',
      target: { kind: 'file', path: path.join(dir, 'dict.img') },
    });
    assert.match(
      msg,
      /^the xz data needs more memory than the 128 MiB a child process of the importer may use/,
    );
  });

  void it('qcow2.xz and tar.xz (the generic path: xz piped into the scratch copy or the extractor)', async () => {
    const qcow2 = path.join(dir, 'some.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '1M']);
    const tarball = path.join(dir, 'some.tar');
    await run('tar', ['-C', dir, '-cf', tarball, 'some.qcow2']);
    for (const [file, contentType, target] of [
      [
        await bigDictionary(qcow2, 'dict.qcow2.xz'),
        'kubevirt',
        { kind: 'file', path: path.join(dir, 'q.img') },
      ],
      [await bigDictionary(tarball, 'dict.tar.xz'), 'archive', { kind: 'dir', path: path.join(dir, 'x') }],
    ] as const) {
      const msg = await refused({
        source: new FileSource(file),
        contentType,
        target,
        scratchDir: path.join(dir, 'scratch'),
      });
      assert.match(msg, /^the xz data needs more memory than the 128 MiB/, file);
    }
  });
});

void describe('an extent plan too large to hold', () => {
  void it('is given up for qemu-img convert over NBD (same bytes), with a log line', async () => {
    const qcow2 = path.join(dir, 'srv', 'alternating.qcow2');
    const raw = path.join(dir, 'alternating.raw');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '8M']);
    await run('qemu-img', ['create', '-q', '-f', 'raw', raw, '8M']);
    const writes = Array.from({ length: 32 }, (_, i) => ['-c', `write -P ${i + 1} ${i * 128}k 64k`]).flat();
    await run('qemu-io', ['-f', 'qcow2', ...writes, qcow2]);
    await run('qemu-io', ['-f', 'raw', ...writes, raw]);
    const bounded: Limits = { ...DEFAULT_LIMITS, maxExtents: 16 };
    const log: string[] = [];
    const importIt = async (limits: Limits) => {
      const out = path.join(dir, `alternating-${limits.maxExtents ?? 'default'}.img`);
      const r = await runImport({
        source: new HttpSource({ url: `${srv.url}/alternating.qcow2` }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        limits,
        log: (l) => log.push(l),
      });
      assert.equal(await md5File(out), await md5File(raw));
      return r.path;
    };
    assert.equal(await importIt(DEFAULT_LIMITS), 'extents');
    assert.deepEqual(log, []);
    // The planner's range path keeps the bound: the plan is given up after validation, and the import log says so.
    assert.equal(await importIt(bounded), 'nbd');
    assert.deepEqual(log, [
      'the qcow2 image maps to 64 extents, more than the 16 a copy plan may hold: qemu-img converts it instead',
    ]);
    const lines: string[] = [];
    const facts = await inspectImage('qcow2', { file: qcow2 }, undefined, undefined, bounded, (l) =>
      lines.push(l),
    );
    assert.equal(facts.extents, undefined);
    assert.deepEqual(lines, [
      'the qcow2 image maps to 64 extents, more than the 16 a copy plan may hold: qemu-img converts it instead',
    ]);
  });
});
