/**
 * cdi-apiserver (upstream pkg/apiserver): one HTTPS server for
 *   - the aggregated API upload.cdi.kubevirt.io/v1beta1 behind APIService v1beta1.upload.cdi.kubevirt.io: discovery,
 *     and `create uploadtokenrequests`, which returns a PS256 upload token for a PVC;
 *   - admission webhooks, `POST /<name>` with an AdmissionReview (src/apiserver/webhooks/);
 *   - GET /healthz.
 * Token requests are authenticated from the front-proxy headers after the kube-apiserver's client certificate
 * verified against the request-header CA (authn.ts) and authorized with a SubjectAccessReview: may the user create
 * persistentvolumeclaims in the namespace? (The kube-apiserver has already checked `create uploadtokenrequests`
 * before forwarding.) Refusals are metav1.Status answers: 401 unauthenticated, 403 forbidden.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { SecureContextOptions, SecureVersion } from 'node:tls';
import { UploadApiVersion, UploadTokenRequestResource, type UploadTokenRequest } from '../api/upload.ts';
import { kubeTime, type KubeClient } from '../kube/index.ts';
import { closeNow, listenOn } from '../certs/tls.ts';
import { uploadPayload, type TokenGenerator } from '../token/token.ts';
import { serveAdmission } from './admission.ts';
import { AuthError, authenticate, type AuthConfig } from './authn.ts';
import { subjectAccessReview } from './authz.ts';
import { BodyError, readJson } from './body.ts';
import { apiGroup, apiGroupList, apiResourceList, GroupPath, rootPaths, VersionPath } from './discovery.ts';
import { failure, StatusReason, writeJson, writeStatus } from './status.ts';
import type { WebhookRoute } from './webhooks/index.ts';

export interface ApiServerOptions {
  kube: KubeClient;
  tokens: TokenGenerator;
  /** The current front-proxy settings (updated by the caller when the ConfigMap changes). */
  authConfig: () => AuthConfig;
  tls: { cert: string; key: string; minVersion?: SecureVersion; ciphers?: string };
  webhooks?: WebhookRoute[];
  log?: (line: string) => void;
  now?: () => Date;
}

const TOKEN_PATH = new RegExp(`^${VersionPath}/namespaces/([a-z0-9][a-z0-9-]*)/([^/]+)$`);

export class CdiApiServer {
  readonly server: https.Server;
  private readonly o: ApiServerOptions;
  private readonly log: (line: string) => void;
  private readonly hooks: Map<string, WebhookRoute>;

  constructor(o: ApiServerOptions) {
    this.o = o;
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
    this.hooks = new Map((o.webhooks ?? []).map((w) => [w.path, w]));
    this.server = https.createServer(this.secureOptions(), (req, res) => void this.handle(req, res));
    this.server.headersTimeout = 30_000;
    this.server.requestTimeout = 60_000;
  }

  /** TLS settings: our serving certificate; client certificates are asked for and checked against the front-proxy CA. */
  secureOptions(): SecureContextOptions & { requestCert: true; rejectUnauthorized: false } {
    const ca = this.o.authConfig().requestHeaderCa;
    return {
      cert: this.o.tls.cert,
      key: this.o.tls.key,
      // Without a request-header CA nothing is trusted (authenticate() refuses); give TLS a CA that signs nothing
      // we would accept rather than the system roots.
      ...(ca ? { ca } : { ca: this.o.tls.cert }),
      requestCert: true,
      rejectUnauthorized: false, // webhooks and discovery are called without one
      minVersion: this.o.tls.minVersion ?? 'TLSv1.2',
      ...(this.o.tls.ciphers ? { ciphers: this.o.tls.ciphers } : {}),
    };
  }

  /** New serving certificate or request-header CA: applies to new connections. */
  reloadTls(tls?: { cert: string; key: string }): void {
    if (tls) this.o.tls = { ...this.o.tls, ...tls };
    this.server.setSecureContext(this.secureOptions());
  }

  listen(port: number, host: string): Promise<number> {
    return listenOn(this.server, port, host);
  }

