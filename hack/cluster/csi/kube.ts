// A minimal Kubernetes REST client for the cluster harness (client-certificate auth, JSON only).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

export interface KubeConfig {
  server: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export class KubeError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function loadKubeConfig(
  server: string,
  caFile: string,
  certFile: string,
  keyFile: string,
): KubeConfig {
  return { server, ca: readFileSync(caFile), cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

export type Obj = Record<string, unknown>;

export function kubeRequest(cfg: KubeConfig, method: string, path: string, body?: unknown): Promise<Obj> {
  const url = new URL(path, cfg.server);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: cfg.ca,
        cert: cfg.cert,
        key: cfg.key,
        headers: {
          accept: 'application/json',
          ...(payload === undefined
            ? {}
            : {
                'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
                'content-length': Buffer.byteLength(payload),
              }),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            reject(new KubeError(status, `${method} ${path}: HTTP ${status}: ${text.slice(0, 300)}`));
            return;
          }
          try {
            resolve(text === '' ? {} : (JSON.parse(text) as Obj));
          } catch {
            reject(new KubeError(status, `${method} ${path}: response is not JSON`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Reads a nested field: get(o, 'spec', 'resources', 'requests', 'storage'). */
export function get(o: unknown, ...keys: string[]): unknown {
  let cur = o;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Obj)[k];
  }
  return cur;
}

export function str(o: unknown, ...keys: string[]): string | undefined {
  const v = get(o, ...keys);
  return typeof v === 'string' ? v : undefined;
}

export function items(list: Obj): Obj[] {
  const v = list['items'];
  return Array.isArray(v) ? (v as Obj[]) : [];
}
