/**
 * The progress record of a raw download into a file target: a small JSON file beside the disk
 * (`/data/.disk.img.resume`, hidden, next to the `.disk.img.partial` it describes; consumers only ever see
 * `disk.img`, which appears by rename when the download is complete). It says which content (source and
 * validator) the partial file holds and up to which byte that content is on disk: the offset is written only after
 * a data flush of the partial file covered it, so the record never claims more than survived. A later run on the
 * same target (a restarted importer pod, `cdi import` run again) continues from there
 * (transfer/continue.ts); the record is removed on success and whenever it does not match.
 * docs/adr/0009-resumable-downloads.md.
 */
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { partialPath, recordPath } from './raw.ts';

export interface ProgressRecord {
  version: 1;
  /** The source (its description: the URL without credentials). */
  source: string;
  /** The content's validator (ETag or Last-Modified). */
  validator: string;
  /** Bytes of the whole content. */
  size: number;
  /** Bytes of the content on disk in the partial file, from byte 0. */
  offset: number;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * The record of `target` when it is well-formed and its partial file holds at least `offset` bytes; a record that
 * does not is removed (with its partial file) and undefined returned.
 */
export async function readRecord(target: string): Promise<ProgressRecord | undefined> {
  const text = await readFile(recordPath(target), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let r: Partial<ProgressRecord> | undefined;
  try {
    r = JSON.parse(text) as Partial<ProgressRecord>;
  } catch {
    r = undefined;
  }
  const partial = await stat(partialPath(target)).catch(() => undefined);
  if (
    r?.version === 1 &&
    typeof r.source === 'string' &&
    typeof r.validator === 'string' &&
    isCount(r.size) &&
    isCount(r.offset) &&
    r.offset <= r.size &&
    partial?.isFile() &&
    partial.size >= r.offset
  ) {
    return r as ProgressRecord;
  }
  await dropRecord(target);
  return undefined;
}

/** Removes the record and the partial file it describes. */
export async function dropRecord(target: string): Promise<void> {
  await rm(recordPath(target), { force: true });
  await rm(partialPath(target), { force: true });
}

/**
 * Keeps the record of one download up to date. update() may be called often (after every data flush); writes are
 * one at a time, each replacing the file by rename (a torn record reads as invalid, which means starting over).
 */
export class RecordKeeper {
  private readonly file: string;
  private readonly base: Omit<ProgressRecord, 'offset'>;
  private writing: Promise<void> | undefined;
  private pending: number | undefined;
  private written = -1;
  private closed = false;

  constructor(target: string, base: Omit<ProgressRecord, 'offset'>) {
    this.file = recordPath(target);
    this.base = base;
  }

  /** The content is on disk up to `offset`. */
  update(offset: number): void {
    if (this.closed || offset <= this.written) return;
    this.pending = Math.max(this.pending ?? 0, offset);
    this.writing ??= this.drain().finally(() => (this.writing = undefined));
  }

  private async drain(): Promise<void> {
    while (this.pending !== undefined && !this.closed) {
      const offset = this.pending;
      this.pending = undefined;
      const tmp = `${this.file}.tmp`;
      const rec: ProgressRecord = { ...this.base, offset };
      // A record that cannot be written only costs a later run its head start: never the import.
      await writeFile(tmp, JSON.stringify(rec), { mode: 0o600 })
        .then(() => rename(tmp, this.file))
        .then(() => (this.written = Math.max(this.written, offset)))
        .catch(() => undefined);
    }
  }

  /** Writes `offset` now and waits for it (the download stops here; a later run continues). */
  async save(offset: number): Promise<void> {
    await this.writing;
    this.update(offset);
    await this.writing;
  }

  /** The download is complete (or abandoned): no record any more. */
  async remove(): Promise<void> {
    this.closed = true;
    await this.writing;
    await rm(this.file, { force: true });
    await rm(`${this.file}.tmp`, { force: true });
  }
}
