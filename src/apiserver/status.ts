// Answers in the Kubernetes API's shapes: metav1.Status for errors, JSON objects with nosniff.
import type { ServerResponse } from 'node:http';

export const StatusReason = {
  BadRequest: 'BadRequest',
  Unauthorized: 'Unauthorized',
  Forbidden: 'Forbidden',
  NotFound: 'NotFound',
  MethodNotAllowed: 'MethodNotAllowed',
  Invalid: 'Invalid',
  InternalError: 'InternalError',
  UnsupportedMediaType: 'UnsupportedMediaType',
  RequestEntityTooLarge: 'RequestEntityTooLarge',
} as const;
export type StatusReason = (typeof StatusReason)[keyof typeof StatusReason];

export interface ApiStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: StatusReason;
  code: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { field?: string; message: string; reason?: string }[];
  };
}

export function failure(
  code: number,
  reason: StatusReason,
  message: string,
  details?: ApiStatus['details'],
): ApiStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
    ...(details ? { details } : {}),
  };
}

export function writeJson(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

export function writeStatus(res: ServerResponse, s: ApiStatus): void {
  writeJson(res, s.code, s);
}
