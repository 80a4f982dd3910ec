/**
 * cdi-apiserver against the real kube-apiserver, through the aggregation layer: the server runs on the host
 * (10.99.0.1, where the API server can reach it), registered with an APIService whose Service has no selector and
 * hand-made Endpoints/EndpointSlice. Upload tokens are asked for with `kubectl create -f` as the admin and, with
 * `--as`, as users with and without rights; the admission plumbing is exercised by real webhook configurations.
 * Needs a kube-apiserver with the aggregation flags (--requestheader-*, --proxy-client-*,
 * --enable-aggregator-routing). Holds the cluster lock: `flock /work/cluster-tests.lock node --test ...`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  allowed,
  denied,
  patched,
  pointerEscape,
  type AdmissionRequest,
} from '../../../src/apiserver/admission.ts';
import {
  createCA,
  issueClientCert,
  issueServerCert,
  validityFrom,
  type KeyPair,
  type Signer,
} from '../../../src/certs/pki.ts';
import { Resources, type KubeClient, type KubeObject } from '../../../src/kube/index.ts';
import type { TokenValidator } from '../../../src/token/token.ts';
import { clusterClient, createNamespace, eventually, kubeconfigPath, kubectl } from '../kube/cluster.ts';
import { deleteIfExists, HOST_IP, R, startAggregatedApiServer } from './support.ts';

let kube: KubeClient;
let cdiNs: string;
let userNs: string;
let cleanups: (() => Promise<void>)[] = [];
let dir: string;
let ca: Signer;
let port: number;
let validator: TokenValidator;
const hookName = `cdi-test-upload-${randomBytes(3).toString('hex')}`;

/** The trivial webhooks the plumbing is tested with: deny ConfigMaps that ask for it, annotate the others. */
function testValidate(r: AdmissionRequest): ReturnType<typeof allowed> {
  const cm = r.object as { data?: Record<string, string> } | undefined;
  if (cm?.data?.['deny'] !== undefined) {
    return denied([{ field: 'data.deny', message: `refused by the test webhook: ${cm.data['deny']}` }]);
  }
  return allowed();
}
function testMutate(r: AdmissionRequest): ReturnType<typeof allowed> {
  const cm = r.object as KubeObject;
  const ops = cm.metadata?.annotations
    ? [
        {
          op: 'add' as const,
          path: `/metadata/annotations/${pointerEscape('cdi.test/mutated')}`,
          value: r.uid,
        },
      ]
    : [{ op: 'add' as const, path: '/metadata/annotations', value: { 'cdi.test/mutated': r.uid } }];
  return patched(ops);
}

async function utrFile(pvcName: string): Promise<string> {
  const f = path.join(dir, `utr-${randomBytes(3).toString('hex')}.yaml`);
  await writeFile(
    f,
    `apiVersion: upload.cdi.kubevirt.io/v1beta1\nkind: UploadTokenRequest\nmetadata:\n  name: token-for-virtctl\n  namespace: ${userNs}\nspec:\n  pvcName: ${pvcName}\n`,
  );
  return f;
}

before(async () => {
  kube = clusterClient();
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-apiserver-'));
  const api = await startAggregatedApiServer(kube, [
    { path: '/test-validate', admit: testValidate },
    { path: '/test-mutate', admit: testMutate },
  ]);
  cleanups.push(api.cleanup);
  ({ cdiNs, port, ca, validator } = api);
  const b = await createNamespace(kube, 'cdi-test-upload-user');
  userNs = b.name;
  cleanups.push(b.cleanup);
  // RBAC for the test users: bob may create upload token requests only; carol may also create PVCs.
  await kube.create(R.Role, {
    metadata: { name: 'upload-tokens', namespace: userNs },
    rules: [{ apiGroups: ['upload.cdi.kubevirt.io'], resources: ['uploadtokenrequests'], verbs: ['create'] }],
  } as KubeObject);
  await kube.create(R.Role, {
    metadata: { name: 'pvcs', namespace: userNs },
    rules: [{ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['create'] }],
  } as KubeObject);
  const bind = (name: string, role: string, users: string[]): Promise<unknown> =>
    kube.create(R.RoleBinding, {
      metadata: { name, namespace: userNs },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role },
      subjects: users.map((u) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: u })),
    } as KubeObject);
  await bind('upload-tokens', 'upload-tokens', ['bob', 'carol']);
  await bind('pvcs', 'pvcs', ['carol']);
});

