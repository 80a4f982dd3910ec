// The host-assisted clone's certificates on the real API server (fake kubelet, see harness.ts): the target's upload
// server is the upload controller's pod (DEADLINE, headless Service on 8443, no scratch), and the source pod's client
// certificate is issued with the server's, so that it chains to a CA in the bundle that server was given; a server
// that reaches its deadline before the stream is replaced together with the source's certificate.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Pod,
  type Secret,
  type Service,
} from '../../../src/kube/index.ts';
import { uploadPodName } from '../../../src/api/upload.ts';
import { parseBundle } from '../../../src/certs/pki.ts';
import { deleteIfExists, eventually } from '../kube/cluster.ts';
import { kubelet, staticPv, useControllerSuite } from './harness.ts';

let client: KubeClient;
let ns: string;
const suite = useControllerSuite(
  'ctl-hclone',
  { manager: (n) => ({ cdiNamespace: n, certificates: 'reconcile' }) },
  (s) => ({ client, ns } = s),
);
const SC = `cdi-test-hclone-${suite.suffix}`;
const pvs: string[] = [];
after(async () => {
  for (const pv of pvs) await deleteIfExists(client, Resources.PersistentVolume, pv);
  await deleteIfExists(client, Resources.StorageClass, SC);
});

const claim = (name: string, annotations: Record<string, string> = {}) =>
  client.create<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, {
    metadata: { name, namespace: ns, annotations },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: SC,
      resources: { requests: { storage: '1Gi' } },
    },
  });
async function bound(name: string): Promise<void> {
  const pv = `cdi-test-${suite.suffix}-${name}`.slice(0, 63);
  pvs.push(pv);
  await client.create(Resources.PersistentVolume, staticPv(pv, SC, ns, name));
  await eventually(`${name} Bound`, async () =>
    (await suite.getPvc(name))?.status?.phase === 'Bound' ? true : undefined,
  );
}
const secretPem = (s: Secret, key: string): string => Buffer.from(s.data?.[key] ?? '', 'base64').toString();
const envOf = (p: Pod, name: string): string | undefined =>
  p.spec?.containers[0]?.env?.find((e) => e.name === name)?.value;
/** The certificate `pem` is signed by one of the bundle's CAs. */
const chainsTo = (pem: string, bundle: string): boolean =>
  parseBundle(bundle).some((ca) => new X509Certificate(pem).verify(ca.publicKey));

/** The server pod of `target` (a new one when `not` is the old uid), with its Secret and the source's. */
async function serverAndSecrets(target: PersistentVolumeClaim, not?: string) {
  const name = uploadPodName(target.metadata?.name ?? '');
  const source = `${target.metadata?.uid ?? ''}-source-pod`;
  const pod = await eventually(`server pod ${name}`, async () => {
    const p = await suite.getPod(name);
    return p && p.metadata?.uid !== not && !p.metadata?.deletionTimestamp ? p : undefined;
  });
  const serverSecret = await eventually(`Secret ${name}`, async () => {
    const s = await client.getOrUndefined<Secret>(Resources.Secret, name, ns);
    return s?.metadata?.ownerReferences?.[0]?.uid === pod.metadata?.uid ? s : undefined;
  });
  const sourceSecret = await client.get<Secret>(Resources.Secret, source, ns);
  return { pod, serverSecret, sourceSecret };
}

void test('host-assisted clone target: the upload controller pod with DEADLINE, and a source certificate the server trusts, replaced with the server at its deadline', async () => {
  if (!(await client.getOrUndefined(Resources.StorageClass, SC)))
    await client.create(Resources.StorageClass, {
      metadata: { name: SC, labels: { 'cdi-ts-test': 'controller' } },
      provisioner: 'hclone.cdi-test.example.com',
      volumeBindingMode: 'Immediate',
    } as KubeObject);
  await claim('golden');
  await bound('golden');
  const target = await claim('copy', { 'k8s.io/CloneRequest': `${ns}/golden` });
  await bound('copy');
  const clientName = `${target.metadata?.uid ?? ''}-source-pod.${ns}`;

  const first = await serverAndSecrets(target);
  const pod = first.pod;
  assert.equal(envOf(pod, 'CLIENT_NAME'), clientName);
  const deadline = Date.parse(envOf(pod, 'DEADLINE') ?? '');
  assert.ok(deadline > Date.now(), `DEADLINE ${envOf(pod, 'DEADLINE')} is in the future`);
  assert.ok(
    !(pod.spec?.volumes ?? []).some((v) => v.name === 'cdi-scratch-vol'),
    'a clone target has no scratch claim',
  );
  const svc = await eventually('the Service', () =>
    client.getOrUndefined<Service>(Resources.Service, `cdi-upload-copy`, ns),
  );
  assert.equal(svc.spec?.clusterIP, 'None');
  assert.deepEqual(
    svc.spec?.ports?.map((p) => p.port),
    [8443],
  );

  // the source's client certificate (made with the server, before the source pod) chains to the server's bundle,
  // and the server's certificate to the source's
  const clientPem = secretPem(first.sourceSecret, 'tls.crt');
  assert.equal(
    new X509Certificate(clientPem).subject.split('\n').find((l) => l.startsWith('CN=')),
    `CN=${clientName}`,
  );
  assert.ok(chainsTo(clientPem, secretPem(first.serverSecret, 'ca.crt')), 'the server trusts the source');
  assert.ok(
    chainsTo(secretPem(first.serverSecret, 'tls.crt'), secretPem(first.sourceSecret, 'ca.crt')),
    'the source trusts the server',
  );

  // the deadline passed before any stream came: a new server, and a new certificate for the source
  await kubelet.setStatus(
    client,
    ns,
    pod.metadata?.name ?? '',
    kubelet.terminated(0, '{"deadlinePassed":true,"message":"Deadline Passed"}'),
  );
  const second = await serverAndSecrets(target, pod.metadata?.uid);
  const clientPem2 = secretPem(second.sourceSecret, 'tls.crt');
  assert.notEqual(
    new X509Certificate(clientPem2).serialNumber,
    new X509Certificate(clientPem).serialNumber,
    'the source certificate was issued again',
  );
  assert.ok(chainsTo(clientPem2, secretPem(second.serverSecret, 'ca.crt')));

  // once the new server is Ready the source pod streams to its Service's port 8443
  const name = second.pod.metadata?.name ?? '';
  await kubelet.setStatus(client, ns, name, kubelet.running('127.0.0.1'));
  const running = await client.get<Pod>(Resources.Pod, name, ns);
  await client.replace(
    Resources.Pod,
    {
      ...running,
      status: {
        ...running.status,
        conditions: [...(running.status?.conditions ?? []), { type: 'Ready', status: 'True' }],
      },
    },
    { subresource: 'status' },
  );
  const sourcePod = await eventually('the source pod', () =>
    suite.getPod(`${target.metadata?.uid ?? ''}-source-pod`),
  );
  assert.equal(envOf(sourcePod, 'UPLOAD_URL'), `https://cdi-upload-copy.${ns}.svc:8443/v1beta1/upload`);
});
