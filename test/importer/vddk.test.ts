/**
 * The vddk source against stand-ins for what cannot run here (test/support/vddk.ts): vCenter is govmomi's simulator
 * (plus changed-block tracking answered from the test's table), and nbdkit's vddk plugin with the proprietary VDDK
 * library is an nbdkit plugin serving raw images; nbdkit itself is real. Full and warm imports are compared by md5
 * with the images; wrong credentials, a missing disk, an untrusted certificate, a missing VDDK library and a
 * transfer the server aborts end in clear messages; the pod reports vddkInfo as upstream.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runPodImporter } from '../../src/importer/pod.ts';
import { VddkSource, type VddkSourceOptions } from '../../src/importer/source/vddk.ts';
import { importDisk } from '../support/import.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';
import {
  buildVcenterStandin,
  buildVddkPluginStandin,
  makeVddkLibdir,
  startVcenterStandin,
  type StandinLibConf,
  type VcenterStandin,
} from '../support/vddk.ts';

const run = promisify(execFile);
const MiB = 1 << 20;
const SIZE = 32 * MiB;
const USER = 'administrator@vsphere.local';
const PASSWORD = 'pa$$ word';

type Area = { start: number; length: number };

async function md5(file: string): Promise<string> {
  return createHash('md5')
    .update(await readFile(file))
    .digest('hex');
}

/** Writes `fill` over each area of a sparse raw image. */
async function writeAreas(file: string, areas: (Area & { fill: number })[]): Promise<void> {
  const fh = await open(file, 'r+');
  for (const a of areas) await fh.write(Buffer.alloc(a.length, a.fill), 0, a.length, a.start);
  await fh.close();
}

/** Areas sorted and merged, as vSphere reports them. */
function merged(areas: Area[]): Area[] {
  const out: Area[] = [];
  for (const a of [...areas].sort((x, y) => x.start - y.start)) {
    const last = out.at(-1);
    if (last && a.start <= last.start + last.length)
      last.length = Math.max(last.length, a.start + a.length - last.start);
    else out.push({ ...a });
  }
  return out;
}

