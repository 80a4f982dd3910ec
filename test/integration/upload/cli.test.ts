/**
 * `cdi upload` end to end short of the upload controller: the real kube-apiserver (PVCs, DataVolumes, and the upload
 * token through the aggregation layer to cdi-apiserver on the host), cdi-uploadproxy and the upload server pod
 * entrypoint on loopback with real TLS. These suites run every server on the host, with no kubelet to start the pods
 * the real upload controller makes (that one is tested in test/e2e/upload.test.ts); a stand-in in this file plays its
 * part (it starts an upload server for each upload PVC, marks the PVC ready, and Succeeded when the server exits 0),
 * and the proxy's URL resolver points at those servers. A TCP relay in front of the proxy cuts one connection to
 * prove that a broken upload resumes. Holds the cluster lock: `flock /work/cluster-tests.lock node --test ...`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ann } from '../../../src/api/constants.ts';
import { Resources, type KubeObject, type PersistentVolumeClaim } from '../../../src/kube/index.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../../support/images.ts';
import { cutRelay, runCdi } from '../../support/upload.ts';
import { kubeconfigPath } from '../kube/cluster.ts';
import { useUploadEnv } from './support.ts';

let disk: SeededDisk;
let big: SeededDisk;
const env = useUploadEnv('cdi-test-upload-cli', {
  crds: true,
  prepare: async (dir) => {
    const src = path.join(dir, 'src');
    await mkdir(src);
    disk = await makeSeededDisk(src, { size: 4 << 20, seed: 'cli' });
    await makeVariant(disk.path, src, 'qcow2');
    big = await makeSeededDisk(src, { size: 16 << 20, seed: 'cli-big', name: 'big.raw' });
  },
});

const cdi = (...args: string[]): ReturnType<typeof runCdi> => runCdi(kubeconfigPath, ...args);

const common = (url: string): string[] => [
  '-n',
  env.ns,
  '--kubeconfig',
  kubeconfigPath,
  '--uploadproxy-url',
  url,
  '--uploadproxy-ca',
  env.stack.caFile,
  '--wait-secs',
  '60',
];

/** A TCP relay to the proxy that cuts the first connection carrying more than `cutAfter` bytes up. */
const relay = (cutAfter: number): ReturnType<typeof cutRelay> =>
  cutRelay({ host: '127.0.0.1', port: env.stack.proxyPort }, cutAfter);

