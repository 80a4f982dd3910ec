/**
 * A container image as the registry source sees it: manifests and index (OCI and Docker v2), platform selection,
 * the config (architecture, env, labels), and layer blobs read with their digest verified as they stream
 * (docs/adr/0030-registry-source.md).
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, type Readable, type Transform, type Writable } from 'node:stream';
import zlib from 'node:zlib';
import { ErrorKind, ImportError } from '../../errors.ts';
import { TarReader } from './tar.ts';

export const MediaType = {
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  DockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What a manifest request asks for (schema 1 is refused with a message instead). */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerList,
  MediaType.DockerManifest,
].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  annotations?: Record<string, string>;
}

/** Where manifests and blobs come from: a registry over HTTP (client.ts) or an OCI archive file (archive.ts). */
export interface BlobStore {
  /** `docker://host/repo:tag` or `oci-archive://path`, for messages. */
  readonly description: string;
  /** The manifest or index the reference names (no digest), or the one with this digest. */
  manifest(digest?: string): Promise<{ body: Buffer; mediaType?: string; digest?: string }>;
  /** A blob's bytes as stored (not yet verified). */
  blob(d: Descriptor): Promise<Readable>;
  close(): Promise<void>;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  env: string[];
  labels: Record<string, string>;
}

export interface ResolvedImage {
  /** Bottom layer first, as in the manifest. */
  layers: Descriptor[];
  config: ImageConfig;
  manifestDigest?: string;
}

const MAX_MANIFEST = 4 << 20;

function invalid(msg: string): ImportError {
  return new ImportError(ErrorKind.Invalid, msg);
}

export function digestOf(body: Buffer, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
}

function verifyBody(body: Buffer, digest: string, what: string): void {
  const algo = digest.split(':')[0]!;
  const got = digestOf(body, algo);
  if (got !== digest)
    throw invalid(`${what} does not match its digest: expected ${digest}, got ${got}; refused as tampered`);
}

function parseJson(body: Buffer, what: string, mediaType: string | undefined): Record<string, unknown> {
  if (body.length > MAX_MANIFEST) throw invalid(`${what} is larger than 4 MiB; refused`);
  const text = body.toString('utf8');
  if (mediaType?.includes('html') || /^\s*<(!doctype|html)/i.test(text)) {
    throw invalid(`${what} is an HTML page, not an image manifest: is this really a container registry?`);
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // below
  }
  throw invalid(`${what} is not JSON (${mediaType ?? 'no content type'}), so not an image manifest`);
}

function descriptors(v: unknown, what: string): Descriptor[] {
  if (!Array.isArray(v)) throw invalid(`${what} has no list of descriptors`);
  return v.map((d: unknown, i) => {
    const o = d as Partial<Descriptor> | null;
    if (
      !o ||
      typeof o.digest !== 'string' ||
      !/^sha(256|512):[a-f0-9]+$/.test(o.digest) ||
      typeof o.size !== 'number' ||
      !Number.isSafeInteger(o.size) ||
      o.size < 0
    )
      throw invalid(`${what}: descriptor ${i} has no valid digest and size`);
    return { ...o, mediaType: typeof o.mediaType === 'string' ? o.mediaType : '' } as Descriptor;
  });
}

/** Docker's and Go's architecture names (what `platform.architecture` uses), from Node's. */
export function defaultArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', ppc64: 'ppc64le' };
  return map[process.arch] ?? process.arch;
}

