/**
 * cdi-uploadproxy (upstream pkg/uploadproxy): the public HTTPS entry point of uploads. For each request on an upload
 * path it
 *   1. checks `Authorization: Bearer <token>`: the signature (cdi-api-signing-key's public half), issuer
 *      `cdi-apiserver`, expiry with 10 s leeway, and that it is an upload token naming a PVC and its namespace;
 *   2. waits up to 10 s for the PVC's upload pod to be ready (`storage.pod.ready`), refusing a PVC that does not
 *      exist, is not an upload target, or already succeeded; for a populator PVC it looks at PVC';
 *   3. rewrites the path to upload-archive when the PVC's content type is archive;
 *   4. streams the request to `https://cdi-upload-<pvc>.<ns>.svc:8443<path>` over mutual TLS (client certificate of
 *      CDI's upload-server client CA, server checked against the upload-server CA bundle) and the answer back, with
 *      back-pressure both ways and nothing held in memory.
 * Status codes as upstream: 400 no/malformed Authorization or a token that is not an upload token, 401 a token that
 * does not verify, 503 (with the reason, HTML-escaped) when the PVC cannot take an upload, 502 when the upload server
 * cannot be reached. CORS is open (upstream cors.AllowAll) for browser clients.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { SecureVersion } from 'node:tls';
import { Ann, ContentType } from '../api/constants.ts';
import { closeNow, listenOn } from '../certs/tls.ts';
import { ArchiveUploadPaths, ProxyPaths, UploadHeader, UploadPath, uploadServerUrl } from '../api/upload.ts';
import type { PersistentVolumeClaim } from '../kube/index.ts';
import { Operation, TokenError, type TokenPayload, type TokenValidator } from '../token/token.ts';

/** upstream waitReadyTime / waitReadyImterval */
export const WaitReadyMs = 10_000;
export const WaitReadyIntervalMs = 1_000;
/** upstream proxyRequestTimeout */
export const ProxyRequestTimeoutMs = 24 * 3600_000;

export interface ClientTls {
  cert: string;
  key: string;
  /** The CAs the upload servers' certificates chain to (ConfigMap cdi-uploadserver-signer-bundle). */
  ca: string;
}

export interface UploadProxyOptions {
  validator: TokenValidator;
  /** The PVC, or undefined when it does not exist. */
  getPvc: (namespace: string, name: string) => Promise<PersistentVolumeClaim | undefined>;
  /** Where the upload server of a PVC listens (upstream urlResolver; tests point it at loopback). */
  resolveUrl?: (namespace: string, pvcName: string, path: string) => string;
  /** Read for every upload, as upstream, so a rotated certificate or CA is used at once. */
  clientTls: () => Promise<ClientTls>;
  tls: { cert: string; key: string; minVersion?: SecureVersion; ciphers?: string };
  waitReadyMs?: number;
  waitReadyIntervalMs?: number;
  log?: (line: string) => void;
}

const AUTH = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)$/i;
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  // the token stays here: the upload server authenticates the proxy by its certificate
  'authorization',
]);

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c]!,
  );
}

/** Why an upload cannot go to this PVC now (answered 503 with the message). */
export class NotReady extends Error {
  override name = 'NotReady';
}

function send(res: ServerResponse, status: number, body = ''): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end(escapeHtml(body));
}

/** upstream UploadPossibleForPVC */
export function uploadPossible(pvc: PersistentVolumeClaim): void {
  if (!(Ann.UploadRequest in (pvc.metadata?.annotations ?? {}))) {
    throw new NotReady(`PVC ${pvc.metadata?.name ?? ''} is not an upload target`);
  }
}

export class UploadProxy {
  readonly server: https.Server;
  private readonly o: UploadProxyOptions;
  private readonly log: (line: string) => void;

  constructor(o: UploadProxyOptions) {
    this.o = o;
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
    this.server = https.createServer(this.secureOptions(o.tls), (req, res) => void this.handle(req, res));
    this.server.requestTimeout = 0; // uploads take as long as they take
    this.server.headersTimeout = 60_000;
  }

