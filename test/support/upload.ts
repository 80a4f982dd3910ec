/**
 * Upload test plumbing: the CAs and certificates of an upload (made with src/certs, as the controller will), and the
 * upload server pod entrypoint (src/cmd/uploadserver.ts) run as a real child process with its paths in a directory.
 *
 *   const pki = await makeUploadPki();                    // server cert for 127.0.0.1/localhost, client certs
 *   const pod = await startUploadPod(dir, pki, { UPLOAD_IMAGE_SIZE: '8Mi' });
 *   await request(pod.port, '/v1beta1/upload', { body: file, cert: pki.client });
 *   await pod.exited                                      // exit code; pod.termination() reads the message
 */
import { execFile, spawn } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { promisify } from 'node:util';
import {
  createCA,
  issueClientCert,
  issueServerCert,
  validityFrom,
  type KeyPair,
  type Signer,
} from '../../src/certs/pki.ts';
import { UploadServerClientName } from '../../src/certs/reconcile.ts';

export interface UploadPki {
  serverCa: Signer;
  server: KeyPair;
  clientCa: Signer;
  /** CN client.upload-server.cdi.kubevirt.io, from clientCa */
  client: KeyPair;
  /** the right CA, another CN */
  wrongName: KeyPair;
  /** the right CN, another CA */
  foreign: KeyPair;
}

export async function makeUploadPki(hostnames = ['127.0.0.1', 'localhost']): Promise<UploadPki> {
  const v = validityFrom(new Date(), 3600_000);
  const serverCa = await createCA('test-uploadserver-signer', v);
  const clientCa = await createCA('test-uploadserver-client-signer', v);
  const other = await createCA('someone-else', v);
  return {
    serverCa,
    server: await issueServerCert(serverCa, hostnames, v),
    clientCa,
    client: await issueClientCert(clientCa, UploadServerClientName, [], v),
    wrongName: await issueClientCert(clientCa, 'not-the-proxy', [], v),
    foreign: await issueClientCert(other, UploadServerClientName, [], v),
  };
}

export interface UploadPod {
  port: number;
  root: string;
  data: string;
  scratch: string;
  exited: Promise<number | null>;
  log: () => string;
  termination: () => Promise<string>;
  kill: () => void;
}

/** The upload server entrypoint, as the pod runs it. */
export const UPLOAD_SERVER_ENTRY = path.resolve(import.meta.dirname, '../../src/cmd/uploadserver.ts');
const running = new Set<() => void>();

/** Kills every pod still running (call from `after`, so a failed test leaves no process behind). */
export function killUploadPods(): void {
  for (const k of running) k();
}

/**
 * A pod's directories and TLS files under `dir`, and the environment the entrypoint runs with (`env` adds or
 * overrides variables).
 */
export async function uploadPodFiles(
  dir: string,
  pki: UploadPki,
  env: Record<string, string> = {},
  opts: { scratch?: boolean } = {},
): Promise<{ root: string; data: string; scratch: string; env: Record<string, string> }> {
  const root = await mkdtemp(path.join(dir, 'pod-'));
  const data = path.join(root, 'data');
  const scratch = path.join(root, 'scratch');
  await mkdir(data);
  if (opts.scratch !== false) await mkdir(scratch);
  const f = (n: string): string => path.join(root, n);
  await writeFile(f('tls.crt'), pki.server.certPem);
  await writeFile(f('tls.key'), pki.server.keyPem);
  await writeFile(f('ca.crt'), pki.clientCa.certPem);
  return {
    root,
    data,
    scratch,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LISTEN_ADDRESS: '127.0.0.1',
      LISTEN_PORT: '0',
      TLS_CERT_FILE: f('tls.crt'),
      TLS_KEY_FILE: f('tls.key'),
      CLIENT_CERT_FILE: f('ca.crt'),
      CLIENT_NAME: UploadServerClientName,
      FILESYSTEM_OVERHEAD: '0',
      CDI_IMPORTER_DATA_DIR: data,
      CDI_IMPORTER_SCRATCH_DIR: scratch,
      CDI_IMPORTER_TERMINATION_LOG: f('termination-log'),
      ...env,
    },
  };
}

