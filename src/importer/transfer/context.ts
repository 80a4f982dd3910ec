/**
 * What every transfer path gets (one context per attempt) and the pieces more than one of them uses.
 * A path is a function `(ctx) => Promise<TransferOutcome>` in its own file; import.ts picks it by `plan.transfer`.
 */
import { constants } from 'node:fs';
import { open, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { ChecksumTap } from '../checksum.ts';
import { ErrorKind, ImportError } from '../errors.ts';
import type { Limits } from '../image/run.ts';
import type { TransferPlan } from '../plan.ts';
import type { Progress } from '../progress.ts';
import type { ImportRequest, RetryPolicy, TransferOutcome } from '../request.ts';
import type { RawTarget, RawWriter } from '../sink/raw.ts';
import type { ImportSource, SourceInfo } from '../source/source.ts';
import type { Content } from './content.ts';

/** What every path gets, the `disk` path (which reads no body) included. */
export interface PlanContext {
  req: ImportRequest;
  plan: TransferPlan;
  source: ImportSource;
  info: SourceInfo;
  progress: Progress;
  limits: Limits;
  log: (line: string) => void;
  /** The request's retry policy with its defaults (ranged reads are retried `resumes` times, `delayMs` apart). */
  retry: Required<RetryPolicy>;
}

/** What the paths that read the source's body get. */
export interface TransferContext extends PlanContext {
  /** The examined body (checksum tap and progress counter already in it). */
  content: Content;
  /** Set when a checksum is to be verified over the source bytes: call verify() once they have all been read. */
  tap: ChecksumTap | undefined;
  /** Set when this run continues an earlier run's download (transfer/continue.ts): the body starts at `offset`. */
  continued?: { offset: number };
}

export type Transfer = (ctx: TransferContext) => Promise<TransferOutcome>;

/** The retry options of image/range.ts for a path's ranged reads. */
export function rangeRetries(ctx: PlanContext): { retries: number; retryDelayMs: number } {
  return { retries: ctx.retry.resumes, retryDelayMs: ctx.retry.delayMs };
}

/** The target of a disk image (the planner refused directory targets for those). */
export function rawTarget(req: ImportRequest): RawTarget {
  if (req.target.kind === 'dir')
    throw new ImportError(ErrorKind.Internal, 'a disk image transfer got a directory target');
  return req.target;
}

/**
 * Finishes a write into the target: grown to the requested size, but no larger than the space available (and never
 * shrunk), optionally preallocated, fsynced. Returns the final size.
 */
export async function commitTarget(w: RawWriter, req: ImportRequest): Promise<number> {
  const size =
    req.size !== undefined && req.available !== undefined ? Math.min(req.size, req.available) : req.size;
  const { size: finalSize } = await w.commit({
    ...(size !== undefined ? { size } : {}),
    preallocate: req.preallocate ?? false,
  });
  return finalSize;
}

export async function directIoWorks(dir: string): Promise<boolean> {
  const probe = path.join(dir, `.cdi-odirect-${process.pid}`);
  try {
    const fh = await open(probe, constants.O_CREAT | constants.O_WRONLY | constants.O_DIRECT, 0o600);
    await fh.close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(probe, { force: true });
  }
}

export async function freeSpace(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}
