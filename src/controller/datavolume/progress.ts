// Import progress from the importer's Prometheus endpoint (upstream GetProgressReportFromURL): GET
// https://<podIP>:8443/metrics with a 2 s timeout, read kubevirt_cdi_import_progress_total{ownerUID="<uid>"}.
// The importer serves a self-signed certificate that nothing could verify, so verification is off for this scrape
// only, exactly as upstream's BuildHTTPClient does; the response is a percentage and carries nothing secret.
import type { Pod as PodObj } from '../../kube/index.ts';
import https from 'node:https';

const metricNames = 'kubevirt_cdi_import_progress_total|kubevirt_cdi_clone_progress_total';

/** The progress value for `ownerUID` in a Prometheus text body, or undefined when absent. */
export function parseProgress(body: string, ownerUID: string): number | undefined {
  const esc = ownerUID.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`(?:${metricNames})\\{ownerUID="${esc}"\\} (\\d{1,3}\\.?\\d*)`);
  const m = re.exec(body);
  if (!m?.[1]) return undefined;
  const v = Number.parseFloat(m[1]);
  return Number.isFinite(v) ? v : undefined;
}

/** "NN.NN%" as upstream formats it (%.2f%%). */
export const formatProgress = (v: number): string => `${v.toFixed(2)}%`;

export function metricsUrl(pod: PodObj): string | undefined {
  const ip = pod.status?.podIP;
  if (!ip) return undefined;
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name === 'metrics')
        return `https://${ip.includes(':') ? `[${ip}]` : ip}:${p.containerPort}/metrics`;
    }
  }
  return undefined;
}

const insecureAgent = new https.Agent({ rejectUnauthorized: false, keepAlive: false });

/** Fetches the metrics body; connection refused reads as "no report yet" (undefined), other failures throw. */
export function fetchMetrics(url: string, timeoutMs = 2000): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent: insecureAgent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(new Error(`metrics scrape of ${url} timed out after ${timeoutMs} ms`)),
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNREFUSED' ? resolve(undefined) : reject(e),
    );
  });
}
