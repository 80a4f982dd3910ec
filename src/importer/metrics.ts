/**
 * The importer pod's progress endpoint, as upstream: HTTPS (self-signed certificate made at start) on port 8443,
 * `GET /metrics` with the counter `kubevirt_cdi_import_progress_total{ownerUID}` whose value is the percentage done,
 * updated about once a second. The clone source pod serves `kubevirt_cdi_clone_progress_total` the same way.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Counter, Registry } from 'prom-client';
import type { Progress } from './progress.ts';

const run = promisify(execFile);

export async function selfSignedCert(cn: string): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cdi-metrics-cert-'));
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      path.join(dir, 'tls.key'),
      '-out',
      path.join(dir, 'tls.crt'),
      '-days',
      '3650',
      '-subj',
      `/CN=${cn}`,
    ]);
    return {
      cert: await readFile(path.join(dir, 'tls.crt'), 'utf8'),
      key: await readFile(path.join(dir, 'tls.key'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export const ProgressMetric = {
  Import: { name: 'kubevirt_cdi_import_progress_total', help: 'The import progress in percentage' },
  Clone: { name: 'kubevirt_cdi_clone_progress_total', help: 'The clone progress in percentage' },
} as const;

export async function startProgressMetrics(opts: {
  progress: Progress;
  ownerUID: string;
  port: number;
  host?: string;
  intervalMs?: number;
  /** Default: the importer's. */
  metric?: { name: string; help: string };
  /** The CN of the self-signed serving certificate (default cdi-importer). */
  certName?: string;
}): Promise<MetricsServer> {
  const registry = new Registry();
  const metric = opts.metric ?? ProgressMetric.Import;
  const counter = new Counter({
    name: metric.name,
    help: metric.help,
    labelNames: ['ownerUID'],
    registers: [registry],
  });
  let reported = 0;
  const update = (): void => {
    const f = opts.progress.fraction();
    if (f === undefined) return;
    const pct = f * 100;
    if (pct > reported) {
      counter.inc({ ownerUID: opts.ownerUID }, pct - reported);
      reported = pct;
    }
  };
  counter.inc({ ownerUID: opts.ownerUID }, 0);
  const timer = setInterval(update, opts.intervalMs ?? 1000);
  timer.unref();
  const { cert, key } = await selfSignedCert(opts.certName ?? 'cdi-importer');
  const server = https.createServer({ cert, key }, (req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    update();
    registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
