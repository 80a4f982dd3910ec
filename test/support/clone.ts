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
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
  return (await startCloner(env, pki, client)).done;
}

export interface ClonerPod {
  /** Resolves with the first match of `re` in the log (rejects if the pod exits first). */
  waitFor: (re: RegExp) => Promise<RegExpExecArray>;
  done: Promise<ClonerRun>;
}

/** Starts the clone source pod's entrypoint; `done` resolves when it exits. */
export async function startCloner(
  env: Record<string, string>,
  pki: UploadPki,
  client: KeyPair,
): Promise<ClonerPod> {
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
  const waiters = new Set<() => void>();
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    log += d;
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const done = exited.then(async (code) => {
    const termination = await readFile(term, 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    return { code, log, termination };
  });
  const waitFor = (re: RegExp): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(log);
        if (m) {
          waiters.delete(check);
          resolve(m);
        }
      };
      waiters.add(check);
      check();
      void exited.then(() => {
        if (waiters.delete(check)) reject(new Error(`the cloner exited before logging ${re}:\n${log}`));
      });
    });
  return { waitFor, done };
}

export interface Relay {
  url: (p?: string) => string;
  /** Bytes the client sent through the relay (TLS records included). */
  bytes: () => number;
  /** Cut every connection once this many client bytes went through (undefined: never). */
  cutAfter: number | undefined;
  /** Hold the client's bytes once this many went through, until resume() (undefined: never). */
  pauseAfter: number | undefined;
  /** Resolves once the relay holds bytes back (pauseAfter reached). */
  paused: () => Promise<void>;
  resume: () => void;
  close: () => Promise<void>;
}

/** A plain TCP relay 127.0.0.1:<port> → 127.0.0.1:<target>, counting what the client sends. */
export async function startRelay(target: number): Promise<Relay> {
  let sent = 0;
  const sockets = new Set<net.Socket>();
  const held: { up: net.Socket; d: Buffer; c: net.Socket }[] = [];
  let onPause: (() => void) | undefined;
  const pausedOnce = new Promise<void>((r) => (onPause = r));
  const relay: Relay = {
    url: (p = '/v1beta1/upload') => `https://127.0.0.1:${port}${p}`,
    bytes: () => sent,
    cutAfter: undefined,
    pauseAfter: undefined,
    paused: () => pausedOnce,
    resume: () => {
      relay.pauseAfter = undefined;
      for (const h of held.splice(0)) {
        h.up.write(h.d);
        h.c.resume();
      }
    },
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
      if (relay.pauseAfter !== undefined && sent >= relay.pauseAfter) {
        c.pause();
        held.push({ up, d, c });
        onPause?.();
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
