/**
 * OCI image layouts built by the tests (nothing committed), pushed to a real registry with skopeo:
 *
 *   const layout = await buildLayout(dir, 'img', [
 *     { arch: 'amd64', layers: [{ compression: 'gzip', files: { 'disk/disk.img': rawPath } }] },
 *   ]);                                        // one image; several entries make a multi-arch index
 *   await skopeoPush(layout, 'docker://127.0.0.1:5000/img:v1', { tlsVerify: false });
 *   await ociArchive(layout, 'img.tar');       // the same layout as an oci-archive:// tar
 *
 * Layer files map a path in the image to a host file (copied), '' (an empty file: whiteouts such as
 * `disk/.wh.old.img`, `disk/.wh..wh..opq`), or { symlink: target }. Entries are written in the given order.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type LayerFile = string | { symlink: string };

export interface LayerSpec {
  compression: 'gzip' | 'zstd' | 'none';
  files: Record<string, LayerFile>;
}

export interface ImageSpec {
  arch?: string;
  env?: string[];
  labels?: Record<string, string>;
  layers: LayerSpec[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

export interface Layout {
  dir: string;
  tag: string;
  /** Each image's layer descriptors, bottom first (the blobs are in dir/blobs/sha256/). */
  images: { arch: string; layers: Descriptor[] }[];
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
}