after(async () => {
  // The APIService first: an unavailable APIService breaks discovery for every other test.
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  cleanups = [];
  if (dir) await rm(dir, { recursive: true, force: true });
});

void describe('cdi-apiserver through the aggregation layer', () => {
  void it('is discovered: kubectl lists uploadtokenrequests in upload.cdi.kubevirt.io', async () => {
    const r = await kubectl('api-resources', '--api-group=upload.cdi.kubevirt.io', '-o', 'wide');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /uploadtokenrequests\s+utr,utrs\s+upload\.cdi\.kubevirt\.io\/v1beta1\s+true\s+UploadTokenRequest\s+create/,
    );
  });

  void it('gives the admin a PS256 token for the PVC (kubectl create -f)', async () => {
    const r = await kubectl('create', '-f', await utrFile('disk-a'), '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const utr = JSON.parse(r.stdout) as {
      metadata: { name: string; namespace: string };
      status: { token: string };
    };
    assert.equal(utr.metadata.name, 'token-for-virtctl');
    assert.equal(utr.metadata.namespace, userNs);
    const payload = await validator.validate(utr.status.token);
    assert.deepEqual(payload, {
      operation: 'Upload',
      name: 'disk-a',
      namespace: userNs,
      resource: { group: '', version: 'v1', resource: 'persistentvolumeclaims' },
    });
  });

  void it('gives a token to a user who may create PVCs there (carol)', async () => {
    const r = await kubectl(
      'create',
      '-f',
      await utrFile('disk-c'),
      '--as=carol',
      '-o',
      'jsonpath={.status.token}',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await validator.validate(r.stdout)).name, 'disk-c');
  });

  void it('refuses (403) a user the SubjectAccessReview denies: may create token requests, not PVCs (bob)', async () => {
    const r = await kubectl('create', '-f', await utrFile('disk-b'), '--as=bob');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Forbidden/);
    assert.match(
      r.stderr,
      /User "bob" cannot create resource "persistentvolumeclaims" in API group "" in the namespace/,
    );
  });

  void it('is never reached by a user without any right (the kube-apiserver refuses: 403)', async () => {
    const r = await kubectl('create', '-f', await utrFile('disk-d'), '--as=dave');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Forbidden.*"dave" cannot create resource "uploadtokenrequests"/);
  });

  void it('answers 422 for a request without spec.pvcName', async () => {
    const f = path.join(dir, 'empty.yaml');
    await writeFile(
      f,
      `apiVersion: upload.cdi.kubevirt.io/v1beta1\nkind: UploadTokenRequest\nmetadata:\n  name: x\n  namespace: ${userNs}\nspec: {}\n`,
    );
    const r = await kubectl('create', '-f', f);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.pvcName: Required value/);
  });

  void it('trusts no X-Remote-User without the front-proxy certificate (401), and none from another CA', async () => {
    const v = validityFrom(new Date(), 3600_000);
    const other = await createCA('not-the-front-proxy', v);
    const impostor = await issueClientCert(other, 'front-proxy-client', [], v);
    for (const cert of [undefined, impostor] as (KeyPair | undefined)[]) {
      const r = await post(
        `/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/${userNs}/uploadtokenrequests`,
        cert,
        {
          'x-remote-user': 'kubernetes-admin',
          'x-remote-group': 'system:masters',
        },
      );
      assert.equal(r.status, 401);
      assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'Unauthorized');
    }
  });

  void it('runs admission webhooks: a validating one refuses with its message, a mutating one patches', async () => {
    const caBundle = Buffer.from(ca.certPem).toString('base64');
    const rules = [
      { apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], operations: ['CREATE'] },
    ];
    const common = {
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 10,
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': userNs } },
      rules,
    };
    cleanups.push(() => deleteIfExists(kube, R.Validating, hookName));
    cleanups.push(() => deleteIfExists(kube, R.Mutating, hookName));
    await kube.create(R.Validating, {
      metadata: { name: hookName },
      webhooks: [
        {
          name: 'validate.test.cdi.kubevirt.io',
          clientConfig: { url: `https://${HOST_IP}:${port}/test-validate`, caBundle },
          ...common,
        },
      ],
    } as KubeObject);
    await kube.create(R.Mutating, {
      metadata: { name: hookName },
      webhooks: [
        {
          name: 'mutate.test.cdi.kubevirt.io',
          clientConfig: { url: `https://${HOST_IP}:${port}/test-mutate`, caBundle },
          ...common,
        },
      ],
    } as KubeObject);
    // the webhook configurations take effect asynchronously: wait until the validating one refuses
    const refused = await eventually('the validating webhook to refuse', async () => {
      const r = await kubectl(
        '-n',
        userNs,
        'create',
        'configmap',
        `deny-${randomBytes(2).toString('hex')}`,
        '--from-literal=deny=<because>',
      );
      return r.code !== 0 && /refused by the test webhook/.test(r.stderr) ? r : undefined;
    });
    assert.match(
      refused.stderr,
      /admission webhook "validate\.test\.cdi\.kubevirt\.io" denied the request: refused by the test webhook: <because>/,
    );
    const ok = await kubectl(
      '-n',
      userNs,
      'create',
      'configmap',
      'allowed',
      '--from-literal=a=b',
      '-o',
      'json',
    );
    assert.equal(ok.code, 0, ok.stderr);
    const cm = JSON.parse(ok.stdout) as KubeObject;
    assert.match(cm.metadata?.annotations?.['cdi.test/mutated'] ?? '', /^[0-9a-f-]{36}$/);
  });

  void it('the cdi-apiserver entrypoint starts, creates the signing key Secret, and serves discovery and /healthz', async () => {
    const ns = await createNamespace(kube, 'cdi-test-upload-cmd');
    cleanups.push(ns.cleanup);
    const v = validityFrom(new Date(), 3600_000);
    const cert = await issueServerCert(ca, ['127.0.0.1'], v);
    await writeFile(path.join(dir, 'tls.crt'), cert.certPem);
    await writeFile(path.join(dir, 'tls.key'), cert.keyPem);
    const child = spawn(
      process.execPath,
      [path.resolve(import.meta.dirname, '../../../src/cmd/apiserver.ts'), '--kubeconfig', kubeconfigPath],
      {
        env: {
          PATH: process.env.PATH ?? '',
          POD_NAMESPACE: ns.name,
          CERT_FILE: path.join(dir, 'tls.crt'),
          KEY_FILE: path.join(dir, 'tls.key'),
          LISTEN_ADDRESS: '127.0.0.1',
          LISTEN_PORT: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    try {
      let log = '';
      const p = await new Promise<number>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => {
          log += d.toString();
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
          if (m) resolve(Number(m[1]));
        });
        child.on('exit', (code) => reject(new Error(`cdi-apiserver exited ${code}: ${log}`)));
      });
      const get = (p2: string): Promise<{ status: number; body: string }> => get2(p, p2);
      assert.deepEqual(await get('/healthz'), { status: 200, body: 'OK' });
      const list = JSON.parse((await get('/apis/upload.cdi.kubevirt.io/v1beta1')).body) as {
        resources: { name: string }[];
      };
      assert.deepEqual(
        list.resources.map((x) => x.name),
        ['uploadtokenrequests'],
      );
      const secret = await kube.get<KubeObject & { data?: Record<string, string> }>(
        Resources.Secret,
        'cdi-api-signing-key',
        ns.name,
      );
      assert.match(Buffer.from(secret.data?.['id_rsa'] ?? '', 'base64').toString(), /BEGIN RSA PRIVATE KEY/);
      assert.match(Buffer.from(secret.data?.['id_rsa.pub'] ?? '', 'base64').toString(), /BEGIN PUBLIC KEY/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

function post(
  p: string,
  cert: KeyPair | undefined,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: HOST_IP,
        port,
        path: p,
        method: 'POST',
        ca: ca.certPem,
        servername: `cdi-api.${cdiNs}.svc`,
        ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ spec: { pvcName: 'x' } }));
  });
}

function get2(port2: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port: port2, path: p, rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}
