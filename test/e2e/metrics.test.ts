// The controller's metrics scraped by a real Prometheus (Debian's, on the host, web API on 127.0.0.1) over the pod
// network: with the token of ServiceAccount cdi-metrics-reader (as upstream's ServiceMonitor) and the CA of the
// serving certificate the test mounts (Secret cdi-metrics-server-cert), the target is up and the CDI gauges are
// there; without a token the scrape is refused with 401, with a token of a ServiceAccount not allowed /metrics with
// 403. Prometheus is stopped, the Secret and the deployment removed again, at the end.
// Holds the cluster lock: `flock -o /work/cluster-tests.lock node --test test/e2e/metrics.test.ts`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import YAML from 'yaml';
import { createCA, issueServerCert, validityFrom, type Signer } from '../../src/certs/pki.ts';
import { serviceHostnames } from '../../src/certs/reconcile.ts';
import { controllerManifests, defaultDeployOptions } from '../../src/deploy/controller.ts';
import { isNotFound, Resources, type KubeClient, type Pod } from '../../src/kube/index.ts';
import { Rbac, serviceAccountToken } from '../support/metrics-auth.ts';
import { startPrometheus, type PrometheusServer } from '../support/servers.ts';
import { clusterClient, createNamespace, eventually } from '../integration/kube/cluster.ts';
import { deployCdi, requireFullCluster } from './harness.ts';

const NS = defaultDeployOptions.namespace;
const CERT_SECRET = 'cdi-metrics-server-cert';
const SERVER_NAME = `cdi-prometheus-metrics.${NS}.svc`;

let client: KubeClient;
let dir: string;
let ca: Signer;
let podIp: string;
let prometheus: PrometheusServer | undefined;
let undeploy: () => Promise<void> = async () => {};
let cleanupNs: () => Promise<void> = async () => {};

interface Target {
  labels: Record<string, string>;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

/** The fingerprint of the certificate host:port serves, verified against the test CA for the Service's name. */
function servedBy(host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port: 8443, ca: ca.certPem, servername: SERVER_NAME }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '');
      s.destroy();
    });
    s.once('error', reject);
  });
}

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  dir = await mkdtemp(join(tmpdir(), 'cdi-e2e-metrics-'));
  // The serving certificate (the operator's to make later): a test CA, a leaf for the Service's names, mounted
  // before the controller starts.
  ca = await createCA('cdi-e2e-metrics-ca', validityFrom(new Date(), 3600_000));
  const leaf = await issueServerCert(
    ca,
    serviceHostnames('cdi-prometheus-metrics', NS),
    validityFrom(new Date(), 3600_000),
  );
  const namespace = controllerManifests().find((o) => o['kind'] === 'Namespace');
  assert.ok(namespace);
  await client.apply(Resources.Namespace, namespace, { fieldManager: 'cdi-ts-e2e', force: true });
  await client.apply(
    Resources.Secret,
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: CERT_SECRET, namespace: NS },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem },
    },
    { fieldManager: 'cdi-ts-e2e', force: true },
  );
  undeploy = await deployCdi(client);
  const want = new X509Certificate(leaf.certPem).fingerprint256;
  // a controller that was already running picks the Secret up once the kubelet refreshed the volume
  podIp = await eventually(
    'the controller pod to serve the mounted certificate',
    async () => {
      const pods = await client.list<Pod>(Resources.Pod, {
        namespace: NS,
        labelSelector: 'cdi.kubevirt.io=cdi-controller',
      });
      const pod = pods.items.find((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
      const ip = pod?.status?.podIP;
      return ip && (await servedBy(ip)) === want ? ip : undefined;
    },
    180_000,
    1000,
  );

  let stranger: string;
  ({ name: stranger, cleanup: cleanupNs } = await createNamespace(client, 'e2e-metrics'));
  await client.create(Rbac.ServiceAccount, { metadata: { name: 'stranger', namespace: stranger } });
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'reader.token'), await serviceAccountToken(client, NS, 'cdi-metrics-reader'));
  await writeFile(join(dir, 'stranger.token'), await serviceAccountToken(client, stranger, 'stranger'));

  const job = (name: string, token?: string): Record<string, unknown> => ({
    job_name: name,
    scheme: 'https',
    metrics_path: '/metrics',
    tls_config: { ca_file: join(dir, 'ca.crt'), server_name: SERVER_NAME },
    ...(token ? { authorization: { type: 'Bearer', credentials_file: join(dir, token) } } : {}),
    static_configs: [{ targets: [`${podIp}:8443`] }],
  });
  prometheus = await startPrometheus(
    dir,
    YAML.stringify({
      global: { scrape_interval: '2s', scrape_timeout: '1s' },
      scrape_configs: [
        job('cdi-reader', 'reader.token'),
        job('cdi-no-token'),
        job('cdi-stranger', 'stranger.token'),
      ],
    }),
  );
});

after(async () => {
  await prometheus?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await cleanupNs();
  await undeploy();
  try {
    await client?.delete(Resources.Secret, CERT_SECRET, { namespace: NS });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
});

async function target(job: string, health: Target['health']): Promise<Target> {
  return eventually(`target ${job} to be ${health}`, async () => {
    const t = (await prometheus!.api<{ activeTargets: Target[] }>('targets')).activeTargets.find(
      (x) => x.labels['job'] === job,
    );
    return t?.health === health ? t : undefined;
  });
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
const query = (q: string): Promise<Sample[]> =>
  prometheus!.api<{ result: Sample[] }>(`query?query=${encodeURIComponent(q)}`).then((d) => d.result);

void test('with the cdi-metrics-reader token and the CA: the target is up and the CDI gauges are scraped', async () => {
  const t = await target('cdi-reader', 'up');
  assert.equal(t.lastError, '');
  const profiles = await eventually('kubevirt_cdi_storageprofile_info of cdi-hostpath', async () => {
    const r = await query('kubevirt_cdi_storageprofile_info{job="cdi-reader"}');
    return r.some((s) => s.metric['storageclass'] === 'cdi-hostpath') ? r : undefined;
  });
  // the local cluster's default class: CSI hostpath with a snapshot class, RWO only (so degraded, as upstream says)
  const hostpath = profiles.find((s) => s.metric['storageclass'] === 'cdi-hostpath');
  assert.equal(hostpath?.metric['default'], 'true');
  assert.equal(hostpath?.metric['provisioner'], 'hostpath.csi.cdi.dev');
  assert.equal(hostpath?.metric['smartclone'], 'true');
  assert.equal(hostpath?.metric['rwx'], 'false');
  assert.equal(hostpath?.metric['degraded'], 'true');
  assert.equal(hostpath?.metric['complete'], 'true');
  assert.equal(hostpath?.value[1], '1');
  const pending = await query('kubevirt_cdi_datavolume_pending{job="cdi-reader"}');
  assert.equal(pending.length, 1);
});

void test('without a token the scrape is refused: target down with 401', async () => {
  const t = await target('cdi-no-token', 'down');
  assert.match(t.lastError, /401 Unauthorized/);
  assert.deepEqual(await query('up{job="cdi-no-token"} == 1'), []);
  assert.deepEqual(await query('kubevirt_cdi_datavolume_pending{job="cdi-no-token"}'), []);
});

void test('with the token of a ServiceAccount not allowed /metrics: target down with 403', async () => {
  const t = await target('cdi-stranger', 'down');
  assert.match(t.lastError, /403 Forbidden/);
});
