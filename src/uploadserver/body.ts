/**
 * The body of one upload as the data path sees it: a single stream fed by one request, or, when the client resumes
 * (docs/upload.md), by several requests one after the other, each continuing at the byte where the last one was cut
 * off. The data path (runImport) never sees the break: it waits, back-pressured, until the rest arrives.
 *
 * `received` counts the bytes handed on to the data path; that is the offset a resumed request must start at. A
 * checksum, when the client sent one, is computed here over exactly those bytes and checked before the end of the
 * stream is signalled, so a mismatch fails the import before anything is committed.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Checksum } from '../importer/checksum.ts';
import { ErrorKind, ImportError } from '../importer/errors.ts';

export class UploadBody {
  readonly readable: Readable;
  /** Bytes handed to the data path so far. */
  received = 0;
  /** Length of the whole body when the client declared it. */
  readonly total: number | undefined;
  private readonly checksum: Checksum | undefined;
  private readonly hash: Hash | undefined;
  private demand: (() => void) | undefined;
  private failure: Error | undefined;
  private ended = false;
  /** Resolves when the data path has read every byte (the stream's end was consumed). */
  readonly consumed: Promise<void>;
  /** Resolves with the error once the body failed. */
  readonly whenFailed: Promise<Error>;
  private onFailed!: (e: Error) => void;

  constructor(opts: { total?: number; checksum?: Checksum } = {}) {
    this.total = opts.total;
    this.checksum = opts.checksum;
    this.hash = opts.checksum ? createHash(opts.checksum.algorithm) : undefined;
    this.readable = new Readable({
      highWaterMark: 4 << 20,
      read: () => {
        const d = this.demand;
        this.demand = undefined;
        d?.();
      },
      destroy: (err, cb) => {
        if (!this.failure) {
          this.failure = err ?? new ImportError(ErrorKind.Internal, 'the upload was stopped');
          this.onFailed(this.failure);
        }
        const d = this.demand;
        this.demand = undefined;
        d?.();
        cb(err);
      },
    });
    // The failure reaches the data path through its own reads (and whenFailed); with no reader attached at that
    // moment an 'error' event must not take the process down.
    this.readable.on('error', () => undefined);
    this.consumed = new Promise((resolve) => this.readable.once('end', resolve));
    this.whenFailed = new Promise((resolve) => (this.onFailed = resolve));
  }

  get complete(): boolean {
    return this.ended;
  }

  /** Hands `chunk` to the data path; resolves when it can take more. Rejects once the body failed. */
  async write(chunk: Buffer): Promise<void> {
    this.throwIfFailed();
    if (this.ended) throw new ImportError(ErrorKind.Invalid, 'more bytes than the upload declared');
    if (this.total !== undefined && this.received + chunk.length > this.total) {
      throw new ImportError(
        ErrorKind.Invalid,
        `the request carries more bytes than the ${this.total} the upload declared`,
      );
    }
    this.hash?.update(chunk);
    this.received += chunk.length;
    if (this.readable.push(chunk)) return;
    await new Promise<void>((resolve) => (this.demand = resolve));
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    const f = this.failure;
    if (f) throw f;
  }

  /** Every byte is in: checks the checksum, then ends the stream (or fails it with the mismatch). */
  end(): void {
    if (this.ended || this.failure) return;
    if (this.total !== undefined && this.received !== this.total) {
      this.fail(
        new ImportError(ErrorKind.Transfer, `the upload ended after ${this.received} of ${this.total} bytes`),
      );
      return;
    }
    if (this.checksum && this.hash) {
      const got = this.hash.digest('hex');
      if (got !== this.checksum.hex) {
        const a = this.checksum.algorithm;
        this.fail(
          new ImportError(
            ErrorKind.Checksum,
            `checksum mismatch: expected ${a}:${this.checksum.hex}, calculated ${a}:${got} over the ${this.received} bytes received`,
          ),
        );
        return;
      }
    }
    this.ended = true;
    this.readable.push(null);
  }

  /** Fails the body: the data path sees `err` on its stream and gives up (cleaning up what it wrote). */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.onFailed(err);
    this.readable.destroy(err);
  }

  get failed(): Error | undefined {
    return this.failure;
  }
}
