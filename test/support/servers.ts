/**
 * Real servers on 127.0.0.1 free ports, one instance per test file:
 *   startRegistry(dir, { tls, htpasswd, token })   Debian's docker-registry (distribution 2.8), filesystem storage
 *   startS3(dir, creds)                             versitygw (posix backend), as the cluster harness runs it
 *   startGcs(dataDir)                               fake-gcs-server, objects preloaded from dataDir/<bucket>/<object>
 *   startTokenServer(pki, users)                    a registry token server (JWTs signed with the test CA's key)
 *   startPrometheus(dir, config)                    Debian's prometheus (web UI and API on 127.0.0.1), TSDB in dir
 * versitygw and fake-gcs-server come from the harness's cache (hack/cluster/test-server-bins.sh builds them from the
 * Go module proxy when missing: minutes, once).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, createSign, X509Certificate, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { TestPki } from './tls.ts';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');

export interface Server {
  /** host:port */
  address: string;
  url: string;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

let bins: Promise<{ s3: string; gcs: string }> | undefined;
export function testServerBins(): Promise<{ s3: string; gcs: string }> {
  bins ??= run('bash', [path.join(REPO, 'hack/cluster/test-server-bins.sh')], { maxBuffer: 1 << 24 }).then(
    ({ stdout }) => JSON.parse(stdout.trim().split('\n').at(-1)!) as { s3: string; gcs: string },
  );
  return bins;
}

/** Starts `cmd` and waits until `ready()` answers true (or the process dies: then its output is the error). */
async function startProcess(
  cmd: string,
  args: string[],
  ready: () => Promise<boolean>,
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-4000)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited (${child.exitCode}): ${out}`);
    if (await ready().catch(() => false)) return child;
    await Promise.race([sleep(100), exited]);
  }
  child.kill('SIGKILL');
  throw new Error(`${cmd} did not become ready in 30 s: ${out}`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.kill('SIGTERM');
  await Promise.race([gone, sleep(5000).then(() => child.kill('SIGKILL'))]);
  await gone;
}

async function answers(url: string, ca?: string): Promise<boolean> {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ connect: ca ? { ca } : {} });
  try {
    const r = await request(url, { dispatcher });
    await r.body.dump();
    return r.statusCode < 500;
  } finally {
    await dispatcher.close();
  }
}

export interface RegistryServer extends Server {
  /** The registry's filesystem storage root (blobs at docker/registry/v2/blobs/sha256/xx/<hex>/data). */
  storage: string;
  blobPath(digest: string): string;
}

export async function startRegistry(
  dir: string,
  o: {
    tls?: TestPki;
    htpasswd?: { user: string; password: string };
    token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  } = {},
): Promise<RegistryServer> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const storage = path.join(dir, 'storage');
  const lines = [
    'version: 0.1',
    'log: { level: warn }',
    `storage: { filesystem: { rootdirectory: ${storage} }, delete: { enabled: true } }`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (o.tls) lines.push(`  tls: { certificate: ${o.tls.certPath}, key: ${o.tls.keyPath} }`);
  if (o.htpasswd) {
    const { stdout } = await run('htpasswd', ['-Bbn', o.htpasswd.user, o.htpasswd.password]);
    await writeFile(path.join(dir, 'htpasswd'), stdout);
    lines.push(`auth: { htpasswd: { realm: cdi-test, path: ${path.join(dir, 'htpasswd')} } }`);
  }
  if (o.token) {
    const t = o.token;
    lines.push(
      `auth: { token: { realm: "${t.realm}", service: ${t.service}, issuer: ${t.issuer}, rootcertbundle: ${t.rootCertBundle} } }`,
    );
  }
  const conf = path.join(dir, 'config.yml');
  await writeFile(conf, lines.join('\n') + '\n');
  const scheme = o.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${port}`;
  const child = await startProcess('docker-registry', ['serve', conf], () =>
    answers(`${url}/v2/`, o.tls?.caCert),
  );
  return {
    address: `127.0.0.1:${port}`,
    url,
    storage,
    blobPath: (digest: string) => {
      const hex = digest.split(':')[1]!;
      return path.join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    },
    close: () => stop(child),
  };
}

export interface S3Server extends Server {
  /** The posix backend's root: buckets are its directories. */
  root: string;
}

export async function startS3(
  dir: string,
  creds: { accessKeyId: string; secretKey: string },
  tls?: TestPki,
): Promise<S3Server> {
  const { s3 } = await testServerBins();
  const root = path.join(dir, 'buckets');
  const meta = path.join(dir, 'meta'); // versitygw: not inside (nor a string prefix of) the root
  await mkdir(root, { recursive: true });
  await mkdir(meta, { recursive: true });
  const port = await freePort();
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const child = await startProcess(
    s3,
    [
      '--port',
      `127.0.0.1:${port}`,
      ...(tls ? ['--cert', tls.certPath, '--key', tls.keyPath] : []),
      'posix',
      '--sidecar',
      meta,
      root,
    ],
    () => answers(`${url}/`, tls?.caCert),
    { ROOT_ACCESS_KEY_ID: creds.accessKeyId, ROOT_SECRET_ACCESS_KEY: creds.secretKey },
  );
  return { address: `127.0.0.1:${port}`, url, root, close: () => stop(child) };
}

