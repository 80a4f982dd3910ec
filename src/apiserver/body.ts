// Reading a small JSON request body with a size bound (the API server's requests are a few KiB).
import type { IncomingMessage } from 'node:http';

export class BodyError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

export async function readJson(req: IncomingMessage, limit = 1 << 20): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== 'application/json') {
    throw new BodyError(415, `the body must be application/json, not ${type}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw new BodyError(413, `the body is larger than ${limit} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (e) {
    throw new BodyError(400, `the body is not JSON: ${(e as Error).message}`);
  }
}
