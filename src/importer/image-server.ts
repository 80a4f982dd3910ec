/**
 * Registry node pull (`pullMethod: node`), the image's side (upstream tools/cdi-containerimage-server): the kubelet
 * pulls the user's container disk and runs it as the importer pod's `server` container, with this file as its
 * command; it serves the single file under `/disk/` on localhost:8100 (GET and HEAD, single `Range`s, so a qcow2
 * goes by extent copy), writes the file's name into the ready file once it listens, and exits 0 when the importer
 * creates the done file. `/info` answers the image's environment as JSON (upstream's ServerInfo), from which the
 * importer takes the `KUBEVIRT_IO_*` labels.
 *
 * A container disk holds nothing but `/disk/`, so the `init` container (the importer image) copies what this needs
 * into the shared emptyDir first (`installServer`): the node binary, the shared libraries it has loaded (read from
 * /proc/self/maps, so the list is exactly what this node needs) and this file. The server container then starts the
 * copied dynamic loader on the copied node. This file therefore imports nothing but Node's built-ins.
 */
import { once } from 'node:events';
import { createReadStream, watch, type FSWatcher } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';

// The controller's side of the same contract: src/api/nodepull.ts (not imported: this file is copied alone).
const ServerPort = 8100;
const SharedDir = '/shared';

/** Copies node, its loaded shared libraries and this server into `dir`; returns the command that starts it. */
export async function installServer(dir: string): Promise<string[]> {
  const lib = path.join(dir, 'lib');
  await mkdir(lib, { recursive: true });
  const maps = await readFile('/proc/self/maps', 'utf8');
  const libs = new Set<string>();
  for (const line of maps.split('\n')) {
    const file = line.slice(line.indexOf('/'));
    if (line.includes('/') && /\.so(\.\d+)*$/.test(file)) libs.add(file);
  }
  let loader: string | undefined;
  for (const f of libs) {
    // maps name the real files (libstdc++.so.6.0.30); the loader looks for the soname (libstdc++.so.6)
    const base = path.basename(f).replace(/(\.so\.\d+)(\.\d+)+$/, '$1');
    if (base.startsWith('ld-linux') || base.startsWith('ld-musl')) loader = base;
    await copyFile(f, path.join(lib, base));
  }
  if (!loader) throw new Error('cannot find the dynamic loader among the libraries node has loaded');
  await copyFile(process.execPath, path.join(dir, 'node'));
  await copyFile(import.meta.filename, path.join(dir, 'server.mts'));
  return [
    path.join(lib, loader),
    '--library-path',
    lib,
    path.join(dir, 'node'),
    path.join(dir, 'server.mts'),
  ];
}

export interface ServeOptions {
  port: number;
  imageDir: string;
  readyFile: string;
  doneFile: string;
  host?: string;
  log?: (line: string) => void;
}

/** upstream getImageFilename: exactly one entry, and not a directory. */
async function imageFileName(dir: string): Promise<string> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`Failed get image filename in ${dir}: ${e.message}`);
  });
  if (entries.length !== 1 || entries[0]!.isDirectory())
    throw new Error(
      `Failed get image filename in ${dir}: Invalid container image (found ${entries.length} entries: ${entries.map((e) => e.name).join(', ')}; a container disk has exactly one file under /disk/)`,
    );
  return entries[0]!.name;
}

function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'bad' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // several ranges, or another unit: the whole file, as RFC 9110 allows
  let start: number;
  let end: number;
  if (m[1] === '') {
    if (m[2] === '') return 'bad';
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'bad';
  return { start, end };
}

