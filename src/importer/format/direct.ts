/**
 * Compressed raw disks (.raw.xz, .raw.zst): the decompressor child writes the target itself, so the decompressed
 * bytes never pass through this process (docs/adr/0004-decompressor-writes-target.md).
 *
 * probeDirect() holds the first compressed chunks and feeds them to a throw-away decoder until the decompressed head
 * can be sniffed; decompressInto() then runs `xz -dc -T0` / `zstd -dc` with the target as its stdout, bounded by
 * prlimit: RLIMIT_FSIZE (the space), RLIMIT_CPU (zero runs are written as holes, so a zero bomb never hits the size
 * limit until its end), RLIMIT_AS (memory). Anything that is not one xz/zst layer over raw data replays every byte
 * into the generic path.
 */
import { spawn } from 'node:child_process';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { childEnv, outOfMemory, prlimitArgv, TextTail } from '../child.ts';
import { ErrorKind, ImportError, tooLargeForSpace } from '../errors.ts';
import { sniff, SNIFF_BYTES, type Layer } from './sniff.ts';

export type DirectCompression = 'xz' | 'zst';

/** Compressed bytes held while the sniff decoder works; past this, the generic path takes over. */
export const HOLD_LIMIT = 64 * 1024 * 1024;

/** CPU time granted to the decompressor: a base plus one second per 4 MiB of space (xz decodes zeros at ~500 MB/s). */
const CPU_BASE_SEC = 60;
const CPU_BYTES_PER_SEC = 4 * 1024 * 1024;

export interface Probe {
  /** Set when the body is a single xz/zst layer over raw (or tar) data. */
  direct: { compression: DirectCompression; format: Layer } | undefined;
  /** Every byte of the body, from the first (the held chunks, then the rest). */
  stream: Readable;
}

interface SniffDecoder {
  write(chunk: Buffer): void;
  end(): void;
  /** The first SNIFF_BYTES decompressed bytes (fewer at the end of the data), or undefined when decoding failed. */
  head: Promise<Buffer | undefined>;
  stop(): void;
}

/** Collects decompressed output until SNIFF_BYTES have arrived or the output ends. */
function collector(): {
  add: (b: Buffer) => void;
  finish: (ok: boolean) => void;
  head: Promise<Buffer | undefined>;
} {
  const parts: Buffer[] = [];
  let have = 0;
  let settle: (b: Buffer | undefined) => void = () => {};
  const head = new Promise<Buffer | undefined>((resolve) => (settle = resolve));
  let done = false;
  const finish = (ok: boolean): void => {
    if (done) return;
    done = true;
    settle(ok ? Buffer.concat(parts).subarray(0, SNIFF_BYTES) : undefined);
  };
  return {
    add: (b) => {
      if (done) return;
      parts.push(b);
      have += b.length;
      if (have >= SNIFF_BYTES) finish(true);
    },
    finish,
    head,
  };
}

/**
 * `xz -dc` within `memoryBytes` of address space: `--memlimit-decompress` makes xz refuse, with its own message, a
 * stream whose dictionary would not fit (instead of failing an allocation); the threaded decoder gets half.
 */
export function xzDecoder(memoryBytes: number, threads: '-T0' | '-T1'): string[] {
  return [
    'xz',
    '-dc',
    threads,
    ...(threads === '-T0' ? [`--memlimit-mt-decompress=${Math.floor(memoryBytes / 2)}`] : []),
    `--memlimit-decompress=${Math.floor((memoryBytes / 4) * 3)}`,
  ];
}