function platformName(d: Descriptor): string {
  const p = d.platform ?? {};
  return [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');
}

async function fetchManifest(
  store: BlobStore,
  digest: string | undefined,
): Promise<{ doc: Record<string, unknown>; mediaType: string; digest?: string }> {
  const what = `the manifest of ${store.description}${digest ? ` (${digest})` : ''}`;
  const m = await store.manifest(digest);
  if (digest) verifyBody(m.body, digest, what);
  else if (m.digest) verifyBody(m.body, m.digest, what);
  const doc = parseJson(m.body, what, m.mediaType);
  const mt = typeof doc.mediaType === 'string' ? doc.mediaType : (m.mediaType ?? '').split(';')[0]!.trim();
  const d = digest ?? m.digest ?? digestOf(m.body);
  if (mt === MediaType.DockerSchema1 || mt === MediaType.DockerSchema1Signed || doc.schemaVersion === 1) {
    throw invalid(
      `${store.description} has a Docker schema 1 manifest, which is not supported: push it again with a current tool (Docker v2 or OCI)`,
    );
  }
  if (Array.isArray(doc.manifests)) return { doc, mediaType: mt || MediaType.OciIndex, digest: d };
  if (Array.isArray(doc.layers)) return { doc, mediaType: mt || MediaType.OciManifest, digest: d };
  throw invalid(`${what} (${mt || 'no media type'}) is neither an image manifest nor an image index`);
}

/**
 * The image the reference names, for `architecture` (the node's when not asked): an index is narrowed to the
 * linux/<arch> image; a single image must have that architecture in its config when one was asked (upstream's rule).
 */
export async function resolveImage(store: BlobStore, architecture?: string): Promise<ResolvedImage> {
  let m = await fetchManifest(store, undefined);
  const arch = architecture || defaultArchitecture();
  // An OCI layout's index.json may point at a multi-arch index in turn: follow up to three levels.
  for (let depth = 0; Array.isArray(m.doc.manifests); depth++) {
    if (depth >= 3) throw invalid(`${store.description}: image indexes nested more than three deep; refused`);
    const list = descriptors(m.doc.manifests, `the image index of ${store.description}`);
    const images = list.filter(
      (d) => d.platform?.architecture !== 'unknown' && (d.platform?.os ?? 'linux') === 'linux',
    );
    // An index without platforms (an OCI layout's index.json, usually) that names one image means that image.
    const pick =
      images.find((d) => d.platform?.architecture === arch) ??
      (images.length === 1 && !images[0]!.platform?.architecture ? images[0] : undefined);
    if (!pick) {
      throw invalid(
        `the image index of ${store.description} has no linux/${arch} image (it has ${images.map(platformName).join(', ') || 'none'})${architecture ? '' : ': choose one with platform.architecture (--arch)'}`,
      );
    }
    m = await fetchManifest(store, pick.digest);
  }
  const layers = descriptors(m.doc.layers, `the manifest of ${store.description}`);
  const configDesc = descriptors([m.doc.config], `the manifest of ${store.description} (config)`)[0]!;
  const configBody = await readSmallBlob(store, configDesc, `the image config of ${store.description}`);
  const cfg = parseJson(configBody, `the image config of ${store.description}`, 'application/json');
  const inner = (cfg.config ?? {}) as { Env?: unknown; Labels?: unknown };
  const config: ImageConfig = {
    ...(typeof cfg.architecture === 'string' ? { architecture: cfg.architecture } : {}),
    ...(typeof cfg.os === 'string' ? { os: cfg.os } : {}),
    env: Array.isArray(inner.Env) ? inner.Env.filter((e): e is string => typeof e === 'string') : [],
    labels: inner.Labels && typeof inner.Labels === 'object' ? (inner.Labels as Record<string, string>) : {},
  };
  if (architecture && config.architecture !== architecture) {
    throw invalid(
      `Error validating architecture: manifest image architecture: "${config.architecture ?? ''}" doesn't match requested architecture: "${architecture}"`,
    );
  }
  if (config.labels['containers.bootc'] === '1' || config.labels['ostree.bootable'] === '1') {
    throw invalid(
      'bootc image detected: this image contains an ostree-based bootable OS (containers.bootc=1 or ostree.bootable=1) and cannot be imported as a regular container disk; bootc-to-disk conversion is not yet implemented',
    );
  }
  for (const [i, l] of layers.entries()) {
    if (!/tar/.test(l.mediaType) || /encrypted/.test(l.mediaType)) {
      throw invalid(
        `layer ${i + 1} of ${store.description} has media type "${l.mediaType}", which is not a filesystem layer (tar, tar+gzip or tar+zstd)`,
      );
    }
  }
  return { layers, config, ...(m.digest ? { manifestDigest: m.digest } : {}) };
}

async function readSmallBlob(store: BlobStore, d: Descriptor, what: string): Promise<Buffer> {
  if (d.size > MAX_MANIFEST) throw invalid(`${what} is larger than 4 MiB; refused`);
  const chunks: Buffer[] = [];
  for await (const c of new VerifiedBlob(await store.blob(d), d, what).chunks()) chunks.push(c);
  return Buffer.concat(chunks);
}

/** The blob's bytes, hashed and counted as they pass; the end of the iteration is the proof of integrity. */
export class VerifiedBlob {
  private readonly hash: Hash;
  private n = 0;
  readonly body: Readable;
  private readonly d: Descriptor;
  private readonly what: string;
  constructor(body: Readable, d: Descriptor, what: string) {
    this.body = body;
    this.d = d;
    this.what = what;
    this.hash = createHash(d.digest.split(':')[0]!);
  }

  tampered(extra: string): ImportError {
    return invalid(
      `${this.what} is corrupt or was tampered with: ${extra}; the manifest names ${this.d.digest} of ${this.d.size} bytes`,
    );
  }

  async *chunks(): AsyncGenerator<Buffer> {
    for await (const c of this.body as AsyncIterable<Buffer>) {
      this.n += c.length;
      if (this.n > this.d.size) throw this.tampered(`it has more than ${this.d.size} bytes`);
      this.hash.update(c);
      yield c;
    }
    if (this.n !== this.d.size) throw this.tampered(`it has ${this.n} bytes`);
    const got = `${this.d.digest.split(':')[0]}:${this.hash.digest('hex')}`;
    if (got !== this.d.digest) throw this.tampered(`its bytes hash to ${got}`);
  }
}

/** Writes with back-pressure; resolves early when `sink` is destroyed (the reader went away). */
export async function writeOrStop(sink: Writable, chunk: Buffer): Promise<void> {
  if (sink.destroyed || sink.write(chunk)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      sink.off('drain', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
  });
}

/**
 * One layer being read: blob → digest check → gunzip/zstd (sniffed from the first bytes, as containers/image does)
 * → tar. The blob is pumped by us, not by a pipeline, so that when the tar or the decompressor fails the rest of the
 * blob can still be hashed: a tampered layer is reported as tampered, not as "corrupt gzip".
 */
export class LayerReader {
  readonly tar: TarReader;
  private readonly sink: Transform;
  private readonly blob: VerifiedBlob;
  private readonly pumped: Promise<void>;
  private pumpError: unknown;
  private stopFeeding = false;

  private constructor(
    blob: VerifiedBlob,
    first: Buffer | undefined,
    rest: AsyncIterator<Buffer>,
    what: string,
  ) {
    this.blob = blob;
    const kind =
      first && first[0] === 0x1f && first[1] === 0x8b
        ? 'gz'
        : first && first.length >= 4 && first.readUInt32BE(0) === 0x28b52ffd
          ? 'zst'
          : 'tar';
    const CHUNK = 1 << 20;
    const sink: Transform =
      kind === 'gz'
        ? zlib.createGunzip({ chunkSize: CHUNK })
        : kind === 'zst'
          ? zlib.createZstdDecompress({ chunkSize: CHUNK })
          : new PassThrough({ highWaterMark: CHUNK });
    this.sink = sink;
    sink.on('error', () => undefined); // seen by the tar reader's iteration
    this.tar = new TarReader(this.decoded(kind, what), what);
    this.pumped = (async () => {
      try {
        if (first) await this.feed(first);
        for (;;) {
          const r = await rest.next();
          if (r.done) break;
          await this.feed(r.value);
        }
        sink.end();
      } catch (err) {
        this.pumpError = err;
        sink.destroy(err as Error);
        throw err;
      }
    })();
    this.pumped.catch(() => undefined);
  }

  private async *decoded(kind: string, what: string): AsyncGenerator<Buffer> {
    try {
      for await (const c of this.sink as AsyncIterable<Buffer>) yield c;
    } catch (err) {
      if (this.pumpError !== undefined || err instanceof ImportError) throw err;
      throw invalid(
        `${what}: the ${kind === 'zst' ? 'zstd' : 'gzip'} data is corrupt: ${(err as Error).message}`,
      );
    }
  }

  private async feed(c: Buffer): Promise<void> {
    if (this.stopFeeding || this.sink.destroyed) return;
    await writeOrStop(this.sink, c);
  }

  static async open(store: BlobStore, d: Descriptor, what: string): Promise<LayerReader> {
    const blob = new VerifiedBlob(await store.blob(d), d, what);
    const it = blob.chunks();
    const r = await it.next();
    return new LayerReader(blob, r.done ? undefined : r.value, it, what);
  }

  /** After the tar's end: the rest of the blob is read and its digest checked. */
  async finish(): Promise<void> {
    await this.tar.drain();
    await this.pumped;
  }

  /**
   * The error to report for `err` (a tar or decompression failure): the digest failure when the blob turns out not
   * to be the one the manifest names (the rest of it is read, and discarded, to know), else `err` itself.
   */
  async explain(err: unknown): Promise<unknown> {
    if (this.pumpError !== undefined) return this.pumpError;
    this.stopFeeding = true;
    this.sink.destroy();
    try {
      await this.pumped;
    } catch (e) {
      return e;
    }
    return err;
  }

  /** Stops reading (the consumer went away). */
  abort(): void {
    this.stopFeeding = true;
    this.blob.body.destroy();
    this.sink.destroy();
  }
}
