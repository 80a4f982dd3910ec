/**
 * Continuing the download an earlier run left on the same file target (a restarted importer pod, `cdi import` run
 * again after it was killed): the progress record beside the disk (sink/record.ts) names the source, its validator
 * and how many bytes are on disk; the source is asked for the rest with open(offset, validator) before anything
 * else, so the continuation costs one request. Raw data without layers only (the plan's `resume.record`); every
 * mismatch drops the record and the run starts from byte 0. docs/adr/0009-resumable-downloads.md.
 */
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { CannotResume } from '../errors.ts';
import { SNIFF_BYTES } from '../format/sniff.ts';
import { ContentType, type ImportRequest } from '../request.ts';
import { partialPath } from '../sink/raw.ts';
import { dropRecord, readRecord, type ProgressRecord } from '../sink/record.ts';
import type { SourceInfo } from '../source/source.ts';

export interface Continued {
  record: ProgressRecord;
  /** The content from `record.offset` on. */
  body: Readable;
  info: SourceInfo;
  /** The content's first bytes, from the partial file (what the sniff would have seen). */
  head: Buffer;
}

/** Reads `[0, length)` of a file in pieces (the start of a partial file, to feed a checksum). */
export async function* fileBytes(file: string, length: number): AsyncGenerator<Buffer> {
  const fh = await open(file, 'r');
  try {
    for (let pos = 0; pos < length;) {
      const want = Math.min(4 << 20, length - pos);
      const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(want), 0, want, pos);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

/** The continuation of an earlier run's download into `req.target`, or undefined when there is none to continue. */
export async function continueEarlierRun(
  req: ImportRequest,
  log: (line: string) => void,
): Promise<Continued | undefined> {
  const src = req.source;
  if (req.target.kind !== 'file' || req.contentType !== ContentType.KubeVirt) return undefined;
  const target = req.target.path;
  const record = await readRecord(target);
  if (!record) return undefined;
  if (req.resumeRecord === false || !src.resumable || record.source !== src.description) {
    await dropRecord(target);
    return undefined;
  }
  let body: Readable;
  try {
    body = await src.open(record.offset, record.validator);
  } catch (err) {
    if (!(err instanceof CannotResume)) throw err; // unreachable now: the record waits for the next run
    log(`${err.message}: the download starts again from byte 0`);
    await dropRecord(target);
    return undefined;
  }
  const info = await src.info();
  if (info.validator !== record.validator || info.size !== record.size) {
    body.destroy();
    log(
      `${src.description} is no longer the content an earlier run started downloading: the download starts again from byte 0`,
    );
    await dropRecord(target);
    return undefined;
  }
  let head = Buffer.alloc(0);
  for await (const b of fileBytes(partialPath(target), Math.min(SNIFF_BYTES, record.offset)))
    head = Buffer.concat([head, b]);
  log(
    `continuing the download of ${src.description} from byte ${record.offset} of ${record.size} (an earlier run's)`,
  );
  return { record, body, info, head };
}
