// The host test servers that cluster:up starts (hack/cluster/lib/test-servers.sh), seen from a pod the way an
// importer pod will see them: at the node address, with the test CA, with and without credentials.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  apply,
  createNamespace,
  deleteNamespace,
  imagesEnv,
  kubectl,
  repoRoot,
  requireFullCluster,
  waitFor,
} from './support.ts';

interface TestServers {
  filesDir: string;
  caCertPath: string;
  http: string;
  httpAuth: { url: string; user: string; password: string };
  https: string;
  registry: { tls: string; auth: { host: string; user: string; password: string } };
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  gcs: { endpoint: string; bucket: string };
}

/** AWS Signature V4 for one GET without a body (enough to prove the S3 server checks signatures). */
function signedS3Get(s3: TestServers['s3'], path: string): { url: string; headers: Record<string, string> } {
  const url = new URL(path, s3.endpoint);
  const now = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = now.slice(0, 8);
  const payloadHash = createHash('sha256').update('').digest('hex');
  const headers: Record<string, string> = {
    host: url.host,
    'x-amz-content-sha256': payloadHash,
    'x-amz-date': now,
  };
  const signed = Object.keys(headers).sort();
  const canonical = [
    'GET',
    url.pathname,
    url.searchParams.toString(),
    ...signed.map((h) => `${h}:${headers[h]}`),
    '',
    signed.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${day}/${s3.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', now, scope, createHash('sha256').update(canonical).digest('hex')].join(
    '\n',
  );
  let key: Buffer = createHmac('sha256', `AWS4${s3.secretAccessKey}`).update(day).digest();
  for (const part of [s3.region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const { host: _host, ...send } = headers; // fetch sets Host itself (a forbidden header name)
  send['authorization'] =
    `AWS4-HMAC-SHA256 Credential=${s3.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return { url: url.toString(), headers: send };
}

void describe('host test servers, reached from a pod at the node address', () => {
  let ns = '';
  let servers: TestServers;
  const file = `probe-${randomBytes(4).toString('hex')}.bin`;
  const content = randomBytes(100_000);

  before(async () => {
    requireFullCluster();
    servers = JSON.parse(
      readFileSync(join(repoRoot, '.cluster', 'test-servers', 'test-servers.json'), 'utf8'),
    ) as TestServers;
    await writeFile(join(servers.filesDir, file), content);
    ns = await createNamespace('testsrv');
  });

  after(async () => {
    await rm(join(servers.filesDir, file), { force: true });
    if (ns) await deleteNamespace(ns);
  });

  void test('file servers (plain, basic auth, TLS with the test CA), registries (TLS, htpasswd), S3 and GCS answer', async () => {
    const s3Signed = signedS3Get(servers.s3, `/${servers.s3.bucket}?list-type=2`);
    const probes = {
      plain: { url: `${servers.http}/${file}` },
      authMissing: { url: `${servers.httpAuth.url}/${file}` },
      authGiven: {
        url: `${servers.httpAuth.url}/${file}`,
        headers: {
          authorization: `Basic ${Buffer.from(`${servers.httpAuth.user}:${servers.httpAuth.password}`).toString('base64')}`,
        },
      },
      https: { url: `${servers.https}/${file}` },
      registryTls: { url: `https://${servers.registry.tls}/v2/` },
      registryAuthMissing: { url: `http://${servers.registry.auth.host}/v2/` },
      registryAuthGiven: {
        url: `http://${servers.registry.auth.host}/v2/`,
        headers: {
          authorization: `Basic ${Buffer.from(`${servers.registry.auth.user}:${servers.registry.auth.password}`).toString('base64')}`,
        },
      },
      s3Unsigned: { url: `${servers.s3.endpoint}/${servers.s3.bucket}?list-type=2` },
      s3Signed,
      gcs: { url: `${servers.gcs.endpoint}/storage/v1/b` },
    };
    // the probe runs in the base image's node, trusting the test CA through NODE_EXTRA_CA_CERTS
    const script = `
      const probes = JSON.parse(process.env.PROBES);
      const out = {};
      for (const [name, p] of Object.entries(probes)) {
        try {
          const r = await fetch(p.url, { headers: p.headers ?? {} });
          const body = Buffer.from(await r.arrayBuffer());
          out[name] = { status: r.status, md5: require('crypto').createHash('md5').update(body).digest('hex'), text: body.toString('utf8', 0, 300) };
        } catch (e) { out[name] = { error: String(e.cause ?? e) }; }
      }
      console.log(JSON.stringify(out));`;
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'test-ca', namespace: ns },
      data: { 'ca.crt': readFileSync(servers.caCertPath, 'utf8') },
    });
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: ns },
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'probe',
            image: `${imagesEnv()['CDI_IMAGE_REGISTRY']}/cdi-base:${imagesEnv()['CDI_BASE_TAG']}`,
            command: ['node', '--input-type=commonjs', '-e', `(async () => { ${script} })()`],
            env: [
              { name: 'PROBES', value: JSON.stringify(probes) },
              { name: 'NODE_EXTRA_CA_CERTS', value: '/ca/ca.crt' },
            ],
            volumeMounts: [{ name: 'ca', mountPath: '/ca' }],
          },
        ],
        volumes: [{ name: 'ca', configMap: { name: 'test-ca' } }],
      },
    });
    await waitFor(
      'probe pod to finish',
      async () => {
        const p = await kubectl(['-n', ns, 'get', 'pod', 'probe', '-o', 'jsonpath={.status.phase}']);
        return p === 'Succeeded' || p === 'Failed' ? p : undefined;
      },
      180_000,
      () => kubectl(['-n', ns, 'describe', 'pod', 'probe']),
    );
    const log = await kubectl(['-n', ns, 'logs', 'probe']);
    const r = JSON.parse(log.trim().split('\n').pop() ?? '{}') as Record<
      string,
      { status?: number; md5?: string; text?: string; error?: string }
    >;
    const md5 = createHash('md5').update(content).digest('hex');
    assert.deepEqual(
      r['plain'],
      { ...r['plain'], status: 200, md5 },
      `plain HTTP: ${JSON.stringify(r['plain'])}`,
    );
    assert.equal(r['authMissing']?.status, 401, JSON.stringify(r['authMissing']));
    assert.deepEqual(r['authGiven'], { ...r['authGiven'], status: 200, md5 }, JSON.stringify(r['authGiven']));
    assert.deepEqual(
      r['https'],
      { ...r['https'], status: 200, md5 },
      `HTTPS with the test CA: ${JSON.stringify(r['https'])}`,
    );
    assert.equal(r['registryTls']?.status, 200, JSON.stringify(r['registryTls']));
    assert.equal(r['registryAuthMissing']?.status, 401, JSON.stringify(r['registryAuthMissing']));
    assert.equal(r['registryAuthGiven']?.status, 200, JSON.stringify(r['registryAuthGiven']));
    assert.equal(
      r['s3Unsigned']?.status,
      403,
      `S3 refuses anonymous listing: ${JSON.stringify(r['s3Unsigned'])}`,
    );
    assert.equal(r['s3Signed']?.status, 200, `S3 signed ListObjectsV2: ${JSON.stringify(r['s3Signed'])}`);
    assert.match(r['s3Signed']?.text ?? '', /ListBucketResult/);
    assert.equal(r['gcs']?.status, 200, JSON.stringify(r['gcs']));
    assert.match(r['gcs']?.text ?? '', new RegExp(`"${servers.gcs.bucket}"`));
  });
});
