// Uploads end to end on the full cluster: the deployed cdi-controller (upload controller, certificates),
// cdi-apiserver behind the real aggregation layer, cdi-uploadproxy, and upload server pods pulled from the local
// registry, onto CSI hostpath volumes (Filesystem and Block). Clients are the ones a user runs: `cdi upload`, plain
// `curl` with a token from `kubectl create -f`, and upstream's `virtctl image-upload` v1.8.4. The proxy is reached from
// the host at its Service's cluster IP (kube-proxy runs on the node); a verifier pod checks the md5 on the volume.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Secret,
  type Service,
} from '../../src/kube/index.ts';
import type { CDIConfig, DataVolume } from '../../src/controller/shared/types.ts';
import { Operation, TokenGenerator, UploadTokenIssuer } from '../../src/token/token.ts';
import { clusterClient, createNamespace, eventually, kubeconfigPath } from '../integration/kube/cluster.ts';
import { cutRelay, makeMarkupTar, runCdi } from '../support/upload.ts';
import { virtctlBinary } from '../support/virtctl.ts';
import {
  STORAGE_CLASS,
  deployCdi,
  setCdiConfig,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  uploadToken,
  createUploadDataVolume,
  type Fixtures,
} from './harness.ts';

const A = 'cdi.kubevirt.io/';
const virtctl = await virtctlBinary();

let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};
let fx: Fixtures;
let proxyIp: string;
let proxyUrl: string;
const undo: (() => Promise<void>)[] = [];

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  undo.push(await deployCdi(client));
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-upload'));
  fx = await makeFixtures();
  const svc = await client.get<Service>(Resources.Service, 'cdi-uploadproxy', 'cdi');
  proxyIp = svc.spec?.clusterIP ?? '';
  proxyUrl = `https://${proxyIp}`;
  // the CLI's default comes from CDIConfig, as upstream's virtctl; set through CDI.spec.config (the operator's)
  undo.push(await setCdiConfig(client, { uploadProxyURLOverride: proxyUrl }));
});

after(async () => {
  await cleanupNs();
  for (const u of undo.reverse()) await u();
  await fx?.cleanup();
});

const file = (name: string): string => path.join(fx.dir, name);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const cdi = (...args: string[]): ReturnType<typeof runCdi> => runCdi(kubeconfigPath, ...args);

/** `cdi upload dv NAME` with a 64Mi DataVolume of the e2e class, to the proxy (or, with defaultUrl, to CDIConfig's). */
const uploadDv = (name: string, args: string[], o: { defaultUrl?: boolean } = {}): Promise<Run> =>
  cdi(
    'upload',
    'dv',
    name,
    '-n',
    ns,
    '--size',
    '64Mi',
    '--storage-class',
    STORAGE_CLASS,
    '--insecure',
    '--wait-secs',
    '180',
    '--no-progress',
    ...(o.defaultUrl || args.includes('--uploadproxy-url') ? [] : ['--uploadproxy-url', proxyUrl]),
    ...args,
  );

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const token = (pvc: string): Promise<string> => uploadToken(ns, pvc);

/** curl to the proxy (certificate not verified: it names the Service, the host reaches its IP): status and body. */
async function curl(
  urlPath: string,
  bearer: string,
  body: string,
  headers: string[] = [],
): Promise<{ status: number; body: string }> {
  const out = path.join(fx.dir, `curl-${Math.random().toString(36).slice(2)}`);
  const r = await run('curl', [
    '-sS',
    '-k',
    '-o',
    out,
    '-w',
    '%{http_code}',
    '-H',
    `Authorization: Bearer ${bearer}`,
    ...headers.flatMap((h) => ['-H', h]),
    '--data-binary',
    `@${body}`,
    `${proxyUrl}${urlPath}`,
  ]);
  return { status: Number(r.stdout.trim()), body: await readFile(out, 'utf8').catch(() => r.stderr) };
}

const getDv = (name: string): Promise<DataVolume & KubeObject> =>
  client.get<DataVolume & KubeObject>(Resources.DataVolume, name, ns);
const getPvc = (name: string): Promise<PersistentVolumeClaim> =>
  client.get<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns);

const createUploadDv = (name: string, opts: { contentType?: 'archive' } = {}): Promise<void> =>
  createUploadDataVolume(client, ns, name, opts);

const phaseIs = (name: string, phase: string): Promise<true> =>
  eventually(
    `DataVolume ${name} ${phase}`,
    async () => (await getDv(name)).status?.phase === phase || undefined,
    180_000,
    500,
  );

