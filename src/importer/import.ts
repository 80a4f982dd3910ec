/**
 * The data path's one entry point, runImport(). An attempt reads the way it is told:
 *
 *   [continue an earlier run's download: transfer/continue.ts]
 *   source.info() ─ source.open() ─ resumable body (source/resumable.ts) ─ checksum tap ─ progress counter
 *     ─ examine (transfer/content.ts: layers, format) ─ planTransfer (plan.ts: the one decision)
 *     ─ the plan's transfer path (transfer/<path>.ts) ─ result
 *
 * A disk source (imageio, vddk: ImportSource.disk()) has no body to examine: planTransfer decides from what the
 * source offers alone (the `disk` plan, transfer/disk.ts), and open() is never called.
 * Once the target is committed the source hears it (succeeded()), and it is closed whatever happened.
 *
 * A break in the body is continued where it broke when the source allows it; when not, the attempt ends with
 * RestartNeeded and runImport starts a new one from byte 0 (a bounded number of times).
 * A new source implements ImportSource (source/source.ts) and nothing else; a new path is a new file under
 * transfer/ and one line in TRANSFERS. See docs/importer.md.
 */
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumTap } from './checksum.ts';
import { ErrorKind, ImportError, RestartNeeded } from './errors.ts';
import { sniff } from './format/sniff.ts';
import { DEFAULT_LIMITS, type Limits } from './image/run.ts';
import {
  breakPolicy,
  childMayWriteTarget,
  offerOf,
  planTransfer,
  TransferKind,
  type PlanRequest,
} from './plan.ts';
import { Progress } from './progress.ts';
import {
  ContentType,
  type ImportRequest,
  type ImportResult,
  type RetryPolicy,
  type TransferOutcome,
} from './request.ts';
import { partialPath } from './sink/raw.ts';
import { dropRecord } from './sink/record.ts';
import { resumableBody } from './source/resumable.ts';
import type { SourceInfo } from './source/source.ts';
import { archiveTransfer } from './transfer/archive.ts';
import { examine, type Content } from './transfer/content.ts';
import { continueEarlierRun, fileBytes } from './transfer/continue.ts';
import type { Transfer } from './transfer/context.ts';
import { decompressorTransfer } from './transfer/decompressor.ts';
import { diskTransfer } from './transfer/disk.ts';
import { localTransfer } from './transfer/local.ts';
import { rangeTransfer } from './transfer/range.ts';
import { rawTransfer } from './transfer/raw.ts';
import { scratchTransfer } from './transfer/scratch.ts';

export { ContentType, TransferPath } from './request.ts';
export type { CacheMode, ImportRequest, ImportResult, RetryPolicy } from './request.ts';

/** The paths that read the source's body (the `disk` plan reads extents instead: diskTransfer). */
const TRANSFERS: Record<Exclude<TransferKind, typeof TransferKind.Disk>, Transfer> = {
  [TransferKind.Raw]: rawTransfer,
  [TransferKind.Decompressor]: decompressorTransfer,
  [TransferKind.Archive]: archiveTransfer,
  [TransferKind.Range]: rangeTransfer,
  [TransferKind.Scratch]: scratchTransfer,
  [TransferKind.Local]: localTransfer,
};

const RETRY: Required<RetryPolicy> = { resumes: 5, restarts: 2, delayMs: 1000 };

/** Pipes `input` through the stages; an error anywhere ends the last stage with that error. */
function chain(input: Readable, stages: Transform[]): Readable {
  const last = stages.at(-1);
  if (!last) return input;
  const pipe = pipeline as unknown as (...s: unknown[]) => Promise<void>;
  // pipeline destroys every stage with the error, so the consumer of `last` sees it.
  pipe(input, ...stages).catch(() => undefined);
  return last;
}

/** What the request allows, as the planner sees it. */
export function planRequest(req: ImportRequest): PlanRequest {
  return {
    contentType: req.contentType,
    target: req.target,
    preallocate: req.preallocate ?? false,
    checksum: req.checksum !== undefined,
    scratch: req.scratchDir !== undefined,
    stream: req.stream !== false,
    extentCopy: req.extentCopy !== false,
    resumeRecord: req.resumeRecord !== false,
  };
}

/** Upstream's warning (http-datasource.go), word for word: tools and tests match on it. */
export function contentTypeWarning(req: ImportRequest, info: SourceInfo): string | undefined {
  const ct = info.contentType;
  if (req.contentType !== ContentType.KubeVirt || !ct?.startsWith('text/')) return undefined;
  return `Unexpected content type '${ct}'. Content might not be a KubeVirt image.`;
}

