/**
 * What a front end asks of the data path (ImportRequest) and what it gets back (ImportResult). Re-exported by
 * import.ts, whose runImport() is the one entry point; kept in their own module so the planner (plan.ts) and the
 * transfer paths (transfer/*.ts) can name them without importing import.ts (no import cycles).
 */
import type { Checksum } from './checksum.ts';
import type { Layer } from './format/sniff.ts';
import type { Limits } from './image/run.ts';
import type { Progress } from './progress.ts';
import type { RawTarget } from './sink/raw.ts';
import type { ImportSource } from './source/source.ts';

export const ContentType = { KubeVirt: 'kubevirt', Archive: 'archive' } as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export type CacheMode = 'writeback' | 'none' | 'trynone';

export interface RetryPolicy {
  /**
   * Attempts to continue a broken body (open(offset)) in a row without a byte of progress; on the paths that read by
   * range (`range`, `disk`), the retries of one ranged read. Default 5.
   */
  resumes?: number;
  /** Whole-transfer restarts from byte 0 when a broken body cannot be continued. Default 2. */
  restarts?: number;
  /**
   * Wait before the first retry; doubled for each retry in a row, at most 30 s (a ranged read waits the same time
   * before each of its retries). Default 1000.
   */
  delayMs?: number;
}

export interface ImportRequest {
  source: ImportSource;
  contentType: ContentType;
  target: RawTarget | { kind: 'dir'; path: string };
  /** Final size of a file target (grown to it, never shrunk). Undefined: the image's own size. */
  size?: number;
  /** Space the image may use (virtual size / raw bytes / extracted bytes). Undefined: no limit. */
  available?: number;
  checksum?: Checksum;
  preallocate?: boolean;
  /** Directory for a staged copy when streaming is impossible. Undefined: fail with scratch-required. */
  scratchDir?: string;
  cache?: CacheMode;
  /** Allow the streaming path (NBD over ranged reads; default true). */
  stream?: boolean;
  /** Allow the extent copy on the streaming path (image/extents.ts; default true). */
  extentCopy?: boolean;
  /**
   * Keep a progress record beside a file target, so that a later run on the same target continues a raw download
   * where this one stopped (docs/adr/0009-resumable-downloads.md). Default true.
   */
  resumeRecord?: boolean;
  retry?: RetryPolicy;
  limits?: Limits;
  progress?: Progress;
  /** Lines for the importer log (the content-type warning, resumes, restarts). Default: none. */
  log?: (line: string) => void;
}

export const TransferPath = {
  Direct: 'direct',
  Nbd: 'nbd',
  Extents: 'extents',
  Scratch: 'scratch',
  Local: 'local',
  Archive: 'archive',
  Disk: 'disk',
} as const;
export type TransferPath = (typeof TransferPath)[keyof typeof TransferPath];

export interface ImportResult {
  /** Things the user may want to know (upstream's text/* content-type warning, for instance). */
  warnings: string[];
  layers: Layer[];
  format: Layer;
  virtualSize: number;
  path: TransferPath;
  preallocationApplied: boolean;
  /** Final size of the target file (bytes extracted for archives). */
  size: number;
  /** Set when the decompressor child wrote the target itself (raw.xz, raw.zst; format/direct.ts). */
  decompressedBy?: 'xz' | 'zstd';
  /** Times a broken body was continued from the byte where it broke (open(offset)). */
  resumes?: number;
  /** Times the transfer started again from byte 0 because a broken body could not be continued. */
  restarts?: number;
  /** Set when this run continued the download an earlier run left on the target, from this byte. */
  resumedFrom?: number;
  /** The `disk` path (imageio, vddk): what the extents held. */
  disk?: {
    /** A warm-import delta written in place (a checkpoint after the first), not a whole disk. */
    delta: boolean;
    /** Bytes read from the source (the data extents). */
    dataBytes: number;
    /** Bytes of zero extents (not transferred: holes, or written as zeros on a block device or in a delta). */
    zeroBytes: number;
  };
}

/** What a transfer path returns; runImport adds the warnings and the retry counts. */
export type TransferOutcome = Omit<ImportResult, 'warnings' | 'resumes' | 'restarts' | 'resumedFrom'>;