async function dvEvents(name: string): Promise<{ reason?: string; message?: string; type?: string }[]> {
  const l = await client.list<KubeObject & { reason?: string; message?: string; type?: string }>(
    Resources.Event,
    { namespace: ns, fieldSelector: `involvedObject.kind=DataVolume,involvedObject.name=${name}` },
  );
  return l.items;
}

const rawMd5 = (): string => fx.rawMd5;

void describe('upload end to end', () => {
  void it('cdi upload dv of a qcow2: CDIConfig URL, UploadScheduled → UploadReady → Succeeded with events, md5, cleanup', async () => {
    await eventually(
      'CDIConfig status.uploadProxyURL',
      async () =>
        (await client.get<CDIConfig & KubeObject>(Resources.CDIConfig, 'config')).status?.uploadProxyURL ===
          proxyUrl || undefined,
      60_000,
      500,
    );
    // every phase the DataVolume passes through, as `kubectl get dv -w` shows them
    const watch = spawn(
      'kubectl',
      [
        '--kubeconfig',
        kubeconfigPath,
        '-n',
        ns,
        'get',
        'dv',
        '--field-selector',
        'metadata.name=up-qcow2',
        '-w',
        '-o',
        'jsonpath={.status.phase}{"\\n"}',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let seen = '';
    watch.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    // no --uploadproxy-url: the CLI takes CDIConfig's
    const r = await uploadDv('up-qcow2', ['--image-path', file(fx.files.qcow2)], { defaultUrl: true });
    watch.kill();
    assert.equal(r.code, 0, r.stderr);
    const phases = [...new Set(seen.split('\n').filter((x) => x !== ''))];
    const order = ['UploadScheduled', 'UploadReady', 'Succeeded'];
    assert.deepEqual(
      phases.filter((p) => order.includes(p)),
      order,
      `phases seen: ${phases.join(' → ')}`,
    );
    const dv = await getDv('up-qcow2');
    assert.equal(dv.status?.phase, 'Succeeded');
    assert.equal(dv.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    // events for the phase changes (UploadScheduled has one only when the pod's Pending is seen in the same step)
    const reasons = (await dvEvents('up-qcow2')).map((e) => e.reason);
    for (const want of ['UploadReady', 'UploadSucceeded'])
      assert.ok(reasons.includes(want), `${want} in ${reasons.join(',')}`);
    const pvc = await getPvc('up-qcow2');
    assert.equal(pvc.metadata?.annotations?.[`${A}storage.pod.phase`], 'Succeeded');
    assert.equal(pvc.metadata?.annotations?.[`${A}storage.uploadPodName`], 'cdi-upload-up-qcow2');
    // the pod, its Service and its certificate Secret go after the upload
    await eventually(
      'upload pod, Service and Secret removed',
      async () => {
        const left = await Promise.all([
          client.getOrUndefined(Resources.Pod, 'cdi-upload-up-qcow2', ns),
          client.getOrUndefined(Resources.Service, 'cdi-upload-up-qcow2', ns),
          client.getOrUndefined<Secret>(Resources.Secret, 'cdi-upload-up-qcow2', ns),
        ]);
        return left.every((x) => x === undefined) || undefined;
      },
      120_000,
      1000,
    );
    assert.equal(await md5OnVolume(client, ns, 'up-qcow2', { bytes: fx.rawSize }), rawMd5());
  });

  void it('cdi upload dv of a raw.gz', async () => {
    const r = await uploadDv('up-rawgz', [
      '--uploadproxy-url',
      proxyUrl,
      '--image-path',
      file(fx.files.rawGz),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await md5OnVolume(client, ns, 'up-rawgz', { bytes: fx.rawSize }), rawMd5());
  });

  void it('cdi upload dv --archive-path: the tar is extracted into the volume', async () => {
    const r = await uploadDv('up-archive', ['--archive-path', file(fx.files.archive)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await getDv('up-archive')).spec?.contentType, 'archive');
    assert.equal(await md5OnVolume(client, ns, 'up-archive', { file: 'payload.bin' }), fx.archiveFileMd5);
  });

  void it('cdi upload dv --volume-mode block: a qcow2 onto a Block volume', async () => {
    const r = await uploadDv('up-block', ['--volume-mode', 'block', '--image-path', file(fx.files.qcow2)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await getPvc('up-block')).spec?.volumeMode, 'Block');
    assert.equal(await md5OnVolume(client, ns, 'up-block', { block: true, bytes: fx.rawSize }), rawMd5());
  });

  void it('a WaitForFirstConsumer class: the DataVolume waits for a consumer and the CLI says to --force-bind; with it the upload completes', async () => {
    const wffc = `${STORAGE_CLASS}-wffc`;
    const waiting = await uploadDv('up-wffc', [
      '--storage-class',
      wffc,
      '--image-path',
      file(fx.files.qcow2),
    ]);
    assert.notEqual(waiting.code, 0, waiting.stdout);
    assert.match(
      waiting.stderr,
      /cannot upload to DataVolume in WaitForFirstConsumer phase, make sure the PVC is Bound, or use --force-bind/,
    );
    assert.equal((await getDv('up-wffc')).status?.phase, 'WaitForFirstConsumer');
    assert.equal((await getPvc('up-wffc')).status?.phase, 'Pending');

    const bound = await uploadDv('up-wffc-bound', [
      '--storage-class',
      wffc,
      '--force-bind',
      '--image-path',
      file(fx.files.qcow2),
    ]);
    assert.equal(bound.code, 0, bound.stderr);
    assert.equal((await getDv('up-wffc-bound')).status?.phase, 'Succeeded');
    assert.equal(await md5OnVolume(client, ns, 'up-wffc-bound', { bytes: fx.rawSize }), rawMd5());
  });

  void it('the legacy annotated PVC, with curl and a token from kubectl create -f; after success the proxy refuses', async () => {
    await client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
      metadata: { name: 'legacy', namespace: ns, annotations: { [`${A}storage.upload.target`]: '' } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: STORAGE_CLASS,
        resources: { requests: { storage: '64Mi' } },
      },
    });
    await eventually(
      'PVC legacy storage.pod.ready=true',
      async () =>
        (await getPvc('legacy')).metadata?.annotations?.[`${A}storage.pod.ready`] === 'true' || undefined,
      180_000,
      500,
    );
    const t = await token('legacy');
    const r = await curl('/v1beta1/upload', t, file(fx.files.qcow2));
    assert.equal(r.status, 200, r.body);
    await eventually(
      'PVC legacy storage.pod.phase=Succeeded',
      async () =>
        (await getPvc('legacy')).metadata?.annotations?.[`${A}storage.pod.phase`] === 'Succeeded' ||
        undefined,
      120_000,
      500,
    );
    const again = await curl('/v1beta1/upload', t, file(fx.files.qcow2));
    assert.equal(again.status, 503, again.body);
    assert.match(again.body, /rejecting Upload Request for PVC legacy that already finished uploading/);
    assert.equal(await md5OnVolume(client, ns, 'legacy', { bytes: fx.rawSize }), rawMd5());
  });

  void it('virtctl image-upload v1.8.4, unchanged', { skip: virtctl.skip }, async () => {
    assert.ok('path' in virtctl);
    const r = await run(virtctl.path, [
      '--kubeconfig',
      kubeconfigPath,
      'image-upload',
      'dv',
      'up-virtctl',
      '-n',
      ns,
      '--size=64Mi',
      `--storage-class=${STORAGE_CLASS}`,
      `--image-path=${file(fx.files.qcow2)}`,
      `--uploadproxy-url=${proxyUrl}`,
      '--insecure',
      '--wait-secs=180',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /Processing completed successfully/);
    assert.equal((await getDv('up-virtctl')).status?.phase, 'Succeeded');
    assert.equal(await md5OnVolume(client, ns, 'up-virtctl', { bytes: fx.rawSize }), rawMd5());
  });

  void it('a forged, an expired and another PVC’s token get 401', async () => {
    await createUploadDv('tokens');
    await phaseIs('tokens', 'UploadReady');
    const claims = {
      operation: Operation.Upload,
      name: 'tokens',
      namespace: ns,
      resource: { group: '', version: 'v1', resource: 'persistentvolumeclaims' },
    };
    const forged = await new TokenGenerator(
      UploadTokenIssuer,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
      300_000,
    ).generate(claims);
    const key = await client.get<Secret>(Resources.Secret, 'cdi-api-signing-key', 'cdi');
    const real = createPrivateKey(Buffer.from(key.data?.['id_rsa'] ?? '', 'base64').toString());
    const expired = await new TokenGenerator(
      UploadTokenIssuer,
      real,
      60_000,
      () => Date.now() - 3600_000,
    ).generate(claims);
    for (const [what, t] of [
      ['forged', forged],
      ['expired', expired],
    ] as const) {
      const r = await curl('/v1beta1/upload', t, file(fx.files.qcow2));
      assert.equal(r.status, 401, `${what}: ${r.body}`);
    }
    const valid = await token('tokens');
    const other = await curl('/v1beta1/upload', valid, file(fx.files.qcow2), [
      `x-cdi-upload-target: ${ns}/up-qcow2`,
    ]);
    assert.equal(other.status, 401, other.body);
    assert.equal((await getDv('tokens')).status?.phase, 'UploadReady');
  });

  void it('two concurrent uploads to one PVC: the second gets 503, the first completes', async () => {
    await createUploadDv('busy');
    await phaseIs('busy', 'UploadReady');
    const raw = await readFile(path.join(fx.dir, 'disk.raw'));
    const t = await token('busy');
    let status = 0;
    const first = https.request({
      host: proxyIp,
      port: 443,
      path: '/v1beta1/upload',
      method: 'POST',
      rejectUnauthorized: false,
      agent: false,
      headers: { authorization: `Bearer ${t}`, 'content-length': String(raw.length) },
    });
    const answered = new Promise<string>((resolve, reject) => {
      first.on('response', (res) => {
        status = res.statusCode ?? 0;
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      });
      first.on('error', reject);
    });
    // Half of the body (16 MiB, more than the sockets and the proxy buffer between us and the server, so the
    // server is receiving it), then the first upload holds.
    await new Promise<void>((r) => first.write(raw.subarray(0, raw.length >> 1), () => r()));
    const second = await curl('/v1beta1/upload', t, file(fx.files.qcow2));
    // the upload server's refusal (empty body), not one of the proxy's (which say why)
    assert.equal(second.status, 503, second.body);
    assert.doesNotMatch(second.body, /rejecting/);
    first.end(raw.subarray(raw.length >> 1));
    const body = await answered;
    assert.equal(status, 200, body);
    await phaseIs('busy', 'Succeeded');
    assert.equal(await md5OnVolume(client, ns, 'busy', { bytes: fx.rawSize }), rawMd5());
  });

  void it('an error body carrying <script> comes back escaped', async () => {
    await createUploadDv('markup', { contentType: 'archive' });
    await phaseIs('markup', 'UploadReady');
    const r = await curl('/v1beta1/upload', await token('markup'), await makeMarkupTar(fx.dir));
    assert.ok(r.status >= 400, `${r.status} ${r.body}`);
    assert.ok(!r.body.includes('<script>'), r.body);
    assert.match(r.body, /&lt;script&gt;/);
  });

  void it('too large: 400 with both sizes; a checksum mismatch fails cleanly; the right checksum then succeeds', async () => {
    await createUploadDv('small');
    await phaseIs('small', 'UploadReady');
    const big = await curl('/v1beta1/upload', await token('small'), file(fx.files.tooBig));
    assert.equal(big.status, 400, big.body);
    const m = /virtual image size (\d+) is larger than the reported available storage (\d+)/.exec(big.body);
    assert.ok(m, big.body);
    assert.equal(Number(m[1]), 256 << 20);
    assert.ok(Number(m[2]) < 64 << 20 && Number(m[2]) > 0, big.body);

    const raw = path.join(fx.dir, 'disk.raw');
    const sha = createHash('sha256')
      .update(await readFile(raw))
      .digest('hex');
    const wrong = sha.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const intoSmall = (...args: string[]): Promise<Run> =>
      cdi(
        'upload',
        'dv',
        'small',
        '-n',
        ns,
        '--no-create',
        '--insecure',
        '--no-progress',
        '--image-path',
        raw,
        ...args,
      );
    const bad = await intoSmall('--retry', '0', '--checksum', `sha256:${wrong}`);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^cdi: error: .*checksum mismatch/m);
    assert.equal((await getDv('small')).status?.phase, 'UploadReady', 'not Succeeded after a mismatch');
    const good = await intoSmall('--wait-secs', '180', '--checksum', `sha256:${sha}`);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(await md5OnVolume(client, ns, 'small', { bytes: fx.rawSize }), rawMd5());
  });

  void it('an interrupted raw upload resumes where it stopped, and the md5 matches', async () => {
    const cutAt = 12 << 20;
    const relay = await cutRelay({ host: proxyIp, port: 443 }, cutAt);
    try {
      const r = await uploadDv('up-resume', [
        '--uploadproxy-url',
        `https://127.0.0.1:${relay.port}`,
        '--image-path',
        path.join(fx.dir, 'disk.raw'),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /resuming the upload at byte \d+ of \d+/);
      // the whole body reached the proxy about once: the resumed request sent only the rest
      assert.ok(relay.up() < fx.rawSize + cutAt, `${relay.up()} bytes went up for a ${fx.rawSize}-byte file`);
    } finally {
      relay.close();
    }
    assert.equal(await md5OnVolume(client, ns, 'up-resume', { bytes: fx.rawSize }), rawMd5());
  });
});
