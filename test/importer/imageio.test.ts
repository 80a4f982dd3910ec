/**
 * The imageio source against the oVirt engine + imageio stand-in (test/support/ovirt.ts: neither can run here) on
 * loopback HTTPS: full imports and a warm import over checkpoints, bytes compared by md5 with what qemu-img makes of
 * the same qcow2 chain; wrong credentials, a missing disk, an untrusted certificate and a transfer the engine aborts
 * end in clear messages; and no image transfer is ever left open, nor an SSO token unrevoked.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspectSource } from '../../src/importer/inspect.ts';
import { runPodImporter } from '../../src/importer/pod.ts';
import { ImageioSource, type ImageioSourceOptions } from '../../src/importer/source/imageio.ts';
import { importDisk } from '../support/import.ts';
import { makeOvirtChain, startOvirtStandin, type OvirtStandin } from '../support/ovirt.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';

const MiB = 1 << 20;
const SIZE = 32 * MiB;
const DISK = '4a1e3b52-0d0c-4b39-9a4b-0c3a6ad1d001';
const SD = '9e1c2f0a-5d55-4c8e-8a3e-000000000sd1';
const L = [
  '11111111-0000-4000-8000-000000000001',
  '22222222-0000-4000-8000-000000000002',
  '33333333-0000-4000-8000-000000000003',
  '44444444-0000-4000-8000-000000000004',
];

async function md5(file: string): Promise<string> {
  return createHash('md5')
    .update(await readFile(file))
    .digest('hex');
}

void describe('imageio source (oVirt engine + imageio stand-in)', { timeout: 120_000 }, () => {
  let dir: string;
  let pki: TestPki;
  let caDir: string;
  let ovirt: OvirtStandin;
  /** md5 of the disk as of each layer (the chain up to it, flattened by qemu-img). */
  const want: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cdi-imageio-'));
    pki = await makeTestPki(path.join(dir, 'pki'));
    caDir = path.join(dir, 'certs');
    await mkdir(caDir);
    await writeFile(path.join(caDir, 'ca.pem'), pki.caCert);
    // A qcow2 chain as oVirt keeps one: base, two snapshot layers, the active layer.
    const chain = await makeOvirtChain(dir, { diskId: DISK, storageDomain: SD, layerIds: L, size: SIZE });
    want.push(...chain.want);
    assert.equal(new Set(want).size, 4, 'every layer changes the disk');
    ovirt = await startOvirtStandin({ dir: path.join(dir, 'standin'), tls: pki });
    await mkdir(path.join(dir, 'standin'));
    ovirt.disks.set(DISK, chain.disk);
  });

  after(async () => {
    await ovirt?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Every transfer the importer opened was finalized or cancelled, and every SSO token revoked. */
  function assertNothingLeftOpen(): void {
    for (const t of ovirt.transfers) {
      assert.ok(
        ['finished_success', 'cancelled_user', 'cancelled_system'].includes(t.phase),
        `transfer ${t.id} was left ${t.phase}`,
      );
    }
    assert.equal(ovirt.liveTokens(), 0, 'SSO tokens left unrevoked');
  }

  const source = (o: Partial<ImageioSourceOptions> = {}): ImageioSource =>
    new ImageioSource({
      endpoint: ovirt.url,
      user: ovirt.user,
      password: ovirt.password,
      caDir: [caDir],
      insecureSkipVerify: false,
      diskId: DISK,
      pollMs: 5,
      lockedRetryMs: 5,
      ...o,
    });

  const target = (name: string): { kind: 'file'; path: string } => ({
    kind: 'file',
    path: path.join(dir, name),
  });

  void it('imports the whole disk through an image transfer, reading only its data extents, and finalizes it', async () => {
    const before = ovirt.transfers.length;
    ovirt.faults.lockedTimes = 2; // the engine says "Disk is locked" twice first
    const src = source();
    const r = await importDisk({ source: src, target: target('full.img') });
    assert.equal(await md5(target('full.img').path), want[3]);
    assert.equal(r.virtualSize, SIZE);
    assert.equal(r.path, 'disk');
    const t = ovirt.transfers.slice(before);
    assert.equal(t.length, 1);
    assert.deepEqual(t[0]!.actions, ['finalize']);
    assert.equal(t[0]!.shallow, false);
    assert.equal(t[0]!.bytesServed, r.disk?.dataBytes, 'only the data extents crossed the wire');
    assert.ok(r.disk!.dataBytes < SIZE / 2, `data ${r.disk!.dataBytes} of ${SIZE}`);
    assertNothingLeftOpen();
  });

  void it('without the extents feature (an old daemon) reads the whole disk by range and gets the same bytes', async () => {
    ovirt.faults.noExtents = true;
    try {
      await importDisk({ source: source(), target: target('noext.img') });
    } finally {
      ovirt.faults.noExtents = false;
    }
    assert.equal(await md5(target('noext.img').path), want[3]);
    assert.equal(ovirt.transfers.at(-1)!.bytesServed, SIZE);
    assertNothingLeftOpen();
  });

  void it('warm import: a base snapshot, then the deltas of later snapshots and the active layer, equal each checkpoint', async () => {
    const t = target('warm.img');
    const stages = [
      { current: L[0]!, previous: undefined },
      { current: L[1]!, previous: L[0]! },
      { current: L[2]!, previous: L[1]! },
      { current: L[3]!, previous: L[2]! }, // the disk's image_id: its active layer
    ];
    for (const [i, s] of stages.entries()) {
      const before = ovirt.transfers.length;
      const r = await importDisk({
        source: source({
          currentCheckpoint: s.current,
          ...(s.previous ? { previousCheckpoint: s.previous } : {}),
        }),
        target: t,
      });
      assert.equal(r.disk?.delta, i > 0);
      assert.equal(await md5(t.path), want[i], `after checkpoint ${i + 1}`);
      const tr = ovirt.transfers.slice(before);
      assert.equal(tr.length, 1);
      assert.equal(tr[0]!.shallow, i > 0, 'deltas download the layer alone');
      assert.deepEqual(tr[0]!.actions, ['finalize']);
      if (i > 0) assert.ok(tr[0]!.bytesServed <= 4 * MiB, `delta ${i} read ${tr[0]!.bytesServed} bytes`);
    }
    assertNothingLeftOpen();
  });

  void it('refuses a delta whose snapshot does not follow the previous checkpoint, before opening a transfer', async () => {
    const before = ovirt.transfers.length;
    const t = target('wrong-parent.img');
    await writeFile(t.path, Buffer.alloc(SIZE));
    await assert.rejects(
      importDisk({ source: source({ currentCheckpoint: L[2]!, previousCheckpoint: L[0]! }), target: t }),
      /checkpoint 3{8}.* does not follow checkpoint 1{8}.*\(its parent is 2{8}/,
    );
    assert.equal(ovirt.transfers.length, before);
    assertNothingLeftOpen();
  });

  void it('refuses a delta when the engine reports no snapshot parents (oVirt before 4.4.3)', async () => {
    ovirt.faults.noParents = true;
    try {
      await assert.rejects(
        importDisk({
          source: source({ currentCheckpoint: L[2]!, previousCheckpoint: L[1]! }),
          target: target('warm.img'),
        }),
        /reports no parent .* needs oVirt 4\.4\.3 or later/,
      );
    } finally {
      ovirt.faults.noParents = false;
    }
    assertNothingLeftOpen();
  });

  void it('wrong credentials: the engine refuses them, and the message says where to fix them', async () => {
    const before = ovirt.transfers.length;
    await assert.rejects(
      importDisk({ source: source({ password: 'wrong' }), target: target('x.img') }),
      /the oVirt engine refused the credentials of user "admin@internal" \(Cannot authenticate user 'admin@internal': The username or password is incorrect\.\.\): check the user name and password in the DataVolume's secretRef/,
    );
    assert.equal(ovirt.transfers.length, before);
    assertNothingLeftOpen();
  });

  void it('a missing disk: named in the message, no transfer opened, the token revoked', async () => {
    await assert.rejects(
      importDisk({ source: source({ diskId: 'no-such-disk' }), target: target('x.img') }),
      /disk no-such-disk not found on the oVirt engine at 127\.0\.0\.1:\d+: check the DataVolume's imageio diskId/,
    );
    assertNothingLeftOpen();
  });

  void it('an untrusted certificate: refused unless its CA is given (or insecureSkipVerify)', async () => {
    await assert.rejects(
      importDisk({ source: source({ caDir: [] }), target: target('x.img') }),
      /the TLS certificate of the oVirt engine at 127\.0\.0\.1:\d+ is not trusted \(.*\): add the engine's CA to the DataVolume's certConfigMap/,
    );
    const r = await importDisk({
      source: source({ caDir: [], insecureSkipVerify: true }),
      target: target('insecure.img'),
    });
    assert.equal(r.virtualSize, SIZE);
    assertNothingLeftOpen();
  });

  void it('a transfer the engine aborts mid-way: a clear message, no disk.img, nothing left open', async () => {
    ovirt.faults.abortAfterBytes = 2 * MiB;
    const t = target('aborted.img');
    try {
      await assert.rejects(
        importDisk({ source: source(), target: t, retry: { resumes: 1, delayMs: 1 } }),
        /the imageio daemon (refused reading \d+ bytes at \d+: the image transfer was cancelled or its ticket expired|at 127\.0\.0\.1:\d+ closed the connection|sent \d+ bytes for a range)/,
      );
    } finally {
      delete ovirt.faults.abortAfterBytes;
    }
    assert.equal(ovirt.transfers.at(-1)!.phase, 'cancelled_system');
    await assert.rejects(readFile(t.path), { code: 'ENOENT' });
    assertNothingLeftOpen();
  });

  void it('a failure on our side after the transfer opened (volume too small) cancels the transfer', async () => {
    await assert.rejects(
      importDisk({ source: source(), target: target('small.img'), available: SIZE / 2 }),
      /virtual image size 33554432 is larger than the reported available storage 16777216\. A larger PVC is required/,
    );
    assert.deepEqual(ovirt.transfers.at(-1)!.actions, ['cancel']);
    assertNothingLeftOpen();
  });

  void it('cdi inspect: the disk plan, the size, nothing written and the transfer cancelled', async () => {
    const before = ovirt.transfers.length;
    const r = await inspectSource(source(), { size: SIZE / 2 });
    assert.equal(r.transfer, 'disk');
    assert.equal(r.plan?.transfer, 'disk');
    assert.match(r.plan?.reason ?? '', /^a VM disk read by its extents/);
    assert.equal(r.virtualSize, SIZE);
    assert.equal(r.accepted, false);
    assert.match(
      r.reason,
      /virtual image size 33554432 is larger than the reported available storage 16777216/,
    );
    assert.ok((await inspectSource(source())).accepted);
    const t = ovirt.transfers.slice(before);
    assert.equal(t.length, 2);
    for (const x of t) {
      assert.deepEqual(x.actions, ['cancel']);
      assert.equal(x.bytesServed, 0, 'inspect reads no data');
    }
    assertNothingLeftOpen();
  });

  void it('refuses archive content and a checksum for a disk read by extents, before reading any data', async () => {
    await assert.rejects(
      importDisk({ source: source(), target: target('arch.img'), contentType: 'archive' }),
      { message: /^Unsupported content type archive for a VM disk read by its extents/ },
    );
    await assert.rejects(
      importDisk({
        source: source(),
        target: target('sum.img'),
        checksum: { algorithm: 'sha256', hex: '0'.repeat(64) },
      }),
      { message: /^a checksum cannot be verified for a VM disk read by its extents/ },
    );
    assert.equal(ovirt.transfers.at(-1)!.bytesServed, 0);
    assertNothingLeftOpen();
  });

  void it('the importer pod: IMPORTER_SOURCE=imageio with the checkpoint env vars, termination message as upstream', async () => {
    const data = path.join(dir, 'pod-data');
    await mkdir(data);
    const env = {
      IMPORTER_SOURCE: 'imageio',
      IMPORTER_ENDPOINT: ovirt.url,
      IMPORTER_ACCESS_KEY_ID: ovirt.user,
      IMPORTER_SECRET_KEY: ovirt.password,
      IMPORTER_CERT_DIR: caDir,
      IMPORTER_DISK_ID: DISK,
      IMPORTER_CONTENTTYPE: 'kubevirt',
      IMPORTER_IMAGE_SIZE: String(SIZE),
      CDI_IMPORTER_DATA_DIR: data,
      CDI_IMPORTER_BLOCK_PATH: path.join(dir, 'no-block'),
      CDI_IMPORTER_SCRATCH_DIR: path.join(dir, 'no-scratch'),
      CDI_IMPORTER_TERMINATION_LOG: path.join(dir, 'termination-log'),
      CDI_IMPORTER_PROXY_CERT_DIR: path.join(dir, 'no-proxy-certs'),
      CDI_IMPORTER_METRICS_PORT: 'off',
    };
    const lines: string[] = [];
    assert.equal(
      await runPodImporter({ ...env, IMPORTER_CURRENT_CHECKPOINT: L[0] }, (l) => lines.push(l)),
      0,
    );
    assert.deepEqual(JSON.parse(await readFile(env.CDI_IMPORTER_TERMINATION_LOG, 'utf8')), {
      scratchSpaceRequired: false,
      preallocationApplied: false,
      message: 'Import Complete',
    });
    assert.equal(await md5(path.join(data, 'disk.img')), want[0]);
    const code = await runPodImporter(
      { ...env, IMPORTER_CURRENT_CHECKPOINT: L[1], IMPORTER_PREVIOUS_CHECKPOINT: L[0] },
      (l) => lines.push(l),
    );
    assert.equal(code, 0, lines.join('\n'));
    assert.equal(await md5(path.join(data, 'disk.img')), want[1]);
    assert.equal(await runPodImporter({ ...env, IMPORTER_DISK_ID: 'gone' }, (l) => lines.push(l)), 1);
    assert.match(
      await readFile(env.CDI_IMPORTER_TERMINATION_LOG, 'utf8'),
      /^Unable to process data: disk gone not found on the oVirt engine/,
    );
    assertNothingLeftOpen();
  });

  void it('the importer pod with a checksum: refused for good (exit 0, fatalReason), the engine never asked', async () => {
    const data = path.join(dir, 'pod-sum-data');
    await mkdir(data);
    const term = path.join(dir, 'termination-log-sum');
    const transfers = ovirt.transfers.length;
    const lines: string[] = [];
    const code = await runPodImporter(
      {
        IMPORTER_SOURCE: 'imageio',
        IMPORTER_ENDPOINT: ovirt.url,
        IMPORTER_ACCESS_KEY_ID: ovirt.user,
        IMPORTER_SECRET_KEY: ovirt.password,
        IMPORTER_CERT_DIR: caDir,
        IMPORTER_DISK_ID: DISK,
        IMPORTER_CONTENTTYPE: 'kubevirt',
        IMPORTER_IMAGE_SIZE: String(SIZE),
        IMPORTER_CHECKSUM: `md5:${want[3]}`,
        CDI_IMPORTER_DATA_DIR: data,
        CDI_IMPORTER_BLOCK_PATH: path.join(dir, 'no-block'),
        CDI_IMPORTER_SCRATCH_DIR: path.join(dir, 'no-scratch'),
        CDI_IMPORTER_TERMINATION_LOG: term,
        CDI_IMPORTER_PROXY_CERT_DIR: path.join(dir, 'no-proxy-certs'),
        CDI_IMPORTER_METRICS_PORT: 'off',
      },
      (l) => lines.push(l),
    );
    // exit 0 so that kubelet does not restart it; the controller reads fatalReason and fails the import
    assert.equal(code, 0, lines.join('\n'));
    const msg = JSON.parse(await readFile(term, 'utf8')) as Record<string, unknown>;
    assert.equal(msg['fatalReason'], 'ChecksumUnsupported');
    assert.match(
      String(msg['message']),
      /^Unable to process data: a checksum \(cdi\.kubevirt\.io\/storage\.import\.checksum\) cannot be verified when importing from imageio: its disk is read by its data extents.* Remove the annotation and create the DataVolume \(or PVC\) again$/,
    );
    assert.equal(msg['scratchSpaceRequired'], undefined, 'not a success');
    assert.equal(ovirt.transfers.length, transfers, 'no image transfer opened');
    assert.equal(ovirt.liveTokens(), 0);
    await assert.rejects(readFile(path.join(data, 'disk.img')), { code: 'ENOENT' });
  });
});
