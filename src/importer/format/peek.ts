/** Look at the first bytes of a stream without losing them. */
import { Readable } from 'node:stream';

/**
 * Reads until `n` bytes (or EOF) have arrived and returns them with a stream that yields every byte, the head included.
 * Works on any Readable (including ones that are piped later), keeping back-pressure.
 */
export async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let have = 0;
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let done = false;
  while (have < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    chunks.push(chunk);
    have += chunk.length;
  }
  const head = Buffer.concat(chunks);
  async function* all(): AsyncGenerator<Buffer> {
    try {
      if (head.length > 0) yield head;
      while (!done) {
        const r = await it.next();
        if (r.done) break;
        yield r.value;
      }
    } finally {
      // Stops the source when the consumer gives up early.
      await it.return?.();
    }
  }
  return {
    head: head.subarray(0, n),
    stream: Readable.from(all(), { objectMode: false, highWaterMark: 1 << 20 }),
  };
}
