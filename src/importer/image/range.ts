/** Reading a remote image by byte range, with the retries both range consumers (NBD server, extent copy) share. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorKind, ImportError } from '../errors.ts';

/**
 * Reads `length` bytes at `offset` of the remote image (all of them, or throws). `into`: memory the caller reuses once
 * it is done with the answer, which the source may read into (ImportSource.readRange).
 */
export interface RangeReader {
  readonly size: number;
  read(offset: number, length: number, into?: Buffer): Promise<Buffer[]>;
}

export interface RetryOptions {
  /** Attempts per read after the first one fails (default 5, like nbdkit's retry filter as used before). */
  retries?: number;
  retryDelayMs?: number;
}

/** `reader` with every read retried; `lastError()` is the read that failed after every retry (what to tell the user). */
export function retrying(
  reader: RangeReader,
  opts: RetryOptions = {},
): RangeReader & { lastError(): ImportError | undefined } {
  const retries = opts.retries ?? 5;
  const delay = opts.retryDelayMs ?? 1000;
  let failure: ImportError | undefined;
  return {
    size: reader.size,
    lastError: () => failure,
    read: async (offset, length, into) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await reader.read(offset, length, into);
        } catch (err) {
          if (attempt >= retries) {
            failure =
              err instanceof ImportError
                ? err
                : new ImportError(ErrorKind.Transfer, `reading the image by range failed: ${String(err)}`);
            throw failure;
          }
          await sleep(delay);
        }
      }
    },
  };
}