function handler(file: string, name: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/info') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Env: Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`) }));
      return;
    }
    if (decodeURIComponent(url.pathname) !== `/${name}` || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: this server serves only /${name}\n`);
      return;
    }
    stat(file).then(
      (st) => {
        const range = parseRange(req.headers.range, st.size);
        if (range === 'bad') {
          res.writeHead(416, { 'content-range': `bytes */${st.size}` });
          res.end();
          return;
        }
        const { start, end } = range ?? { start: 0, end: st.size - 1 };
        res.writeHead(range ? 206 : 200, {
          'accept-ranges': 'bytes',
          'content-type': 'application/octet-stream',
          'content-length': String(Math.max(0, end - start + 1)),
          'last-modified': st.mtime.toUTCString(),
          ...(range ? { 'content-range': `bytes ${start}-${end}/${st.size}` } : {}),
        });
        if (req.method === 'HEAD' || st.size === 0) {
          res.end();
          return;
        }
        const body = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
        body.on('error', () => res.destroy());
        res.on('close', () => body.destroy());
        body.pipe(res);
      },
      (e: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${e.message}\n`);
      },
    );
  };
}

/** Resolves once `file` exists (watching its directory; the importer creates it in another container). */
async function waitForFile(file: string): Promise<void> {
  const exists = async (): Promise<boolean> => (await stat(file).catch(() => undefined)) !== undefined;
  let watcher: FSWatcher | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      watcher = watch(path.dirname(file), () => {
        exists().then((yes) => yes && resolve(), reject);
      });
      watcher.on('error', reject);
      exists().then((yes) => yes && resolve(), reject);
    });
  } finally {
    watcher?.close();
  }
}

/** Serves the image's disk until the done file appears (upstream main). */
export async function serveImage(o: ServeOptions): Promise<void> {
  const log = o.log ?? ((l: string): void => void process.stderr.write(l + '\n'));
  for (const dir of ['/sysroot', '/ostree']) {
    if ((await stat(dir).catch(() => undefined))?.isDirectory())
      throw new Error(
        'bootc image detected: this image contains an ostree-based bootable OS and cannot be imported as a regular container disk; bootc-to-disk conversion is not yet implemented',
      );
  }
  const name = await imageFileName(o.imageDir);
  const file = path.join(o.imageDir, name);
  log(`${file}`);
  const server: Server = createServer({ requestTimeout: 0, headersTimeout: 10_000 }, handler(file, name));
  server.listen(o.port, o.host ?? 'localhost');
  await once(server, 'listening');
  await writeFile(o.readyFile, name, { mode: 0o644 });
  log(`Serving ${o.imageDir} on HTTP port: ${o.port}`);
  try {
    await waitForFile(o.doneFile);
    await rm(o.doneFile, { force: true });
  } finally {
    await rm(o.readyFile, { force: true });
    server.closeAllConnections();
    server.close();
  }
  log('Importer has completed');
}

const Usage = `Usage of server:
  -done-file string   the importer creates it when it is finished (default /shared/done)
  -image-dir string   the directory holding the disk (default .)
  -p int              the port to listen on (default 8100)
  -ready-file string  written with the disk's name once listening (default /shared/ready)
`;

/** upstream's flags: -p, -image-dir, -ready-file, -done-file (one or two dashes, `=` or a separate value). */
export function parseServerArgs(argv: string[]): ServeOptions {
  const o: ServeOptions = {
    port: ServerPort,
    imageDir: '.',
    readyFile: '/shared/ready',
    doneFile: '/shared/done',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = (eq > 0 ? arg.slice(0, eq) : arg).replace(/^--?/, '');
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`flag needs an argument: -${flag}`);
    if (flag === 'p') o.port = Number(value);
    else if (flag === 'image-dir') o.imageDir = value;
    else if (flag === 'ready-file') o.readyFile = value;
    else if (flag === 'done-file') o.doneFile = value;
    else throw new Error(`flag provided but not defined: -${flag}`);
  }
  if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 65535)
    throw new Error(`invalid port -p ${o.port}`);
  return o;
}

/** `server.mts install <dir>` (the init container) or `server.mts -p … -image-dir …` (the server container). */
export async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === 'install') {
      const cmd = await installServer(argv[1] ?? SharedDir);
      process.stderr.write(`installed: ${cmd.join(' ')}\n`);
      return 0;
    }
    // Go's flag package answers -h with the usage and exit 0: the DataImportCron node-pull poller runs only this
    if (argv.length === 1 && /^--?(h|help)$/.test(argv[0]!)) {
      process.stderr.write(Usage);
      return 0;
    }
    await serveImage(parseServerArgs(argv));
    return 0;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
