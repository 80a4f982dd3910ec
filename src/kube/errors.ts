// Errors from the API server, branched on the HTTP code and the Status reason, never on message text.

export interface Status {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { field?: string; message?: string; reason?: string }[];
  };
}

export class ApiError extends Error {
  override name = 'ApiError';
  readonly code: number;
  readonly reason: string;
  readonly status: Status | undefined;
  constructor(method: string, path: string, code: number, status: Status | undefined, text: string) {
    const detail = status?.message ?? (text.trim().slice(0, 200) || `HTTP ${code}`);
    super(`${method} ${path}: ${code} ${status?.reason ?? ''} ${detail}`.replace(/\s+/g, ' ').trim());
    this.code = code;
    this.reason = status?.reason ?? '';
    this.status = status;
  }
}

/** Parses a response body into a Status if it is one. */
export function parseStatus(text: string): Status | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null && (v as Status).kind === 'Status') return v;
  } catch {
    // not JSON: the caller keeps the raw text
  }
  return undefined;
}

function codeOf(e: unknown): number | undefined {
  return e instanceof ApiError ? e.code : undefined;
}

export const isNotFound = (e: unknown): boolean => codeOf(e) === 404;
export const isAlreadyExists = (e: unknown): boolean =>
  codeOf(e) === 409 && (e as ApiError).reason === 'AlreadyExists';
export const isConflict = (e: unknown): boolean =>
  codeOf(e) === 409 && (e as ApiError).reason !== 'AlreadyExists';
export const isGone = (e: unknown): boolean => codeOf(e) === 410;
export const isInvalid = (e: unknown): boolean => codeOf(e) === 422;
export const isForbidden = (e: unknown): boolean => codeOf(e) === 403;
