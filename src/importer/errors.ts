/** Errors of the data path. `message` is one line a user can act on; `kind` decides the exit protocol. */
export const ErrorKind = {
  /** The image or archive is unacceptable (hostile, corrupt, too large, wrong format). Retrying will not help. */
  Invalid: 'invalid',
  /** Network or server trouble: a retry may succeed. */
  Transfer: 'transfer',
  /**
   * The source could not be reached at all (DNS, refused, TLS, an error status before any byte): a retry may
   * succeed. The message is upstream's "Unable to connect to <kind> data source: …" (connectError), which the pod
   * writes as it is, without the "Unable to process data: " of other failures.
   */
  Connect: 'connect',
  /** The source bytes do not match the requested checksum (upstream: fatal, pod exits 0). */
  Checksum: 'checksum',
  /**
   * The request itself can never succeed as given, whatever the source serves (a checksum for a disk read by its
   * extents): fatal like a checksum mismatch. The pod exits 0 with the reason in the termination message's
   * `fatalReason`, so that kubelet does not restart it and the controller fails the import (RefusedRequest).
   */
  Refused: 'refused',
  /** The import needs a scratch directory and none is available (upstream: exit 0, scratchSpaceRequired). */
  ScratchRequired: 'scratch-required',
  /** Anything else (local I/O, a tool failing). */
  Internal: 'internal',
} as const;
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

export class ImportError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'ImportError';
  }
}

/** A request refused for good (ErrorKind.Refused); `reason` becomes the Running condition's reason. */
export class RefusedRequest extends ImportError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(ErrorKind.Refused, message);
    this.reason = reason;
    this.name = 'RefusedRequest';
  }
}

/** The reasons of RefusedRequest (Running condition reasons on the PVC and the DataVolume). */
export const RefusedReason = {
  /** A checksum was asked for a source whose disk is read by its data extents (imageio, vddk). */
  ChecksumUnsupported: 'ChecksumUnsupported',
} as const;

/**
 * open(offset, validator) cannot continue the content from `offset`: it changed (another ETag), or the source no
 * longer serves that range. The data path then starts again from byte 0; two versions are never spliced.
 */
export class CannotResume extends ImportError {
  constructor(message: string) {
    super(ErrorKind.Transfer, message);
    this.name = 'CannotResume';
  }
}

/**
 * A body broke and cannot be continued where it broke (no ranges, no validator, the content changed): the whole
 * transfer has to start again from byte 0 (runImport does, a bounded number of times).
 */
export class RestartNeeded extends ImportError {
  constructor(message: string, cause?: unknown) {
    super(ErrorKind.Transfer, message, cause !== undefined ? { cause } : undefined);
    this.name = 'RestartNeeded';
  }
}

/** A break a retry may get past: a connection that broke, a server that did not answer or answered an error. */
export function isBreak(err: unknown): err is ImportError {
  return err instanceof ImportError && (err.kind === ErrorKind.Transfer || err.kind === ErrorKind.Connect);
}

/** Upstream's prefix for a source that cannot be reached (cmd/cdi-importer errorCannotConnectDataSource). */
export function connectError(kind: string, detail: string, cause?: unknown): ImportError {
  return new ImportError(
    ErrorKind.Connect,
    `Unable to connect to ${kind} data source: ${detail}`,
    cause !== undefined ? { cause } : undefined,
  );
}

export function largerPvcRequired(virtualSize: number, available: number): ImportError {
  return new ImportError(
    ErrorKind.Invalid,
    `virtual image size ${virtualSize} is larger than the reported available storage ${available}. A larger PVC is required`,
  );
}

/**
 * A stream that kept going past the space (raw data, a decompression bomb). Worded so that what matches upstream's
 * "is larger than the reported available storage" (the controller's "DataVolume too small to contain image") and
 * "A larger PVC is required" matches here too.
 */
export function tooLargeForSpace(available: number, what = 'the image'): ImportError {
  return new ImportError(
    ErrorKind.Invalid,
    `${what} is larger than the reported available storage ${available} (it kept going past it). A larger PVC is required`,
  );
}

/** One line, no stack: what the front ends print. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message.replace(/\s*\n\s*/g, ' ').trim();
  return String(err);
}
