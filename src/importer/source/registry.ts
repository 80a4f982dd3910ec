/**
 * Registry source (`docker://…`, `oci-archive://…`): a "container disk" image, the disk being the single file under
 * `/disk/` in the image's final filesystem. The disk entry's bytes are streamed straight out of its layer (through
 * gunzip/zstd and tar) into the data path: no layer is stored, and a raw or compressed-raw disk needs no scratch
 * space. Every blob's digest is checked as it streams; the stream ends only after every layer that can matter was
 * read and verified, so a tampered layer fails the import before the target is committed.
 *
 * Layers are walked from the top (last) down: whiteouts and replacements in upper layers are known before a lower
 * layer is read, so the first surviving `/disk/*` file found is the final one and can be streamed at once. Lower
 * layers are still read (headers only, data discarded) to refuse a second file, unless `/disk` is opaque or removed
 * above them. docs/adr/0030-registry-source.md.
 */
import { PassThrough, type Readable } from 'node:stream';
import { ErrorKind, ImportError } from '../errors.ts';
import { OciArchiveStore } from './registry/archive.ts';
import { RegistryClient, type RegistryClientOptions } from './registry/client.ts';
import {
  LayerReader,
  resolveImage,
  writeOrStop,
  type BlobStore,
  type ResolvedImage,
} from './registry/image.ts';
import { parseImageUrl } from './registry/reference.ts';
import type { TarEntry } from './registry/tar.ts';
import type { ImportSource, SourceInfo } from './source.ts';

export interface RegistrySourceOptions extends RegistryClientOptions {
  url: string;
  /** `platform.architecture` (IMPORTER_REGISTRY_IMAGE_ARCHITECTURE); default: the node's. */
  architecture?: string;
}

const DISK_DIR = 'disk';

function normalize(name: string): string {
  return name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
}

/** Upstream's envsToLabels: image env `A_KUBEVIRT_IO_B_C=v` becomes the PVC label `a.kubevirt.io/b-c: v`. */
export function envsToLabels(env: string[]): Record<string, string> {
  const prefix = 'KUBEVIRT_IO_';
  const labels: Record<string, string> = {};
  for (const e of env) {
    const eq = e.indexOf('=');
    if (eq < 0) continue;
    const k = e.slice(0, eq);
    const at = k.indexOf(prefix);
    if (at < 0) continue;
    const before = k.slice(0, at).replace(/_$/, '');
    const after = k.slice(at + prefix.length);
    const label =
      (before ? before.split('_').join('.') + '.' : '') + 'kubevirt.io/' + after.split('_').join('-');
    labels[label.toLowerCase()] = e.slice(eq + 1);
  }
  return labels;
}

/** What upper layers did to `/disk`, as seen by the layers below them. */
class Shadow {
  private readonly removed = new Set<string>();
  private readonly present = new Set<string>();
  /** `/disk` was made opaque or removed: nothing below can show through. */
  sealed = false;

  hides(path: string): boolean {
    if (this.sealed || this.present.has(path)) return true;
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) if (this.removed.has(parts.slice(0, i).join('/'))) return true;
    return false;
  }

  merge(layer: Shadow): void {
    for (const p of layer.removed) this.removed.add(p);
    for (const p of layer.present) this.present.add(p);
    this.sealed ||= layer.sealed;
  }

  /** Applies an entry of this layer; returns true when it is a file or link that could be the disk. */
  note(e: TarEntry, path: string): boolean {
    if (path === `.wh.${DISK_DIR}` || (path === DISK_DIR && e.type !== 'directory')) {
      this.sealed = true;
      return false;
    }
    if (!path.startsWith(`${DISK_DIR}/`)) return false;
    const slash = path.lastIndexOf('/');
    const dir = path.slice(0, slash);
    const base = path.slice(slash + 1);
    if (base === '.wh..wh..opq') {
      if (dir === DISK_DIR) this.sealed = true;
      else this.removed.add(dir);
      return false;
    }
    if (base.startsWith('.wh.')) {
      this.removed.add(`${dir}/${base.slice(4)}`);
      return false;
    }
    this.present.add(path);
    return e.type !== 'directory';
  }
}

export class RegistrySource implements ImportSource {
  readonly description: string;
  private readonly o: RegistrySourceOptions;
  private readonly store: BlobStore;
  private image: ResolvedImage | undefined;
  private out: PassThrough | undefined;
  private found: Promise<{ name: string; size: number; layer: number }> | undefined;
  private current: LayerReader | undefined;
  /** The layers the walk read (1 = bottom), in order: which ones an import had to download. */
  readonly layersRead: number[] = [];

