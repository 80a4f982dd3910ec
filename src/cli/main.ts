/**
 * The `cdi` command: `cdi import` and `cdi inspect` (docs/importer.md). Errors: one line on stderr, exit 1
 * (usage errors exit 2).
 */
import { mkdtemp, readFile, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { parseChecksum } from '../importer/checksum.ts';
import { describe, ErrorKind, ImportError } from '../importer/errors.ts';
import { ContentType, runImport, type CacheMode, type ImportRequest } from '../importer/import.ts';
import { inspectSource, type InspectReport } from '../importer/inspect.ts';
import { Progress } from '../importer/progress.ts';
import { humanSize, parseSize } from '../importer/size.ts';
import { deviceSize } from '../importer/sink/raw.ts';
import { FileSource } from '../importer/source/file.ts';
import { HttpSource } from '../importer/source/http.ts';
import type { ImportSource } from '../importer/source/source.ts';
import { showProgress } from './progress-view.ts';

interface SourceFlags {
  caDir?: string;
  insecureSkipVerify?: boolean;
  header: string[];
  user?: string;
  passwordFile?: string;
}

interface ImportFlags extends SourceFlags {
  to: string;
  size?: string;
  contentType: string;
  checksum?: string;
  preallocate?: boolean;
  scratchDir?: string;
  stream: boolean;
  extentCopy: boolean;
  cache: string;
  progress: boolean;
}

interface InspectFlags extends SourceFlags {
  json?: boolean;
  size?: string;
  contentType: string;
}

/** A bad flag value: reported like commander's own usage errors (exit 2). */
class UsageError extends Error {}

function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError(describe(err));
  }
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

async function makeSource(url: string, f: SourceFlags): Promise<ImportSource> {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return new FileSource(url);
  let password: string | undefined;
  if (f.passwordFile) {
    password = (
      await readFile(f.passwordFile, 'utf8').catch((err: Error) => {
        throw new ImportError(
          ErrorKind.Invalid,
          `cannot read --password-file ${f.passwordFile}: ${err.message}`,
        );
      })
    ).replace(/\r?\n$/, '');
  }
  if (password !== undefined && f.user === undefined) {
    throw new ImportError(ErrorKind.Invalid, '--password-file needs --user');
  }
  return new HttpSource({
    url,
    ...(f.caDir ? { caDir: f.caDir } : {}),
    insecureSkipVerify: f.insecureSkipVerify ?? false,
    headers: f.header,
    ...(f.user !== undefined ? { user: f.user } : {}),
    ...(password !== undefined ? { password } : {}),
  });
}

function parseContentType(v: string): ContentType {
  if (v === 'kubevirt' || v === 'archive') return v;
  throw new ImportError(ErrorKind.Invalid, `invalid --content-type "${v}": use kubevirt or archive`);
}

async function doImport(url: string, f: ImportFlags): Promise<number> {
  const contentType = usage(() => parseContentType(f.contentType));
  const size = usage(() => (f.size !== undefined ? parseSize(f.size) : undefined));
  const checksum = usage(() => (f.checksum !== undefined ? parseChecksum(f.checksum) : undefined));
  const st = await stat(f.to).catch(() => undefined);
  let target: ImportRequest['target'];
  let available: number | undefined;
  if (contentType === ContentType.Archive) {
    if (st && !st.isDirectory())
      throw new ImportError(ErrorKind.Invalid, `--to ${f.to} must be a directory for archive content`);
    target = { kind: 'dir', path: f.to };
    available = size;
  } else if (st?.isBlockDevice()) {
    const dev = await deviceSize(f.to);
    if (size !== undefined && size > dev) {
      throw new ImportError(
        ErrorKind.Invalid,
        `--size ${size} is larger than the block device ${f.to} (${dev} bytes)`,
      );
    }
    target = { kind: 'block', path: f.to };
    available = size ?? dev;
  } else {
    const file = st?.isDirectory() ? path.join(f.to, 'disk.img') : f.to;
    const dir = path.dirname(path.resolve(file));
    const ds = await statfs(dir).catch(() => undefined);
    if (!ds) throw new ImportError(ErrorKind.Invalid, `the directory of --to (${dir}) does not exist`);
    target = { kind: 'file', path: file };
    available = size ?? ds.bavail * ds.bsize;
  }
  const source = await makeSource(url, f);
  const progress = new Progress();
  const tty = f.progress && process.stderr.isTTY === true;
  const stop = f.progress ? showProgress(progress, process.stderr, tty) : () => {};
  // Warnings, resumes and restarts: one line each (clearing a progress bar that is being drawn).
  const log = (line: string): void => void process.stderr.write(`${tty ? '\r\x1b[2K' : ''}cdi: ${line}\n`);
  const scratch = f.scratchDir ?? (await mkdtemp(path.join(tmpdir(), 'cdi-scratch-')));
  const started = Date.now();
  try {
    const r = await runImport({
      source,
      contentType,
      target,
      ...(size !== undefined ? { size } : {}),
      ...(available !== undefined ? { available } : {}),
      ...(checksum ? { checksum } : {}),
      preallocate: f.preallocate ?? false,
      scratchDir: scratch,
      cache: f.cache as CacheMode,
      stream: f.stream,
      extentCopy: f.extentCopy,
      progress,
      log,
    });
    stop();
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const layers = [...r.layers, r.format].join(' → ');
    process.stdout.write(
      contentType === ContentType.Archive
        ? `extracted ${source.description} (${layers}, ${humanSize(r.size)}) into ${target.path} in ${secs}s\n`
        : `imported ${source.description} (${layers}, virtual size ${humanSize(r.virtualSize)}) to ${target.path} (${humanSize(r.size)}, via ${r.path}) in ${secs}s\n`,
    );
    return 0;
  } catch (err) {
    stop();
    throw err;
  } finally {
    if (!f.scratchDir) await rm(scratch, { recursive: true, force: true });
  }
}

