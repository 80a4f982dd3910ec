/**
 * The certificate reconcile (src/certs/reconcile.ts) against the real kube-apiserver, with the clock moved by hand:
 * creation of the four signers, bundles and fixed leaves; a second run changes nothing; rotation past the refresh
 * time keeps the old CA in the bundle until it expires; a config change re-issues; the APIService gets the bundle.
 * Holds the cluster lock: `flock /work/cluster-tests.lock node --test ...`.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { commonName, parseBundle } from '../../../src/certs/pki.ts';
import {
  BundleKey,
  CertAnn,
  reconcileCertificates,
  UploadServerClientName,
} from '../../../src/certs/reconcile.ts';
import {
  ApiServiceResource,
  reconcileUploadApiService,
  UploadApiServiceName,
} from '../../../src/deploy/upload.ts';
import {
  Resources,
  type ConfigMap,
  type KubeClient,
  type KubeObject,
  type Secret,
} from '../../../src/kube/index.ts';
import { clusterClient, createNamespace } from '../kube/cluster.ts';
import { deleteIfExists } from './support.ts';

const HOUR = 3600_000;
const t0 = new Date('2026-06-01T00:00:00Z');
const at =
  (h: number): (() => Date) =>
  () =>
    new Date(t0.getTime() + h * HOUR);
let kube: KubeClient;
let ns: string;
let cleanup: () => Promise<void>;

before(async () => {
  kube = clusterClient();
  ({ name: ns, cleanup } = await createNamespace(kube, 'cdi-test-certs'));
});
after(async () => {
  await deleteIfExists(kube, ApiServiceResource, UploadApiServiceName);
  await cleanup?.();
});

const secret = (name: string): Promise<Secret> => kube.get<Secret>(Resources.Secret, name, ns);
const certOf = async (name: string): Promise<X509Certificate> =>
  new X509Certificate(Buffer.from((await secret(name)).data?.['tls.crt'] ?? '', 'base64'));
const bundle = async (name: string): Promise<X509Certificate[]> =>
  parseBundle((await kube.get<ConfigMap>(Resources.ConfigMap, name, ns)).data?.[BundleKey]);
const verifiesWith = (leaf: X509Certificate, cas: X509Certificate[]): boolean =>
  cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));

void describe('certificate reconcile', () => {
  void it('creates the signers, bundles and leaves of upstream, then changes nothing on a second run', async () => {
    const changes = await reconcileCertificates(kube, { namespace: ns, now: at(0) });
    assert.deepEqual(
      changes.map((c) => `${c.kind} ${c.name} ${c.action}`),
      [
        'Secret cdi-apiserver-signer created',
        'ConfigMap cdi-apiserver-signer-bundle created',
        'Secret cdi-apiserver-server-cert created',
        'Secret cdi-uploadproxy-signer created',
        'ConfigMap cdi-uploadproxy-signer-bundle created',
        'Secret cdi-uploadproxy-server-cert created',
        'Secret cdi-uploadserver-signer created',
        'ConfigMap cdi-uploadserver-signer-bundle created',
        'Secret cdi-uploadserver-client-signer created',
        'ConfigMap cdi-uploadserver-client-signer-bundle created',
        'Secret cdi-uploadserver-client-cert created',
      ],
    );
    const api = await certOf('cdi-apiserver-server-cert');
    assert.equal(api.checkHost(`cdi-api.${ns}.svc`), `cdi-api.${ns}.svc`);
    assert.ok(verifiesWith(api, await bundle('cdi-apiserver-signer-bundle')));
    assert.equal(new Date(api.validTo).getTime() - new Date(api.validFrom).getTime(), 24 * HOUR + 1000);
    const client = await certOf('cdi-uploadserver-client-cert');
    assert.equal(commonName(client.subject), UploadServerClientName);
    assert.ok(verifiesWith(client, await bundle('cdi-uploadserver-client-signer-bundle')));
    const signer = await secret('cdi-apiserver-signer');
    assert.equal(signer.type, 'kubernetes.io/tls');
    assert.equal(
      signer.metadata?.annotations?.[CertAnn.CertConfig],
      '{"lifetime":"48h0m0s","refresh":"24h0m0s"}',
    );
    assert.equal(
      commonName((await certOf('cdi-apiserver-signer')).subject),
      `${ns}_cdi-apiserver-signer@${t0.getTime() / 1000}`,
    );

    const versions = async (): Promise<string[]> =>
      [
        ...(await kube.list<KubeObject>(Resources.Secret, { namespace: ns })).items,
        ...(await kube.list<KubeObject>(Resources.ConfigMap, { namespace: ns })).items,
      ].map((o) => `${o.metadata?.name}@${o.metadata?.resourceVersion}`);
    const before2 = await versions();
    assert.deepEqual(await reconcileCertificates(kube, { namespace: ns, now: at(11) }), []);
    assert.deepEqual(await versions(), before2);
  });

  void it('rotates past the refresh time, keeping the old CA in the bundle while it is valid', async () => {
    const oldCa = await certOf('cdi-uploadproxy-signer');
    const oldLeaf = await certOf('cdi-uploadproxy-server-cert');
    const changes = await reconcileCertificates(kube, { namespace: ns, now: at(25) });
    assert.ok(changes.some((c) => c.name === 'cdi-uploadproxy-signer' && c.action === 'rotated'));
    const b = await bundle('cdi-uploadproxy-signer-bundle');
    assert.equal(b.length, 2);
    assert.notEqual(b[0]!.fingerprint256, oldCa.fingerprint256); // the new CA first
    assert.equal(b[1]!.fingerprint256, oldCa.fingerprint256);
    const leaf = await certOf('cdi-uploadproxy-server-cert');
    assert.notEqual(leaf.fingerprint256, oldLeaf.fingerprint256);
    assert.ok(leaf.checkIssued(b[0]!) && leaf.verify(b[0]!.publicKey));
    // a client holding the new bundle still trusts a leaf of the old CA
    assert.ok(verifiesWith(oldLeaf, b));
    // past the first CA's expiry it leaves the bundle
    await reconcileCertificates(kube, { namespace: ns, now: at(49) });
    const b2 = await bundle('cdi-uploadproxy-signer-bundle');
    assert.ok(!b2.some((c) => c.fingerprint256 === oldCa.fingerprint256));
    assert.equal(b2.length, 2);
  });

  void it('re-issues leaves when the config changes, and refuses a config that cannot work', async () => {
    const config = { server: { duration: 12 * HOUR, renewBefore: 6 * HOUR } };
    const changes = await reconcileCertificates(kube, { namespace: ns, now: at(50), config });
    assert.deepEqual(
      changes.filter((c) => c.action === 'rotated').map((c) => `${c.name}: ${c.reason}`),
      [
        'cdi-apiserver-server-cert: the cert config changed',
        'cdi-uploadproxy-server-cert: the cert config changed',
      ],
    );
    const leaf = await certOf('cdi-apiserver-server-cert');
    assert.equal(new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime(), 12 * HOUR + 1000);
    await assert.rejects(
      reconcileCertificates(kube, {
        namespace: ns,
        now: at(50),
        config: { ca: { duration: HOUR, renewBefore: 2 * HOUR } },
      }),
      /certConfig\.ca: renewBefore .* must be less than duration/,
    );
  });

  void it('applies the APIService with the cdi-apiserver CA bundle', async () => {
    await reconcileUploadApiService(kube, ns);
    const a = await kube.get<KubeObject & { spec: { caBundle: string; service: { namespace: string } } }>(
      ApiServiceResource,
      UploadApiServiceName,
    );
    const cm = await kube.get<ConfigMap>(Resources.ConfigMap, 'cdi-apiserver-signer-bundle', ns);
    assert.equal(Buffer.from(a.spec.caBundle, 'base64').toString(), cm.data?.[BundleKey]);
    assert.equal(a.spec.service.namespace, ns);
    await deleteIfExists(kube, ApiServiceResource, UploadApiServiceName);
  });
});
