/**
 * TLS settings shared by CDI's servers: the minimum version and ciphers upstream passes as TLS_MIN_VERSION
 * (`VersionTLS12`, Go's names) and TLS_CIPHERS (OpenSSL names, comma separated), from CDIConfig's TLS profile, and
 * serving certificates that follow their files (Secret volumes are updated in place when a certificate rotates).
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions, SecureVersion } from 'node:tls';

type Env = Record<string, string | undefined>;

const VERSIONS: Record<string, SecureVersion> = {
  VersionTLS10: 'TLSv1',
  VersionTLS11: 'TLSv1.1',
  VersionTLS12: 'TLSv1.2',
  VersionTLS13: 'TLSv1.3',
};

/** minVersion/ciphers from TLS_MIN_VERSION and TLS_CIPHERS; TLS 1.2 and Node's ciphers when they are unset. */
export function tlsProfileFromEnv(env: Env): { minVersion: SecureVersion; ciphers?: string } {
  const v = env.TLS_MIN_VERSION;
  const minVersion = v ? VERSIONS[v] : 'TLSv1.2';
  if (!minVersion) {
    throw new Error(`TLS_MIN_VERSION "${v}" is not one of ${Object.keys(VERSIONS).join(', ')}`);
  }
  const ciphers = (env.TLS_CIPHERS ?? '')
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  return { minVersion, ...(ciphers.length > 0 ? { ciphers: ciphers.join(':') } : {}) };
}

/** Reads a certificate and key pair from files, with a message naming the file that is missing. */
export async function readKeyPair(certFile: string, keyFile: string): Promise<{ cert: string; key: string }> {
  const read = (f: string, what: string): Promise<string> =>
    readFile(f, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`cannot read the TLS ${what} ${f}: ${e.code ?? e.message}`);
    });
  return { cert: await read(certFile, 'certificate'), key: await read(keyFile, 'key') };
}

/**
 * Calls `apply` with fresh options whenever `load` returns something new, checking every `intervalMs`; the returned
 * function stops it. A load that fails keeps the current options (the next check tries again).
 */
export function followTls(
  load: () => Promise<SecureContextOptions>,
  apply: (o: SecureContextOptions) => void,
  intervalMs = 10_000,
  onError: (e: Error) => void = () => {},
): () => void {
  let last = '';
  let busy = false;
  const check = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const o = await load();
      const key = JSON.stringify(o);
      if (key !== last) {
        if (last !== '') apply(o);
        last = key;
      }
    } catch (e) {
      onError(e as Error);
    } finally {
      busy = false;
    }
  };
  void check();
  const t = setInterval(() => void check(), intervalMs);
  t.unref();
  return () => clearInterval(t);
}

/** Listens on host:port (0: any port); resolves with the port. (HTTPS servers are HTTP servers too.) */
export async function listenOn(server: Server, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Stops a server at once, connections included. */
export async function closeNow(server: Server): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  await closed;
}
