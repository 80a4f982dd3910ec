/**
 * Archive content must never write, link or point outside the target directory, whatever the entries do to each
 * other. Every crafted archive below is extracted through the real import path (a local file source, peeled
 * compression layers, sink/archive.ts) next to a sentinel directory that must stay byte-for-byte untouched; each one
 * is refused with an "unsafe archive: …" message and leaves the target as it was.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ImportError } from '../../src/importer/errors.ts';
import { runImport } from '../../src/importer/import.ts';
import { FileSource } from '../../src/importer/source/file.ts';
import { packTar, type TarEntry } from '../support/tar.ts';

const run = promisify(execFile);

type Entry = TarEntry & { type?: 'file' | 'directory' | 'symlink' | 'link' };

let dir: string;
/** The directory no archive may touch: targets live in `<dir>/t/<case>`, so `../../outside` names it. */
let outside: string;
let archives: string;

/**
 * Everything under `root`: names, types, sizes, modes, mtimes, link counts, link targets and file contents. A
 * target's own directories change mtime when entries are added and removed again, so `dirTimes: false` leaves those
 * out there (and their sizes, which some file systems never shrink).
 */
async function snapshot(root: string, dirTimes = true): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const p = path.join(root, rel);
    const st = await lstat(p);
    let extra = '';
    if (st.isSymbolicLink()) extra = `-> ${await readlink(p)}`;
    else if (st.isFile())
      extra = createHash('sha256')
        .update(await readFile(p))
        .digest('hex');
    const meta = st.isDirectory() && !dirTimes ? '' : `${st.size} ${st.mtimeMs}`;
    lines.push(`${rel} ${st.mode.toString(8)} ${meta} ${st.ino} ${st.nlink} ${extra}`);
    if (st.isDirectory()) for (const n of (await readdir(p)).sort()) await walk(path.join(rel, n));
  };
  await walk('.');
  return lines.join('\n');
}

async function pack(name: string, entries: Entry[]): Promise<string> {
  const body = await packTar(
    entries.map((e) => ({
      ...e,
      mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
      ...(e.type === undefined || e.type === 'file' ? { body: e.body ?? 'pwned' } : {}),
    })),
  );
  const out = path.join(archives, name);
  await writeFile(out, body);
  return out;
}

/** Compresses `file` with the real tool; returns the new path. */
async function compressed(file: string, kind: 'gz' | 'xz' | 'zst'): Promise<string> {
  const tool = { gz: 'gzip -c', xz: 'xz -T0 -c', zst: 'zstd -q -c' }[kind];
  const out = `${file}.${kind}`;
  await run('sh', ['-c', `${tool} '${file}' > '${out}'`]);
  return out;
}

