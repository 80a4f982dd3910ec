/**
 * The upload data path on the host, without the cluster: the real upload server pod entrypoint (a child process, as
 * test/support/upload.ts starts it) and the real cdi-uploadproxy (in this process), both on loopback with their real
 * TLS (mutual TLS between them), fed by `curl --data-binary`. Rows, each the wall time of one POST that ends with the
 * image on disk:
 *   cp + sync             the file copied and synced (what the disk can do)
 *   nginx + sync          curl to nginx storing the body (the cluster bench's baseline)
 *   node tls floor        curl to a bare Node https server that reads the body and drops it (Node's TLS alone)
 *   <kind> direct         curl → upload server (sync path: the answer comes once the image is written and fsynced)
 *   <kind> via proxy      curl → cdi-uploadproxy → upload server
 * The proxy's PVC look-up is a stand-in (a PVC object made here, as the upload controller would leave it): this
 * measures the byte path, not the API server. Each row also gives the CPU seconds of curl, the upload server (its
 * whole life: about 1.3 s of it is Node loading the TypeScript modules, before the upload) and the proxy. The md5 of
 * every written image is checked. BENCH_VERBOSE=1 prints the upload server's log.
 *
 *   node bench/upload-host.ts [--size MiB] [--dir DIR] [--cases cp,nginx,...] [--server-node-options='--cpu-prof']
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Ann } from '../src/api/constants.ts';
import { createCA, issueServerCert, validityFrom } from '../src/certs/pki.ts';
import type { PersistentVolumeClaim } from '../src/kube/index.ts';
import { TokenGenerator, TokenValidator, uploadPayload, UploadTokenIssuer } from '../src/token/token.ts';
import { UploadProxy } from '../src/uploadproxy/proxy.ts';
import { makeSeededDisk, md5File } from '../test/support/images.ts';
import { makeUploadPki, startUploadPod } from '../test/support/upload.ts';
import { startNginx } from './nginx.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '256' },
    dir: { type: 'string', default: '/tmp/cdi-upload-host-bench' },
    'server-node-options': { type: 'string', default: '' },
    cases: { type: 'string', default: 'cp,nginx,tls-floor,raw-direct,raw-proxy,qcow2-direct,qcow2-proxy' },
  },
});
const sizeMiB = Number(values.size);
const dir = values.dir;
const cases = values.cases.split(',');
await mkdir(dir, { recursive: true });

const seed = path.join(dir, 'seed.raw');
const qcow2 = path.join(dir, 'disk.qcow2');
const want = sizeMiB << 20;
if ((await stat(seed).catch(() => undefined))?.size !== want) {
  process.stderr.write(`==> generating ${sizeMiB} MiB seeded disk\n`);
  await makeSeededDisk(dir, { size: want, seed: 'bench', chunk: 4 << 20 });
  await rm(qcow2, { force: true });
}
if (!(await stat(qcow2).catch(() => undefined))) {
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', seed, qcow2]);
}
const md5 = await md5File(seed);

/** CPU seconds (user + system) of the children this process has waited for (/proc/self/stat cutime + cstime). */
async function childCpu(): Promise<number> {
  const f = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

function ownCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Wall seconds of `cmd` (in bash), and the CPU seconds its first word used (GNU time). */
async function timed(cmd: string): Promise<number> {
  await run('sync');
  const t0 = process.hrtime.bigint();
  const r = await run('bash', ['-o', 'pipefail', '-c', `/usr/bin/time -f 'cpu %U %S' ${cmd}`], {
    maxBuffer: 1 << 20,
  });
  const m = /cpu ([\d.]+) ([\d.]+)/.exec(r.stderr);
  lastCmdCpu = m ? Number(m[1]) + Number(m[2]) : NaN;
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
let lastCmdCpu = 0;

const pki = await makeUploadPki();
const v = validityFrom(new Date(), 3600_000);
const proxyCa = await createCA('bench-uploadproxy-signer', v);
const serving = await issueServerCert(proxyCa, ['127.0.0.1'], v);
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const tokens = new TokenGenerator(UploadTokenIssuer, keys.privateKey, 300_000);
let serverPort = 0;
// Stand-in for the API server: the PVC as the upload controller leaves it once its pod is ready.
const pvc: PersistentVolumeClaim = {
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  metadata: {
    name: 'bench',
    namespace: 'bench',
    annotations: { [Ann.UploadRequest]: '', [Ann.PodReady]: 'true' },
  },
};
const proxy = new UploadProxy({
  validator: new TokenValidator(UploadTokenIssuer, keys.publicKey, 10_000),
  getPvc: () => Promise.resolve(pvc),
  resolveUrl: (_n, _p, p) => `https://127.0.0.1:${serverPort}${p}`,
  clientTls: () =>
    Promise.resolve({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.serverCa.certPem }),
  tls: { cert: serving.certPem, key: serving.keyPem },
  log: () => undefined,
});
const proxyPort = await proxy.listen(0, '127.0.0.1');
const certs = path.join(dir, 'certs');
await mkdir(certs, { recursive: true });
await writeFile(path.join(certs, 'client.crt'), pki.client.certPem);
await writeFile(path.join(certs, 'client.key'), pki.client.keyPem);

const rows: { name: string; s: number; cpu?: string }[] = [];
const bytesOf = async (f: string): Promise<number> => (await stat(f)).size;

async function viaUploadServer(kind: 'raw' | 'qcow2', hop: 'direct' | 'proxy'): Promise<void> {
  const file = kind === 'raw' ? seed : qcow2;
  const env: Record<string, string> = { UPLOAD_IMAGE_SIZE: String(want) };
  if (values['server-node-options']) env.NODE_OPTIONS = values['server-node-options'];
  const pod = await startUploadPod(dir, pki, env);
  serverPort = pod.port;
  const url =
    hop === 'direct'
      ? `https://127.0.0.1:${pod.port}/v1beta1/upload`
      : `https://127.0.0.1:${proxyPort}/v1beta1/upload`;
  const auth =
    hop === 'direct'
      ? `--cert ${certs}/client.crt --key ${certs}/client.key`
      : `-H 'Authorization: Bearer ${await tokens.generate(uploadPayload('bench', 'bench'))}'`;
  const c0 = await childCpu();
  const p0 = ownCpu();
  const s = await timed(`curl -sS -f -k -o /dev/null ${auth} --data-binary '@${file}' '${url}'`);
  await pod.exited;
  const curlCpu = lastCmdCpu;
  const serverCpu = (await childCpu()) - c0 - curlCpu;
  const proxyCpu = ownCpu() - p0;
  if (process.env.BENCH_VERBOSE) process.stderr.write(pod.log());
  const disk = path.join(pod.data, 'disk.img');
  const got = await run('bash', ['-c', `head -c ${want} '${disk}' | md5sum`]);
  if (!got.stdout.startsWith(md5)) throw new Error(`${kind} ${hop}: wrong md5 ${got.stdout}`);
  await rm(pod.root, { recursive: true, force: true });
  rows.push({
    name: `${kind} ${hop}`,
    s,
    cpu: `cpu s: curl ${curlCpu.toFixed(2)}, server ${serverCpu.toFixed(2)}${hop === 'proxy' ? `, proxy ${proxyCpu.toFixed(2)}` : ''}`,
  });
}

try {
  for (const c of cases) {
    process.stderr.write(`==> ${c}\n`);
    if (c === 'cp') {
      const out = path.join(dir, 'copy.raw');
      rows.push({ name: 'cp + sync', s: await timed(`cp '${seed}' '${out}' && sync`) });
      await rm(out, { force: true });
    } else if (c === 'tls-floor') {
      // what Node's TLS server alone costs: an https server that reads the body and drops it
      const https = await import('node:https');
      const srv = https.createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
        req.on('end', () => res.end('ok'));
        req.resume();
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as import('node:net').AddressInfo).port;
      const p0 = ownCpu();
      const s = await timed(
        `curl -sS -f -k -o /dev/null --data-binary '@${seed}' 'https://127.0.0.1:${port}/'`,
      );
      rows.push({
        name: 'node tls floor',
        s,
        cpu: `cpu s: curl ${lastCmdCpu.toFixed(2)}, server ${(ownCpu() - p0).toFixed(2)}`,
      });
      srv.close();
    } else if (c === 'nginx') {
      const root = path.join(dir, 'www');
      await mkdir(root, { recursive: true });
      const ng = await startNginx(root);
      try {
        const s = await timed(`curl -sS -f -o /dev/null --data-binary '@${seed}' '${ng.url}/upload' && sync`);
        rows.push({ name: 'nginx + sync', s, cpu: `cpu s: curl ${lastCmdCpu.toFixed(2)}` });
      } finally {
        await ng.close();
      }
    } else {
      const [kind, hop] = c.split('-') as ['raw' | 'qcow2', 'direct' | 'proxy'];
      await viaUploadServer(kind, hop);
    }
  }
} finally {
  await proxy.close();
}
const base = rows.find((r) => r.name === 'nginx + sync')?.s;
const seedBytes = await bytesOf(seed);
process.stdout.write(`upload on the host, ${sizeMiB} MiB (file bytes of the raw image / s)\n`);
for (const r of rows) {
  process.stdout.write(
    `${r.name.padEnd(16)} ${r.s.toFixed(2).padStart(7)} s ${(seedBytes / 2 ** 20 / r.s).toFixed(0).padStart(6)} MiB/s${base ? `  ratio ${(base / r.s).toFixed(2)}` : ''}  ${r.cpu ?? ''}\n`,
  );
}