/** Starts the upload server pod entrypoint; resolves once it listens. `env` adds or overrides variables. */
export async function startUploadPod(
  dir: string,
  pki: UploadPki,
  env: Record<string, string> = {},
  opts: { scratch?: boolean } = {},
): Promise<UploadPod> {
  const { root, data, scratch, env: podEnv } = await uploadPodFiles(dir, pki, env, opts);
  const f = (n: string): string => path.join(root, n);
  const child = spawn(process.execPath, [UPLOAD_SERVER_ENTRY], {
    env: podEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const kill = (): void => void child.kill('SIGKILL');
  running.add(kill);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      running.delete(kill);
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /listening on [^\s:]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    void exited.then((code) =>
      reject(new Error(`the upload server exited (${code}) before listening:\n${log}`)),
    );
  });
  return {
    port,
    root,
    data,
    scratch,
    exited,
    log: () => log,
    termination: () => readFile(f('termination-log'), 'utf8'),
    kill,
  };
}

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTPS request to 127.0.0.1:port (or `host`); `body` is a file path, bytes or a stream. */
export function request(
  port: number,
  urlPath: string,
  o: {
    host?: string;
    method?: string;
    body?: string | Buffer | Readable;
    cert?: KeyPair;
    ca?: string;
    headers?: Record<string, string>;
    servername?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = https.request(
      {
        host: o.host ?? '127.0.0.1',
        port,
        path: urlPath,
        method: o.method ?? 'POST',
        agent: false,
        ...(o.ca ? { ca: o.ca } : { rejectUnauthorized: false }),
        ...(o.servername ? { servername: o.servername } : {}),
        ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}),
        headers: {
          ...(typeof o.body === 'string' ? { 'content-length': String(statSync(o.body).size) } : {}),
          ...(Buffer.isBuffer(o.body) ? { 'content-length': String(o.body.length) } : {}),
          ...o.headers,
        },
      },
      (res) => {
        answered = true;
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    // A server may answer (400, 409, 503) before the body is all sent and stop reading: the client's write side then
    // fails (EPIPE, ECONNRESET) while the answer is already in hand, as a real client (curl) would report it.
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    const b = o.body;
    if (b === undefined) req.end();
    else if (typeof b === 'string')
      createReadStream(b)
        .on('error', () => undefined)
        .pipe(req);
    else if (Buffer.isBuffer(b)) req.end(b);
    else b.pipe(req);
  });
}

/** A tar whose only entry is named `../<script>x</script>`: refused by the data path, its name echoed in the error. */
export async function makeMarkupTar(dir: string): Promise<string> {
  const d = await mkdtemp(path.join(dir, 'markup-'));
  await writeFile(path.join(d, 'x'), 'x');
  const out = path.join(d, 'evil.tar');
  await promisify(execFile)('tar', ['-C', d, '-cf', out, '--transform', 's,^x$,../<script>x</script>,', 'x']);
  return out;
}

/** A TLS connection to 127.0.0.1:port (for raw HTTP: pipelining, cut-off bodies), with a client certificate. */
export async function rawTls(
  port: number,
  cert?: KeyPair,
  opts: tls.ConnectionOptions = { rejectUnauthorized: false },
): Promise<tls.TLSSocket> {
  const sock = tls.connect({
    host: '127.0.0.1',
    port,
    ...opts,
    ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
  });
  await new Promise((r) => sock.once('secureConnect', r));
  return sock;
}

/**
 * A TCP relay on 127.0.0.1 to `target` that cuts the first connection carrying more than `cutAfter` bytes up (a
 * broken upload); `up()` counts the bytes that reached the target.
 */
export async function cutRelay(
  target: { host: string; port: number },
  cutAfter: number,
): Promise<{ port: number; up: () => number; close: () => void }> {
  let up = 0;
  let cut = false;
  const srv = net.createServer((c) => {
    const s = net.connect(target.port, target.host);
    let mine = 0;
    let dead = false;
    c.on('data', (d: Buffer) => {
      if (dead) return;
      mine += d.length;
      if (!cut && mine > cutAfter) {
        cut = true;
        dead = true;
        const keep = d.subarray(0, d.length - (mine - cutAfter));
        up += keep.length;
        s.write(keep, () => {
          c.destroy();
          s.destroy();
        });
        return;
      }
      up += d.length; // what reached the target
      s.write(d);
    });
    s.on('data', (d: Buffer) => c.write(d));
    c.on('error', () => s.destroy());
    s.on('error', () => c.destroy());
    c.on('close', () => s.end());
    s.on('close', () => c.end());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, up: () => up, close: () => srv.close() };
}

/** Runs `cdi` (bin/cdi.js) with `args` against the cluster of `kubeconfig`; resolves with its exit and output. */
export function runCdi(
  kubeconfig: string,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../bin/cdi.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}
