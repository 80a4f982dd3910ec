/**
 * cdi-uploadproxy in front of the real upload server pod entrypoint, both on loopback with real TLS (the proxy's
 * serving certificate, mutual TLS to the upload server), reading real PVCs from the kube-apiserver. There is no
 * upload controller yet: the test sets the PVC annotations the controller would (upload target, pod ready), and
 * the proxy's URL resolver points at the loopback upload server instead of `cdi-upload-<pvc>.<ns>.svc`.
 * Uploads with `curl` (upstream's protocol, as a plain client would use it) and with Node's https.
 * Holds the cluster lock: `flock /work/cluster-tests.lock node --test ...`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Ann } from '../../../src/api/constants.ts';
import { createCA, issueServerCert, validityFrom, type Signer } from '../../../src/certs/pki.ts';
import { Resources, type KubeClient, type PersistentVolumeClaim } from '../../../src/kube/index.ts';
import {
  Operation,
  TokenGenerator,
  TokenValidator,
  uploadPayload,
  UploadTokenIssuer,
} from '../../../src/token/token.ts';
import { UploadProxy } from '../../../src/uploadproxy/proxy.ts';
import { makeSeededDisk, makeVariant, md5File, type SeededDisk } from '../../support/images.ts';
import {
  killUploadPods,
  makeMarkupTar,
  rawTls,
  makeUploadPki,
  request,
  startUploadPod,
  type UploadPki,
} from '../../support/upload.ts';
import { clusterClient, createNamespace } from '../kube/cluster.ts';

const run = promisify(execFile);
const SIZE = 4 << 20;
let kube: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void>;
let dir: string;
let disk: SeededDisk;
let pki: UploadPki;
let proxyCa: Signer;
let proxy: UploadProxy;
let proxyPort: number;
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const tokens = new TokenGenerator(UploadTokenIssuer, keys.privateKey, 300_000);
/** Where each PVC's upload server listens (the resolver the test injects). */
const servers = new Map<string, number>();

before(async () => {
  kube = clusterClient();
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(kube, 'cdi-test-uploadproxy'));
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-uploadproxy-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  disk = await makeSeededDisk(src, { size: SIZE, seed: 'proxy' });
  await makeVariant(disk.path, src, 'qcow2');
  await makeVariant(disk.path, src, 'tar');
  pki = await makeUploadPki();
  const v = validityFrom(new Date(), 3600_000);
  proxyCa = await createCA('test-uploadproxy-signer', v);
  const serving = await issueServerCert(proxyCa, ['127.0.0.1', 'cdi-uploadproxy'], v);
  await writeFile(path.join(dir, 'proxy-ca.crt'), proxyCa.certPem);
  proxy = new UploadProxy({
    validator: new TokenValidator(UploadTokenIssuer, keys.publicKey, 10_000),
    getPvc: (n, name) => kube.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, n),
    resolveUrl: (n, pvc, p) => `https://127.0.0.1:${servers.get(`${n}/${pvc}`) ?? 1}${p}`,
    clientTls: () =>
      Promise.resolve({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.serverCa.certPem }),
    tls: { cert: serving.certPem, key: serving.keyPem },
    log: (l) => {
      if (process.env.CDI_TEST_VERBOSE) process.stderr.write(`proxy: ${l}\n`);
    },
  });
  proxyPort = await proxy.listen(0, '127.0.0.1');
});

after(async () => {
  killUploadPods();
  await proxy?.close();
  await cleanupNs?.();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A PVC as the upload controller leaves it once its upload pod is ready. */
async function uploadPvc(annotations: Record<string, string> = {}, ready = true): Promise<string> {
  const name = `up-${randomBytes(3).toString('hex')}`;
  await kube.create(Resources.PersistentVolumeClaim, {
    metadata: {
      name,
      namespace: ns,
      annotations: {
        [Ann.UploadRequest]: '',
        ...(ready ? { [Ann.PodReady]: 'true', [Ann.PodPhase]: 'Running' } : {}),
        ...annotations,
      },
    },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Mi' } } },
  });
  return name;
}

async function serverFor(
  pvc: string,
  env: Record<string, string> = {},
): Promise<Awaited<ReturnType<typeof startUploadPod>>> {
  const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '4Mi', ...env });
  servers.set(`${ns}/${pvc}`, pod.port);
  return pod;
}