  private secureOptions(t: UploadProxyOptions['tls']): https.ServerOptions {
    return {
      cert: t.cert,
      key: t.key,
      minVersion: t.minVersion ?? 'TLSv1.2',
      ...(t.ciphers ? { ciphers: t.ciphers } : {}),
    };
  }

  reloadTls(t: { cert: string; key: string }): void {
    this.o.tls = { ...this.o.tls, ...t };
    this.server.setSecureContext(this.secureOptions(this.o.tls));
  }

  listen(port: number, host: string): Promise<number> {
    return listenOn(this.server, port, host);
  }

  close(): Promise<void> {
    return closeNow(this.server);
  }

  private cors(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (!origin) return false;
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('vary', 'Origin');
    res.setHeader(
      'access-control-expose-headers',
      `${UploadHeader.UploadOffset}, ${UploadHeader.UploadError}`,
    );
    const method = req.headers['access-control-request-method'];
    if (req.method === 'OPTIONS' && method) {
      res.setHeader('access-control-allow-methods', String(method).toUpperCase());
      const h = req.headers['access-control-request-headers'];
      if (h) res.setHeader('access-control-allow-headers', h);
      res.writeHead(204).end();
      return true;
    }
    return false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (this.cors(req, res)) return;
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      if (path === UploadPath.Healthz) return send(res, 200, 'OK');
      if (!ProxyPaths.includes(path)) return send(res, 404, '404 page not found');
      const auth = req.headers.authorization;
      if (!auth)
        return send(res, 400, 'no Authorization header: send "Authorization: Bearer <upload token>"');
      const m = AUTH.exec(auth.trim());
      if (!m) return send(res, 400, 'the Authorization header is not "Bearer <upload token>"');
      let token: TokenPayload;
      try {
        token = await this.o.validator.validate(m[1]!);
      } catch (e) {
        if (!(e instanceof TokenError)) throw e;
        this.log(`refused a token: ${e.message}`);
        return send(res, 401, `the upload token is not valid: ${e.message}`);
      }
      if (
        token.operation !== Operation.Upload ||
        !token.name ||
        !token.namespace ||
        token.resource.resource !== 'persistentvolumeclaims'
      ) {
        this.log(`bad token ${JSON.stringify(token)}`);
        return send(res, 400, 'the token is not an upload token for a PVC');
      }
      const meant = req.headers[UploadHeader.UploadTarget];
      if (typeof meant === 'string' && meant !== `${token.namespace}/${token.name}`) {
        return send(res, 401, `the upload token is for PVC ${token.namespace}/${token.name}, not ${meant}`);
      }
      let pvc: PersistentVolumeClaim;
      let target: string;
      try {
        pvc = await this.uploadReady(token.name, token.namespace);
        target = this.resolvePath(pvc, token.name, path);
      } catch (e) {
        if (!(e instanceof NotReady)) throw e;
        this.log(e.message);
        return send(res, 503, e.message);
      }
      this.log(`proxying ${req.method} ${path} for PVC ${token.namespace}/${token.name} to ${target}`);
      await this.forward(req, res, target);
    } catch (e) {
      this.log(`${req.method} ${req.url}: ${(e as Error).message}`);
      send(res, 500, 'internal error in upload-proxy');
    }
  }

  /** upstream resolveUploadPath */
  private resolvePath(pvc: PersistentVolumeClaim, pvcName: string, path: string): string {
    const ct = pvc.metadata?.annotations?.[Ann.ContentType] ?? '';
    let p = path;
    if (ct === ContentType.Archive)
      p = path.includes('alpha') ? ArchiveUploadPaths[1]! : ArchiveUploadPaths[0]!;
    else if (ct !== ContentType.KubeVirt && ct !== '') {
      throw new NotReady(
        `rejecting upload request for PVC ${pvcName} - upload content-type ${ct} is invalid`,
      );
    }
    const resolve = this.o.resolveUrl ?? uploadServerUrl;
    return resolve(pvc.metadata?.namespace ?? '', pvc.metadata?.name ?? '', p);
  }

  /** upstream uploadReady: polls the PVC (or PVC') until its upload pod is ready, 10 s at most. */
  private async uploadReady(name: string, namespace: string): Promise<PersistentVolumeClaim> {
    const deadline = Date.now() + (this.o.waitReadyMs ?? WaitReadyMs);
    for (;;) {
      let pvc = await this.o.getPvc(namespace, name);
      if (!pvc) throw new NotReady(`rejecting Upload Request for PVC ${name} that doesn't exist`);
      let ready = false;
      if (pvc.spec?.dataSourceRef?.kind === 'VolumeUploadSource') {
        const primeName = pvc.metadata?.annotations?.[Ann.PVCPrimeName];
        // no PVC' yet: keep waiting for the populator to make it
        const prime = primeName ? await this.o.getPvc(namespace, primeName) : undefined;
        if (primeName && !prime)
          throw new NotReady(`rejecting Upload Request for PVC ${name}, PVC' wasn't created yet`);
        if (prime) pvc = prime;
        ready = prime !== undefined && this.check(pvc, name);
      } else ready = this.check(pvc, name);
      if (ready) return pvc;
      if (Date.now() >= deadline) {
        throw new NotReady(
          `the upload server of PVC ${name} is not ready (waited ${Math.round((this.o.waitReadyMs ?? WaitReadyMs) / 1000)}s); try again when the PVC's ${Ann.PodReady} annotation is true`,
        );
      }
      await new Promise((r) => setTimeout(r, this.o.waitReadyIntervalMs ?? WaitReadyIntervalMs));
    }
  }

  private check(pvc: PersistentVolumeClaim, name: string): boolean {
    uploadPossible(pvc);
    const a = pvc.metadata?.annotations ?? {};
    if (a[Ann.PodPhase] === 'Succeeded') {
      throw new NotReady(`rejecting Upload Request for PVC ${name} that already finished uploading`);
    }
    return ['true', 'True', 'TRUE', '1', 't', 'T'].includes(a[Ann.PodReady] ?? '');
  }

  /** Streams req to `target` and the answer back; 502 when the upload server cannot be reached. */
  private async forward(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    const tls = await this.o.clientTls();
    const url = new URL(target);
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers))
      if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    const fwd = req.socket.remoteAddress;
    if (fwd)
      headers['x-forwarded-for'] = req.headers['x-forwarded-for']
        ? `${String(req.headers['x-forwarded-for'])}, ${fwd}`
        : fwd;
    const up = https.request({
      host: url.hostname,
      port: url.port || 443,
      path: url.pathname + url.search,
      method: req.method,
      headers,
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      ...(isIP(url.hostname) ? {} : { servername: url.hostname }),
      minVersion: 'TLSv1.2',
      agent: false,
      timeout: ProxyRequestTimeoutMs,
    });
    up.on('timeout', () => up.destroy(new Error('no progress for 24h')));
    // errors after the answer started (the upload server went away mid-answer) end the relay below; never the process
    up.on('error', () => undefined);
    // The client went away mid-body: the upload server must see the cut too (it may resume it).
    let clientGone = false;
    const gone = (): void => {
      clientGone = true;
      up.destroy(new Error('the client went away'));
    };
    req.on('aborted', gone);
    req.on('error', gone);
    res.on('close', () => {
      if (!res.writableFinished) gone();
    });
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      up.once('response', resolve);
      up.once('error', reject);
    });
    // pipe (not pipeline): an upload server that fails must not take the client's request down with it, or there
    // is nobody left to tell
    req.pipe(up);
    let upRes: IncomingMessage;
    try {
      upRes = await answered;
    } catch (e) {
      req.unpipe(up);
      if (clientGone) return;
      const msg = `error in upload-proxy: ${(e as Error).message}`;
      this.log(msg);
      res.setHeader('connection', 'close');
      return send(res, 502, msg);
    }
    const out: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(upRes.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
    res.writeHead(upRes.statusCode ?? 502, out);
    await pipeline(upRes, res).catch((e: Error) => this.log(`relaying the answer: ${e.message}`));
  }
}