/** `xz -T1`: the threaded decoder (-T0) holds its output until it has a whole block's input (measured). */
function xzSniffer(memoryBytes: number): SniffDecoder {
  const c = collector();
  const [bin = 'prlimit', ...args] = prlimitArgv(
    { addressSpace: memoryBytes },
    xzDecoder(memoryBytes, '-T1'),
  );
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'ignore'], env: childEnv() });
  child.on('error', () => c.finish(false));
  child.stdin.on('error', () => undefined); // EPIPE once we stop it
  child.stdout.on('data', (d: Buffer) => c.add(d));
  child.on('close', (code) => c.finish(code === 0));
  return {
    write: (b) => void child.stdin.write(b),
    end: () => child.stdin.end(),
    head: c.head,
    stop: () => {
      child.stdin.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

function zstdSniffer(): SniffDecoder {
  const c = collector();
  const z = zlib.createZstdDecompress();
  z.on('data', (d: Buffer) => c.add(d));
  z.on('error', () => c.finish(false));
  z.on('end', () => c.finish(true));
  return {
    write: (b) => void z.write(b),
    end: () => z.end(),
    head: c.head,
    stop: () => z.destroy(),
  };
}

/** Replays the held chunks, then the chunk being read (if any), then the rest of the iterator. */
function replay(
  held: Buffer[],
  it: AsyncIterator<Buffer>,
  pending: Promise<IteratorResult<Buffer>> | undefined,
  ended: boolean,
): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    try {
      // shift(): each held chunk is released as soon as it has been passed on.
      while (held.length > 0) yield held.shift()!;
      if (ended) return;
      if (pending) {
        const r = await pending;
        if (r.done) return;
        yield r.value;
      }
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await it.return?.();
    }
  }
  return Readable.from(all(), { objectMode: false, highWaterMark: 1 << 20 });
}

/**
 * Looks at the first layer of `body`; for xz and zst, decodes just enough of it to sniff what is inside.
 * Never loses a byte: `stream` yields the whole body either way.
 */
export async function probeDirect(
  body: Readable,
  memoryBytes: number,
  holdLimit = HOLD_LIMIT,
): Promise<Probe> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const held: Buffer[] = [];
  let heldBytes = 0;
  let ended = false;
  const take = (r: IteratorResult<Buffer>): void => {
    if (r.done) {
      ended = true;
      return;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    held.push(b);
    heldBytes += b.length;
  };
  while (!ended && heldBytes < SNIFF_BYTES) take(await it.next());
  const outer = sniff(Buffer.concat(held).subarray(0, SNIFF_BYTES));
  if (outer !== 'xz' && outer !== 'zst')
    return { direct: undefined, stream: replay(held, it, undefined, ended) };

  const dec = outer === 'xz' ? xzSniffer(memoryBytes) : zstdSniffer();
  let pending: Promise<IteratorResult<Buffer>> | undefined;
  let head: Buffer | undefined;
  try {
    for (const b of held) dec.write(b);
    const decided = dec.head.then((h) => ({ head: h }));
    for (;;) {
      if (ended) {
        dec.end();
        head = (await decided).head;
        break;
      }
      if (heldBytes > holdLimit) break;
      pending ??= it.next();
      const r = await Promise.race([pending.then((next) => ({ next })), decided]);
      if ('head' in r) {
        head = r.head;
        break;
      }
      pending = undefined;
      take(r.next);
      if (!r.next.done) dec.write(held.at(-1)!);
    }
  } catch (err) {
    dec.stop();
    await it.return?.();
    throw err;
  }
  dec.stop();
  const inner = head === undefined ? undefined : sniff(head);
  const direct = inner === 'raw' || inner === 'tar' ? { compression: outer, format: inner } : undefined;
  return { direct, stream: replay(held, it, pending, ended) };
}

export interface DirectTarget {
  kind: 'file' | 'block';
  /** The file to create (the temporary `.partial` name) or the block device. */
  path: string;
}

export interface DecompressOptions {
  compression: DirectCompression;
  /** Every byte of the compressed body. */
  input: Readable;
  target: DirectTarget;
  /** Space the decompressed image may use. Undefined: no limit. */
  available?: number;
  memoryBytes: number;
  /** CPU-time limit in seconds (RLIMIT_CPU). Default: 60 s plus 1 s per 4 MiB of `available` (none without it). */
  cpuSeconds?: number;
}

function corrupt(kind: DirectCompression, why: string): ImportError {
  return new ImportError(ErrorKind.Invalid, `the ${kind} data is corrupt or truncated: ${why}`);
}

function tooLarge(available: number): ImportError {
  return tooLargeForSpace(available);
}

/** The last line of xz's or zstd's stderr without the `xz: (stdin): ` / `/*stdin*\\ : ` prefixes. */
export function toolMessage(stderr: string): string {
  const line =
    stderr
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? '';
  return line.replace(/^(xz|zstd): /, '').replace(/^(\(stdin\)|\/\*stdin\*\\)\s*: /, '');
}

/** The file offset of our descriptor, shared with the child that wrote through it (Linux /proc). */
async function offsetOf(fh: FileHandle): Promise<number> {
  const text = await readFile(`/proc/self/fdinfo/${fh.fd}`, 'utf8');
  const m = /^pos:\s+(\d+)$/m.exec(text);
  if (!m) throw new ImportError(ErrorKind.Internal, `cannot read the file offset of ${fh.fd} from /proc`);
  return Number(m[1]);
}