interface Run {
  req: ImportRequest;
  progress: Progress;
  limits: Limits;
  retry: Required<RetryPolicy>;
  log: (line: string) => void;
  warnings: string[];
  resumes: number;
}

export async function runImport(req: ImportRequest): Promise<ImportResult> {
  const run: Run = {
    req,
    progress: req.progress ?? new Progress(),
    limits: req.limits ?? DEFAULT_LIMITS,
    retry: { ...RETRY, ...req.retry },
    log: req.log ?? (() => undefined),
    warnings: [],
    resumes: 0,
  };
  let restarts = 0;
  try {
    for (;;) {
      try {
        const { outcome, resumedFrom } = await attempt(run, restarts === 0);
        req.source.succeeded?.();
        return {
          ...outcome,
          warnings: run.warnings,
          resumes: run.resumes,
          restarts,
          ...(resumedFrom !== undefined ? { resumedFrom } : {}),
        };
      } catch (err) {
        if (!(err instanceof RestartNeeded) || restarts >= run.retry.restarts) throw err;
        restarts++;
        run.log(
          `${err.message}: the transfer starts again from byte 0 (restart ${restarts} of ${run.retry.restarts})`,
        );
        run.progress.reset();
      }
    }
  } finally {
    await req.source.close();
  }
}

/** One attempt: from the first request to the committed target. */
async function attempt(
  run: Run,
  first: boolean,
): Promise<{ outcome: TransferOutcome; resumedFrom: number | undefined }> {
  const { req, progress, limits, log, retry } = run;
  const src = req.source;
  const allowed = planRequest(req);
  progress.setPhase('connecting');
  const continued = first ? await continueEarlierRun(req, log) : undefined;
  let info: SourceInfo;
  let raw: Readable;
  if (continued) {
    ({ info, body: raw } = continued);
  } else {
    const offered = offerOf(src, await src.info());
    if (offered.disk) {
      const plan = planTransfer(offered, allowed);
      const outcome = await diskTransfer({
        req,
        plan,
        source: src,
        info: offered.info,
        progress,
        limits,
        log,
        retry,
      });
      return { outcome, resumedFrom: undefined };
    }
    raw = await src.open();
    info = await src.info(); // what the answer open() used says (it may be newer than the first info())
  }
  const offset = continued?.record.offset ?? 0;
  progress.total = info.size;
  progress.reset(offset);
  const warning = contentTypeWarning(req, info);
  if (warning && first) {
    run.warnings.push(warning);
    log(`warning: ${warning}`);
  }
  const offer = offerOf(src, info);
  const brk = breakPolicy(offer);
  const whole = resumableBody(src, raw, {
    ...brk,
    validator: info.validator,
    offset,
    resumes: retry.resumes,
    delayMs: retry.delayMs,
    log,
    onResume: () => run.resumes++,
  });
  // The request's checksum, else the source's own digest (verified by the paths that read every byte: plan.verify).
  const sum = req.checksum ?? info.checksum;
  const tap = sum ? new ChecksumTap(sum) : undefined;
  if (continued && tap && req.target.kind === 'file') {
    // Raw without layers: the partial file's first bytes are the source's first bytes.
    for await (const b of fileBytes(partialPath(req.target.path), offset)) tap.feed(b);
  }
  const body = chain(whole, [...(tap ? [tap.stage()] : []), progress.counter()]);
  progress.setPhase('transferring');
  let content: Content | undefined;
  try {
    content = continued
      ? { layers: [], format: sniff(continued.head), head: continued.head, stream: body }
      : await examine(body, { child: childMayWriteTarget(allowed), memoryBytes: limits.memoryBytes });
    const plan = planTransfer(offer, allowed, content);
    if (continued && !(plan.transfer === TransferKind.Raw && plan.resume.record)) {
      if (req.target.kind === 'file') await dropRecord(req.target.path);
      throw new RestartNeeded(`the download an earlier run left is not raw data that can be continued`);
    }
    if (plan.transfer === TransferKind.Disk)
      throw new ImportError(ErrorKind.Internal, 'a disk plan for a source with a body');
    const outcome = await TRANSFERS[plan.transfer]({
      req,
      plan,
      source: src,
      info,
      content,
      tap,
      progress,
      limits,
      log,
      retry,
      ...(continued ? { continued: { offset } } : {}),
    });
    return { outcome, resumedFrom: continued ? offset : undefined };
  } catch (err) {
    (content?.stream ?? body).destroy();
    throw err;
  }
}