async function addBlob(layout: string, file: string, mediaType: string): Promise<Descriptor> {
  const hex = await sha256File(file);
  await mkdir(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  await rename(file, path.join(layout, 'blobs', 'sha256', hex));
  return {
    mediaType,
    digest: `sha256:${hex}`,
    size: (await stat(path.join(layout, 'blobs', 'sha256', hex))).size,
  };
}

async function addJson(layout: string, value: unknown, mediaType: string): Promise<Descriptor> {
  const tmp = path.join(layout, `.json-${Math.random().toString(36).slice(2)}`);
  await writeFile(tmp, JSON.stringify(value));
  return addBlob(layout, tmp, mediaType);
}

/** A layer blob: the files staged in a directory, `tar` in the given order, then compressed. */
async function buildLayer(layout: string, spec: LayerSpec): Promise<{ desc: Descriptor; diffId: string }> {
  const stage = await mkdtemp(path.join(layout, '.stage-'));
  const names: string[] = [];
  for (const [name, src] of Object.entries(spec.files)) {
    const dest = path.join(stage, name);
    await mkdir(path.dirname(dest), { recursive: true });
    if (typeof src === 'object') await symlink(src.symlink, dest);
    else if (src === '') await writeFile(dest, '');
    else await copyFile(src, dest);
    names.push(name);
  }
  const tarPath = path.join(layout, `.layer-${Math.random().toString(36).slice(2)}.tar`);
  await run('tar', ['--format=pax', '--no-recursion', '-C', stage, '-cf', tarPath, ...dirsFirst(names)]);
  await rm(stage, { recursive: true, force: true });
  const diffId = `sha256:${await sha256File(tarPath)}`;
  let blob = tarPath;
  let mediaType = 'application/vnd.oci.image.layer.v1.tar';
  if (spec.compression === 'gzip') {
    await run('gzip', ['-n', '-1', tarPath]);
    blob = `${tarPath}.gz`;
    mediaType += '+gzip';
  } else if (spec.compression === 'zstd') {
    await run('zstd', ['-q', '--rm', '-1', tarPath]);
    blob = `${tarPath}.zst`;
    mediaType += '+zstd';
  }
  return { desc: await addBlob(layout, blob, mediaType), diffId };
}

/** The parent directories of every name (so tar records them), then the names in order. */
function dirsFirst(names: string[]): string[] {
  const dirs = new Set<string>();
  for (const n of names) {
    const parts = n.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs, ...names];
}

export async function buildLayout(root: string, tag: string, images: ImageSpec[]): Promise<Layout> {
  const dir = path.join(root, `layout-${tag}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests: Descriptor[] = [];
  const out: Layout['images'] = [];
  for (const img of images) {
    const arch = img.arch ?? 'amd64';
    const layers: Descriptor[] = [];
    const diffIds: string[] = [];
    for (const l of img.layers) {
      const { desc, diffId } = await buildLayer(dir, l);
      layers.push(desc);
      diffIds.push(diffId);
    }
    const config = await addJson(
      dir,
      {
        architecture: arch,
        os: 'linux',
        config: { Env: img.env ?? [], Labels: img.labels ?? {} },
        rootfs: { type: 'layers', diff_ids: diffIds },
      },
      'application/vnd.oci.image.config.v1+json',
    );
    const mt = 'application/vnd.oci.image.manifest.v1+json';
    const m = await addJson(dir, { schemaVersion: 2, mediaType: mt, config, layers }, mt);
    manifests.push({ ...m, platform: { architecture: arch, os: 'linux' } });
    out.push({ arch, layers });
  }
  const ref = { 'org.opencontainers.image.ref.name': tag };
  let top: Descriptor;
  if (manifests.length === 1) top = { ...manifests[0]!, annotations: ref };
  else {
    const it = 'application/vnd.oci.image.index.v1+json';
    top = { ...(await addJson(dir, { schemaVersion: 2, mediaType: it, manifests }, it)), annotations: ref };
  }
  const { platform: _p, ...topNoPlatform } = top;
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [topNoPlatform] }),
  );
  return { dir, tag, images: out };
}

export interface PushOptions {
  tlsVerify?: boolean;
  certDir?: string;
  creds?: string;
  /** v2s2: convert to a Docker v2 schema 2 manifest (gzip layers only). */
  format?: 'oci' | 'v2s2';
}

export async function skopeoPush(layout: Layout, dest: string, o: PushOptions = {}): Promise<void> {
  await run(
    'skopeo',
    [
      '--insecure-policy',
      'copy',
      '-q',
      ...(layout.images.length > 1 ? ['--all'] : []),
      `--dest-tls-verify=${o.tlsVerify ?? false}`,
      ...(o.certDir ? ['--dest-cert-dir', o.certDir] : []),
      ...(o.creds ? ['--dest-creds', o.creds] : []),
      ...(o.format ? ['--format', o.format] : []),
      `oci:${layout.dir}:${layout.tag}`,
      dest,
    ],
    { maxBuffer: 1 << 24 },
  );
}

/** The layout as an OCI archive (a plain tar of the layout directory). */
export async function ociArchive(layout: Layout, file: string): Promise<string> {
  await run('tar', ['-C', layout.dir, '-cf', file, 'oci-layout', 'index.json', 'blobs']);
  return file;
}

export async function readJson(p: string): Promise<unknown> {
  return JSON.parse(await readFile(p, 'utf8')) as unknown;
}

/**
 * Pushes a layout through the distribution API itself (monolithic blob uploads, then the manifests), keeping every
 * blob byte for byte. skopeo would gzip uncompressed layers on the way to a registry (containers/image always
 * compresses them for docker:// destinations), so images with uncompressed layers are pushed with this.
 */
export async function httpPush(
  layout: Layout,
  registryUrl: string,
  repo: string,
  tag: string,
): Promise<void> {
  const blobs = path.join(layout.dir, 'blobs', 'sha256');
  const { readdir } = await import('node:fs/promises');
  const manifests: { digest: string; body: Buffer; mediaType: string }[] = [];
  for (const hex of await readdir(blobs)) {
    const body = await readFile(path.join(blobs, hex));
    const digest = `sha256:${hex}`;
    const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
    const loc = new URL(start.headers.get('location')!, registryUrl);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, {
      method: 'PUT',
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (put.status !== 201) throw new Error(`blob upload ${digest}: HTTP ${put.status} ${await put.text()}`);
    try {
      const j = JSON.parse(body.toString('utf8')) as {
        mediaType?: string;
        layers?: unknown;
        manifests?: unknown;
      };
      if (j.mediaType && (j.layers || j.manifests)) manifests.push({ digest, body, mediaType: j.mediaType });
    } catch {
      // a layer or a config
    }
  }
  const index = JSON.parse(await readFile(path.join(layout.dir, 'index.json'), 'utf8')) as {
    manifests: Descriptor[];
  };
  const top = index.manifests[0]!.digest;
  // Image manifests first, then an index that names them, then the tag.
  manifests.sort((a, b) => Number(a.mediaType.includes('index')) - Number(b.mediaType.includes('index')));
  for (const m of manifests) {
    const ref = m.digest === top ? tag : m.digest;
    const r = await fetch(`${registryUrl}/v2/${repo}/manifests/${ref}`, {
      method: 'PUT',
      body: m.body,
      headers: { 'content-type': m.mediaType },
    });
    if (r.status !== 201) throw new Error(`manifest ${ref}: HTTP ${r.status} ${await r.text()}`);
  }
}

/**
 * A container disk (`disk/disk.img` = `file`, one gzip layer) pushed to the plain-HTTP registry on `registry` as
 * `<repo>:<tag>`; returns the digest the registry now names for the tag (what a DataImportCron's poller reads).
 */
export async function pushContainerDisk(
  file: string,
  repo: string,
  tag = 'latest',
  registry = 'localhost:5000',
): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cdi-disk-'));
  try {
    const layout = await buildLayout(dir, tag, [
      { layers: [{ compression: 'gzip', files: { 'disk/disk.img': file } }] },
    ]);
    await skopeoPush(layout, `docker://${registry}/${repo}:${tag}`, { tlsVerify: false });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return res.headers.get('docker-content-digest') ?? '';
}