/**
 * Runs the decompressor with the target as its stdout. Returns the number of decompressed bytes (the file is
 * exactly that long; sparse where the data is zero). The caller commits or aborts the target.
 */
export async function decompressInto(o: DecompressOptions): Promise<number> {
  const { compression: kind, target, available } = o;
  const file = target.kind === 'file';
  const fh = file ? await open(target.path, 'w', 0o660) : await open(target.path, 'r+');
  try {
    const cpu =
      o.cpuSeconds ??
      (available !== undefined ? CPU_BASE_SEC + Math.ceil(available / CPU_BYTES_PER_SEC) : undefined);
    // A block device may hold old data: every byte must be written (xz only makes holes in regular files).
    const tool =
      kind === 'xz' ? xzDecoder(o.memoryBytes, '-T0') : ['zstd', '-dcq', file ? '--sparse' : '--no-sparse'];
    const [bin = 'prlimit', ...args] = prlimitArgv(
      {
        addressSpace: o.memoryBytes,
        // RLIMIT_FSIZE applies to regular files only; a block device ends with ENOSPC at its own end.
        ...(available !== undefined && file ? { fileSize: available } : {}),
        // At the soft limit the child gets SIGXCPU (recognised below); the hard one is 5 s later.
        ...(cpu !== undefined ? { cpuSeconds: cpu } : {}),
      },
      tool,
    );
    const child = spawn(bin, args, { stdio: ['pipe', fh.fd, 'pipe'], env: childEnv() });
    // stdio is [pipe, fd, pipe]: stdin and stderr exist.
    const [stdin, errOut] = [child.stdin!, child.stderr!];
    const stderr = new TextTail();
    errOut.setEncoding('utf8');
    errOut.on('data', (d: string) => stderr.add(d));
    let inputError: unknown;
    let exited = false;
    const fed = pipeline(o.input, stdin).catch((err: unknown) => {
      // The child stopped reading (EPIPE, or we ended the input after it failed): its exit says why.
      // Anything else is the source's failure, which is what the user needs to hear.
      if (exited || (err as NodeJS.ErrnoException).code === 'EPIPE') return;
      inputError = err;
      child.kill('SIGKILL');
    });
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
      (resolve) => {
        child.on('error', (error) => resolve({ code: null, signal: null, error }));
        child.on('close', (code, signal) => resolve({ code, signal }));
      },
    );
    exited = true;
    if (exit.error) {
      o.input.destroy();
      throw new ImportError(ErrorKind.Internal, `cannot run ${tool[0]}: ${exit.error.message}`);
    }
    if (exit.code !== 0) o.input.destroy();
    await fed;
    if (inputError) {
      throw inputError instanceof ImportError
        ? inputError
        : corrupt(kind, inputError instanceof Error ? inputError.message : 'the input failed');
    }
    const last = toolMessage(stderr.toString());
    if (exit.signal === 'SIGXFSZ' && available !== undefined) throw tooLarge(available);
    if (exit.signal === 'SIGXCPU') {
      throw new ImportError(
        ErrorKind.Invalid,
        `decompressing the ${kind} data took more than ${cpu} s of CPU time${available !== undefined ? ` for at most ${available} bytes of space` : ''}; refused as a likely decompression bomb`,
      );
    }
    if (/No space left on device/i.test(last)) {
      throw new ImportError(
        ErrorKind.Invalid,
        file
          ? `the volume ran out of space while writing the image (no space left on device${available !== undefined ? `; ${available} bytes were available` : ''}). A larger PVC is required`
          : `the image is larger than the block device ${target.path} (no space left on device). A larger PVC is required`,
      );
    }
    const oom =
      exit.code !== 0 ? outOfMemory(`the ${kind} data`, stderr.toString(), o.memoryBytes) : undefined;
    if (oom) throw new ImportError(ErrorKind.Invalid, oom);
    if (exit.code !== 0) throw corrupt(kind, last || `${tool[0]} ${exit.signal ?? `exit ${exit.code}`}`);
    const bytes = file ? (await fh.stat()).size : await offsetOf(fh);
    if (available !== undefined && bytes > available) throw tooLarge(available);
    return bytes;
  } finally {
    await fh.close();
  }
}