const BREAKS = {
  continue: 'continued from the byte where it broke',
  restart: 'started again from byte 0',
  fail: 'the import fails',
  retry: 'the ranged read is retried',
} as const;

function printReport(r: InspectReport): void {
  const lines = [
    `source:        ${r.source}${r.sourceSize !== undefined ? ` (${humanSize(r.sourceSize)}${r.ranges ? ', ranges' : ', no ranges'})` : ''}`,
    `layers:        ${[...r.layers, r.format].join(' → ')}`,
    `format:        ${r.format}`,
    `virtual size:  ${r.virtualSize !== undefined ? `${r.virtualSize} (${humanSize(r.virtualSize)})` : 'unknown until decompressed'}`,
    ...(r.actualSize !== undefined ? [`actual size:   ${r.actualSize} (${humanSize(r.actualSize)})`] : []),
    `transfer:      ${r.transfer}`,
    ...(r.plan
      ? [
          `plan:          ${r.plan.transfer}: ${r.plan.reason}`,
          `on a break:    ${BREAKS[r.plan.resume.broken]} (${r.plan.resume.why})${r.plan.resume.record ? '; a run that is stopped is continued by the next one on the same target' : ''}`,
        ]
      : []),
    `accepted:      ${r.accepted ? 'yes' : 'no'}: ${r.reason}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

async function doInspect(url: string, f: InspectFlags): Promise<number> {
  const contentType = usage(() => parseContentType(f.contentType));
  const size = usage(() => (f.size !== undefined ? parseSize(f.size) : undefined));
  const source = await makeSource(url, f);
  const r = await inspectSource(source, { contentType, ...(size !== undefined ? { size } : {}) });
  if (f.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else printReport(r);
  return r.accepted ? 0 : 1;
}

function sourceOptions(c: Command): Command {
  return c
    .option('--ca-dir <dir>', 'directory of extra trusted CA certificates (every file in it)')
    .option('--insecure-skip-verify', 'do not verify the server certificate')
    .option('--header <line>', "extra HTTP header 'Name: value' (repeatable)", collect, [])
    .option('--user <name>', 'basic-auth user')
    .option('--password-file <file>', 'file holding the basic-auth password');
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command('cdi')
    .description('Containerized Data Importer tools: import and inspect virtual-machine disk images')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError(false);

  sourceOptions(
    program
      .command('import')
      .description(
        'import a disk image (or a tar archive) from a URL or local file to a file, block device or directory',
      )
      .argument('<url>', 'http(s):// URL or local file')
      .requiredOption(
        '--to <path>',
        'target: a file, a block device, or a directory (archive content; disk.img inside for images)',
      )
      .option('--size <size>', "the volume's capacity: bytes or Ki/Mi/Gi; the file ends up exactly that size")
      .option('--content-type <type>', 'kubevirt (disk image) or archive (tar)', 'kubevirt')
      .option('--checksum <algo:hex>', 'md5|sha1|sha256|sha512:<hex> of the bytes served')
      .option('--preallocate', 'preallocate the target'),
  )
    .option(
      '--scratch-dir <dir>',
      'where to stage images that cannot be streamed (default: a temporary directory)',
    )
    .option('--no-stream', 'always stage non-raw images in scratch space instead of streaming them by range')
    .option(
      '--no-extent-copy',
      'stream images read by range through qemu-img convert instead of copying their data ranges directly',
    )
    .addOption(
      new Option('--cache <mode>', 'qemu-img cache mode for the target')
        .choices(['writeback', 'none', 'trynone'])
        .default('writeback'),
    )
    .option('--no-progress', 'no progress output')
    .action(async (url: string, f: ImportFlags) => {
      code = await doImport(url, f);
    });

  sourceOptions(
    program
      .command('inspect')
      .description(
        'show the layers, format and sizes of an image and whether an import would accept it; writes nothing',
      )
      .argument('<url>', 'http(s):// URL or local file')
      .option('--json', 'machine-readable output')
      .option('--size <size>', 'check against this capacity')
      .option('--content-type <type>', 'kubevirt (disk image) or archive (tar)', 'kubevirt'),
  ).action(async (url: string, f: InspectFlags) => {
    code = await doInspect(url, f);
  });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      return 2;
    }
    process.stderr.write(`cdi: error: ${describe(err)}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
