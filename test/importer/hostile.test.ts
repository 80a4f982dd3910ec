/**
 * Hostile and broken inputs are refused with a clear message, nothing that looks complete is left behind, and no
 * host file named by an image is ever opened (the sentinels are FIFOs that record any open).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  mkdir,
  mkdtemp,
  open,
  readFile,
  readdir,
  rm,
  stat,
  truncate,
  unlink,
  writeFile,
  copyFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { ImportError } from '../../src/importer/errors.ts';
import { convert } from '../../src/importer/image/qemu.ts';
import { DEFAULT_LIMITS } from '../../src/importer/image/run.ts';
import { runImport, type ImportRequest } from '../../src/importer/import.ts';
import { FileSource } from '../../src/importer/source/file.ts';
import { HttpSource } from '../../src/importer/source/http.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../support/images.ts';
import {
  qcow2DataFileWithoutBit,
  vdiDifferencing,
  vhdDifferencing,
  vhdxDifferencing,
  VMDK_DESCRIPTOR_TYPES,
  vmdkDescriptor,
  vmdkEmbeddedDescriptor,
  vmdkParentHint,
} from '../support/hostile-images.ts';
import { makeSentinel, makeSocketSentinel, type Sentinel } from '../support/sentinel.ts';
import { packTar, type TarEntry } from '../support/tar.ts';

const run = promisify(execFile);
const SIZE = 4 << 20;
let dir: string;
let src: string;
let disk: SeededDisk;
let ranged: FileServer;
let plain: FileServer;
const sentinels: Sentinel[] = [];

/** `qemu-img create` of an image that names `backing` (of `backingFormat`) as its backing file. */
async function createOverlay(
  format: string,
  out: string,
  backing: string,
  backingFormat: string,
  o: { unsafe?: boolean; size?: number } = {},
): Promise<void> {
  await run('qemu-img', [
    'create',
    '-q',
    '-f',
    format,
    ...(o.unsafe ? ['-u'] : []),
    '-b',
    backing,
    '-F',
    backingFormat,
    out,
    ...(o.size !== undefined ? [`${o.size}`] : []),
  ]);
}

async function sentinel(name: string): Promise<Sentinel> {
  const s = await makeSentinel(path.join(dir, name));
  sentinels.push(s);
  return s;
}

async function socketSentinel(name: string): Promise<Sentinel> {
  const s = await makeSocketSentinel(path.join(dir, name));
  sentinels.push(s);
  return s;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-hostile-'));
  src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'hostile' });
  await makeVariant(disk.path, src, 'qcow2');
  ranged = await startFileServer({ root: src });
  plain = await startFileServer({ root: src, ranges: false });
});

after(async () => {
  for (const s of sentinels) s.close();
  await ranged.close();
  await plain.close();
  await rm(dir, { recursive: true, force: true });
});

type Where = 'ranged' | 'plain' | 'local';
const WHERE: Where[] = ['ranged', 'plain', 'local'];

