/**
 * The data path's one entry point, runImport(). An attempt reads the way it is told:
 *
 *   source.info() ─ source.open() ─ checksum tap ─ progress counter ─ examine (transfer/content.ts: layers, format)
 *     ─ planTransfer (plan.ts: the one decision) ─ the plan's transfer path (transfer/<path>.ts) ─ result
 *
 * A new source implements ImportSource (source/source.ts) and nothing else; a new path is a new file under
 * transfer/ and one line in TRANSFERS. See docs/importer.md.
 */
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumTap } from './checksum.ts';
import { DEFAULT_LIMITS } from './image/run.ts';
import { childMayWriteTarget, planTransfer, TransferKind, type PlanRequest } from './plan.ts';
import { Progress } from './progress.ts';
import { ContentType, type ImportRequest, type ImportResult } from './request.ts';
import type { SourceInfo } from './source/source.ts';
import { archiveTransfer } from './transfer/archive.ts';
import { examine } from './transfer/content.ts';
import type { Transfer } from './transfer/context.ts';
import { decompressorTransfer } from './transfer/decompressor.ts';
import { localTransfer } from './transfer/local.ts';
import { rangeTransfer } from './transfer/range.ts';
import { rawTransfer } from './transfer/raw.ts';
import { scratchTransfer } from './transfer/scratch.ts';

export { ContentType, TransferPath } from './request.ts';
export type { CacheMode, ImportRequest, ImportResult } from './request.ts';

const TRANSFERS: Record<TransferKind, Transfer> = {
  [TransferKind.Raw]: rawTransfer,
  [TransferKind.Decompressor]: decompressorTransfer,
  [TransferKind.Archive]: archiveTransfer,
  [TransferKind.Range]: rangeTransfer,
  [TransferKind.Scratch]: scratchTransfer,
  [TransferKind.Local]: localTransfer,
};

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
  };
}

/** Upstream's warning (http-datasource.go), word for word: tools and tests match on it. */
export function contentTypeWarning(req: ImportRequest, info: SourceInfo): string | undefined {
  const ct = info.contentType;
  if (req.contentType !== ContentType.KubeVirt || !ct?.startsWith('text/')) return undefined;
  return `Unexpected content type '${ct}'. Content might not be a KubeVirt image.`;
}

export async function runImport(req: ImportRequest): Promise<ImportResult> {
  const progress = req.progress ?? new Progress();
  const limits = req.limits ?? DEFAULT_LIMITS;
  const src = req.source;
  const warnings: string[] = [];
  try {
    progress.setPhase('connecting');
    const info = await src.info();
    progress.total = info.size;
    const warning = contentTypeWarning(req, info);
    if (warning) {
      warnings.push(warning);
      req.log?.(warning);
    }
    const raw = await src.open();
    // The request's checksum, else the source's own digest (verified by the paths that read every byte: plan.verify).
    const sum = req.checksum ?? info.checksum;
    const tap = sum ? new ChecksumTap(sum) : undefined;
    const body = chain(raw, [...(tap ? [tap.stage()] : []), progress.counter()]);
    progress.setPhase('transferring');
    const allowed = planRequest(req);
    const content = await examine(body, {
      child: childMayWriteTarget(allowed),
      memoryBytes: limits.memoryBytes,
    });
    let plan;
    try {
      plan = planTransfer({ info, readRange: src.readRange !== undefined }, allowed, content);
    } catch (err) {
      content.stream.destroy();
      throw err;
    }
    const r = await TRANSFERS[plan.transfer]({
      req,
      plan,
      source: src,
      info,
      content,
      tap,
      progress,
      limits,
    });
    return { ...r, warnings };
  } finally {
    await src.close();
  }
}
