// The controller's two listeners (docs/adr/0040-metrics-endpoint.md):
// - metrics: HTTPS (default :8443, port name `metrics`, Service cdi-prometheus-metrics), every request
//   authenticated with its bearer token and authorized for `get` on /metrics by the API server (auth.ts);
//   401 without a valid token, 403 when the user may not read metrics. As upstream's (controller-runtime's secure
//   metrics server), only HTTP/1.1 is offered.
// - health: plain HTTP (default :8080, port name `health`), /healthz and /readyz only, for the kubelet's probes,
//   which carry no token; they reveal nothing but "ok".
// The serving certificate comes from a directory holding tls.crt and tls.key (a mounted Secret, which the operator
// will own; rotations are picked up), or, when there is none, is made at start: a throwaway CA and a leaf for the
// Service's names, as controller-runtime does when its CertDir is empty. Scrapers then skip verification (upstream's
// ServiceMonitor sets insecureSkipVerify) but must still bring a token.
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { SecureContextOptions, SecureVersion } from 'node:tls';
import type { Registry } from 'prom-client';
import { createCA, issueServerCert, validityFrom } from '../certs/pki.ts';
import { closeNow, followTls, listenOn, readKeyPair } from '../certs/tls.ts';
import { errorMessage, type Logger } from '../kube/index.ts';
import type { DelegatedAuth } from './auth.ts';

export const MetricsPort = 8443;
export const HealthPort = 8080;
export const MetricsPath = '/metrics';

export interface ServingCert {
  cert: string;
  key: string;
  /** The throwaway CA of a certificate made at start (for logs and tests); undefined when read from files. */
  selfSignedCa?: string;
}

const certFiles = (dir: string): { cert: string; key: string } => ({
  cert: join(dir, 'tls.crt'),
  key: join(dir, 'tls.key'),
});

/** A certificate made now for `hostnames`, valid for a year (it lives as long as the process). */
export async function selfSignedCert(hostnames: string[], now = new Date()): Promise<ServingCert> {
  const validity = validityFrom(now, 365 * 24 * 3600_000);
  const ca = await createCA(`cdi-metrics-self-signed@${Math.floor(now.getTime() / 1000)}`, validity);
  const leaf = await issueServerCert(ca, hostnames, validity);
  return { cert: leaf.certPem, key: leaf.keyPem, selfSignedCa: ca.certPem };
}

export interface MetricsServerOptions {
  registry: Registry;
  auth: DelegatedAuth;
  log: Logger;
  port?: number;
  host?: string;
  /** Directory with tls.crt and tls.key; when it has none, a certificate is made at start. */
  certDir?: string;
  /** The names a certificate made at start covers (the Service's DNS names, the pod IP). */
  hostnames: string[];
  tls?: { minVersion: SecureVersion; ciphers?: string };
  /** Refreshes gauges computed at scrape time (workqueue depth) just before the registry renders. */
  beforeScrape?: () => void;
  /** How often the certificate files are re-read (default 10 s). */
  certCheckMs?: number;
}

export interface MetricsServer {
  port: number;
  cert: ServingCert;
  close(): Promise<void>;
}

function answer(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end(`${text}\n`);
}

export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const files = o.certDir ? certFiles(o.certDir) : undefined;
  const fromFiles = files !== undefined && existsSync(files.cert) && existsSync(files.key);
  const cert: ServingCert = fromFiles
    ? await readKeyPair(files.cert, files.key)
    : await selfSignedCert(o.hostnames);
  if (fromFiles) o.log.info('metrics: serving certificate from files', { dir: o.certDir });
  else
    o.log.warn('metrics: no serving certificate mounted; using a self-signed one made at start', {
      ...(o.certDir ? { dir: o.certDir } : {}),
      hostnames: o.hostnames,
    });

  const server = https.createServer({
    cert: cert.cert,
    key: cert.key,
    minVersion: o.tls?.minVersion ?? 'TLSv1.2',
    ...(o.tls?.ciphers ? { ciphers: o.tls.ciphers } : {}),
    ALPNProtocols: ['http/1.1'],
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'https://metrics').pathname;
      const method = req.method ?? 'GET';
      const v = await o.auth.check(req.headers, method, path);
      if (!v.ok) {
        const fields = { status: v.status, path, ...(v.cause ? { cause: errorMessage(v.cause) } : {}) };
        if (v.status === 500) o.log.error(`metrics: ${v.message}`, fields);
        else o.log.debug(`metrics: ${v.message}`, fields);
        return answer(res, v.status, v.message);
      }
      if (path !== MetricsPath) return answer(res, 404, '404 page not found');
      if (method !== 'GET' && method !== 'HEAD') return answer(res, 405, 'Method Not Allowed');
      o.beforeScrape?.();
      const body = await o.registry.metrics();
      res.writeHead(200, { 'content-type': o.registry.contentType });
      res.end(method === 'HEAD' ? undefined : body);
    })().catch((e: unknown) => {
      o.log.error('metrics: request failed', { error: errorMessage(e) });
      if (!res.headersSent) answer(res, 500, 'Internal Server Error');
      else res.destroy();
    });
  });
  // a client that fails the handshake (wrong CA, plain HTTP) is its own problem
  server.on('tlsClientError', (e) => o.log.debug('metrics: TLS handshake failed', { error: e.message }));

  let stopFollowing = (): void => {};
  if (fromFiles) {
    stopFollowing = followTls(
      async (): Promise<SecureContextOptions> => readKeyPair(files.cert, files.key),
      (c) => {
        server.setSecureContext({
          ...c,
          minVersion: o.tls?.minVersion ?? 'TLSv1.2',
          ...(o.tls?.ciphers ? { ciphers: o.tls.ciphers } : {}),
        });
        o.log.info('metrics: serving certificate reloaded', { dir: o.certDir });
      },
      o.certCheckMs,
      (e) =>
        o.log.warn('metrics: cannot re-read the serving certificate; keeping the current one', {
          error: e.message,
        }),
    );
  }
  const port = await listenOn(server, o.port ?? MetricsPort, o.host ?? '0.0.0.0');
  o.log.info('serving metrics over HTTPS (bearer token, TokenReview and SubjectAccessReview)', { port });
  return {
    port,
    cert,
    close: async () => {
      stopFollowing();
      await closeNow(server);
    },
  };
}

export interface HealthServerOptions {
  /** /readyz answers 200 while this is true, 503 otherwise. */
  ready: () => boolean;
  /** What is wrong (an informer failing, the lease lost); /healthz answers 500 with them, 200 when none. */
  problems?: () => string[];
  port?: number;
  host?: string;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** /healthz and /readyz over plain HTTP; nothing else. */
export async function startHealthServer(o: HealthServerOptions): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://health').pathname;
    if (path === '/healthz') {
      const p = o.problems?.() ?? [];
      return p.length === 0 ? answer(res, 200, 'ok') : answer(res, 500, p.join('\n'));
    }
    if (path === '/readyz') return o.ready() ? answer(res, 200, 'ok') : answer(res, 503, 'not ready');
    answer(res, 404, '404 page not found');
  });
  const port = await listenOn(server, o.port ?? HealthPort, o.host ?? '0.0.0.0');
  return { port, close: () => closeNow(server) };
}
