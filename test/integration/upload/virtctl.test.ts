/**
 * Upstream's own client, unchanged: `virtctl image-upload` (KubeVirt v1.8.4, built from the Go module proxy by
 * hack/tools/build-virtctl.sh) against our cdi-apiserver (token through the real aggregation layer),
 * cdi-uploadproxy and upload server, with the stand-in for the upload controller of support.ts. `npm test` builds
 * virtctl in the background and this file waits for it (test/support/virtctl.ts); run alone without the binary, it
 * skips, saying why.
 * Holds the cluster lock: `flock /work/cluster-tests.lock node --test ...`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ann } from '../../../src/api/constants.ts';
import { Resources, type PersistentVolumeClaim } from '../../../src/kube/index.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../../support/images.ts';
import { kubeconfigPath } from '../kube/cluster.ts';
import { virtctlBinary } from '../../support/virtctl.ts';
import { useUploadEnv } from './support.ts';

const found = await virtctlBinary();
const missing = found.skip;
const VIRTCTL = 'path' in found ? found.path : '';

let disk: SeededDisk;
const env = useUploadEnv('cdi-test-virtctl', {
  skip: missing,
  prepare: async (dir) => {
    const src = path.join(dir, 'src');
    await mkdir(src);
    disk = await makeSeededDisk(src, { size: 4 << 20, seed: 'virtctl' });
    await makeVariant(disk.path, src, 'qcow2');
  },
});

function virtctl(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      VIRTCTL,
      ['--kubeconfig', kubeconfigPath, ...args],
      { maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
      },
    );
  });
}

void describe('virtctl image-upload against cdi-ts', { skip: missing }, () => {
  void it('creates the PVC, gets a token from our aggregated API, probes async, uploads a qcow2, waits for Succeeded', async () => {
    const r = await virtctl(
      'image-upload',
      'pvc',
      'from-virtctl',
      '-n',
      env.ns,
      '--size=8Mi',
      `--image-path=${path.join(env.dir, 'src', 'disk.qcow2')}`,
      `--uploadproxy-url=https://127.0.0.1:${env.stack.proxyPort}`,
      '--insecure',
      '--wait-secs=60',
    );
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Uploading data completed successfully/);
    assert.match(r.out, /Processing completed successfully/);
    assert.match(r.out, /Uploading .*disk\.qcow2 completed successfully/);
    const pvc = await env.kube.get<PersistentVolumeClaim>(
      Resources.PersistentVolumeClaim,
      'from-virtctl',
      env.ns,
    );
    assert.equal(pvc.metadata?.annotations?.[Ann.PodPhase], 'Succeeded');
    assert.equal(
      await md5File(path.join(env.stack.pods.get('from-virtctl')!.data, 'disk.img'), 4 << 20),
      disk.md5,
    );
  });

  void it('reports our refusal: a PVC that already succeeded', async () => {
    const r = await virtctl(
      'image-upload',
      'pvc',
      'from-virtctl',
      '-n',
      env.ns,
      '--no-create',
      `--image-path=${disk.path}`,
      `--uploadproxy-url=https://127.0.0.1:${env.stack.proxyPort}`,
      '--insecure',
    );
    assert.notEqual(r.code, 0);
    assert.match(r.out, /already successfully imported/);
  });
});
