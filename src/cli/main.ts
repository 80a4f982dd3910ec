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
import type { Limits } from '../importer/image/run.ts';
import { inspectSource, type InspectReport } from '../importer/inspect.ts';
import { cgroupMemoryLimit, describeLimits, limitsFor } from '../importer/memory.ts';
import { Progress } from '../importer/progress.ts';
import { humanSize, parseSize } from '../importer/size.ts';
import { deviceSize } from '../importer/sink/raw.ts';
import { FileSource } from '../importer/source/file.ts';
import { GcsSource } from '../importer/source/gcs.ts';
import { HttpSource } from '../importer/source/http.ts';
import { RegistrySource } from '../importer/source/registry.ts';
import { S3Source } from '../importer/source/s3.ts';
import type { ImportSource } from '../importer/source/source.ts';
import { showProgress } from './progress-view.ts';
import { uploadCommand } from './upload-command.ts';

interface SourceFlags {
  caDir?: string;
  insecureSkipVerify?: boolean;
  header: string[];
  user?: string;
  passwordFile?: string;
  source?: string;
  arch?: string;
  credentialsFile?: string;
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

const SOURCE_KINDS = ['http', 'registry', 's3', 'gcs'] as const;
type SourceKind = (typeof SOURCE_KINDS)[number];

/** The source kind a URL implies (`--source` overrides it for http(s) endpoints of S3 and GCS). */
function sourceKind(url: string, flag: string | undefined): SourceKind {
  if (flag !== undefined) {
    if (!(SOURCE_KINDS as readonly string[]).includes(flag))
      throw new UsageError(`invalid --source "${flag}": use ${SOURCE_KINDS.join(', ')}`);
    return flag as SourceKind;
  }
  if (/^(docker|oci-archive):\/\//.test(url)) return 'registry';
  if (url.startsWith('s3://')) return 's3';
  if (url.startsWith('gs://')) return 'gcs';
  return 'http';
}

async function makeSource(url: string, f: SourceFlags): Promise<ImportSource> {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return new FileSource(url);
  const kind = sourceKind(url, f.source);
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
  if (f.arch !== undefined && kind !== 'registry')
    throw new UsageError('--arch is for docker:// and oci-archive:// images');
  const caDirs = f.caDir ? [f.caDir] : [];
  const insecure = f.insecureSkipVerify ?? false;
  if (kind === 'registry') {
    return new RegistrySource({
      url,
      ...(f.user !== undefined ? { user: f.user, password: password ?? '' } : {}),
      caDirs,
      insecure,
      ...(f.arch ? { architecture: f.arch } : {}),
      userAgent: 'cdi-ts',
    });
  }
  if (kind === 's3') {
    return new S3Source({
      url,
      ...(f.user !== undefined ? { accessKeyId: f.user, secretKey: password ?? '' } : {}),
      caDirs,
      insecureSkipVerify: insecure,
    });
  }
  if (kind === 'gcs') {
    const credentialsFile = f.credentialsFile ?? process.env.GOOGLE_APPLICATION_CREDENTIALS;
    return new GcsSource({
      url,
      ...(credentialsFile ? { credentialsFile } : {}),
      caDirs,
      insecureSkipVerify: insecure,
    });
  }
  return new HttpSource({
    url,
    ...(f.caDir ? { caDir: f.caDir } : {}),
    insecureSkipVerify: insecure,
    headers: f.header,
    ...(f.user !== undefined ? { user: f.user } : {}),
    ...(password !== undefined ? { password } : {}),
  });
}

/** Children sized from this process's cgroup memory limit (as in the pod); said on stderr when there is one. */
async function childLimits(say: boolean): Promise<Limits> {
  const memory = await cgroupMemoryLimit();
  const limits = limitsFor(memory?.bytes);
  if (memory && say) process.stderr.write(`cdi: ${describeLimits(memory, limits)}\n`);
  return limits;
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
  if (source instanceof RegistrySource && contentType !== ContentType.KubeVirt) {
    throw new UsageError('registry images hold a disk: --content-type archive is not supported for them');
  }
  const limits = await childLimits(true);
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
      limits,
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
  const r = await inspectSource(source, {
    contentType,
    ...(size !== undefined ? { size } : {}),
    limits: await childLimits(false),
  });
  if (f.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else printReport(r);
  return r.accepted ? 0 : 1;
}

function sourceOptions(c: Command): Command {
  return c
    .option(
      '--source <kind>',
      'http, registry, s3 or gcs (default: from the URL; use s3 or gcs for http(s):// endpoints of those stores)',
    )
    .option('--ca-dir <dir>', 'directory of extra trusted CA certificates (every file in it)')
    .option(
      '--insecure-skip-verify',
      'do not verify the server certificate (registries: also allow plain HTTP, like insecureRegistries)',
    )
    .option('--header <line>', "extra HTTP header 'Name: value' (repeatable)", collect, [])
    .option('--user <name>', 'basic-auth user; registry user; S3 access key ID')
    .option('--password-file <file>', 'file holding the password (registry password, S3 secret key)')
    .option('--arch <architecture>', 'registry images: the platform.architecture to pick from an image index')
    .option(
      '--credentials-file <file>',
      'GCS: a service-account key (credentials.json); default $GOOGLE_APPLICATION_CREDENTIALS, else anonymous',
    );
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
      .argument('<url>', 'http(s)://, docker://, oci-archive://, s3://, gs:// URL or local file')
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
      .argument('<url>', 'http(s)://, docker://, oci-archive://, s3://, gs:// URL or local file')
      .option('--json', 'machine-readable output')
      .option('--size <size>', 'check against this capacity')
      .option('--content-type <type>', 'kubevirt (disk image) or archive (tar)', 'kubevirt'),
  ).action(async (url: string, f: InspectFlags) => {
    code = await doInspect(url, f);
  });

  uploadCommand(program, (c) => (code = c));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      return 2;
    }
    process.stderr.write(`cdi: error: ${describe(err)}\n`);
    return err instanceof UsageError || (err as { usage?: unknown }).usage === true ? 2 : 1;
  }
}
