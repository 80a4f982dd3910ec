/**
 * The `file` part of a multipart/form-data body, as a stream (upstream: the part whose form name is `file`; other
 * parts are skipped). The body is never held whole: only a window of at most one boundary's length is kept back,
 * and the part's bytes flow on with back-pressure.
 */
import { Readable } from 'node:stream';

export class MultipartError extends Error {
  override name = 'MultipartError';
}

/** The boundary of a `multipart/form-data; boundary=...` content type, or an error saying what is wrong. */
export function boundaryOf(contentType: string | undefined): string {
  if (!contentType || !/^multipart\/form-data\b/i.test(contentType.trim())) {
    throw new MultipartError(
      `the form upload needs Content-Type multipart/form-data, got ${contentType ?? 'none'}`,
    );
  }
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const b = m?.[1] ?? m?.[2];
  if (!b || b.length > 70)
    throw new MultipartError('the multipart/form-data Content-Type has no valid boundary');
  return b;
}

function formName(headers: string): string | undefined {
  const line = headers.split('\r\n').find((l) => /^content-disposition\s*:/i.test(l));
  if (!line) return undefined;
  const m = /;\s*name=(?:"([^"]*)"|([^;\s]+))/i.exec(line);
  return m?.[1] ?? m?.[2];
}

/**
 * Reads `body` until the part named `file`, then yields that part's content. Resolves once the part's headers were
 * read; the returned stream errors with MultipartError when the body ends before the part's closing boundary.
 */
export async function filePart(body: AsyncIterable<Buffer>, boundary: string): Promise<Readable> {
  const it = body[Symbol.asyncIterator]();
  const delim = Buffer.from(`\r\n--${boundary}`);
  // The first boundary may start the body without a preceding CRLF: pretend there was one.
  let buf: Buffer = Buffer.from('\r\n');
  let ended = false;
  const more = async (): Promise<boolean> => {
    if (ended) return false;
    const r = await it.next();
    if (r.done) {
      ended = true;
      return false;
    }
    buf = buf.length === 0 ? r.value : Buffer.concat([buf, r.value]);
    return true;
  };
  const need = async (pred: () => number): Promise<number> => {
    for (;;) {
      const i = pred();
      if (i >= 0) return i;
      if (!(await more())) return -1;
    }
  };
  /** Drops everything up to and including the next delimiter (keeping only what could start one); false at the end. */
  const skipPastDelimiter = async (): Promise<boolean> => {
    for (;;) {
      const i = buf.indexOf(delim);
      if (i >= 0) {
        buf = buf.subarray(i + delim.length);
        return true;
      }
      if (buf.length >= delim.length) buf = buf.subarray(buf.length - (delim.length - 1));
      if (!(await more())) return false;
    }
  };

  if (!(await skipPastDelimiter())) throw new MultipartError('the form body has no part (no boundary found)');
  for (;;) {
    // After a delimiter: "--" ends the body, CRLF starts a part.
    if ((await need(() => (buf.length >= 2 ? 0 : -1))) < 0)
      throw new MultipartError('the form body ends inside a boundary');
    if (buf.subarray(0, 2).toString() === '--') throw new MultipartError('the form has no part named "file"');
    const h = await need(() => {
      const e = buf.indexOf('\r\n\r\n');
      if (e < 0 && buf.length > 16 * 1024)
        throw new MultipartError('a form part has more than 16 KiB of headers');
      return e;
    });
    if (h < 0) throw new MultipartError('the form body ends inside the headers of a part');
    const headers = buf.subarray(2, h).toString('latin1');
    buf = buf.subarray(h + 4);
    if (formName(headers) === 'file') break;
    // Not the file: skip this part's content.
    if (!(await skipPastDelimiter())) throw new MultipartError('the form body ends inside a part');
  }

  // Stream the file part: everything up to the next delimiter, holding back a delimiter's length at most.
  let finished = false;
  let reading = false;
  return new Readable({
    highWaterMark: 1 << 20,
    read(): void {
      if (reading) return;
      reading = true;
      void (async () => {
        try {
          for (;;) {
            if (finished) return;
            const d = buf.indexOf(delim);
            if (d >= 0) {
              const chunk = buf.subarray(0, d);
              buf = Buffer.alloc(0);
              finished = true;
              if (chunk.length > 0) this.push(chunk);
              this.push(null);
              return;
            }
            const safe = buf.length - (delim.length - 1);
            if (safe > 0) {
              const chunk = buf.subarray(0, safe);
              buf = buf.subarray(safe);
              if (!this.push(chunk)) return;
              continue;
            }
            if (!(await more())) {
              finished = true;
              this.destroy(new MultipartError('the form body ends before the end of the file part'));
              return;
            }
          }
        } catch (e) {
          this.destroy(e as Error);
        } finally {
          reading = false;
        }
      })();
    },
    destroy(err, cb): void {
      finished = true;
      // Stop the body too (the request): nobody reads the rest.
      void it.return?.();
      cb(err);
    },
  });
}
