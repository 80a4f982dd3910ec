/**
 * The metrics endpoint (src/monitoring/server.ts, auth.ts) against the real kube-apiserver: TokenRequest tokens of a
 * ServiceAccount bound to a /metrics reader ClusterRole and of one bound to nothing; 401 without a valid token, 403
 * for the stranger, 200 with the CDI gauges for the reader; reviews cached (moved past their lifetime by a hand-set
 * clock); the certificate from files (and reloaded when they change) or made at start; health on plain HTTP.
 * Holds the cluster lock: `flock -o /work/cluster-tests.lock node --test test/integration/monitoring/server.test.ts`.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { createCA, issueServerCert, validityFrom, type Signer } from '../../../src/certs/pki.ts';
import { serviceHostnames } from '../../../src/certs/reconcile.ts';
import { KubeClient, silentLogger, type KubeClient as Kube } from '../../../src/kube/index.ts';
import { DelegatedAuth, KubeReviews, type Reviews } from '../../../src/monitoring/auth.ts';
import { ControllerMetrics } from '../../../src/monitoring/metrics.ts';
import { startMetricsServer, type MetricsServer } from '../../../src/monitoring/server.ts';
import {
  createMetricsReaders,
  Rbac,
  serviceAccountToken,
  type MetricsReaders,
} from '../../support/metrics-auth.ts';
import { request } from '../../support/upload.ts';
import { clusterClient, createNamespace, eventually } from '../kube/cluster.ts';

const SERVICE = 'cdi-prometheus-metrics.cdi.svc';
const MINUTE = 60_000;

let kube: Kube;
let ns: string;
let cleanupNs: () => Promise<void>;
let readers: MetricsReaders;
let readerToken: string;
let strangerToken: string;
let ca: Signer;
let certDir: string;

/** Counts the reviews that reach the API server (the real one answers them). */
class CountingReviews implements Reviews {
  tokenReviews = 0;
  accessReviews = 0;
  readonly #inner: Reviews;
  constructor(inner: Reviews) {
    this.#inner = inner;
  }
  tokenReview(token: string): ReturnType<Reviews['tokenReview']> {
    this.tokenReviews++;
    return this.#inner.tokenReview(token);
  }
  accessReview(...a: Parameters<Reviews['accessReview']>): ReturnType<Reviews['accessReview']> {
    this.accessReviews++;
    return this.#inner.accessReview(...a);
  }
}

async function writeCert(dir: string, hostnames: string[]): Promise<string> {
  const leaf = await issueServerCert(ca, hostnames, validityFrom(new Date(), 3600_000));
  // key first: a reader that sees the new certificate must find its key
  await writeFile(join(dir, 'tls.key'), leaf.keyPem);
  await writeFile(join(dir, 'tls.crt'), leaf.certPem);
  return leaf.certPem;
}

const get = (port: number, token?: string, o: { path?: string; method?: string } = {}) =>
  request(port, o.path ?? '/metrics', {
    method: o.method ?? 'GET',
    ca: ca.certPem,
    servername: SERVICE,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });

before(async () => {
  kube = clusterClient();
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(kube, 'cdi-test-metrics'));
  readers = await createMetricsReaders(kube, ns);
  readerToken = await serviceAccountToken(kube, ns, readers.reader);
  strangerToken = await serviceAccountToken(kube, ns, readers.stranger);
  ca = await createCA('cdi-test-metrics-ca', validityFrom(new Date(), 3600_000));
  certDir = await mkdtemp(join(tmpdir(), 'cdi-metrics-cert-'));
  await writeCert(certDir, serviceHostnames('cdi-prometheus-metrics', 'cdi'));
});
after(async () => {
  await readers?.cleanup();
  await cleanupNs?.();
  if (certDir) await rm(certDir, { recursive: true, force: true });
});

