/**
 * A throwaway test CA and a server certificate signed by it, made with the `openssl` command.
 *
 *   const pki = await makeTestPki(dir, { ips: ['127.0.0.1'], hostnames: ['localhost'] });
 *   pki.caCertPath / pki.caCert     the CA certificate (trust this: put it in a CA dir, or pass it as cainfo)
 *   pki.cert / pki.key              server certificate and key PEM (give them to startFileServer({ tls }))
 *   pki.certPath / pki.keyPath      the same as files
 *
 * Keys are EC P-256 (fast to make). Everything lives in `dir`, which the caller removes.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  caCertPath: string;
  caKeyPath: string;
  certPath: string;
  keyPath: string;
  caCert: string;
  cert: string;
  key: string;
}

export async function makeTestPki(
  dir: string,
  sans: { ips?: string[]; hostnames?: string[] } = { ips: ['127.0.0.1'], hostnames: ['localhost'] },
): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const p = (f: string): string => path.join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=cdi-ts test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', [
    'req',
    ...ec,
    '-keyout',
    p('tls.key'),
    '-out',
    p('tls.csr'),
    '-subj',
    '/CN=cdi-ts test server',
  ]);
  const san = [
    ...(sans.ips ?? []).map((ip) => `IP:${ip}`),
    ...(sans.hostnames ?? []).map((h) => `DNS:${h}`),
  ].join(',');
  await writeFile(
    p('ext.cnf'),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    p('tls.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('tls.crt'),
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
  ]);
  return {
    dir,
    caCertPath: p('ca.crt'),
    caKeyPath: p('ca.key'),
    certPath: p('tls.crt'),
    keyPath: p('tls.key'),
    caCert: await readFile(p('ca.crt'), 'utf8'),
    cert: await readFile(p('tls.crt'), 'utf8'),
    key: await readFile(p('tls.key'), 'utf8'),
  };
}
