/**
 * The data path: source → (checksum, progress) → peeled compression layers → one of
 *   - raw (and tar as kubevirt content): streamed straight to the target, sparse;
 *   - archive content: tar extracted into the target directory;
 *   - qcow2/vmdk/vdi/vhd/vhdx: validated with qemu-img, then converted to raw, reading either
 *       the local file directly, or the server by range through our NBD server (no scratch copy; needs ranges, no
 *       compression layer, no checksum), or else a scratch copy (download first, then convert).
 * See docs/importer.md and docs/adr/0001-streaming.md.
 */
import { constants } from 'node:fs';
import { mkdir, open, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumTap, type Checksum } from './checksum.ts';
import { ErrorKind, ImportError, SCRATCH_SPACE_REQUIRED } from './errors.ts';
import { decompress } from './format/decompress.ts';
import { importCompressedRaw } from './format/direct.ts';
import { peek } from './format/peek.ts';
import { isCompression, sniff, SNIFF_BYTES, type DiskFormat, type Layer } from './format/sniff.ts';
import { copyExtents, planExtents, type ExtentPlan } from './image/extents.ts';
import { startNbdServer, type NbdServer } from './image/nbd-server.ts';
import { convert, type ImageLocation } from './image/qemu.ts';
import type { RangeReader } from './image/range.ts';
import { DEFAULT_LIMITS, type Limits } from './image/run.ts';
import { inspectImage, prescreen } from './image/validate.ts';
import { Progress } from './progress.ts';
import { extractTar } from './sink/archive.ts';
import { RawWriter, type RawTarget } from './sink/raw.ts';
import type { ImportSource, SourceInfo } from './source/source.ts';

export const ContentType = { KubeVirt: 'kubevirt', Archive: 'archive' } as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export type CacheMode = 'writeback' | 'none' | 'trynone';

export interface ImportRequest {
  source: ImportSource;
  contentType: ContentType;
  target: RawTarget | { kind: 'dir'; path: string };
  /** Final size of a file target (grown to it, never shrunk). Undefined: the image's own size. */
  size?: number;
  /** Space the image may use (virtual size / raw bytes / extracted bytes). Undefined: no limit. */
  available?: number;
  checksum?: Checksum;
  preallocate?: boolean;
  /** Directory for a staged copy when streaming is impossible. Undefined: fail with scratch-required. */
  scratchDir?: string;
  cache?: CacheMode;
  /** Allow the streaming path (NBD over ranged reads; default true). */
  stream?: boolean;
  /** Allow the extent copy on the streaming path (image/extents.ts; default true). */
  extentCopy?: boolean;
  limits?: Limits;
  progress?: Progress;
}

export const TransferPath = {
  Direct: 'direct',
  Nbd: 'nbd',
  Extents: 'extents',
  Scratch: 'scratch',
  Local: 'local',
  Archive: 'archive',
} as const;
export type TransferPath = (typeof TransferPath)[keyof typeof TransferPath];

export interface ImportResult {
  /** Things the user may want to know (upstream warns about text/* content types, for instance). */
  warnings: string[];
  layers: Layer[];
  format: Layer;
  virtualSize: number;
  path: TransferPath;
  preallocationApplied: boolean;
  /** Final size of the target file (bytes extracted for archives). */
  size: number;
  /** Set when the decompressor child wrote the target itself (raw.xz, raw.zst; format/direct.ts). */
  decompressedBy?: 'xz' | 'zstd';
}

/** Pipes `input` through the stages; an error anywhere ends the last stage with that error. */
function chain(input: Readable, stages: Transform[]): Readable {
  const last = stages.at(-1);
  if (!last) return input;
  const pipe = pipeline as unknown as (...s: unknown[]) => Promise<void>;
  // pipeline destroys every stage with the error, so the consumer of `last` sees it.
  pipe(input, ...stages).catch(() => undefined);
  return last;
}

export async function peelLayers(
  input: Readable,
  memoryBytes?: number,
): Promise<{ layers: Layer[]; format: Layer; head: Buffer; stream: Readable }> {
  const layers: Layer[] = [];
  let cur = input;
  for (;;) {
    const { head, stream } = await peek(cur, SNIFF_BYTES);
    const l = sniff(head);
    if (isCompression(l)) {
      if (layers.length >= 4)
        throw new ImportError(ErrorKind.Invalid, 'more than 4 nested compression layers; refused');
      layers.push(l);
      cur = decompress(l, stream, memoryBytes);
      continue;
    }
    return { layers, format: l, head, stream };
  }
}

async function directIoWorks(dir: string): Promise<boolean> {
  const probe = path.join(dir, `.cdi-odirect-${process.pid}`);
  try {
    const fh = await open(probe, constants.O_CREAT | constants.O_WRONLY | constants.O_DIRECT, 0o600);
    await fh.close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(probe, { force: true });
  }
}

