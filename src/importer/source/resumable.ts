/**
 * A source's body that survives breaks: when the connection breaks in the middle, the bytes from the one where it
 * broke are asked for again with open(offset, validator) and appended, so everything downstream (checksum tap,
 * progress counter, the decompressor child, the sink) sees one unbroken stream: a compressed body continues too,
 * because the decompressor never saw the break. Any source gets this by implementing open(offset, validator)
 * (source.ts); what a break does is the planner's breakPolicy() (plan.ts):
 *
 *   continue  retried with a doubling wait, as long as every retry brings new bytes (`resumes` in a row without
 *             a byte of progress and it gives up, with the last error);
 *   restart   RestartNeeded: runImport starts the whole transfer again from byte 0 (also when open(offset) answers
 *             CannotResume: the content changed, and the two versions must not be spliced);
 *   fail      the error as it is (a one-way body cannot be read again).
 *
 * docs/adr/0009-resumable-downloads.md.
 */
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { CannotResume, ErrorKind, ImportError, isBreak, RestartNeeded } from '../errors.ts';
import type { BreakPolicy } from '../plan.ts';
import type { ImportSource } from './source.ts';

export interface ResumableOptions {
  policy: BreakPolicy;
  /** Why the policy is what it is (for the message of a restart). */
  why: string;
  validator: string | undefined;
  /** Bytes of the content before `first` (a run that continues an earlier one). Default 0. */
  offset?: number;
  /** Retries in a row without a byte of progress before giving up. */
  resumes: number;
  /** Wait before the first retry; doubled for each retry in a row, at most 30 s. */
  delayMs: number;
  log: (line: string) => void;
  /** Called once per continuation that worked. */
  onResume?: () => void;
}

const MAX_DELAY_MS = 30_000;

export function resumableBody(
  src: Pick<ImportSource, 'description' | 'open'>,
  first: Readable,
  o: ResumableOptions,
): Readable {
  async function* body(): AsyncGenerator<Buffer> {
    let cur: Readable | undefined = first;
    let got = o.offset ?? 0;
    let tries = 0;
    let last: ImportError | undefined;
    for (;;) {
      if (cur) {
        try {
          for await (const chunk of cur as AsyncIterable<Buffer>) {
            got += chunk.length;
            tries = 0;
            yield chunk;
          }
          return;
        } catch (err) {
          cur.destroy();
          if (!isBreak(err)) throw err;
          last = err;
        }
        cur = undefined;
      }
      const broke = last ?? new ImportError(ErrorKind.Transfer, `the body of ${src.description} broke`);
      if (o.policy === 'fail') throw broke;
      if (o.policy === 'restart') throw new RestartNeeded(`${broke.message}; ${o.why}`, broke);
      if (++tries > o.resumes) {
        throw new ImportError(
          ErrorKind.Transfer,
          `${broke.message} (gave up after ${o.resumes} attempts to continue from byte ${got})`,
          { cause: broke },
        );
      }
      o.log(`${broke.message}; continuing from byte ${got} (attempt ${tries} of ${o.resumes})`);
      await sleep(Math.min(MAX_DELAY_MS, o.delayMs * 2 ** (tries - 1)));
      try {
        cur = await src.open(got, o.validator);
        o.onResume?.();
      } catch (err) {
        if (err instanceof CannotResume) throw new RestartNeeded(err.message, err);
        if (!isBreak(err)) throw err;
        last = err;
      }
    }
  }
  return Readable.from(body(), { objectMode: false, highWaterMark: 1 << 20 });
}
