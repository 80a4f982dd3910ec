/**
 * Host-assisted clone plumbing for tests: the clone source pod's entrypoint (src/cmd/cloner.ts) as a real child
 * process, a per-clone client certificate (as the clone controller makes one), and a TCP relay between the two pods
 * that counts the bytes on the wire and can cut the connection.
 *
 *   const client = await cloneClientCert(pki, 'src-ns/src-target-ns/target');   // CN = the target's CLIENT_NAME
 *   const relay = await startRelay(pod.port);                                     // relay.bytes: client → server
 *   const r = await runCloner({ VOLUME_MODE: 'filesystem', MOUNT_POINT: dir, UPLOAD_URL: relay.url }, pki, client);
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { issueClientCert, validityFrom, type KeyPair } from '../../src/certs/pki.ts';
import type { UploadPki } from './upload.ts';

const ENTRY = path.resolve(import.meta.dirname, '../../src/cmd/cloner.ts');

export function cloneClientCert(pki: UploadPki, cn: string): Promise<KeyPair> {
  return issueClientCert(pki.clientCa, cn, [], validityFrom(new Date(), 3600_000));
}

export interface ClonerRun {
  code: number | null;
  log: string;
  termination: string;
}

/** Runs the clone source pod's entrypoint to the end. `env` adds to (or overrides) what a pod would get. */
export async function runCloner(
  env: Record<string, string>,
  pki: UploadPki,
  client: KeyPair,
): Promise<ClonerRun> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cdi-cloner-pod-'));
  const term = path.join(dir, 'termination-log');
  const child = spawn(process.execPath, [ENTRY], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CLIENT_CERT: client.certPem,
      CLIENT_KEY: client.keyPem,
      SERVER_CA_CERT: pki.serverCa.certPem,
      OWNER_UID: 'owner-uid-1',
      PREALLOCATION: 'false',
      CDI_CLONER_METRICS_PORT: 'off',
      CDI_IMPORTER_TERMINATION_LOG: term,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, log, termination: await readFile(term, 'utf8').catch(() => '') };
}

export interface Relay {
  url: (p?: string) => string;
  /** Bytes the client sent through the relay (TLS records included). */
  bytes: () => number;
  /** Cut every connection once this many client bytes went through (undefined: never). */
  cutAfter: number | undefined;
  close: () => Promise<void>;
}

/** A plain TCP relay 127.0.0.1:<port> → 127.0.0.1:<target>, counting what the client sends. */
export async function startRelay(target: number): Promise<Relay> {
  let sent = 0;
  const sockets = new Set<net.Socket>();
  const relay: Relay = {
    url: (p = '/v1beta1/upload') => `https://127.0.0.1:${port}${p}`,
    bytes: () => sent,
    cutAfter: undefined,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = net.createServer((c) => {
    const up = net.connect(target, '127.0.0.1');
    sockets.add(c).add(up);
    c.on('data', (d: Buffer) => {
      sent += d.length;
      if (relay.cutAfter !== undefined && sent >= relay.cutAfter) {
        c.destroy();
        up.destroy();
        return;
      }
      if (!up.write(d)) c.pause();
    });
    up.on('drain', () => c.resume());
    up.pipe(c);
    const end = (): void => {
      c.destroy();
      up.destroy();
      sockets.delete(c);
      sockets.delete(up);
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    c.on('end', () => up.end());
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as net.AddressInfo).port;
  return relay;
}