/**
 * Bound for the scratch copy: the free space, and (when the volume size is known) what an image of that virtual size
 * can reasonably occupy, so a compressed bomb cannot fill the scratch volume.
 */
function scratchCapacity(free: number, available: number | undefined): number {
  if (available === undefined) return free;
  return Math.min(free, Math.ceil(available * 1.1) + 64 * 1024 * 1024);
}

async function freeSpace(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Finishes a write into the target: grown to the requested size, but no larger than the space available (and never
 * shrunk), optionally preallocated, fsynced. Returns the final size.
 */
async function commitTarget(w: RawWriter, req: ImportRequest): Promise<number> {
  const size =
    req.size !== undefined && req.available !== undefined ? Math.min(req.size, req.available) : req.size;
  const { size: finalSize } = await w.commit({
    ...(size !== undefined ? { size } : {}),
    preallocate: req.preallocate ?? false,
  });
  return finalSize;
}

/**
 * The extent copy (image/extents.ts): the image's data ranges, read by range, written at their guest offsets into a
 * new sparse file of the image's virtual size; then grown, fsynced and renamed into place like every other target.
 */
async function copyByExtents(
  plan: ExtentPlan,
  reader: RangeReader,
  req: ImportRequest,
  virtualSize: number,
  progress: Progress,
): Promise<number> {
  const w = await RawWriter.open(req.target as RawTarget, {});
  try {
    let done = 0;
    await copyExtents(plan, reader, (chunks, guest) => w.writeAt(chunks, guest), {
      onBytes: (n) => progress.set((done += n) / Math.max(1, plan.dataBytes)),
    });
    w.extendTo(virtualSize);
    return await commitTarget(w, req);
  } catch (err) {
    await w.abort();
    throw err;
  }
}

export async function runImport(req: ImportRequest): Promise<ImportResult> {
  const warnings: string[] = [];
  const r = await runImportInner(req, warnings);
  return { ...r, warnings };
}

async function runImportInner(
  req: ImportRequest,
  warnings: string[],
): Promise<Omit<ImportResult, 'warnings'>> {
  const progress = req.progress ?? new Progress();
  const limits = req.limits ?? DEFAULT_LIMITS;
  const src = req.source;
  try {
    progress.setPhase('connecting');
    const info = await src.info();
    progress.total = info.size;
    if (info.contentType?.startsWith('text/')) {
      warnings.push(`the server labels the data ${info.contentType}; is the URL really a disk image?`);
    }
    const raw = await src.open();
    const tap = req.checksum ? new ChecksumTap(req.checksum) : undefined;
    let body = chain(raw, [...(tap ? [tap.stage()] : []), progress.counter()]);
    progress.setPhase('transferring');
    if (req.contentType === ContentType.KubeVirt && req.target.kind !== 'dir' && !req.preallocate) {
      // raw.xz / raw.zst: the decompressor writes the target itself (docs/adr/0004-decompressor-writes-target.md).
      const d = await importCompressedRaw(body, {
        target: req.target,
        ...(req.available !== undefined ? { available: req.available } : {}),
        memoryBytes: limits.memoryBytes,
        verify: () => tap?.verify(),
        commit: (w) => commitTarget(w, req),
      });
      if ('stream' in d) body = d.stream;
      else {
        progress.set(1);
        const { compression, format, virtualSize, size } = d.done;
        const decompressedBy = compression === 'xz' ? 'xz' : 'zstd';
        return {
          layers: [compression],
          format,
          virtualSize,
          path: TransferPath.Direct,
          preallocationApplied: false,
          size,
          decompressedBy,
        };
      }
    }
    const { layers, format, head, stream } = await peelLayers(body, limits.memoryBytes);

    if (req.contentType === ContentType.Archive) {
      if (format !== 'tar') {
        stream.destroy();
        throw new ImportError(
          ErrorKind.Invalid,
          `archive content must be a tar archive (optionally gz/xz/zst compressed); found ${format}`,
        );
      }
      if (req.target.kind !== 'dir')
        throw new ImportError(ErrorKind.Invalid, 'archive content needs a directory as the target');
      const r = await extractTar(stream, req.target.path, req.available, () => tap?.verify());
      progress.set(1);
      return {
        layers,
        format,
        virtualSize: r.bytes,
        path: TransferPath.Archive,
        preallocationApplied: false,
        size: r.bytes,
      };
    }
    if (req.target.kind === 'dir') {
      stream.destroy();
      throw new ImportError(
        ErrorKind.Invalid,
        `${req.target.path} is a directory: a disk image needs a file or block device as the target`,
      );
    }
    const target = req.target;
    const capacity = req.available;

    if (format === 'raw' || format === 'tar') {
      const w = await RawWriter.open(target, {
        ...(capacity !== undefined ? { capacity } : {}),
        preallocate: req.preallocate ?? false,
      });
      try {
        await w.writeStream(stream);
        tap?.verify();
        const finalSize = await commitTarget(w, req);
        progress.set(1);
        return {
          layers,
          format,
          virtualSize: w.written,
          path: TransferPath.Direct,
          preallocationApplied: req.preallocate ?? false,
          size: finalSize,
        };
      } catch (err) {
        stream.destroy();
        await w.abort();
        throw err;
      }
    }

    return await convertImage(req, info, layers, format as DiskFormat, head, stream, tap, progress, limits);
  } finally {
    await src.close();
  }
}

async function convertImage(
  req: ImportRequest,
  info: SourceInfo,
  layers: Layer[],
  format: DiskFormat,
  head: Buffer,
  stream: Readable,
  tap: ChecksumTap | undefined,
  progress: Progress,
  limits: Limits,
): Promise<Omit<ImportResult, 'warnings'>> {
  const target = req.target as RawTarget;
  try {
    prescreen(format, head);
  } catch (err) {
    stream.destroy();
    throw err;
  }
  let loc: ImageLocation;
  let sourceBytes: number | undefined;
  let how: TransferPath;
  let nbd: NbdServer | undefined;
  let scratchFile: string | undefined;
  const cleanup = async (): Promise<void> => {
    await nbd?.stop();
    if (scratchFile) await rm(scratchFile, { force: true });
  };
  try {
    if (layers.length === 0 && info.localPath) {
      // A local file: qemu-img reads it where it is. A checksum still needs every byte read once.
      if (tap) {
        for await (const _ of stream) void _;
        tap.verify();
      } else stream.destroy();
      loc = { file: info.localPath };
      sourceBytes = info.size;
      how = TransferPath.Local;
    } else if (
      layers.length === 0 &&
      info.ranges &&
      info.size !== undefined &&
      req.source.readRange &&
      !tap &&
      req.stream !== false
    ) {
      stream.destroy();
      const src = req.source;
      nbd = await startNbdServer({ size: info.size, read: (o, l) => src.readRange!(o, l) });
      loc = { nbdSocket: nbd.socket };
      sourceBytes = info.size;
      how = TransferPath.Nbd;
    } else {
      if (!req.scratchDir) {
        stream.destroy();
        throw new ImportError(ErrorKind.ScratchRequired, SCRATCH_SPACE_REQUIRED);
      }
      await mkdir(req.scratchDir, { recursive: true });
      scratchFile = path.join(req.scratchDir, `tmpimage-${process.pid}`);
      const w = await RawWriter.open(
        { kind: 'file', path: scratchFile },
        { capacity: scratchCapacity(await freeSpace(req.scratchDir), req.available), syncEvery: 0 },
      );
      try {
        await w.writeStream(stream);
        tap?.verify();
        await w.commit({ sync: false }); // scratch needs no durability
      } catch (err) {
        stream.destroy();
        await w.abort();
        throw err;
      }
      loc = { file: scratchFile };
      sourceBytes = w.written;
      how = TransferPath.Scratch;
    }
    if (how !== TransferPath.Scratch) progress.restart();
    progress.setPhase('validating');
    const facts = await inspectImage(format, loc, sourceBytes, req.available, limits);

    progress.setPhase('converting');
    const plan =
      nbd && target.kind === 'file' && !req.preallocate && req.extentCopy !== false && facts.extents
        ? planExtents(facts.extents, facts.virtualSize, sourceBytes ?? 0)
        : undefined;
    if (plan && nbd) {
      const size = await copyByExtents(plan, nbd.reader, req, facts.virtualSize, progress);
      return {
        layers,
        format,
        virtualSize: facts.virtualSize,
        path: TransferPath.Extents,
        preallocationApplied: false,
        size,
      };
    }
    const w = await RawWriter.external(target);
    let cache: 'writeback' | 'none' = req.cache === 'none' ? 'none' : 'writeback';
    if (req.cache === 'trynone') cache = (await directIoWorks(path.dirname(w.path))) ? 'none' : 'writeback';
    try {
      if (target.kind === 'block' && req.available !== undefined && facts.virtualSize > req.available) {
        throw new ImportError(
          ErrorKind.Invalid,
          `virtual image size ${facts.virtualSize} is larger than the reported available storage ${req.available}. A larger PVC is required`,
        );
      }
      const track = how !== TransferPath.Scratch;
      const { preallocationApplied } = await convert({
        format,
        from: loc,
        to: w.path,
        existingTarget: target.kind === 'block',
        cache,
        preallocate: req.preallocate ?? false,
        limits,
        ...(track ? { onProgress: (f: number) => progress.set(f) } : {}),
      });
      const finalSize = await commitTarget(w, req);
      progress.set(1);
      return {
        layers,
        format,
        virtualSize: facts.virtualSize,
        path: how,
        preallocationApplied,
        size: finalSize,
      };
    } catch (err) {
      await w.abort();
      throw err;
    }
  } catch (err) {
    // qemu-img only says "Input/output error" when a ranged read failed for good: tell what really happened.
    throw nbd?.lastError() ?? err;
  } finally {
    await cleanup();
  }
}
