// Host test servers for tests that run pods against them, started by `npm run cluster:up` (profile full).
// Every server listens on the node address (NODE_IP, on the bridge cluster:up creates), which pods reach.
//   file servers (test/support/fileserver.ts) over DIR/files:   plain HTTP, HTTP with basic auth, HTTPS (test CA)
// The registry variants, S3 and GCS servers are separate programs that hack/cluster/lib/test-servers.sh starts;
// this process makes the test CA and server certificate they share and writes DIR/test-servers.json.
// Usage: node hack/cluster/test-servers.ts DIR NODE_IP
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFileServer } from '../../test/support/fileserver.ts';
import { makeTestPki } from '../../test/support/tls.ts';

export const TEST_SERVER_PORTS = {
  http: 8081,
  httpAuth: 8082,
  https: 8443,
  registryTls: 5443,
  registryAuth: 5001,
  s3: 9000,
  gcs: 4443,
} as const;

export const TEST_CREDENTIALS = {
  basicAuth: { user: 'cdi', password: 'cdi-test-password' },
  registry: { user: 'cdi', password: 'cdi-test-password' },
  s3: { accessKeyId: 'cdi-test-access', secretAccessKey: 'cdi-test-secret-key', bucket: 'cdi-test' },
} as const;

async function main(): Promise<void> {
  const [dir, nodeIP] = process.argv.slice(2);
  if (!dir || !nodeIP) {
    console.error('usage: node hack/cluster/test-servers.ts DIR NODE_IP');
    process.exit(2);
  }
  const files = join(dir, 'files');
  await mkdir(files, { recursive: true });
  const pki = await makeTestPki(join(dir, 'pki'), { ips: [nodeIP, '127.0.0.1'], hostnames: ['localhost'] });
  const plain = await startFileServer({ root: files, host: nodeIP, port: TEST_SERVER_PORTS.http });
  const auth = await startFileServer({
    root: files,
    host: nodeIP,
    port: TEST_SERVER_PORTS.httpAuth,
    basicAuth: TEST_CREDENTIALS.basicAuth,
  });
  const tls = await startFileServer({
    root: files,
    host: nodeIP,
    port: TEST_SERVER_PORTS.https,
    tls: { cert: pki.cert, key: pki.key },
  });
  const info = {
    nodeIP,
    filesDir: files,
    caCertPath: pki.caCertPath,
    certPath: pki.certPath,
    keyPath: pki.keyPath,
    http: plain.url,
    httpAuth: { url: auth.url, ...TEST_CREDENTIALS.basicAuth },
    https: tls.url,
    registry: {
      plain: `${nodeIP}:5000`,
      tls: `${nodeIP}:${TEST_SERVER_PORTS.registryTls}`,
      auth: { host: `${nodeIP}:${TEST_SERVER_PORTS.registryAuth}`, ...TEST_CREDENTIALS.registry },
    },
    s3: { endpoint: `http://${nodeIP}:${TEST_SERVER_PORTS.s3}`, region: 'us-east-1', ...TEST_CREDENTIALS.s3 },
    gcs: { endpoint: `http://${nodeIP}:${TEST_SERVER_PORTS.gcs}`, bucket: 'cdi-test' },
  };
  await writeFile(join(dir, 'test-servers.json'), JSON.stringify(info, null, 2) + '\n');
  console.log(`test servers up: ${plain.url} ${auth.url} ${tls.url}`);
  const stop = (): void => {
    void Promise.all([plain.close(), auth.close(), tls.close()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(`test-servers: ${(err as Error).message}`);
  process.exit(1);
});
