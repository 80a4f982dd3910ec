/**
 * Admission webhooks (upstream pkg/apiserver/webhooks/handler.go): the kube-apiserver POSTs an AdmissionReview
 * (admission.k8s.io/v1) to `/<name>`; the handler answers with the same apiVersion and the request's uid. A webhook
 * is one Admitter in src/apiserver/webhooks/, registered by path in webhooks/index.ts: it gets the request and
 * returns allowed(), denied(...) or patched(...).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyError, readJson } from './body.ts';
import { writeJson } from './status.ts';

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: GroupVersionResource;
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  options?: unknown;
}

export interface AdmissionResponse {
  uid?: string;
  allowed: boolean;
  /** metav1.Status (the Go field is Result, its JSON name `status`) */
  status?: {
    code?: number;
    message?: string;
    reason?: string;
    details?: { causes?: { field?: string; message: string; reason?: string }[] };
  };
  patch?: string;
  patchType?: 'JSONPatch';
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export type Admitter = (request: AdmissionRequest) => AdmissionResponse | Promise<AdmissionResponse>;

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'test' | 'move' | 'copy';
  path: string;
  value?: unknown;
  from?: string;
}

export function allowed(warnings?: string[]): AdmissionResponse {
  return { allowed: true, ...(warnings?.length ? { warnings } : {}) };
}

/** A rejection with field causes (upstream toRejectedAdmissionResponse: 422 and the causes' messages joined). */
export function denied(causes: { field?: string; message: string; reason?: string }[]): AdmissionResponse {
  return {
    allowed: false,
    status: {
      code: 422,
      message: causes.map((c) => c.message).join(' '),
      reason: 'Invalid',
      details: { causes },
    },
  };
}

/** Allowed with a JSON patch (RFC 6902) applied by the kube-apiserver. */
export function patched(ops: JsonPatchOp[]): AdmissionResponse {
  if (ops.length === 0) return allowed();
  return {
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(ops)).toString('base64'),
  };
}

/** upstream toAdmissionResponseError: 400 with the message. */
export function errored(message: string): AdmissionResponse {
  return { allowed: false, status: { code: 400, message } };
}

/** Escapes a key for a JSON pointer (RFC 6901), e.g. an annotation name in `/metadata/annotations/<key>`. */
export function pointerEscape(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** The HTTP side: parse the review, call the admitter, answer with the request's uid and apiVersion. */
export async function serveAdmission(
  req: IncomingMessage,
  res: ServerResponse,
  admit: Admitter,
  log: (line: string) => void,
): Promise<void> {
  let review: Partial<AdmissionReview>;
  try {
    review = (await readJson(req)) as Partial<AdmissionReview>;
  } catch (e) {
    const msg = (e as Error).message;
    log(`admission: ${msg}`);
    const code = e instanceof BodyError ? e.code : 400;
    return writeJson(res, 200, {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { ...errored(msg), status: { code, message: msg } },
    });
  }
  const apiVersion =
    typeof review.apiVersion === 'string' && review.apiVersion !== ''
      ? review.apiVersion
      : 'admission.k8s.io/v1';
  const request = review.request;
  let response: AdmissionResponse;
  if (!request || typeof request !== 'object' || typeof request.uid !== 'string') {
    response = errored('AdmissionReview.request is missing');
  } else {
    try {
      response = await admit(request);
    } catch (e) {
      log(
        `admission ${request.resource?.resource ?? ''} ${request.namespace ?? ''}/${request.name ?? ''}: ${(e as Error).message}`,
      );
      response = errored((e as Error).message);
    }
    response = { ...response, uid: request.uid };
  }
  writeJson(res, 200, { apiVersion, kind: 'AdmissionReview', response });
}
