/**
 * Extracts a tar stream into a directory so that no entry can write, link or point outside it, by construction
 * (docs/adr/0006-archive-extraction.md):
 * - names are normalised; absolute names and `..` components are refused;
 * - every directory on the way to an entry is one this archive created or a real directory already in the target,
 *   checked with lstat when first met; nothing that is (or will be) a symbolic link is ever walked through;
 * - regular files are created with O_CREAT|O_EXCL|O_NOFOLLOW (an existing name is unlinked first, never written
 *   through), hard links only to regular files this archive extracted, looked up in our own table;
 * - symbolic links are created last, after every file and directory, and only when their target, resolved through
 *   the archive's own links the way the kernel would, stays inside the directory.
 * Device nodes and FIFOs make the archive refused. Modes are masked (no setuid). On any failure everything
 * extracted so far is removed. Total size is bounded by `capacity`.
 */
import { constants } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readdir, rm, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { ErrorKind, ImportError, tooLargeForSpace } from '../errors.ts';

function refuse(message: string): ImportError {
  return new ImportError(ErrorKind.Invalid, `unsafe archive: ${message}`);
}

/** Normalises an entry name to a relative path inside the target ('' for the target itself), or refuses it. */
function safeRelative(name: string, what = 'entry'): string {
  if (name.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(name))
    throw refuse(`${what} "${name}" has an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw refuse(`${what} "${name}" climbs out of the target with ".."`);
  return parts.join('/');
}

/** What a path in the target is, as far as this extraction knows. */
type Kind = 'dir' | 'file' | 'symlink' | 'other';

/** The kernel's limit on symbolic links followed while resolving one path (Linux MAXSYMLINKS). */
const MAX_HOPS = 40;

/** The directory being filled: what each path is, and everything created, for the undo. */
class Tree {
  readonly root: string;
  private readonly kinds = new Map<string, Kind>();
  /** Symbolic links to create at the end: path → target text. */
  readonly links = new Map<string, string>();
  /** Directories whose mode lacks owner rwx: applied at the end, so the files inside can be written first. */
  readonly modes = new Map<string, number>();
  /** Everything this extraction created, in order (a Set keeps insertion order). */
  readonly created = new Set<string>();

  constructor(root: string) {
    this.root = root;
  }

  abs(rel: string): string {
    return path.join(this.root, rel);
  }

  /** What `rel` is: from our table, else from the disk (lstat, never following a link). */
  async kind(rel: string): Promise<Kind | undefined> {
    const known = this.kinds.get(rel);
    if (known) return known;
    const st = await lstat(this.abs(rel)).catch(() => undefined);
    if (!st) return undefined;
    const k: Kind = st.isSymbolicLink()
      ? 'symlink'
      : st.isDirectory()
        ? 'dir'
        : st.isFile()
          ? 'file'
          : 'other';
    this.kinds.set(rel, k);
    return k;
  }

  /** Only what this archive wrote: a hard link must point at one of these. */
  extractedFile(rel: string): boolean {
    return this.kinds.get(rel) === 'file' && this.created.has(rel);
  }

  set(rel: string, k: Kind): void {
    this.kinds.set(rel, k);
    this.created.add(rel);
  }

  forget(rel: string): void {
    this.kinds.delete(rel);
  }

  /**
   * Makes every parent of `rel` a real directory (creating the missing ones), refusing a path that goes through a
   * symbolic link or a file. After this the kernel resolves `abs(dirname(rel))` without following any link.
   */
  async parents(rel: string, name: string): Promise<void> {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const k = await this.kind(p);
      if (k === 'dir') continue;
      if (k === 'symlink') throw refuse(`entry "${name}" would write through the symbolic link "${p}"`);
      if (k !== undefined) throw refuse(`entry "${name}" needs "${p}" to be a directory, but it is a file`);
      await mkdir(this.abs(p), { mode: 0o755 });
      this.set(p, 'dir');
    }
  }

  /**
   * Where the link `rel` → `target` leads, resolved as the kernel would once every link exists (through the
   * archive's own links, and lstat for what was there before); throws when it leaves the directory.
   */
  async checkLink(rel: string, target: string): Promise<void> {
    const at = rel.split('/').slice(0, -1);
    const todo = target.split('/');
    let hops = 0;
    while (todo.length > 0) {
      const c = todo.shift()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (at.length === 0) throw refuse(`symbolic link "${rel}" points outside the target (${target})`);
        at.pop();
        continue;
      }
      at.push(c);
      const p = at.join('/');
      if ((await this.kind(p)) !== 'symlink') continue;
      const next = this.links.get(p);
      // A link that was in the target before: we cannot vouch for where it leads.
      if (next === undefined)
        throw refuse(
          `symbolic link "${rel}" points through "${p}", a symbolic link that was not in the archive`,
        );
      if (++hops > MAX_HOPS)
        throw refuse(`symbolic link "${rel}" goes through too many levels of symbolic links`);
      at.pop();
      todo.unshift(...next.split('/'));
    }
  }
}

/** The final component of a file or hard link: an existing file is replaced (unlinked), anything else refused. */
async function replaceable(t: Tree, rel: string, name: string, what: string): Promise<void> {
  const k = await t.kind(rel);
  if (k === undefined) return;
  if (k === 'symlink') throw refuse(`entry "${name}" would write through the symbolic link "${rel}"`);
  if (k === 'dir') throw refuse(`${what} "${name}" would replace the directory "${rel}"`);
  await unlink(t.abs(rel));
  t.forget(rel);
}

const CREATE_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export async function extractTar(
  input: Readable,
  dir: string,
  capacity?: number,
  /** Runs after the last entry, before success (the checksum check); a throw removes what was extracted. */
  verify?: () => void,
): Promise<{ files: number; bytes: number }> {
  await mkdir(dir, { recursive: true });
  const before = new Set(await readdir(dir));
  const t = new Tree(path.resolve(dir));
  const extract = tar.extract();
  let bytes = 0;
  let files = 0;

  const work = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = safeRelative(h.name);
      if (rel === '') {
        entry.resume();
        continue;
      }
      await t.parents(rel, h.name);
      switch (h.type) {
        case 'directory': {
          const k = await t.kind(rel);
          if (k === 'symlink')
            throw refuse(`entry "${h.name}" would write through the symbolic link "${rel}"`);
          if (k !== undefined && k !== 'dir')
            throw refuse(`directory "${h.name}" would replace the file "${rel}"`);
          const mode = (h.mode ?? 0o755) & 0o777;
          if (k === undefined) {
            await mkdir(t.abs(rel), { mode: mode | 0o700 });
            t.set(rel, 'dir');
            if ((mode & 0o700) !== 0o700) t.modes.set(rel, mode);
          }
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          const size = h.size ?? 0;
          bytes += size;
          if (capacity !== undefined && bytes > capacity) {
            throw tooLargeForSpace(capacity, 'the archive content');
          }
          await replaceable(t, rel, h.name, 'file');
          t.set(rel, 'file');
          const fh = await open(t.abs(rel), CREATE_FILE, (h.mode ?? 0o644) & 0o777);
          await pipeline(entry, fh.createWriteStream());
          files++;
          break;
        }
        case 'link': {
          const target = safeRelative(h.linkname ?? '', 'hard link');
          entry.resume();
          if (target === rel) break;
          if (!t.extractedFile(target)) {
            throw refuse(
              `hard link "${h.name}" does not point at a file extracted earlier from this archive (${h.linkname ?? ''})`,
            );
          }
          await replaceable(t, rel, h.name, 'hard link');
          // Both paths are made of real directories only (parents()), so link() follows nothing.
          await link(t.abs(target), t.abs(rel));
          t.set(rel, 'file');
          break;
        }
        case 'symlink': {
          const target = h.linkname ?? '';
          if (target === '') throw refuse(`symbolic link "${h.name}" has an empty target`);
          if (target.startsWith('/'))
            throw refuse(`symbolic link "${h.name}" points at an absolute path (${target})`);
          const k = await t.kind(rel);
          if (k === 'symlink')
            throw refuse(`entry "${h.name}" would write through the symbolic link "${rel}"`);
          if (k !== undefined)
            throw refuse(
              `symbolic link "${h.name}" would replace the ${k === 'dir' ? 'directory' : 'file'} "${rel}"`,
            );
          // Created after everything else: until then no entry can go through it.
          t.links.set(rel, target);
          t.set(rel, 'symlink');
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
    for (const [rel, target] of t.links) await t.checkLink(rel, target);
    for (const [rel, target] of t.links) await symlink(target, t.abs(rel));
    // Deepest first, so a read-only parent is closed after its children.
    for (const [rel, mode] of [...t.modes].reverse()) await chmod(t.abs(rel), mode);
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
    await undo(t, dir, before);
    if (err instanceof ImportError) throw err;
    throw new ImportError(
      ErrorKind.Invalid,
      `the archive is corrupt or truncated: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  return { files, bytes };
}

/** Removes what the extraction created (also inside directories that were there before), newest first. */
async function undo(t: Tree, dir: string, before: Set<string>): Promise<void> {
  // Read-only directories of ours would stop rm: give the owner write access back first.
  for (const rel of t.modes.keys()) await chmod(t.abs(rel), 0o700).catch(() => undefined);
  for (const rel of [...t.created].reverse()) await rm(t.abs(rel), { recursive: true, force: true });
  for (const name of await readdir(dir).catch(() => [])) {
    if (!before.has(name)) await rm(path.join(dir, name), { recursive: true, force: true });
  }
}