async function extract(archive: string, target: string): Promise<unknown> {
  return runImport({
    source: new FileSource(archive),
    contentType: 'archive',
    target: { kind: 'dir', path: target },
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
}

/** Extracts `archive` into a fresh target (optionally prepared), expecting a refusal matching `re`. */
async function refused(
  archive: string,
  re: RegExp,
  prepare?: (target: string) => Promise<void>,
): Promise<void> {
  const target = path.join(dir, 't', `${path.basename(archive)}-${Math.random().toString(36).slice(2)}`);
  await mkdir(target, { recursive: true });
  await prepare?.(target);
  const targetBefore = await snapshot(target, false);
  const outsideBefore = await snapshot(outside);
  const siblings = (await readdir(path.join(dir, 't'))).sort();
  const err = await extract(archive, target);
  assert.equal(
    await snapshot(outside),
    outsideBefore,
    'the sentinel directory outside the target was touched',
  );
  assert.deepEqual(
    (await readdir(path.join(dir, 't'))).sort(),
    siblings,
    'something appeared next to the target',
  );
  assert.ok(err instanceof ImportError, `the archive was accepted (${String(err)})`);
  assert.match(err.message, /^unsafe archive: /);
  assert.match(err.message, re);
  assert.doesNotMatch(err.message, /\n/);
  assert.equal(await snapshot(target, false), targetBefore, 'the target was not restored');
  // Nothing appeared next to the target either.
  assert.deepEqual((await readdir(path.dirname(outside))).sort(), ['archives', 'outside', 't']);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cdi-archive-escape-'));
  outside = path.join(dir, 'outside');
  archives = path.join(dir, 'archives');
  await mkdir(path.join(outside, 'sub'), { recursive: true });
  await mkdir(archives);
  await mkdir(path.join(dir, 't'));
  await writeFile(path.join(outside, 'keep.txt'), 'original');
  await writeFile(path.join(outside, 'sub', 'deep.txt'), 'original too');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Name, entries, and what the refusal must say. */
const CORPUS: [string, (o: string) => Entry[], RegExp][] = [
  // Names.
  ['dotdot-name', () => [{ name: '../../outside/pwned' }], /climbs out of the target with "\.\."/],
  ['dotdot-inner', () => [{ name: 'a/../../../outside/pwned' }], /climbs out/],
  ['absolute-name', (o) => [{ name: `${o}/pwned` }], /absolute path/],
  // A link, then entries that go through it.
  [
    'symlink-dot-then-through',
    () => [
      { name: 'l', type: 'symlink', linkname: '.' },
      { name: 'l/f', body: 'through' },
    ],
    /entry "l\/f" would write through the symbolic link "l"/,
  ],
  [
    'symlink-then-same-name',
    () => [
      { name: 'd', type: 'symlink', linkname: '.' },
      { name: 'd', body: 'x' },
    ],
    /through the symbolic link "d"/,
  ],
  // Each link looks inside when read as text, but resolves outside through the links before it.
  [
    'chain-up-then-dotdot',
    () => [
      { name: 'd', type: 'directory' },
      { name: 'd/up', type: 'symlink', linkname: '..' },
      { name: 'x', type: 'symlink', linkname: 'd/up/..' },
    ],
    /symbolic link "x" points outside the target \(d\/up\/\.\.\)/,
  ],
  [
    // d/e/up is the target itself, so x is two levels above it: the directory that holds the sentinel.
    'chain-then-write',
    () => [
      { name: 'd/e', type: 'directory' },
      { name: 'd/e/up', type: 'symlink', linkname: '../..' },
      { name: 'x', type: 'symlink', linkname: 'd/e/up/../..' },
      { name: 'x/outside/pwned', body: 'escaped' },
    ],
    /through the symbolic link "x"/,
  ],
  [
    'link-through-links',
    () => [
      { name: 'a/b', type: 'directory' },
      { name: 'a/b/up', type: 'symlink', linkname: '../..' },
      { name: 'a/c', type: 'symlink', linkname: 'b/up' },
      { name: 'a/e', type: 'symlink', linkname: 'c/../../outside' },
    ],
    /symbolic link "a\/e" points outside the target/,
  ],
  [
    'loop',
    () => [
      { name: 'p', type: 'symlink', linkname: 'q' },
      { name: 'q', type: 'symlink', linkname: 'p/x' },
    ],
    /too many levels of symbolic links/,
  ],
  // Absolute and ".." link targets.
  ['symlink-absolute', (o) => [{ name: 'abs', type: 'symlink', linkname: o }], /points at an absolute path/],
  [
    'symlink-absolute-then-write',
    (o) => [
      { name: 'abs', type: 'symlink', linkname: o },
      { name: 'abs/pwned', body: 'escaped' },
    ],
    /through the symbolic link "abs"|absolute path/,
  ],
  ['symlink-dotdot', () => [{ name: 'up', type: 'symlink', linkname: '../../outside' }], /points outside/],
  [
    'symlink-dotdot-nested',
    () => [{ name: 'a/b/up', type: 'symlink', linkname: '../../../x' }],
    /points outside/,
  ],
  // Hard links.
  ['hardlink-absolute', (o) => [{ name: 'h', type: 'link', linkname: `${o}/keep.txt` }], /absolute path/],
  ['hardlink-dotdot', () => [{ name: 'h', type: 'link', linkname: '../../outside/keep.txt' }], /climbs out/],
  [
    'hardlink-through-symlinked-dir',
    () => [
      { name: 'd/e', type: 'directory' },
      { name: 'd/e/up', type: 'symlink', linkname: '../..' },
      { name: 'x', type: 'symlink', linkname: 'd/e/up/../..' },
      { name: 'h', type: 'link', linkname: 'x/outside/keep.txt' },
      { name: 'h', body: 'overwrites the linked file' },
    ],
    /hard link "h" does not point at a file extracted earlier from this archive \(x\/outside\/keep\.txt\)/,
  ],
  [
    'hardlink-to-directory',
    () => [
      { name: 'd', type: 'directory' },
      { name: 'h', type: 'link', linkname: 'd' },
    ],
    /hard link "h" does not point at a file extracted earlier/,
  ],
  [
    'hardlink-to-symlink',
    () => [
      { name: 's', type: 'symlink', linkname: 'nowhere' },
      { name: 'h', type: 'link', linkname: 's' },
    ],
    /hard link "h" does not point at a file extracted earlier/,
  ],
  // Replacing what is already there.
  [
    'directory-replaced-by-link',
    () => [
      { name: 'd', type: 'directory' },
      { name: 'd/f', body: 'inside' },
      { name: 'd', type: 'symlink', linkname: '.' },
    ],
    /symbolic link "d" would replace the directory "d"/,
  ],
  [
    'directory-replaced-by-file',
    () => [
      { name: 'd', type: 'directory' },
      { name: 'd', body: 'x' },
    ],
    /file "d" would replace the directory "d"/,
  ],
  [
    'file-used-as-directory',
    () => [{ name: 'f', body: 'x' }, { name: 'f/g' }],
    /entry "f\/g" needs "f" to be a directory/,
  ],
];

void describe('archives that try to leave the target directory', () => {
  for (const [name, entries, re] of CORPUS) {
    void it(`${name}: refused, nothing outside touched, target restored`, async () => {
      await refused(await pack(`${name}.tar`, entries(outside)), re);
    });
  }

  for (const kind of ['gz', 'xz', 'zst'] as const) {
    void it(`tar.${kind}: the same extractor refuses the chained-link escapes`, async () => {
      for (const name of ['chain-then-write', 'hardlink-through-symlinked-dir', 'link-through-links']) {
        const [, entries, re] = CORPUS.find(([n]) => n === name)!;
        await refused(await compressed(await pack(`${name}-${kind}.tar`, entries(outside)), kind), re);
      }
    });
  }

  void it('a symbolic link already in the target directory is never written through', async () => {
    const archive = await pack('pre-existing-link.tar', [{ name: 'pre/pwned', body: 'escaped' }]);
    await refused(archive, /entry "pre\/pwned" would write through the symbolic link "pre"/, (t) =>
      symlink('../../outside', path.join(t, 'pre')),
    );
  });

  void it('a directory already in the target directory is not replaced by a link', async () => {
    const archive = await pack('replace-existing-dir.tar', [
      { name: 'lost+found', type: 'symlink', linkname: '.' },
    ]);
    await refused(archive, /symbolic link "lost\+found" would replace the directory "lost\+found"/, (t) =>
      mkdir(path.join(t, 'lost+found')),
    );
  });

  void it('an archive made by GNU tar (--transform) that writes through its own link is refused', async () => {
    const stage = path.join(dir, 'stage');
    await mkdir(path.join(stage, 'd'), { recursive: true });
    await mkdir(path.join(stage, 'd', 'e'));
    await symlink('../..', path.join(stage, 'd', 'e', 'up'));
    await symlink('d/e/up/../..', path.join(stage, 'x'));
    await writeFile(path.join(stage, 'p'), 'escaped');
    const archive = path.join(archives, 'gnu.tar');
    await run('tar', [
      '-C',
      stage,
      '--transform=flags=r;s,^p$,x/outside/pwned,',
      '-cf',
      archive,
      'd',
      'x',
      'p',
    ]);
    await rm(stage, { recursive: true });
    await refused(archive, /points outside the target|through the symbolic link "x"/);
  });
});

void describe('archives with links that stay inside', () => {
  void it('relative links, chains, hard links and replaced files extract as written', async () => {
    const archive = await pack('good.tar', [
      { name: 'sub', type: 'directory' },
      { name: 'sub/file', body: 'one' },
      { name: 'sub/deeper/leaf', body: 'leaf' },
      { name: 'top', type: 'symlink', linkname: 'sub/file' },
      { name: 'sub/up', type: 'symlink', linkname: '../top' },
      { name: 'chain', type: 'symlink', linkname: 'sub/up' },
      { name: 'dirlink', type: 'symlink', linkname: 'sub/deeper' },
      { name: 'via', type: 'symlink', linkname: 'dirlink/../file' },
      { name: 'dangling', type: 'symlink', linkname: 'not-there' },
      { name: 'hard', type: 'link', linkname: 'sub/file' },
      { name: 'replaced', body: 'old' },
      { name: 'replaced', body: 'new' },
    ]);
    const target = path.join(dir, 'good');
    const outsideBefore = await snapshot(outside);
    const r = await runImport({
      source: new FileSource(archive),
      contentType: 'archive',
      target: { kind: 'dir', path: target },
    });
    assert.equal(await snapshot(outside), outsideBefore);
    assert.equal(r.path, 'archive');
    assert.equal(await readFile(path.join(target, 'chain'), 'utf8'), 'one');
    assert.equal(await readFile(path.join(target, 'via'), 'utf8'), 'one');
    assert.equal(await readFile(path.join(target, 'dirlink', 'leaf'), 'utf8'), 'leaf');
    assert.equal(await readlink(path.join(target, 'dangling')), 'not-there');
    assert.equal(await readFile(path.join(target, 'replaced'), 'utf8'), 'new');
    const [a, b] = await Promise.all([
      stat(path.join(target, 'hard')),
      stat(path.join(target, 'sub', 'file')),
    ]);
    assert.equal(a.ino, b.ino, 'hard link shares the inode');
    assert.equal(a.nlink, 2);
    await rm(target, { recursive: true });
  });

  void it('a read-only directory entry does not stop the files inside it; its mode is applied at the end', async () => {
    const archive = await pack('ro.tar', [
      { name: 'ro', type: 'directory', mode: 0o555 },
      { name: 'ro/f', body: 'inside', mode: 0o444 },
    ]);
    const target = path.join(dir, 'ro-target');
    await runImport({
      source: new FileSource(archive),
      contentType: 'archive',
      target: { kind: 'dir', path: target },
    });
    assert.equal(await readFile(path.join(target, 'ro', 'f'), 'utf8'), 'inside');
    assert.equal((await stat(path.join(target, 'ro'))).mode & 0o777, 0o555);
    await run('chmod', ['-R', 'u+w', target]);
    await rm(target, { recursive: true });
  });
});
