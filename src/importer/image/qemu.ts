/**
 * qemu-img, treated as a tool that reads hostile input:
 * - the format is always given (`-f`), and the image is always opened through a `json:` spec that says
 *   `"backing": null`, so even an image whose backing file slipped past validation cannot open it;
 * - memory and time are bounded (prlimit, timeout);
 * - `info`, `check` and `map` results are validated before any conversion (validate.ts).
 */
import { ErrorKind, ImportError } from '../errors.ts';
import type { DiskFormat } from '../format/sniff.ts';
import { outOfMemory } from '../child.ts';
import { lastLine, runBounded, spawnBounded, type Limits, type RunResult } from './run.ts';

/** Where qemu-img reads the image: a local file or an NBD unix socket (image/nbd-server.ts). */
export type ImageLocation = { file: string } | { nbdSocket: string };

/** The json: filename that opens `loc` as `format` with no backing file. */
export function imageSpec(format: DiskFormat, loc: ImageLocation): string {
  const file =
    'file' in loc
      ? { driver: 'file', filename: loc.file }
      : { driver: 'nbd', server: { type: 'unix', path: loc.nbdSocket } };
  const spec: Record<string, unknown> = { driver: format, file };
  if (format !== 'raw') spec.backing = null;
  return 'json:' + JSON.stringify(spec);
}

/** A qemu-img run that failed for lack of memory (an image whose tables need more than its bound): the message. */
function memoryFailure(format: DiskFormat, r: RunResult, limits: Limits): string | undefined {
  return r.code === 0 ? undefined : outOfMemory(`the ${format} image`, r.stderr, limits.memoryBytes);
}

export interface QemuImgInfo {
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  filename?: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { type?: string; data?: Record<string, unknown> };
  children?: unknown[];
  [k: string]: unknown;
}

export async function info(format: DiskFormat, loc: ImageLocation, limits: Limits): Promise<QemuImgInfo> {
  const r = await runBounded(
    'qemu-img',
    ['info', '-f', format, '--output=json', imageSpec(format, loc)],
    limits.memoryBytes,
    limits.metadataTimeoutSec,
  );
  if (r.code !== 0) {
    throw new ImportError(
      ErrorKind.Invalid,
      memoryFailure(format, r, limits) ??
        // upstream's words (pkg/image/exec.go: "<cmd> execution failed: <stderr>: <exit>"), then what it means
        `qemu-img execution failed: ${lastLine(r.stderr) || '(nothing on stderr)'}: ${r.code === null ? 'signal: killed' : `exit status ${r.code}`} (not a valid ${format} image)`,
    );
  }
  try {
    return JSON.parse(r.stdout) as QemuImgInfo;
  } catch {
    throw new ImportError(ErrorKind.Internal, 'qemu-img info printed something that is not JSON');
  }
}

export interface CheckResult {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  supported: boolean;
  message: string;
}

/** `qemu-img check`: exit 0 clean, 1 check failed, 2 corruptions, 3 leaks only, 63 not supported for the format. */
export async function check(format: DiskFormat, loc: ImageLocation, limits: Limits): Promise<CheckResult> {
  const r = await runBounded(
    'qemu-img',
    ['check', '-f', format, '--output=json', imageSpec(format, loc)],
    limits.memoryBytes,
    limits.metadataTimeoutSec,
  );
  if (r.code === 63) return { corruptions: 0, leaks: 0, checkErrors: 0, supported: false, message: '' };
  const oom = memoryFailure(format, r, limits);
  if (oom) throw new ImportError(ErrorKind.Invalid, oom);
  let parsed: Record<string, number> = {};
  try {
    parsed = JSON.parse(r.stdout) as Record<string, number>;
  } catch {
    // Some failures print only to stderr.
  }
  return {
    corruptions: parsed.corruptions ?? (r.code === 2 ? 1 : 0),
    leaks: parsed.leaks ?? 0,
    checkErrors: parsed['check-errors'] ?? (r.code === 1 ? 1 : 0),
    supported: true,
    message: lastLine(r.stderr),
  };
}

export interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
  offset?: number;
}

/** Longest single entry of `qemu-img map --output=json` accepted (one is ~120 bytes). */
const MAX_MAP_ENTRY = 4096;

/**
 * Parses `qemu-img map --output=json` as it arrives: `[{…},\n{…}]`, one object per extent, handed to `onEntry` one
 * at a time. An image of alternating tiny clusters prints millions of them; only the entry being read is held.
 */
export class MapParser {
  private readonly onEntry: (e: MapEntry) => void;
  private partial = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private opened = false;
  private closed = false;

  constructor(onEntry: (e: MapEntry) => void) {
    this.onEntry = onEntry;
  }