export async function startGcs(dataDir: string): Promise<Server> {
  const { gcs } = await testServerBins();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = await startProcess(
    gcs,
    [
      '-scheme',
      'http',
      '-host',
      '127.0.0.1',
      '-port',
      String(port),
      '-public-host',
      `127.0.0.1:${port}`,
      '-backend',
      'memory',
      '-data',
      dataDir,
      '-log-level',
      'warn',
    ],
    () => answers(`${url}/storage/v1/b`),
  );
  return { address: `127.0.0.1:${port}`, url, close: () => stop(child) };
}

/** An in-process HTTP server on a free loopback port. */
async function listen(srv: http.Server, host = '127.0.0.1'): Promise<Server> {
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as AddressInfo).port;
  return {
    address: `${host}:${port}`,
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

export interface TokenServer extends Server {
  realm: string;
  service: string;
  issuer: string;
  /** Every token request: the basic-auth user (or undefined) and whether it was granted. */
  requests: { user?: string; granted: boolean }[];
}

/**
 * A Docker registry token server (the protocol distribution's `auth: token` speaks): checks basic credentials and
 * issues an ES256 JWT signed with the test CA's key, the CA certificate in its x5c header (the registry trusts it
 * through `rootcertbundle`). Google's or Docker Hub's token servers cannot run here; this one is ours.
 */
export async function startTokenServer(pki: TestPki, users: Record<string, string>): Promise<TokenServer> {
  const key = createPrivateKey(await readFile(pki.caKeyPath, 'utf8'));
  const der = new X509Certificate(pki.caCert).raw.toString('base64');
  const service = 'cdi-test-registry';
  const issuer = 'cdi-test-issuer';
  const requests: TokenServer['requests'] = [];
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    const [user, password] = auth.startsWith('Basic ')
      ? Buffer.from(auth.slice(6), 'base64').toString().split(':')
      : [undefined, undefined];
    const granted = user !== undefined && users[user] === password;
    requests.push({ ...(user !== undefined ? { user } : {}), granted });
    if (!granted) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const scope = u.searchParams.get('scope') ?? '';
    const [type, name, actions] = scope.split(':');
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: 'ES256', typ: 'JWT', x5c: [der] })}.${b64({
      iss: issuer,
      sub: user,
      aud: service,
      exp: now + 600,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access: type ? [{ type, name, actions: (actions ?? '').split(',') }] : [],
    })}`;
    const sig = createSign('SHA256').update(input).sign({ key, dsaEncoding: 'ieee-p1363' });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${input}.${sig.toString('base64url')}` }));
  });
  const base = await listen(srv);
  return {
    ...base,
    realm: `${base.url}/token`,
    service,
    issuer,
    requests,
  };
}

export interface OAuthServer extends Server {
  tokenUri: string;
  /** Every assertion seen: its claims, and whether its signature verified with the service account's key. */
  assertions: { claims: Record<string, unknown>; valid: boolean }[];
}

/**
 * Google's OAuth token endpoint for service accounts (RFC 7523 JWT bearer grant), which cannot run here: verifies the
 * assertion's RS256 signature with the service account's public key and answers an access token.
 */
export async function startOAuthServer(publicKeyPem: string, host?: string): Promise<OAuthServer> {
  const { createVerify } = await import('node:crypto');
  const assertions: OAuthServer['assertions'] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const jwt = form.get('assertion') ?? '';
      const [h, c, s] = jwt.split('.');
      let claims: Record<string, unknown> = {};
      try {
        claims = JSON.parse(Buffer.from(c ?? '', 'base64url').toString()) as Record<string, unknown>;
      } catch {
        // invalid
      }
      const valid =
        form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer' &&
        createVerify('RSA-SHA256')
          .update(`${h}.${c}`)
          .verify(publicKeyPem, Buffer.from(s ?? '', 'base64url'));
      assertions.push({ claims, valid });
      if (!valid) {
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end('{"error":"invalid_grant","error_description":"Invalid JWT Signature."}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          access_token: `ya29.test-${assertions.length}`,
          expires_in: 3599,
          token_type: 'Bearer',
        }),
      );
    });
  });
  const base = await listen(srv, host);
  return {
    ...base,
    tokenUri: `${base.url}/token`,
    assertions,
  };
}

export interface ForwardProxy extends Server {
  /** The absolute URLs of every request it forwarded. */
  seen: string[];
}

/** A plain-HTTP forward proxy (absolute-URI requests), as HTTP_PROXY names one. */
export async function startForwardProxy(): Promise<ForwardProxy> {
  const seen: string[] = [];
  const srv = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const up = http.request(req.url ?? '', { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  const base = await listen(srv);
  return {
    ...base,
    seen,
    close: () => {
      srv.closeAllConnections();
      return base.close();
    },
  };
}

export interface PrometheusServer extends Server {
  /** GET /api/v1/<path> of the web API; the parsed `data`. */
  api<T>(path: string): Promise<T>;
}

/** Debian's prometheus with `config` (YAML text) written to dir/prometheus.yml; the TSDB lives in dir/data. */
export async function startPrometheus(dir: string, config: string): Promise<PrometheusServer> {
  await mkdir(path.join(dir, 'data'), { recursive: true });
  const conf = path.join(dir, 'prometheus.yml');
  await writeFile(conf, config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = await startProcess(
    'prometheus',
    [
      `--config.file=${conf}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    () => answers(`${url}/-/ready`),
  );
  return {
    address: `127.0.0.1:${port}`,
    url,
    api: async <T>(p: string): Promise<T> => {
      const r = await fetch(`${url}/api/v1/${p}`);
      const body = (await r.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus /api/v1/${p}: ${body.error ?? r.status}`);
      return body.data;
    },
    close: () => stop(child),
  };
}