void describe('vddk source (vCenter simulator + VDDK stand-in, real nbdkit)', { timeout: 600_000 }, () => {
  let dir: string;
  let pki: TestPki;
  let thumbprint: string;
  let vc: VcenterStandin;
  let plugin: string;
  let conf: StandinLibConf;
  let libdir: string;
  const img: string[] = [];
  const want: string[] = [];
  let changes: Area[][] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cdi-vddk-'));
    pki = await makeTestPki(path.join(dir, 'pki'));
    thumbprint = new X509Certificate(pki.cert).fingerprint;
    const [bin, so] = await Promise.all([buildVcenterStandin(), buildVddkPluginStandin()]);
    plugin = so;
    // The disk at snapshots 1..3 and now: sparse raw images; each later one changes some areas of the one before,
    // among them a large area that is partly zeroed (block status must split it) and small ones.
    const s = (i: number): string => path.join(dir, `state-${i}.img`);
    await writeFile(s(0), '');
    await truncate(s(0), SIZE);
    await writeAreas(s(0), [
      { start: 0, length: MiB, fill: 0x11 },
      { start: 5 * MiB, length: 3 * MiB, fill: 0x12 },
      { start: 20 * MiB, length: 4 * MiB, fill: 0x13 },
    ]);
    const steps: (Area & { fill: number; punch?: boolean })[][] = [
      [
        { start: 512 * 1024, length: MiB, fill: 0x21 },
        { start: 20 * MiB, length: 2 * MiB, fill: 0, punch: true },
        { start: 22 * MiB, length: 2 * MiB, fill: 0x22 },
        { start: 30 * MiB, length: 4096, fill: 0x23 },
      ],
      [
        { start: 0, length: 64 * 1024, fill: 0x31 },
        { start: 6 * MiB, length: 1536 * 1024, fill: 0, punch: true },
        { start: 12 * MiB, length: 2 * MiB, fill: 0x32 },
      ],
      [{ start: 10 * MiB, length: MiB, fill: 0x41 }],
    ];
    for (let i = 1; i <= 3; i++) {
      await run('cp', ['--sparse=always', s(i - 1), s(i)]);
      const step = steps[i - 1]!;
      await writeAreas(
        s(i),
        step.filter((a) => !a.punch),
      );
      for (const a of step.filter((x) => x.punch))
        await run('fallocate', ['--punch-hole', '-o', String(a.start), '-l', String(a.length), s(i)]);
    }
    for (let i = 0; i <= 3; i++) {
      img.push(s(i));
      want.push(await md5(s(i)));
    }
    assert.equal(new Set(want).size, 4);
    changes = steps.map((st) => merged(st));
    vc = await startVcenterStandin({
      bin,
      dir,
      tls: pki,
      user: USER,
      password: PASSWORD,
      spec: {
        capacity: SIZE,
        snapshots: ['snap1', 'snap2', 'snap3'],
        changes: { snap1: { snap2: changes[0]! }, snap2: { snap3: changes[1]! } },
        pageSize: 2, // vSphere answers in pages; two areas each makes the importer ask again
      },
    });
    const [s1, s2, s3] = vc.snapshots;
    conf = {
      version: '8.0.3',
      build: '21999999',
      host: 'esx1.test.local',
      user: USER,
      password: PASSWORD,
      thumbprint,
      disks: [
        { snapshot: s1!.moref, image: img[0]!, file: s1!.file },
        { snapshot: s2!.moref, image: img[1]!, file: s2!.file },
        { snapshot: s3!.moref, image: img[2]!, file: s3!.file },
        { snapshot: '-', image: img[3]!, file: vc.disk.files.at(-1)! }, // the VM's current disk, no snapshot
      ],
    };
    libdir = await makeVddkLibdir(path.join(dir, 'vmware-vix-disklib-distrib'), conf);
  });

  after(async () => {
    await vc?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const source = (o: Partial<VddkSourceOptions> = {}): VddkSource =>
    new VddkSource({
      endpoint: vc.url,
      user: USER,
      password: PASSWORD,
      thumbprint,
      uuid: vc.vm.instanceUuid,
      backingFile: vc.disk.files.at(-1)!,
      libdir,
      plugin,
      retries: 0,
      ...o,
    });
  const target = (name: string): { kind: 'file'; path: string } => ({
    kind: 'file',
    path: path.join(dir, name),
  });

  void it('imports the VM disk through nbdkit, only its data extents, and reports the VDDK version and ESX host', async () => {
    const src = source();
    const r = await importDisk({ source: src, target: target('cold.img') });
    assert.equal(await md5(target('cold.img').path), want[3]);
    assert.equal(r.virtualSize, SIZE);
    assert.ok(r.disk!.dataBytes < SIZE / 2, `read ${r.disk!.dataBytes} bytes of ${SIZE}`);
    assert.deepEqual(src.terminationInfo(), { vddkInfo: { Version: '8.0.3', Host: 'esx1.test.local' } });
  });

  void it('finds the VM by its BIOS UUID too', async () => {
    await importDisk({ source: source({ uuid: vc.vm.biosUuid }), target: target('bios.img') });
    assert.equal(await md5(target('bios.img').path), want[3]);
  });

  void it('warm import: a snapshot, then the changed blocks of two later ones (by snapshot, then by change ID)', async () => {
    const t = target('warm.img');
    const [s1, s2, s3] = vc.snapshots;
    const base = vc.disk.files[0]!;
    const stages = [
      { current: s1!.moref, previous: undefined },
      { current: s2!.moref, previous: s1!.moref },
      { current: s3!.moref, previous: s2!.changeId }, // a CBT change ID as the previous checkpoint
    ];
    for (const [i, s] of stages.entries()) {
      const r = await importDisk({
        source: source({
          backingFile: base,
          currentCheckpoint: s.current,
          ...(s.previous ? { previousCheckpoint: s.previous } : {}),
        }),
        target: t,
      });
      const d = r.disk;
      assert.ok(d, 'the disk plan');
      assert.equal(d.delta, i > 0);
      assert.equal(await md5(t.path), want[i], `after checkpoint ${i + 1}`);
      if (i > 0) {
        const changed = changes[i - 1]!.reduce((n, a) => n + a.length, 0);
        assert.ok(
          d.dataBytes + d.zeroBytes <= changed,
          `delta ${i}: ${d.dataBytes}+${d.zeroBytes} of ${changed} changed bytes`,
        );
        assert.ok(d.zeroBytes > 0, `delta ${i} zeroes what was zeroed`);
      }
    }
  });

  void it('wrong credentials: vCenter refuses the login, and the message says where to fix them', async () => {
    await assert.rejects(
      importDisk({ source: source({ password: 'wrong' }), target: target('x.img') }),
      /vCenter at 127\.0\.0\.1 refused the login of user "administrator@vsphere\.local": check the user name and password in the DataVolume's secretRef/,
    );
  });

  void it('a missing disk or VM: named in the message', async () => {
    await assert.rejects(
      importDisk({
        source: source({ backingFile: '[LocalDS_0] other/other.vmdk' }),
        target: target('x.img'),
      }),
      /disk \[LocalDS_0\] other\/other\.vmdk is not a disk of VM .* nor of its snapshots: check the DataVolume's vddk\.backingFile/,
    );
    await assert.rejects(
      importDisk({
        source: source({ uuid: '00000000-0000-0000-0000-000000000000' }),
        target: target('x.img'),
      }),
      /no VM with UUID 00000000-0000-0000-0000-000000000000 on vCenter at 127\.0\.0\.1: check the DataVolume's vddk\.uuid/,
    );
  });

  void it('an untrusted certificate: a thumbprint that does not match, or a CA that did not sign it', async () => {
    await assert.rejects(
      importDisk({
        source: source({ thumbprint: '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33' }),
        target: target('x.img'),
      }),
      /the TLS certificate of vCenter at 127\.0\.0\.1:\d+ is not trusted \(the certificate's SHA-1 thumbprint is [0-9A-F:]+, not 00:11:.*\): give the DataVolume the server's SHA-1 thumbprint/,
    );
    const other = await makeTestPki(path.join(dir, 'other-pki'));
    const caDir = path.join(dir, 'other-ca');
    await mkdir(caDir, { recursive: true });
    await writeFile(path.join(caDir, 'ca.crt'), other.caCert);
    await assert.rejects(
      importDisk({ source: source({ caDir: [caDir] }), target: target('x.img') }),
      /the TLS certificate of vCenter at 127\.0\.0\.1:\d+ is not trusted/,
    );
  });

  void it("a transfer the server aborts: the plugin's error in the message, no disk.img left", async () => {
    const aborting = await makeVddkLibdir(path.join(dir, 'aborting-lib'), { ...conf, abortAfter: 2 * MiB });
    const t = target('aborted.img');
    await assert.rejects(
      importDisk({ source: source({ libdir: aborting }), target: t, retry: { resumes: 0 } }),
      /nbdkit's vddk plugin failed reading \d+ bytes at \d+ of .*: VixDiskLib_Read: NBD_ERR_NETWORK_CONNECT: the server closed the NFC connection/,
    );
    await assert.rejects(readFile(t.path), { code: 'ENOENT' });
  });

  void it('the importer pod: IMPORTER_SOURCE=vddk, vddkInfo in the termination message; a missing VDDK library is named', async () => {
    const data = path.join(dir, 'pod-data');
    await mkdir(data);
    const term = path.join(dir, 'termination-log');
    const env = {
      IMPORTER_SOURCE: 'vddk',
      IMPORTER_ENDPOINT: vc.url,
      IMPORTER_ACCESS_KEY_ID: USER,
      IMPORTER_SECRET_KEY: PASSWORD,
      IMPORTER_THUMBPRINT: thumbprint,
      IMPORTER_UUID: vc.vm.instanceUuid,
      IMPORTER_BACKING_FILE: vc.disk.files.at(-1)!,
      IMPORTER_CONTENTTYPE: 'kubevirt',
      IMPORTER_IMAGE_SIZE: String(SIZE),
      CDI_IMPORTER_VDDK_LIBDIR: libdir,
      CDI_IMPORTER_VDDK_PLUGIN: plugin,
      CDI_IMPORTER_VDDK_ARGS_DIR: path.join(dir, 'no-vddk-args'),
      CDI_IMPORTER_DATA_DIR: data,
      CDI_IMPORTER_BLOCK_PATH: path.join(dir, 'no-block'),
      CDI_IMPORTER_SCRATCH_DIR: path.join(dir, 'no-scratch'),
      CDI_IMPORTER_TERMINATION_LOG: term,
      CDI_IMPORTER_PROXY_CERT_DIR: path.join(dir, 'no-proxy-certs'),
      CDI_IMPORTER_METRICS_PORT: 'off',
    };
    const lines: string[] = [];
    assert.equal(await runPodImporter(env, (l) => lines.push(l)), 0, lines.join('\n'));
    assert.deepEqual(JSON.parse(await readFile(term, 'utf8')), {
      scratchSpaceRequired: false,
      preallocationApplied: false,
      vddkInfo: { Version: '8.0.3', Host: 'esx1.test.local' },
      message: 'Import Complete',
    });
    assert.equal(await md5(path.join(data, 'disk.img')), want[3]);
    assert.equal(
      await runPodImporter({ ...env, CDI_IMPORTER_VDDK_LIBDIR: path.join(dir, 'no-lib') }, (l) =>
        lines.push(l),
      ),
      1,
    );
    assert.match(
      await readFile(term, 'utf8'),
      /^Unable to process data: the VDDK library is not in .*no-lib: the importer pod needs the VDDK init image \(ConfigMap v2v-vmware key vddk-init-image, or the DataVolume's vddk\.initImageURL\)/,
    );
    // a checksum: refused for good before vCenter or nbdkit is asked anything (exit 0, fatalReason, no disk.img)
    const sumData = path.join(dir, 'pod-sum-data');
    await mkdir(sumData);
    assert.equal(
      await runPodImporter(
        { ...env, IMPORTER_CHECKSUM: `md5:${want[3]}`, CDI_IMPORTER_DATA_DIR: sumData },
        (l) => lines.push(l),
      ),
      0,
    );
    const msg = JSON.parse(await readFile(term, 'utf8')) as Record<string, unknown>;
    assert.equal(msg['fatalReason'], 'ChecksumUnsupported');
    assert.match(
      String(msg['message']),
      /^Unable to process data: a checksum \(cdi\.kubevirt\.io\/storage\.import\.checksum\) cannot be verified when importing from vddk: .* Remove the annotation and create the DataVolume \(or PVC\) again$/,
    );
    assert.equal(msg['vddkInfo'], undefined, 'nbdkit never ran');
    await assert.rejects(readFile(path.join(sumData, 'disk.img')), { code: 'ENOENT' });
  });
});