  push(chunk: string): void {
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i]!;
      if (this.depth > 0) {
        if (this.inString) {
          if (this.escaped) this.escaped = false;
          else if (ch === '\\') this.escaped = true;
          else if (ch === '"') this.inString = false;
        } else if (ch === '"') this.inString = true;
        else if (ch === '{') this.depth++;
        else if (ch === '}' && --this.depth === 0) {
          this.emit(this.partial + chunk.slice(from, i + 1));
          this.partial = '';
        }
        continue;
      }
      if (ch === '[' && !this.opened) this.opened = true;
      else if (ch === ']' && this.opened && !this.closed) this.closed = true;
      else if (ch === '{' && this.opened && !this.closed) {
        this.depth = 1;
        from = i;
      } else if (!(ch === ',' && this.opened && !this.closed) && !/\s/.test(ch)) this.bad();
    }
    if (this.depth > 0) {
      this.partial += chunk.slice(this.partial === '' ? from : 0);
      if (this.partial.length > MAX_MAP_ENTRY) this.bad();
    }
  }

  /** Throws unless the whole array has been read. */
  end(): void {
    if (!this.closed || this.depth > 0) this.bad();
  }

  private emit(text: string): void {
    let e: MapEntry;
    try {
      e = JSON.parse(text) as MapEntry;
    } catch {
      this.bad();
    }
    this.onEntry(e);
  }

  private bad(): never {
    throw new ImportError(ErrorKind.Internal, 'qemu-img map printed something that is not the expected JSON');
  }
}

/** `qemu-img map --output=json`, each extent handed to `onEntry` as it is printed (nothing is gathered). */
export async function map(
  format: DiskFormat,
  loc: ImageLocation,
  limits: Limits,
  onEntry: (e: MapEntry) => void,
): Promise<void> {
  const parser = new MapParser(onEntry);
  let parseError: Error | undefined;
  const r = await runBounded(
    'qemu-img',
    ['map', '-f', format, '--output=json', imageSpec(format, loc)],
    limits.memoryBytes,
    limits.metadataTimeoutSec,
    (chunk) => {
      if (parseError !== undefined) return;
      try {
        parser.push(chunk);
      } catch (err) {
        parseError = err as Error;
      }
    },
  );
  if (r.code !== 0) {
    throw new ImportError(
      ErrorKind.Invalid,
      memoryFailure(format, r, limits) ??
        `the ${format} image is corrupt: ${lastLine(r.stderr) || `qemu-img map exit ${r.code}`}`,
    );
  }
  if (parseError === undefined) {
    try {
      parser.end();
    } catch (err) {
      parseError = err as Error;
    }
  }
  if (parseError !== undefined) throw parseError;
}

export interface ConvertOptions {
  format: DiskFormat;
  from: ImageLocation;
  to: string;
  /** The target exists already (a block device, or a file we created): do not create it. */
  existingTarget: boolean;
  cache: 'writeback' | 'none';
  preallocate: boolean;
  limits: Limits;
  onProgress?: (fraction: number) => void;
}

/** `qemu-img convert -O raw`, with upstream's preallocation fallbacks (falloc, then full, then -S 0). */
export async function convert(o: ConvertOptions): Promise<{ preallocationApplied: boolean }> {
  const attempts: string[][] = o.preallocate
    ? [
        ['-o', 'preallocation=falloc'],
        ['-o', 'preallocation=full'],
        ['-S', '0'],
      ]
    : [[]];
  let last = '';
  for (const extra of attempts) {
    const args = [
      'convert',
      '-p',
      // Out-of-order writes with 16 coroutines keep reads flowing (raw output allows it): measured ~1.5x faster
      // over NBD, see docs/adr/0001-streaming.md.
      '-m',
      '16',
      '-W',
      '-f',
      o.format,
      '-O',
      'raw',
      '-t',
      o.cache,
      ...(o.existingTarget ? ['-n'] : []),
      ...(o.existingTarget && extra[0] === '-o' ? [] : extra),
      imageSpec(o.format, o.from),
      o.to,
    ];
    let buf = '';
    const { done } = spawnBounded(
      'qemu-img',
      args,
      o.limits.memoryBytes,
      o.limits.convertTimeoutSec,
      (chunk) => {
        buf = (buf + chunk).slice(-200);
        const m = /\((\d+(?:\.\d+)?)\/100%\)[^(]*$/.exec(buf);
        if (m && o.onProgress) o.onProgress(Number(m[1]) / 100);
      },
    );
    const r = await done;
    if (r.code === 0) return { preallocationApplied: o.preallocate };
    const oom = memoryFailure(o.format, r, o.limits);
    if (oom) throw new ImportError(ErrorKind.Invalid, oom);
    last = lastLine(r.stderr) || `exit ${r.code}`;
    if (r.code === 124 || r.code === 137)
      last = `qemu-img convert did not finish within ${o.limits.convertTimeoutSec}s`;
    if (!/Unsupported preallocation mode|preallocation/i.test(last)) break;
  }
  throw new ImportError(ErrorKind.Invalid, `conversion to raw failed: ${last}`);
}
