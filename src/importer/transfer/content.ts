/**
 * Looking at the content once, before the plan: the compression layers and the innermost format, from the first
 * bytes, without losing any of them. The planner (plan.ts) decides from what this finds.
 */
import type { Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../errors.ts';
import { decompress } from '../format/decompress.ts';
import { probeDirect } from '../format/direct.ts';
import { peek } from '../format/peek.ts';
import { isCompression, sniff, SNIFF_BYTES, type Layer } from '../format/sniff.ts';
import type { ContentFacts } from '../plan.ts';

export interface Content extends ContentFacts {
  layers: Layer[];
  /** The first bytes of the innermost format (for the header prescreen of disk formats). */
  head: Buffer;
  /**
   * Every byte: of the innermost format when `compressed` is unset (the layers are being decompressed in-process),
   * else of the still-compressed body (a decompressor child will write the target).
   */
  stream: Readable;
}

const MAX_LAYERS = 4;

/**
 * Sniffs and peels compression layers in-process until the innermost format shows. `memoryBytes` bounds the xz child
 * (format/decompress.ts).
 */
export async function peelLayers(input: Readable, memoryBytes?: number): Promise<Content> {
  const layers: Layer[] = [];
  let cur = input;
  for (;;) {
    const { head, stream } = await peek(cur, SNIFF_BYTES);
    const l = sniff(head);
    if (isCompression(l)) {
      if (layers.length >= MAX_LAYERS)
        throw new ImportError(
          ErrorKind.Invalid,
          `more than ${MAX_LAYERS} nested compression layers; refused`,
        );
      layers.push(l);
      cur = decompress(l, stream, memoryBytes);
      continue;
    }
    return { layers, format: l, head, stream };
  }
}

/**
 * What the body is. With `child` (a decompressor child may write the target: plan.ts childMayWriteTarget), a body
 * that is one xz or zst layer over raw (or tar) is left compressed for it (format/direct.ts decodes just enough to
 * tell); anything else is peeled in-process.
 */
export async function examine(body: Readable, o: { child: boolean; memoryBytes: number }): Promise<Content> {
  if (!o.child) return peelLayers(body, o.memoryBytes);
  const probe = await probeDirect(body, o.memoryBytes);
  if (!probe.direct) return peelLayers(probe.stream, o.memoryBytes);
  const { compression, format } = probe.direct;
  return {
    layers: [compression],
    format,
    compressed: compression,
    head: Buffer.alloc(0),
    stream: probe.stream,
  };
}
