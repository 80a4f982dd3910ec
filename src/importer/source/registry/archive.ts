/**
 * `oci-archive://<file>[:<ref.name>]`: an OCI image layout packed in a tar file (what `skopeo copy … oci-archive:`
 * and `buildah push … oci-archive:` write). The tar's headers are read once to index its files; blobs are then read
 * in place by offset, never extracted.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../../errors.ts';
import type { BlobStore, Descriptor } from './image.ts';
import type { ArchiveReference } from './reference.ts';
import { checksumOk, cstring, octal, paxRecords } from './tar.ts';

interface Member {
  offset: number;
  size: number;
}

function invalid(msg: string): ImportError {
  return new ImportError(ErrorKind.Invalid, msg);
}

async function indexTar(file: string): Promise<Map<string, Member>> {
  const fh = await open(file, 'r').catch((err: Error) => {
    throw invalid(`cannot open the OCI archive ${file}: ${err.message}`);
  });
  const members = new Map<string, Member>();
  try {
    const { size: total } = await fh.stat();
    const h = Buffer.alloc(512);
    let pos = 0;
    let pax: Record<string, string> = {};
    let longName: string | undefined;
    while (pos + 512 <= total) {
      await fh.read(h, 0, 512, pos);
      if (h.every((b) => b === 0)) break;
      if (!checksumOk(h))
        throw invalid(`${file} is not a tar archive (an OCI archive is a tar of an OCI layout)`);
      const flag = String.fromCharCode(h[156]!);
      const size = octal(h, 124, 12, file);
      const data = pos + 512;
      pos = data + Math.ceil(size / 512) * 512;
      if (flag === 'x' || flag === 'L') {
        if (size > 1 << 20) throw invalid(`${file}: a tar metadata entry of ${size} bytes; refused`);
        const b = Buffer.alloc(size);
        await fh.read(b, 0, size, data);
        if (flag === 'x') pax = paxRecords(b);
        else longName = cstring(b, 0, size);
        continue;
      }
      const name = (pax.path ?? longName ?? cstring(h, 0, 100)).replace(/^(\.\/)+/, '');
      const realSize = pax.size !== undefined ? Number(pax.size) : size;
      pax = {};
      longName = undefined;
      if (flag === '0' || flag === '\0' || flag === '7') members.set(name, { offset: data, size: realSize });
    }
  } finally {
    await fh.close();
  }
  return members;
}

export class OciArchiveStore implements BlobStore {
  readonly description: string;
  private readonly ref: ArchiveReference;
  private members: Map<string, Member> | undefined;

  constructor(ref: ArchiveReference) {
    this.ref = ref;
    this.description = ref.text;
  }

  private async member(name: string): Promise<Member | undefined> {
    this.members ??= await indexTar(this.ref.path);
    return this.members.get(name);
  }

  private async read(m: Member): Promise<Buffer> {
    const fh = await open(this.ref.path, 'r');
    try {
      const b = Buffer.alloc(m.size);
      await fh.read(b, 0, m.size, m.offset);
      return b;
    } finally {
      await fh.close();
    }
  }

  async manifest(digest?: string): Promise<{ body: Buffer; mediaType?: string; digest?: string }> {
    if (digest) {
      const m = await this.member(`blobs/${digest.replace(':', '/')}`);
      if (!m) throw invalid(`${this.description} has no blob ${digest}`);
      if (m.size > 4 << 20)
        throw invalid(`${this.description}: manifest ${digest} is larger than 4 MiB; refused`);
      return { body: await this.read(m), digest };
    }
    const idx = await this.member('index.json');
    if (!idx) throw invalid(`${this.description} has no index.json: it is not an OCI layout archive`);
    if (idx.size > 4 << 20) throw invalid(`${this.description}: index.json is larger than 4 MiB; refused`);
    const body = await this.read(idx);
    if (!this.ref.ref) return { body, mediaType: 'application/vnd.oci.image.index.v1+json' };
    // Narrow the index to the image whose ref.name was asked.
    let doc: { manifests?: Descriptor[] };
    try {
      doc = JSON.parse(body.toString('utf8')) as { manifests?: Descriptor[] };
    } catch {
      throw invalid(`${this.description}: index.json is not JSON`);
    }
    const pick = (doc.manifests ?? []).find(
      (d) => d.annotations?.['org.opencontainers.image.ref.name'] === this.ref.ref,
    );
    if (!pick) {
      const names = (doc.manifests ?? [])
        .map((d) => d.annotations?.['org.opencontainers.image.ref.name'])
        .filter(Boolean);
      throw invalid(
        `${this.description} has no image named "${this.ref.ref}" (it has: ${names.join(', ') || 'no named images'})`,
      );
    }
    return this.manifest(pick.digest);
  }

  async blob(d: Descriptor): Promise<Readable> {
    const m = await this.member(`blobs/${d.digest.replace(':', '/')}`);
    if (!m) throw invalid(`${this.description} has no blob ${d.digest}`);
    if (m.size === 0) {
      const { Readable } = await import('node:stream');
      return Readable.from([]);
    }
    return createReadStream(this.ref.path, {
      start: m.offset,
      end: m.offset + m.size - 1,
      highWaterMark: 1 << 20,
    });
  }

  async close(): Promise<void> {}
}
