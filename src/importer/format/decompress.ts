/**
 * Decompression stages. gzip and zstd run in-process (node:zlib: gzip needs constant memory, zstd refuses frames
 * whose window is over 128 MiB); xz runs the `xz` tool as a child process, which measured faster than the
 * in-process WASM decoder (docs/adr/0002-xz-decoder.md), bounded like every child (child.ts).
 */
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { childEnv, outOfMemory, prlimitArgv, TextTail } from '../child.ts';
import { ErrorKind, ImportError } from '../errors.ts';
import { DEFAULT_LIMITS } from '../image/run.ts';
import { toolMessage, xzDecoder } from './direct.ts';
import type { Compression } from './sniff.ts';

const CHUNK = 1 << 20;

function corrupt(kind: Compression, err: unknown): ImportError {
  const why = err instanceof Error ? err.message : String(err);
  return new ImportError(ErrorKind.Invalid, `the ${kind} data is corrupt or truncated: ${why}`, {
    cause: err,
  });
}

/**
 * Returns a stream of the decompressed bytes of `input`. Errors surface as ImportError on the returned stream.
 * `memoryBytes` bounds the xz child (address space and `--memlimit`).
 */
export function decompress(
  kind: Compression,
  input: Readable,
  memoryBytes = DEFAULT_LIMITS.memoryBytes,
): Readable {
  if (kind === 'xz') return xzChild(input, memoryBytes);
  const z =
    kind === 'gz' ? zlib.createGunzip({ chunkSize: CHUNK }) : zlib.createZstdDecompress({ chunkSize: CHUNK });
  const out = new PassThrough({ highWaterMark: CHUNK });
  const fail = (err: unknown): void => {
    out.destroy(err instanceof ImportError ? err : corrupt(kind, err));
  };
  // Before pipeline's own listener: it would end `out` with zlib's bare message ("Dictionary mismatch").
  z.on('error', fail);
  pipeline(input, z, out).catch(fail);
  return out;
}

function xzChild(input: Readable, memoryBytes: number): Readable {
  const [bin = 'prlimit', ...args] = prlimitArgv(
    { addressSpace: memoryBytes },
    xzDecoder(memoryBytes, '-T0'),
  );
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
  const stderr = new TextTail();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => stderr.add(d));
  const out = new PassThrough({ highWaterMark: CHUNK });
  let inputError: unknown;
  pipeline(input, child.stdin).catch((err: unknown) => {
    inputError = err;
    child.kill('SIGKILL');
  });
  child.stdout.pipe(out, { end: false });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.on('error', (err) =>
    out.destroy(new ImportError(ErrorKind.Internal, `cannot run xz: ${err.message}`)),
  );
  child.stdout.on('end', () => {
    void exited.then((code) => {
      if (inputError) out.destroy(inputError instanceof ImportError ? inputError : corrupt('xz', inputError));
      else if (code !== 0) {
        const oom = outOfMemory('the xz data', stderr.toString(), memoryBytes);
        out.destroy(
          oom
            ? new ImportError(ErrorKind.Invalid, oom)
            : corrupt('xz', new Error(toolMessage(stderr.toString()) || `exit ${code}`)),
        );
      } else out.end();
    });
  });
  out.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return out;
}