  constructor(o: RegistrySourceOptions) {
    const ref = parseImageUrl(o.url);
    this.o = o;
    this.description = ref.text;
    this.store = ref.kind === 'docker' ? new RegistryClient(ref, o) : new OciArchiveStore(ref);
  }

  /** The image's KUBEVIRT_IO_* env as PVC labels (upstream's termination message `labels`), when it has any. */
  terminationInfo(): Record<string, unknown> {
    const labels = this.image ? envsToLabels(this.image.config.env) : {};
    return Object.keys(labels).length > 0 ? { labels } : {};
  }

  /**
   * One walk through the layers, streamed: the disk's bytes cannot be asked for again from an offset (they come out
   * of a tar inside a compressed blob), so the source is one-way and a break the blob reads cannot get past fails
   * the import (the pod restarts, as upstream's). A blob read that breaks is continued by range inside the walk
   * (registry/client.ts), below the digest check, which therefore still covers every byte of the blob.
   */
  async info(): Promise<SourceInfo> {
    const f = await this.start();
    return { size: f.size, ranges: false, oneWay: true };
  }

  /** Resolves the image and starts the walk; resolves when the disk entry's header was found. */
  private start(): Promise<{ name: string; size: number; layer: number }> {
    if (this.found) return this.found;
    this.out = new PassThrough({ highWaterMark: 1 << 20 });
    const out = this.out;
    // The walk's error reaches a consumer through its own listeners; without one (info() failed) it is not a crash.
    out.on('error', () => undefined);
    let announce!: (f: { name: string; size: number; layer: number }) => void;
    let fail!: (err: unknown) => void;
    this.found = new Promise((resolve, reject) => {
      announce = resolve;
      fail = reject;
    });
    this.found.catch(() => undefined);
    void (async () => {
      try {
        this.image = await resolveImage(this.store, this.o.architecture);
        const f = await this.walk(this.image, out, announce);
        if (!f) {
          throw new ImportError(
            ErrorKind.Invalid,
            `${this.description} has no file under /${DISK_DIR}/: a container disk image holds its disk as the only file in /${DISK_DIR}/ (for example /${DISK_DIR}/disk.img)`,
          );
        }
        out.end();
      } catch (err) {
        fail(err);
        out.destroy(err as Error);
      }
    })();
    return this.found;
  }

  private async walk(
    image: ResolvedImage,
    out: PassThrough,
    announce: (f: { name: string; size: number; layer: number }) => void,
  ): Promise<{ name: string; layer: number } | undefined> {
    const above = new Shadow();
    let found: { name: string; layer: number } | undefined;
    for (let i = image.layers.length - 1; i >= 0 && !above.sealed; i--) {
      const d = image.layers[i]!;
      const what = `layer ${i + 1} (${d.digest}) of ${this.description}`;
      const layer = await LayerReader.open(this.store, d, what);
      this.current = layer;
      this.layersRead.push(i + 1);
      const here = new Shadow();
      try {
        for (let e = await layer.tar.next(); e; e = await layer.tar.next()) {
          const path = normalize(e.name);
          if (above.hides(path) || !here.note(e, path)) continue;
          if (found) {
            throw new ImportError(
              ErrorKind.Invalid,
              `${this.description} has more than one file under /${DISK_DIR}/ (/${found.name} and /${path}): a container disk image must hold exactly one`,
            );
          }
          if (e.type !== 'file') {
            throw new ImportError(
              ErrorKind.Invalid,
              `/${path} in ${this.description} is a ${e.type === 'sparse' ? 'GNU sparse file' : e.type === 'other' ? 'special file' : e.type === 'link' ? 'hard link' : 'symbolic link'}, not a regular file: the disk must be a regular file`,
            );
          }
          found = { name: path, layer: i + 1 };
          announce({ name: path, size: e.size, layer: i + 1 });
          for await (const c of layer.tar.data()) {
            await writeOrStop(out, c);
            if (out.destroyed) {
              layer.abort();
              return found;
            }
          }
        }
        await layer.finish();
      } catch (err) {
        if (out.destroyed) {
          layer.abort();
          return found;
        }
        throw await layer.explain(err);
      } finally {
        this.current = undefined;
      }
      above.merge(here);
    }
    return found;
  }

  open(): Promise<Readable> {
    return this.start().then(() => this.out!);
  }

  async close(): Promise<void> {
    this.current?.abort();
    this.out?.destroy();
    await this.store.close();
  }
}