const bearer = async (pvc: string): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await tokens.generate(uploadPayload(ns, pvc))}`,
});
const toProxy = (p: string, o: Parameters<typeof request>[2] = {}): ReturnType<typeof request> =>
  request(proxyPort, p, { ca: proxyCa.certPem, ...o });

void describe('upload proxy', () => {
  void it('takes a plain curl upload with a token (upstream protocol) and streams it to the upload server', async () => {
    const pvc = await uploadPvc();
    const pod = await serverFor(pvc);
    const token = await tokens.generate(uploadPayload(ns, pvc));
    const { stdout } = await run('curl', [
      '-sS',
      '--cacert',
      path.join(dir, 'proxy-ca.crt'),
      '-H',
      `Authorization: Bearer ${token}`,
      '-H',
      'Content-Type: application/octet-stream',
      '--data-binary',
      `@${path.join(dir, 'src', 'disk.qcow2')}`,
      '-w',
      '%{http_code}',
      `https://127.0.0.1:${proxyPort}/v1beta1/upload`,
    ]);
    assert.equal(stdout, '200');
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  void it('passes the HEAD async probe through and sends archive PVCs to upload-archive', async () => {
    const kv = await uploadPvc();
    const kvPod = await serverFor(kv);
    assert.equal(
      (await toProxy('/v1beta1/upload-async', { method: 'HEAD', headers: await bearer(kv) })).status,
      200,
    );
    kvPod.kill();
    const pvc = await uploadPvc({ [Ann.ContentType]: 'archive' });
    const pod = await serverFor(pvc);
    const h = await bearer(pvc);
    // as upstream: the probe goes to upload-archive, which has no async mode, so clients fall back to sync
    assert.equal((await toProxy('/v1beta1/upload-async', { method: 'HEAD', headers: h })).status, 404);
    const r = await toProxy('/v1beta1/upload', { body: path.join(dir, 'src', 'disk.tar'), headers: h });
    assert.equal(r.status, 200, r.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'seed.raw')), disk.md5);
  });

  void it('streams: bytes reach the volume while the client is still sending', async () => {
    const pvc = await uploadPvc();
    const pod = await serverFor(pvc, { UPLOAD_IMAGE_SIZE: '16Mi' });
    const big = await makeSeededDisk(path.join(dir, 'src'), {
      size: 16 << 20,
      seed: 'stream',
      name: 'big.raw',
    });
    const raw = await readFile(big.path);
    const body = new PassThrough();
    const done = toProxy('/v1beta1/upload', {
      body,
      headers: { ...(await bearer(pvc)), 'content-length': String(raw.length) },
    });
    // more than the writer's 4 MiB batch, less than the whole
    body.write(raw.subarray(0, 8 << 20));
    const partial = path.join(pod.data, '.disk.img.partial');
    // the first half is on the volume before the second half leaves the client (no store-and-forward)
    for (;;) {
      const st = await stat(partial).catch(() => undefined);
      if (st && st.size > 0) break;
      if (pod.log().includes('upload failed')) assert.fail(pod.log());
      await new Promise((r) => setTimeout(r, 20));
    }
    body.end(raw.subarray(8 << 20));
    assert.equal((await done).status, 200);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), big.md5);
  });

  void it('refuses tokens: none or malformed (400), forged or expired (401), for another PVC (401), not for upload (400)', async () => {
    const pvc = await uploadPvc();
    const other = await uploadPvc();
    const body = Buffer.alloc(16);
    assert.equal((await toProxy('/v1beta1/upload', { body })).status, 400);
    assert.equal(
      (await toProxy('/v1beta1/upload', { body, headers: { authorization: 'Beereer x' } })).status,
      400,
    );
    const forger = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new TokenGenerator(UploadTokenIssuer, forger.privateKey, 300_000).generate(
      uploadPayload(ns, pvc),
    );
    const f = await toProxy('/v1beta1/upload', { body, headers: { authorization: `Bearer ${forged}` } });
    assert.equal(f.status, 401);
    assert.match(f.body, /signature does not verify/);
    const old = await new TokenGenerator(
      UploadTokenIssuer,
      keys.privateKey,
      300_000,
      () => Date.now() - 3600_000,
    ).generate(uploadPayload(ns, pvc));
    const e = await toProxy('/v1beta1/upload', { body, headers: { authorization: `Bearer ${old}` } });
    assert.equal(e.status, 401);
    assert.match(e.body, /expired/);
    const wrong = await toProxy('/v1beta1/upload', {
      body,
      headers: { ...(await bearer(other)), 'x-cdi-upload-target': `${ns}/${pvc}` },
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, new RegExp(`the upload token is for PVC ${ns}/${other}, not ${ns}/${pvc}`));
    const clone = await tokens.generate({ ...uploadPayload(ns, pvc), operation: Operation.Clone });
    assert.equal(
      (await toProxy('/v1beta1/upload', { body, headers: { authorization: `Bearer ${clone}` } })).status,
      400,
    );
  });

  void it('refuses a missing PVC, one that already succeeded, and one not ready in time (503 with the reason)', async () => {
    const body = Buffer.alloc(16);
    const missing = await toProxy('/v1beta1/upload', { body, headers: await bearer('nothere') });
    assert.equal(missing.status, 503);
    assert.equal(missing.body, 'rejecting Upload Request for PVC nothere that doesn&#39;t exist');
    const done = await uploadPvc({ [Ann.PodPhase]: 'Succeeded' });
    const d = await toProxy('/v1beta1/upload', { body, headers: await bearer(done) });
    assert.equal(d.status, 503);
    assert.equal(d.body, `rejecting Upload Request for PVC ${done} that already finished uploading`);
    const notTarget = `nt-${randomBytes(3).toString('hex')}`;
    await kube.create(Resources.PersistentVolumeClaim, {
      metadata: { name: notTarget, namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Mi' } } },
    });
    const n = await toProxy('/v1beta1/upload', { body, headers: await bearer(notTarget) });
    assert.equal(n.status, 503);
    assert.equal(n.body, `PVC ${notTarget} is not an upload target`);
    const slow = await uploadPvc({}, false);
    const s = await toProxy('/v1beta1/upload', { body, headers: await bearer(slow) });
    assert.equal(s.status, 503);
    assert.match(s.body, new RegExp(`the upload server of PVC ${slow} is not ready \\(waited 10s\\)`));
  });

  void it('waits for the upload pod to become ready, then uploads', async () => {
    const pvc = await uploadPvc({}, false);
    const pod = await serverFor(pvc);
    const done = toProxy('/v1beta1/upload', { body: disk.path, headers: await bearer(pvc) });
    await kube.mergePatch(
      Resources.PersistentVolumeClaim,
      pvc,
      { metadata: { annotations: { [Ann.PodReady]: 'true' } } },
      { namespace: ns },
    );
    assert.equal((await done).status, 200);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });

  void it('sends an upload for a VolumeUploadSource-populated PVC to its prime (the token names the target)', async () => {
    const prime = await uploadPvc();
    const pod = await serverFor(prime);
    const target = `pop-${randomBytes(3).toString('hex')}`;
    // no VolumeUploadSource of that name exists, so a deployed populator leaves these claims alone
    await kube.create(Resources.PersistentVolumeClaim, {
      metadata: { name: target, namespace: ns, annotations: { [Ann.PVCPrimeName]: prime } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: '8Mi' } },
        dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind: 'VolumeUploadSource', name: `${target}-src` },
      },
    });
    const r = await toProxy('/v1beta1/upload', { body: disk.path, headers: await bearer(target) });
    assert.equal(r.status, 200, r.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
    // the prime the target names does not exist (yet): 503 with upstream's words
    const gone = `pop-${randomBytes(3).toString('hex')}`;
    await kube.create(Resources.PersistentVolumeClaim, {
      metadata: { name: gone, namespace: ns, annotations: { [Ann.PVCPrimeName]: `${gone}-prime` } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: '8Mi' } },
        dataSourceRef: { apiGroup: 'cdi.kubevirt.io', kind: 'VolumeUploadSource', name: `${gone}-src` },
      },
    });
    const g = await toProxy('/v1beta1/upload', { body: Buffer.alloc(16), headers: await bearer(gone) });
    assert.equal(g.status, 503);
    assert.equal(g.body, `rejecting Upload Request for PVC ${gone}, PVC&#39; wasn&#39;t created yet`);
  });

  void it('HTML-escapes what it echoes: a <script> content type, and an upload server error', async () => {
    const xss = '<script>Bad stuff here...</script>';
    const pvc = await uploadPvc({ [Ann.ContentType]: xss });
    const r = await toProxy('/v1beta1/upload', { body: Buffer.alloc(16), headers: await bearer(pvc) });
    assert.equal(r.status, 503);
    assert.ok(!r.body.includes(xss));
    assert.match(r.body, /&lt;script&gt;/);
    assert.match(r.body, new RegExp(pvc));
    // an archive whose entry name carries markup: the upload server's error comes back escaped
    const apvc = await uploadPvc({ [Ann.ContentType]: 'archive' });
    const pod = await serverFor(apvc);
    const evil = await makeMarkupTar(dir);
    const a = await toProxy('/v1beta1/upload', {
      body: evil,
      headers: await bearer(apvc),
    });
    assert.equal(a.status, 500, a.body);
    assert.ok(!a.body.includes('<script>'), a.body);
    assert.match(a.body, /&lt;script&gt;/);
    assert.equal(a.headers['x-content-type-options'], 'nosniff');
    pod.kill();
  });

  void it('answers 502 when the upload server cannot be reached, and CORS for browsers', async () => {
    const pvc = await uploadPvc();
    servers.set(`${ns}/${pvc}`, 1); // nothing listens there
    const r = await toProxy('/v1beta1/upload', {
      body: Buffer.alloc(16),
      headers: { ...(await bearer(pvc)), origin: 'https://ui.example' },
    });
    assert.equal(r.status, 502);
    assert.match(r.body, /^error in upload-proxy: .*ECONNREFUSED/);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    const pre = await toProxy('/v1beta1/upload', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://ui.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization',
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-methods'], 'POST');
    assert.equal(pre.headers['access-control-allow-headers'], 'authorization');
    assert.equal((await toProxy('/healthz', { method: 'GET' })).body, 'OK');
    assert.equal((await toProxy('/v1beta1/upload-archive', { body: Buffer.alloc(1) })).status, 404);
  });

  void it('passes a cut-off body on as a cut, and the resume through it: query, then the rest', async () => {
    const pvc = await uploadPvc();
    const pod = await serverFor(pvc);
    const raw = await readFile(disk.path);
    const auth = await bearer(pvc);
    const h = { ...auth, 'x-cdi-upload-id': 'via-proxy' };
    const sock = await rawTls(proxyPort, undefined, { ca: proxyCa.certPem, servername: 'cdi-uploadproxy' });
    sock.write(
      `POST /v1beta1/upload HTTP/1.1\r\nhost: x\r\ncontent-length: ${raw.length}\r\nauthorization: ${auth.authorization}\r\nx-cdi-upload-id: via-proxy\r\n\r\n`,
    );
    await new Promise<void>((r) => sock.write(raw.subarray(0, 3 << 20), () => r()));
    while (!pod.log().includes('upload started')) await new Promise((r) => setTimeout(r, 20));
    sock.destroy();
    while (!pod.log().includes('cut off')) await new Promise((r) => setTimeout(r, 20));
    const q = await toProxy('/v1beta1/upload', { method: 'HEAD', headers: h });
    assert.equal(q.status, 200);
    const offset = Number(q.headers['x-cdi-upload-offset']);
    assert.ok(offset > 0);
    const rest = await toProxy('/v1beta1/upload', {
      body: raw.subarray(offset),
      headers: { ...h, 'x-cdi-upload-offset': String(offset) },
    });
    assert.equal(rest.status, 200, rest.body);
    assert.equal(await pod.exited, 0);
    assert.equal(await md5File(path.join(pod.data, 'disk.img')), disk.md5);
  });
});