async function attempt(
  file: string,
  where: Where,
  extra: Partial<ImportRequest> = {},
): Promise<{ err: ImportError; out: string }> {
  const out = path.join(
    dir,
    `out-${path.basename(file)}-${where}-${Math.random().toString(36).slice(2)}.img`,
  );
  const source =
    where === 'local'
      ? new FileSource(path.join(src, file))
      : new HttpSource({ url: `${where === 'ranged' ? ranged.url : plain.url}/${file}` });
  const err = await runImport({
    source,
    contentType: 'kubevirt',
    target: { kind: 'file', path: out },
    scratchDir: path.join(dir, 'scratch'),
    ...extra,
  }).then(
    () => assert.fail('the import should have been refused'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ImportError, `expected an ImportError, got ${String(err)}`);
  assert.doesNotMatch(err.message, /\n/, 'one line');
  assert.equal(await stat(out).catch(() => undefined), undefined, 'no target left behind');
  assert.equal(
    await stat(path.join(dir, `.${path.basename(out)}.partial`)).catch(() => undefined),
    undefined,
  );
  return { err, out };
}

void describe('images that point at host files', () => {
  void it('qcow2 with a backing file is refused without opening it', async () => {
    const s = await sentinel('backing-sentinel');
    await createOverlay('qcow2', path.join(src, 'backing.qcow2'), s.path, 'raw', {
      unsafe: true,
      size: SIZE,
    });
    for (const w of WHERE) {
      const { err } = await attempt('backing.qcow2', w);
      assert.match(err.message, /backing file/);
    }
    assert.equal(await s.wasOpened(), false, 'the backing file was opened');
  });

  void it('qcow2 whose backing file is a json: filename is refused', async () => {
    const s = await sentinel('json-sentinel');
    const spec = `json:{"driver":"raw","file":{"driver":"file","filename":"${s.path}"}}`;
    await createOverlay('qcow2', path.join(src, 'json.qcow2'), spec, 'raw', { unsafe: true, size: SIZE });
    for (const w of WHERE) assert.match((await attempt('json.qcow2', w)).err.message, /backing file/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('qcow2 with an external data file is refused without opening it', async () => {
    const dataPath = path.join(dir, 'data-sentinel');
    await run('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      `data_file=${dataPath},data_file_raw=on`,
      path.join(src, 'datafile.qcow2'),
      `${SIZE}`,
    ]);
    await unlink(dataPath);
    const s = await sentinel('data-sentinel');
    for (const w of WHERE)
      assert.match((await attempt('datafile.qcow2', w)).err.message, /external data file/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('a vmdk descriptor naming an extent on the host is refused without opening it', async () => {
    const s = await sentinel('extent-sentinel');
    await writeFile(
      path.join(src, 'descriptor.vmdk'),
      `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW ${SIZE / 512} FLAT "${s.path}" 0\n\nddb.virtualHWVersion = "4"\n`,
    );
    for (const w of WHERE)
      assert.match((await attempt('descriptor.vmdk', w)).err.message, /descriptor|extent/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('a sparse vmdk with a parent (backing) is refused without opening the parent', async () => {
    const parent = path.join(dir, 'parent-sentinel');
    await run('qemu-img', ['create', '-q', '-f', 'vmdk', parent, `${SIZE}`]);
    await createOverlay('vmdk', path.join(src, 'child.vmdk'), parent, 'vmdk');
    await unlink(parent);
    const s = await sentinel('parent-sentinel');
    for (const w of WHERE) assert.match((await attempt('child.vmdk', w)).err.message, /backing file/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('defence in depth: even a direct convert of a qcow2 with a backing file does not read it', async () => {
    const base = path.join(dir, 'base.raw');
    await writeFile(base, Buffer.alloc(SIZE, 0x5a));
    const top = path.join(dir, 'top.qcow2');
    await createOverlay('qcow2', top, base, 'raw', { size: SIZE });
    const out = path.join(dir, 'top.raw');
    await convert({
      format: 'qcow2',
      from: { file: top },
      to: out,
      existingTarget: false,
      cache: 'writeback',
      preallocate: false,
      limits: DEFAULT_LIMITS,
    });
    assert.notEqual(await md5File(out), await md5File(base));
    assert.equal(
      await md5File(out),
      await md5File(
        await (async () => {
          const z = path.join(dir, 'zero.raw');
          await writeFile(z, Buffer.alloc(SIZE));
          return z;
        })(),
      ),
    );
  });
});

/** Every other place one of the sniffed formats lets an image name a file or an endpoint (validate.ts lists them). */
void describe('images that name host files or endpoints in other places', () => {
  for (const [createType, kind] of VMDK_DESCRIPTOR_TYPES) {
    void it(`a sparse vmdk header embedding a ${createType} descriptor is refused without opening its extent`, async () => {
      const s = await sentinel(`embedded-${createType}`);
      const name = `embedded-${createType}.vmdk`;
      await vmdkEmbeddedDescriptor(path.join(src, name), vmdkDescriptor(createType, kind, s.path));
      for (const w of WHERE)
        assert.match((await attempt(name, w)).err.message, /embeds a descriptor.*single-file vmdk/);
      assert.equal(await s.wasOpened(), false, 'qemu-img opened the extent named by the embedded descriptor');
    });

    void it(`a ${createType} text descriptor is refused without opening its extent`, async () => {
      const s = await sentinel(`descriptor-${createType}`);
      const name = `descriptor-${createType}.vmdk`;
      await writeFile(path.join(src, name), vmdkDescriptor(createType, kind, s.path));
      assert.match((await attempt(name, 'ranged')).err.message, /text descriptor/);
      assert.equal(await s.wasOpened(), false);
    });
  }

  void it('a descriptor without its comment line is not a vmdk: its bytes are copied as raw data', async () => {
    const s = await sentinel('descriptor-plain');
    const text = vmdkDescriptor('monolithicFlat', 'FLAT', s.path).replace('# Disk DescriptorFile\n', '');
    await writeFile(path.join(src, 'plain-descriptor.vmdk'), text);
    const out = path.join(dir, 'plain-descriptor.img');
    const r = await runImport({
      source: new HttpSource({ url: `${ranged.url}/plain-descriptor.vmdk` }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
    });
    assert.equal(r.format, 'raw');
    assert.equal(await readFile(out, 'utf8'), text);
    assert.equal(await s.wasOpened(), false);
  });

  void it('an extent named by a json: filename in an embedded descriptor is refused without opening it', async () => {
    const s = await sentinel('embedded-json');
    const spec = `json:{\\"driver\\":\\"file\\",\\"filename\\":\\"${s.path}\\"}`;
    await vmdkEmbeddedDescriptor(
      path.join(src, 'embedded-json.vmdk'),
      vmdkDescriptor('monolithicFlat', 'FLAT', spec),
    );
    for (const w of WHERE)
      assert.match((await attempt('embedded-json.vmdk', w)).err.message, /embeds a descriptor/);
    assert.equal(await s.wasOpened(), false);
  });

  for (const [label, name] of [
    ['nbd:unix:', (p: string) => `nbd:unix:${p}`],
    ['json: nbd', (p: string) => `json:{"driver":"nbd","server":{"type":"unix","path":"${p}"}}`],
  ] as const) {
    void it(`qcow2 whose backing file is a ${label} name is refused without connecting`, async () => {
      const s = await socketSentinel(`backing-${label.replace(/\W/g, '')}.sock`);
      const file = `backing-${label.replace(/\W/g, '')}.qcow2`;
      await createOverlay('qcow2', path.join(src, file), name(s.path), 'raw', { unsafe: true, size: SIZE });
      for (const w of WHERE) assert.match((await attempt(file, w)).err.message, /backing file/);
      assert.equal(await s.wasOpened(), false, 'qemu-img connected to the socket');
    });
  }

  void it('a vmdk whose parentFileNameHint is an nbd+unix:// URL is refused without connecting', async () => {
    const s = await socketSentinel('hint.sock');
    await vmdkParentHint(path.join(src, 'hint.vmdk'), `nbd+unix:///?socket=${s.path}`);
    for (const w of WHERE)
      assert.match((await attempt('hint.vmdk', w)).err.message, /backing file.*nbd\+unix/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('a qcow2 that names a data file without the feature bit never opens it', async () => {
    const dataPath = path.join(dir, 'nobit-sentinel');
    await qcow2DataFileWithoutBit(path.join(src, 'nobit.qcow2'), dataPath);
    const s = await sentinel('nobit-sentinel');
    for (const w of WHERE) assert.match((await attempt('nobit.qcow2', w)).err.message, /external data file/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('a differencing vhd is refused without opening its parent (qemu would read it as a dynamic disk)', async () => {
    const s = await sentinel('vhd-parent');
    await vhdDifferencing(path.join(src, 'diff.vhd'), s.path);
    for (const w of WHERE)
      assert.match((await attempt('diff.vhd', w)).err.message, /differencing disk that needs its parent/);
    assert.equal(await s.wasOpened(), false);
  });

  void it('a differencing vhdx (parent locator) is refused without opening its parent', async () => {
    const s = await sentinel('vhdx-parent');
    await vhdxDifferencing(path.join(src, 'diff.vhdx'), s.path);
    for (const w of WHERE)
      assert.match(
        (await attempt('diff.vhdx', w)).err.message,
        /^qemu-img execution failed: .*not supported.*: exit status 1 \(not a valid vhdx image\)$/,
      );
    assert.equal(await s.wasOpened(), false);
  });

  void it('a differencing vdi (parent UUID) is refused', async () => {
    await vdiDifferencing(path.join(src, 'diff.vdi'));
    for (const w of WHERE)
      assert.match((await attempt('diff.vdi', w)).err.message, /differencing image that needs its parent/);
  });

  void it('a qed with a backing file is never given to qemu-img: its bytes are copied as raw data', async () => {
    const s = await sentinel('qed-backing');
    await createOverlay('qed', path.join(src, 'backing.qed'), s.path, 'raw', { unsafe: true, size: SIZE });
    const out = path.join(dir, 'qed.img');
    const r = await runImport({
      source: new HttpSource({ url: `${ranged.url}/backing.qed` }),
      contentType: 'kubevirt',
      target: { kind: 'file', path: out },
    });
    assert.equal(r.format, 'raw');
    assert.equal(await md5File(out), await md5File(path.join(src, 'backing.qed')));
    assert.equal(await s.wasOpened(), false);
  });
});

void describe('corrupt and oversized images', () => {
  void it('a truncated qcow2 is refused', async () => {
    await copyFile(path.join(src, 'disk.qcow2'), path.join(src, 'truncated.qcow2'));
    const full = (await stat(path.join(src, 'truncated.qcow2'))).size;
    await truncate(path.join(src, 'truncated.qcow2'), Math.floor(full / 2));
    for (const w of WHERE)
      assert.match((await attempt('truncated.qcow2', w)).err.message, /truncated|corrupt|not a valid/);
  });

  void it('a qcow2 header on garbage is refused', async () => {
    const buf = Buffer.alloc(1 << 20, 0xff);
    Buffer.from('QFI\xfb', 'latin1').copy(buf, 0);
    buf.writeUInt32BE(3, 4);
    buf.writeUInt32BE(0, 16);
    await writeFile(path.join(src, 'garbage.qcow2'), buf);
    for (const w of WHERE) assert.match((await attempt('garbage.qcow2', w)).err.message, /qcow2/);
  });

  void it('an image larger than the space is refused, naming both sizes', async () => {
    for (const w of WHERE) {
      const { err } = await attempt('disk.qcow2', w, { available: SIZE / 2, size: SIZE / 2 });
      assert.match(err.message, new RegExp(`${SIZE}.*${SIZE / 2}.*A larger PVC is required`));
    }
    const { err } = await attempt('seed.raw', 'ranged', { available: SIZE / 2 });
    assert.match(err.message, /A larger PVC is required/);
  });

  void it('a decompression bomb is stopped once it passes the volume size', async () => {
    await writeFile(path.join(src, 'bomb.gz'), zlib.gzipSync(Buffer.alloc(256 << 20), { level: 9 }));
    const { err } = await attempt('bomb.gz', 'ranged', { available: SIZE, size: SIZE });
    assert.match(err.message, /larger than the reported available storage 4194304 /);
  });

  void it('a compressed qcow2 bomb is stopped before it fills the scratch space', async () => {
    const body = Buffer.alloc(256 << 20);
    Buffer.from('QFI\xfb', 'latin1').copy(body, 0);
    body.writeUInt32BE(3, 4);
    await writeFile(path.join(src, 'bomb.qcow2.gz'), zlib.gzipSync(body, { level: 9 }));
    const { err } = await attempt('bomb.qcow2.gz', 'ranged', { available: SIZE, size: SIZE });
    assert.match(err.message, /larger than the reported available storage \d+ /);
    assert.deepEqual(await readdir(path.join(dir, 'scratch')), [], 'the scratch copy is removed');
  });

  void it('a checksum mismatch is fatal and leaves nothing', async () => {
    for (const [file, w] of [
      ['seed.raw', 'ranged'],
      ['disk.qcow2', 'ranged'],
      ['disk.qcow2', 'local'],
    ] as const) {
      const { err } = await attempt(file, w, { checksum: { algorithm: 'sha256', hex: '0'.repeat(64) } });
      assert.equal(err.kind, 'checksum');
      assert.match(
        err.message,
        /^checksum validation failed: checksum mismatch: expected sha256:0{64}, calculated sha256:[0-9a-f]{64}$/,
      );
    }
  });
});

/** raw.xz / raw.zst written by the decompressor child (format/direct.ts): the same refusals, nothing left behind. */
void describe('compressed raw written by the decompressor', () => {
  /** `name` compressed with xz or zstd from `input` (a file under src). */
  async function compressed(input: string, kind: 'xz' | 'zst', name: string): Promise<string> {
    const tool = kind === 'xz' ? 'xz -T0 -c' : 'zstd -q -c';
    await run('sh', ['-c', `${tool} '${path.join(src, input)}' > '${path.join(src, name)}'`]);
    return name;
  }

  for (const kind of ['xz', 'zst'] as const) {
    void it(`${kind}: a bomb (64 MiB of zeros, 8 MiB of space) is refused as needing a larger PVC`, async () => {
      await writeFile(path.join(src, 'zeros64.raw'), Buffer.alloc(64 << 20));
      const name = await compressed('zeros64.raw', kind, `bomb-direct.raw.${kind}`);
      for (const w of ['ranged', 'local'] as const) {
        const { err } = await attempt(name, w, { available: 8 << 20, size: 8 << 20 });
        assert.equal(
          err.message,
          'the image is larger than the reported available storage 8388608 (it kept going past it). A larger PVC is required',
        );
      }
    });

    void it(`${kind}: one byte more than the space is refused, exactly the space is accepted`, async () => {
      const name = await compressed('seed.raw', kind, `disk-direct.raw.${kind}`);
      const { err } = await attempt(name, 'ranged', { available: SIZE - 1 });
      assert.match(
        err.message,
        new RegExp(`reported available storage ${SIZE - 1} .*A larger PVC is required`),
      );
      const out = path.join(dir, `exact-${kind}.img`);
      const r = await runImport({
        source: new HttpSource({ url: `${ranged.url}/${name}` }),
        contentType: 'kubevirt',
        target: { kind: 'file', path: out },
        available: SIZE,
      });
      assert.equal(r.decompressedBy, kind === 'xz' ? 'xz' : 'zstd');
      assert.equal(await md5File(out), disk.md5);
    });

    void it(`${kind}: truncated data is refused as corrupt or truncated`, async () => {
      const name = await compressed('seed.raw', kind, `truncated.raw.${kind}`);
      const full = (await stat(path.join(src, name))).size;
      await truncate(path.join(src, name), Math.floor(full / 2));
      for (const w of ['ranged', 'local'] as const) {
        const { err } = await attempt(name, w);
        assert.match(err.message, new RegExp(`^the ${kind} data is corrupt or truncated: .+`));
      }
    });

    void it(`${kind}: corrupted bytes in the middle are refused as corrupt`, async () => {
      const name = await compressed('seed.raw', kind, `corrupt.raw.${kind}`);
      const p = path.join(src, name);
      const fh = await open(p, 'r+');
      const { size } = await fh.stat();
      await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(size / 3));
      await fh.close();
      const { err } = await attempt(name, 'ranged');
      assert.match(err.message, new RegExp(`^the ${kind} data is corrupt or truncated: .+`));
    });

    void it(`${kind}: garbage right after the magic is refused as corrupt (by the generic path)`, async () => {
      const magic = kind === 'xz' ? Buffer.from('fd377a585a00', 'hex') : Buffer.from('28b52ffd', 'hex');
      await writeFile(
        path.join(src, `garbage.raw.${kind}`),
        Buffer.concat([magic, Buffer.alloc(4096, 0x47)]),
      );
      const { err } = await attempt(`garbage.raw.${kind}`, 'ranged');
      assert.match(err.message, new RegExp(`^the ${kind} data is corrupt or truncated: .+`));
    });

    void it(`${kind}: a checksum mismatch is fatal and leaves nothing`, async () => {
      const name = await compressed('seed.raw', kind, `sum.raw.${kind}`);
      const { err } = await attempt(name, 'ranged', { checksum: { algorithm: 'md5', hex: '0'.repeat(32) } });
      assert.equal(err.kind, 'checksum');
      assert.match(
        err.message,
        /^checksum validation failed: checksum mismatch: expected md5:0{32}, calculated md5:[0-9a-f]{32}$/,
      );
    });

    void it(`${kind}: a connection dropped mid-body is a transfer error and leaves nothing`, async () => {
      const name = await compressed('seed.raw', kind, `drop.raw.${kind}`);
      // Without ranges a break cannot be continued (resumed bodies: test/importer/resume.test.ts).
      const dropping = await startFileServer({ root: src, dropAfterBytes: 1 << 20, ranges: false });
      try {
        const out = path.join(dir, `drop-${kind}.img`);
        const err = await runImport({
          source: new HttpSource({ url: `${dropping.url}/${name}` }),
          contentType: 'kubevirt',
          target: { kind: 'file', path: out },
        }).then(
          () => assert.fail('the import should have failed'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof ImportError);
        assert.equal(err.kind, 'transfer');
        assert.match(err.message, /broke after|ended after/);
        assert.equal(await stat(out).catch(() => undefined), undefined);
        assert.equal(
          await stat(path.join(dir, `.drop-${kind}.img.partial`)).catch(() => undefined),
          undefined,
        );
      } finally {
        await dropping.close();
      }
    });
  }
});

void describe('unsafe archives', () => {
  async function makeTar(name: string, entries: TarEntry[]): Promise<void> {
    await writeFile(path.join(src, name), await packTar(entries));
  }

  const cases: [string, TarEntry[], RegExp][] = [
    [
      'traversal.tar',
      [
        { name: 'ok.txt', body: 'ok' },
        { name: '../escaped.txt', body: 'x' },
      ],
      /climbs out/,
    ],
    ['absolute.tar', [{ name: '/tmp/cdi-absolute-escape.txt', body: 'x' }], /absolute path/],
    ['symlink-out.tar', [{ name: 'etc', type: 'symlink', linkname: '/etc' }], /absolute path/],
    ['symlink-up.tar', [{ name: 'up', type: 'symlink', linkname: '../../..' }], /outside the target/],
    [
      'symlink-then-write.tar',
      [
        { name: 'd', type: 'symlink', linkname: '.' },
        { name: 'd', body: 'x' },
      ],
      /through the symbolic link "d"/,
    ],
    ['hardlink-out.tar', [{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }], /absolute path/],
    ['device.tar', [{ name: 'null', type: 'character-device' }], /character-device/],
    ['fifo.tar', [{ name: 'pipe', type: 'fifo' }], /fifo/],
  ];
  for (const [name, entries, re] of cases) {
    void it(`${name} is refused and nothing is left`, async () => {
      await makeTar(name, entries);
      const out = path.join(dir, `extract-${name}`);
      const err = await runImport({
        source: new HttpSource({ url: `${ranged.url}/${name}` }),
        contentType: 'archive',
        target: { kind: 'dir', path: out },
      }).then(
        () => assert.fail('should be refused'),
        (e: unknown) => e as ImportError,
      );
      assert.match(err.message, re);
      assert.deepEqual(await readdir(out), []);
      assert.equal(await stat(path.join(dir, 'escaped.txt')).catch(() => undefined), undefined);
      assert.equal(await stat('/tmp/cdi-absolute-escape.txt').catch(() => undefined), undefined);
    });
  }

  void it('archive content that is not a tar is refused', async () => {
    const err = await runImport({
      source: new HttpSource({ url: `${ranged.url}/disk.qcow2` }),
      contentType: 'archive',
      target: { kind: 'dir', path: path.join(dir, 'not-tar') },
    }).then(
      () => assert.fail('should be refused'),
      (e: unknown) => e as ImportError,
    );
    assert.match(err.message, /must be a tar archive.*found qcow2/);
  });
});