  close(): Promise<void> {
    return closeNow(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    try {
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('OK');
        return;
      }
      const hook = this.hooks.get(path);
      if (hook) {
        if (req.method !== 'POST')
          return writeStatus(res, failure(405, StatusReason.MethodNotAllowed, 'POST an AdmissionReview'));
        return await serveAdmission(req, res, hook.admit, this.log);
      }
      if (req.method === 'GET') {
        if (path === '/') return writeJson(res, 200, rootPaths([...this.hooks.keys()]));
        if (path === '/apis') return writeJson(res, 200, apiGroupList());
        if (path === GroupPath) return writeJson(res, 200, apiGroup());
        if (path === VersionPath) return writeJson(res, 200, apiResourceList());
      }
      const m = TOKEN_PATH.exec(path);
      if (m && m[2] === UploadTokenRequestResource.plural) {
        if (req.method !== 'POST') {
          return writeStatus(
            res,
            failure(405, StatusReason.MethodNotAllowed, 'uploadtokenrequests can only be created'),
          );
        }
        return await this.createToken(req, res, m[1]!);
      }
      writeStatus(
        res,
        failure(404, StatusReason.NotFound, `the server could not find the requested resource ${path}`),
      );
    } catch (e) {
      this.log(`${req.method} ${path}: ${(e as Error).message}`);
      writeStatus(res, failure(500, StatusReason.InternalError, 'internal server error'));
    }
  }

  private async createToken(req: IncomingMessage, res: ServerResponse, namespace: string): Promise<void> {
    let who;
    try {
      who = authenticate(req, this.o.authConfig());
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      this.log(`rejected token request: ${e.message}`);
      return writeStatus(res, failure(401, StatusReason.Unauthorized, e.message));
    }
    let body: UploadTokenRequest;
    try {
      body = (await readJson(req)) as UploadTokenRequest;
    } catch (e) {
      const code = e instanceof BodyError ? e.code : 400;
      return writeStatus(res, failure(code, StatusReason.BadRequest, (e as Error).message));
    }
    const pvcName = body?.spec?.pvcName;
    if (typeof pvcName !== 'string' || pvcName === '') {
      return writeStatus(
        res,
        failure(
          422,
          StatusReason.Invalid,
          'UploadTokenRequest.upload.cdi.kubevirt.io is invalid: spec.pvcName: Required value',
          {
            group: 'upload.cdi.kubevirt.io',
            kind: 'UploadTokenRequest',
            causes: [{ field: 'spec.pvcName', message: 'Required value', reason: 'FieldValueRequired' }],
          },
        ),
      );
    }
    const metaNs = body.metadata?.namespace;
    if (metaNs && metaNs !== namespace) {
      return writeStatus(
        res,
        failure(
          400,
          StatusReason.BadRequest,
          'the namespace of the provided object does not match the namespace sent on the request',
        ),
      );
    }
    const decision = await subjectAccessReview(this.o.kube, who, {
      namespace,
      verb: 'create',
      group: '',
      version: 'v1',
      resource: 'persistentvolumeclaims',
    });
    const name =
      body.metadata?.name ||
      `${body.metadata?.generateName ?? ''}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (!decision.allowed) {
      this.log(
        `denied an upload token for ${namespace}/${pvcName} to ${who.user}${decision.reason ? `: ${decision.reason}` : ''}`,
      );
      return writeStatus(
        res,
        failure(
          403,
          StatusReason.Forbidden,
          `uploadtokenrequests.upload.cdi.kubevirt.io "${name}" is forbidden: User "${who.user}" cannot create resource "persistentvolumeclaims" in API group "" in the namespace "${namespace}"${decision.reason ? `: ${decision.reason}` : ''}`,
          { name, group: 'upload.cdi.kubevirt.io', kind: 'uploadtokenrequests' },
        ),
      );
    }
    const token = await this.o.tokens.generate(uploadPayload(namespace, pvcName));
    this.log(`issued an upload token for ${namespace}/${pvcName} to ${who.user}`);
    writeJson(res, 200, {
      apiVersion: UploadApiVersion,
      kind: 'UploadTokenRequest',
      metadata: {
        ...body.metadata,
        name,
        namespace,
        creationTimestamp: kubeTime(this.o.now?.() ?? new Date()),
      },
      spec: body.spec,
      status: { token },
    });
  }
}
