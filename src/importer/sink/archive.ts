/**
 * Extracts a tar stream into a directory, safely: entries with absolute paths or `..` components, links that
 * would leave the directory, device nodes and FIFOs make the whole archive refused. Modes are masked (no setuid).
 * On any failure everything extracted so far is removed. Total size is bounded by `capacity`.
 */
import { createWriteStream } from 'node:fs';
import { link, lstat, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { ErrorKind, ImportError, tooLargeForSpace } from '../errors.ts';

function refuse(message: string): ImportError {
  return new ImportError(ErrorKind.Invalid, `unsafe archive: ${message}`);
}

/** Normalises an entry name to a relative path inside the target, or refuses it. */
function safeRelative(name: string): string {
  if (name.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(name))
    throw refuse(`entry "${name}" has an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw refuse(`entry "${name}" climbs out of the target with ".."`);
  return parts.join('/');
}

export async function extractTar(
  input: Readable,
  dir: string,
  capacity?: number,
  /** Runs after the last entry, before success (the checksum check); a throw removes what was extracted. */
  verify?: () => void,
): Promise<{ files: number; bytes: number }> {
  await mkdir(dir, { recursive: true });
  const before = new Set(await readdir(dir));
  const root = path.resolve(dir);
  const extract = tar.extract();
  let bytes = 0;
  let files = 0;

  const work = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = safeRelative(h.name);
      const dest = path.join(root, rel);
      if (rel === '') {
        entry.resume();
        continue;
      }
      await mkdir(path.dirname(dest), { recursive: true });
      // Never write through something an earlier entry made into a link.
      const existing = await lstat(dest).catch(() => undefined);
      if (existing?.isSymbolicLink()) throw refuse(`entry "${h.name}" would write through a symbolic link`);
      switch (h.type) {
        case 'directory':
          await mkdir(dest, { recursive: true, mode: (h.mode ?? 0o755) & 0o777 });
          entry.resume();
          break;
        case 'file':
        case 'contiguous-file': {
          const size = h.size ?? 0;
          bytes += size;
          if (capacity !== undefined && bytes > capacity) {
            throw tooLargeForSpace(capacity, 'the archive content');
          }
          await pipeline(entry, createWriteStream(dest, { mode: (h.mode ?? 0o644) & 0o777 }));
          files++;
          break;
        }
        case 'symlink': {
          const target = h.linkname ?? '';
          if (target.startsWith('/')) throw refuse(`symbolic link "${h.name}" points at an absolute path`);
          const resolved = path.resolve(path.dirname(dest), target);
          if (resolved !== root && !resolved.startsWith(root + path.sep)) {
            throw refuse(`symbolic link "${h.name}" points outside the target (${target})`);
          }
          await symlink(target, dest);
          entry.resume();
          break;
        }
        case 'link': {
          const target = path.join(root, safeRelative(h.linkname ?? ''));
          const st = await lstat(target).catch(() => undefined);
          if (!st?.isFile()) throw refuse(`hard link "${h.name}" does not point at a file extracted earlier`);
          await link(target, dest);
          entry.resume();
          break;
        }
        default:
          if ((h.type as string | null) === null || (h.type as string) === 'gnu-sparse') {
            throw refuse(
              `entry "${h.name}" uses a tar extension that is not supported (GNU sparse?); create the archive without --sparse`,
            );
          }
          throw refuse(
            `entry "${h.name}" is a ${h.type ?? 'special file'}; only files, directories and links are allowed`,
          );
      }
    }
  })();

  try {
    await Promise.all([
      pipeline(input, extract).catch((err: unknown) => {
        extract.destroy(err as Error);
        throw err;
      }),
      work,
    ]);
    verify?.();
  } catch (err) {
    input.destroy();
    extract.destroy();
    for (const name of await readdir(dir).catch(() => [])) {
      if (!before.has(name)) await rm(path.join(dir, name), { recursive: true, force: true });
    }
    if (err instanceof ImportError) throw err;
    throw new ImportError(
      ErrorKind.Invalid,
      `the archive is corrupt or truncated: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  return { files, bytes };
}