void describe('metrics over HTTPS with TokenReview and SubjectAccessReview', () => {
  let server: MetricsServer;
  let reviews: CountingReviews;
  let clock = Date.now();

  before(async () => {
    const registry = new Registry();
    const m = new ControllerMetrics(registry);
    m.setDataVolumePending(2);
    reviews = new CountingReviews(new KubeReviews(kube));
    server = await startMetricsServer({
      registry,
      auth: new DelegatedAuth(reviews, { now: () => clock }),
      log: silentLogger,
      port: 0,
      host: '127.0.0.1',
      certDir,
      hostnames: ['unused.example.com'],
      certCheckMs: 50,
    });
  });
  after(() => server?.close());

  void it('401 without a token, with a made-up one, or with another scheme', async () => {
    const none = await get(server.port);
    assert.equal(none.status, 401);
    assert.equal(none.body, 'Unauthorized\n');
    assert.equal((await get(server.port, 'not-a-token')).status, 401);
    const basic = await request(server.port, '/metrics', {
      method: 'GET',
      ca: ca.certPem,
      servername: SERVICE,
      headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` },
    });
    assert.equal(basic.status, 401);
    // nothing of the metrics leaks
    assert.doesNotMatch(none.body + basic.body, /kubevirt_cdi/);
  });

  void it('403 for a ServiceAccount that may not get /metrics, naming the user', async () => {
    const r = await get(server.port, strangerToken);
    assert.equal(r.status, 403);
    assert.equal(r.body, `Authorization denied for user system:serviceaccount:${ns}:stranger\n`);
  });

  void it('200 with the CDI gauges for the reader; the HTTP method is the verb (POST is not granted)', async () => {
    const r = await get(server.port, readerToken);
    assert.equal(r.status, 200, r.body);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^kubevirt_cdi_datavolume_pending 2$/m);
    assert.match(r.body, /# TYPE kubevirt_cdi_storageprofile_info gauge/);
    assert.equal((await get(server.port, readerToken, { method: 'POST' })).status, 403);
    // other paths: authenticated first, then not found
    assert.equal((await get(server.port, undefined, { path: '/debug/pprof/' })).status, 401);
    assert.equal((await get(server.port, readerToken, { path: '/nothing' })).status, 403);
  });

  void it('caches reviews: repeated scrapes ask the API server nothing new until the answers expire', async () => {
    assert.equal((await get(server.port, readerToken)).status, 200);
    const t = reviews.tokenReviews;
    const a = reviews.accessReviews;
    for (let i = 0; i < 3; i++) assert.equal((await get(server.port, readerToken)).status, 200);
    assert.deepEqual([reviews.tokenReviews, reviews.accessReviews], [t, a]);
    // the grant is withdrawn: the cached "allowed" holds for its 5 minutes, then the reader is refused
    await kube.delete(Rbac.ClusterRoleBinding, readers.binding);
    assert.equal((await get(server.port, readerToken)).status, 200);
    await eventually('the reader to be refused once the cached answer expired', async () => {
      clock += 5 * MINUTE + 1000;
      return (await get(server.port, readerToken)).status === 403;
    });
    assert.ok(reviews.tokenReviews > t && reviews.accessReviews > a);
    // a denial is cached for 30 s only
    const denied = reviews.accessReviews;
    assert.equal((await get(server.port, readerToken)).status, 403);
    assert.equal(reviews.accessReviews, denied);
    clock += 31_000;
    assert.equal((await get(server.port, readerToken)).status, 403);
    assert.equal(reviews.accessReviews, denied + 1);
  });

  void it('a token whose ServiceAccount was deleted stops working once its review expires', async () => {
    await kube.delete(Rbac.ServiceAccount, readers.stranger, { namespace: ns });
    await eventually('the deleted ServiceAccount token to be refused', async () => {
      clock += MINUTE + 1000;
      return (await get(server.port, strangerToken)).status === 401;
    });
  });

  void it('serves the mounted certificate and picks up a new one written in its place', async () => {
    const served = async (): Promise<string> => {
      const sock = tls.connect({ host: '127.0.0.1', port: server.port, ca: ca.certPem, servername: SERVICE });
      await new Promise((r, j) => sock.once('secureConnect', r).once('error', j));
      const fp = sock.getPeerX509Certificate()?.fingerprint256 ?? '';
      assert.equal(sock.alpnProtocol, false, 'no ALPN asked, none chosen');
      sock.destroy();
      return fp;
    };
    const before = await served();
    const next = await writeCert(certDir, serviceHostnames('cdi-prometheus-metrics', 'cdi'));
    const fp = new X509Certificate(next).fingerprint256;
    assert.notEqual(fp, before);
    await eventually('the new certificate to be served', async () => (await served()) === fp);
  });

  void it('only HTTP/1.1 over ALPN (as upstream, against HTTP/2 rapid reset)', async () => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port: server.port,
      ca: ca.certPem,
      servername: SERVICE,
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    await new Promise((r, j) => sock.once('secureConnect', r).once('error', j));
    assert.equal(sock.alpnProtocol, 'http/1.1');
    sock.destroy();
  });
});

void describe('without a mounted certificate', () => {
  void it('makes one at start for the given names; a token is still required', async () => {
    const server = await startMetricsServer({
      registry: new Registry(),
      auth: new DelegatedAuth(new KubeReviews(kube)),
      log: silentLogger,
      port: 0,
      host: '127.0.0.1',
      certDir: join(certDir, 'missing'),
      hostnames: serviceHostnames('cdi-prometheus-metrics', 'cdi'),
    });
    try {
      const selfCa = server.cert.selfSignedCa;
      assert.ok(selfCa, 'a certificate made at start says so');
      const leaf = new X509Certificate(server.cert.cert);
      assert.ok(leaf.checkHost(SERVICE));
      assert.ok(leaf.verify(new X509Certificate(selfCa).publicKey));
      // another CA does not vouch for it
      await assert.rejects(
        request(server.port, '/metrics', { method: 'GET', ca: ca.certPem, servername: SERVICE }),
        /self[- ]signed|unable to verify|unable to get local issuer/i,
      );
      const r = await request(server.port, '/metrics', { method: 'GET', ca: selfCa, servername: SERVICE });
      assert.equal(r.status, 401);
    } finally {
      await server.close();
    }
  });

  void it('answers 500 when the API server cannot be asked, and asks again next time', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'gone', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'gone', user: 'u' }],
      currentContext: 'c',
    });
    const reviews = new CountingReviews(new KubeReviews(new KubeClient(kc)));
    const server = await startMetricsServer({
      registry: new Registry(),
      auth: new DelegatedAuth(reviews),
      log: silentLogger,
      port: 0,
      host: '127.0.0.1',
      hostnames: ['localhost'],
    });
    try {
      const r = await request(server.port, '/metrics', {
        method: 'GET',
        headers: { authorization: `Bearer ${readerToken}` },
      });
      assert.equal(r.status, 500);
      assert.equal(r.body, 'Authentication failed\n');
      await request(server.port, '/metrics', {
        method: 'GET',
        headers: { authorization: `Bearer ${readerToken}` },
      });
      assert.equal(reviews.tokenReviews, 2, 'a failure to ask is not cached');
    } finally {
      await server.close();
    }
  });
});