void describe('cdi upload', () => {
  void it('creates the PVC, waits for its upload server, gets a token, uploads a qcow2 and waits for Succeeded', async () => {
    const r = await cdi(
      'upload',
      'pvc',
      'disk-one',
      '--image-path',
      path.join(env.dir, 'src', 'disk.qcow2'),
      '--size',
      '8Mi',
      '--no-progress',
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /PersistentVolumeClaim .*\/disk-one created/);
    assert.match(r.stdout, /Uploading data to https:\/\/127\.0\.0\.1/);
    assert.match(r.stdout, /Processing completed successfully/);
    const pvc = await env.kube.get<PersistentVolumeClaim>(
      Resources.PersistentVolumeClaim,
      'disk-one',
      env.ns,
    );
    assert.equal(pvc.metadata?.annotations?.[Ann.PodPhase], 'Succeeded');
    assert.equal(pvc.metadata?.annotations?.[Ann.ContentType], 'kubevirt');
    assert.equal(
      await md5File(path.join(env.stack.pods.get('disk-one')!.data, 'disk.img'), 4 << 20),
      disk.md5,
    );
  });

  void it('sends --checksum: a wrong one fails the upload clearly and leaves the PVC not Succeeded', async () => {
    const bad = '0'.repeat(64);
    const r = await cdi(
      'upload',
      'pvc',
      'disk-sum',
      '--image-path',
      disk.path,
      '--size',
      '4Mi',
      '--no-progress',
      '--checksum',
      `sha256:${bad}`,
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^cdi: error: the upload was refused: 400 Saving stream failed: checksum mismatch: expected sha256:0{64}, calculated sha256:[0-9a-f]{64}/m,
    );
    const pvc = await env.kube.get<PersistentVolumeClaim>(
      Resources.PersistentVolumeClaim,
      'disk-sum',
      env.ns,
    );
    assert.notEqual(pvc.metadata?.annotations?.[Ann.PodPhase], 'Succeeded');
    // the right one goes through on the same PVC
    const sum = createHash('sha256')
      .update(await readFile(disk.path))
      .digest('hex');
    const ok = await cdi(
      'upload',
      'pvc',
      'disk-sum',
      '--no-create',
      '--image-path',
      disk.path,
      '--no-progress',
      '--checksum',
      `sha256:${sum}`,
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
  });

  void it('resumes after the connection breaks mid-body, sending only what the server does not have', async () => {
    const cutAt = 6 << 20;
    const rl = await relay(cutAt);
    try {
      const r = await cdi(
        'upload',
        'pvc',
        'disk-resume',
        '--image-path',
        big.path,
        '--size',
        '16Mi',
        '--no-progress',
        ...common(`https://127.0.0.1:${rl.port}`),
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const m = /resuming the upload at byte (\d+) of (\d+)/.exec(r.stderr);
      assert.ok(m, r.stderr);
      const offset = Number(m[1]);
      assert.ok(offset > 0 && offset <= cutAt, `offset ${offset}`);
      // what went up: the part before the cut, then only the bytes the server did not have (plus TLS and headers)
      assert.ok(
        rl.up() <= cutAt + (big.size - offset) + (256 << 10),
        `${rl.up()} bytes went up: more than the cut-off ${cutAt} and the rest from ${offset}`,
      );
      assert.equal(await md5File(path.join(env.stack.pods.get('disk-resume')!.data, 'disk.img')), big.md5);
    } finally {
      rl.close();
    }
  });

  void it('says clearly what is wrong: an already populated PVC, no --size, a missing file', async () => {
    const again = await cdi(
      'upload',
      'pvc',
      'disk-one',
      '--image-path',
      disk.path,
      '--no-progress',
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^cdi: error: PVC disk-one already successfully imported\/cloned\/updated$/m);
    const nosize = await cdi(
      'upload',
      'pvc',
      'disk-x',
      '--image-path',
      disk.path,
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(nosize.code, 2);
    assert.match(nosize.stderr, /the size must be specified/);
    const nofile = await cdi(
      'upload',
      'pvc',
      'disk-x',
      '--image-path',
      path.join(env.dir, 'nope.img'),
      '--size',
      '1Mi',
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(nofile.code, 1);
    assert.match(nofile.stderr, /nope\.img is not a readable file/);
  });

  void it('creates a DataVolume with an upload source and reports a clear timeout when nothing makes it UploadReady', async () => {
    const r = await cdi(
      'upload',
      'dv',
      'dv-one',
      '--image-path',
      disk.path,
      '--size',
      '64Mi',
      '--storage-class',
      'nope',
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /storage class nope does not exist/);
    const t = await cdi(
      'upload',
      'dv',
      'dv-one',
      '--image-path',
      disk.path,
      '--size',
      '64Mi',
      '--volume-mode',
      'block',
      '--force-bind',
      ...common(`https://127.0.0.1:${env.stack.proxyPort}`).slice(0, -1),
      '1',
    );
    assert.equal(t.code, 1);
    assert.match(t.stderr, /timed out after 1s waiting for DataVolume .*\/dv-one to be UploadReady/);
    const dv = await env.kube.get<KubeObject & { spec: Record<string, unknown> }>(
      Resources.DataVolume,
      'dv-one',
      env.ns,
    );
    assert.deepEqual(dv.spec['source'], { upload: {} });
    assert.equal(dv.spec['contentType'], 'kubevirt');
    assert.deepEqual(dv.spec['storage'], {
      resources: { requests: { storage: '64Mi' } },
      volumeMode: 'Block',
    });
    assert.equal(dv.metadata?.annotations?.[Ann.ImmediateBinding], '');
  });
});
