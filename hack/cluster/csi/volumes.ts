// Volume storage for the harness's hostpath CSI driver: every volume is a sparse image file.
// Filesystem volumes hold ext4 and are loop-mounted; Block volumes are handed to pods as loop devices.
// Snapshots and clones are sparse copies of the image (taken after `sync`).
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export const VolumeMode = { Filesystem: 'Filesystem', Block: 'Block' } as const;
export type VolumeMode = (typeof VolumeMode)[keyof typeof VolumeMode];

export interface Volume {
  id: string;
  sizeBytes: number;
  mode: VolumeMode;
  /** target path -> loop device (Block) or '' (Filesystem, a bind mount of the shared mount). */
  published: Record<string, string>;
}

export interface Snapshot {
  id: string;
  sourceVolumeId: string;
  sizeBytes: number;
  mode: VolumeMode;
  createdAtSeconds: number;
}

export class StorageError extends Error {
  readonly code: 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'OUT_OF_RANGE' | 'INTERNAL';
  constructor(code: StorageError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

const MiB = 1024 * 1024;

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new StorageError('INTERNAL', `${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Mount points from /proc/self/mountinfo: mount point -> source device. */
function mounts(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const parts = line.split(' ');
    const sep = parts.indexOf('-');
    if (sep < 0 || parts[4] === undefined) continue;
    const point = parts[4].replace(/\\040/g, ' ');
    out.set(point, parts[sep + 2] ?? '');
  }
  return out;
}

export class Store {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
    for (const d of ['volumes', 'snapshots', 'mounts']) mkdirSync(join(root, d), { recursive: true });
  }

  private volImage(id: string): string {
    return join(this.root, 'volumes', `${id}.img`);
  }
  private volMeta(id: string): string {
    return join(this.root, 'volumes', `${id}.json`);
  }
  private snapImage(id: string): string {
    return join(this.root, 'snapshots', `${id}.img`);
  }
  private snapMeta(id: string): string {
    return join(this.root, 'snapshots', `${id}.json`);
  }
  private sharedMount(id: string): string {
    return join(this.root, 'mounts', id);
  }

  getVolume(id: string): Volume | undefined {
    if (!/^[A-Za-z0-9._-]+$/.test(id) || !existsSync(this.volMeta(id))) return undefined;
    return JSON.parse(readFileSync(this.volMeta(id), 'utf8')) as Volume;
  }
  private saveVolume(v: Volume): void {
    writeFileSync(this.volMeta(v.id), JSON.stringify(v));
  }
  getSnapshot(id: string): Snapshot | undefined {
    if (!/^[A-Za-z0-9._-]+$/.test(id) || !existsSync(this.snapMeta(id))) return undefined;
    return JSON.parse(readFileSync(this.snapMeta(id), 'utf8')) as Snapshot;
  }
  listVolumes(): Volume[] {
    return readdirSync(join(this.root, 'volumes'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => this.getVolume(f.slice(0, -5)))
      .filter((v): v is Volume => v !== undefined);
  }

  /** Idempotent by id. source: copy the bytes of a volume or snapshot. */
  createVolume(
    id: string,
    sizeBytes: number,
    mode: VolumeMode,
    source?: { kind: 'volume' | 'snapshot'; id: string },
  ): Volume {
    const existing = this.getVolume(id);
    if (existing) {
      if (existing.mode !== mode || existing.sizeBytes < sizeBytes) {
        throw new StorageError(
          'INVALID_ARGUMENT',
          `volume ${id} already exists with a different mode or size`,
        );
      }
      return existing;
    }
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new StorageError('INVALID_ARGUMENT', `bad volume name ${id}`);
    const size = Math.max(MiB, Math.ceil(sizeBytes / MiB) * MiB);
    const img = this.volImage(id);
    if (source) {
      const src = source.kind === 'volume' ? this.getVolume(source.id) : this.getSnapshot(source.id);
      if (!src) throw new StorageError('NOT_FOUND', `source ${source.kind} ${source.id} not found`);
      if (src.mode !== mode) {
        throw new StorageError(
          'INVALID_ARGUMENT',
          `source ${source.kind} is ${src.mode}, the new volume is ${mode}`,
        );
      }
      if (src.sizeBytes > size) {
        throw new StorageError(
          'OUT_OF_RANGE',
          `source ${source.kind} (${src.sizeBytes} bytes) is larger than ${size}`,
        );
      }
      run('sync', []);
      const from = source.kind === 'volume' ? this.volImage(source.id) : this.snapImage(source.id);
      run('cp', ['--sparse=always', from, `${img}.tmp`]);
      truncateSync(`${img}.tmp`, size);
      if (mode === VolumeMode.Filesystem && size > src.sizeBytes) {
        run('resize2fs', ['-f', `${img}.tmp`]);
      }
      run('mv', [`${img}.tmp`, img]);
    } else {
      writeFileSync(img, '');
      truncateSync(img, size);
      if (mode === VolumeMode.Filesystem) {
        // no journal, no reserved blocks, few inodes: the usable size stays close to the requested size, as CDI's
        // filesystem-overhead arithmetic expects of a volume
        run('mkfs.ext4', [
          '-q',
          '-F',
          '-m',
          '0',
          '-O',
          '^has_journal',
          '-i',
          '65536',
          '-E',
          'nodiscard',
          img,
        ]);
        // world-writable root, like the upstream hostpath driver's directories (pods may run as any uid)
        run('debugfs', ['-w', '-R', 'sif <2> mode 040777', img]);
      }
    }
    const v: Volume = { id, sizeBytes: size, mode, published: {} };
    this.saveVolume(v);
    return v;
  }

  deleteVolume(id: string): void {
    const v = this.getVolume(id);
    if (!v) return;
    if (Object.keys(v.published).length > 0) {
      throw new StorageError(
        'INTERNAL',
        `volume ${id} is still published at ${Object.keys(v.published).join(', ')}`,
      );
    }
    rmSync(this.volImage(id), { force: true });
    rmSync(this.volMeta(id), { force: true });
  }

  createSnapshot(id: string, sourceVolumeId: string): Snapshot {
    const existing = this.getSnapshot(id);
    if (existing) {
      if (existing.sourceVolumeId !== sourceVolumeId) {
        throw new StorageError('INVALID_ARGUMENT', `snapshot ${id} exists for another volume`);
      }
      return existing;
    }
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new StorageError('INVALID_ARGUMENT', `bad snapshot name ${id}`);
    const v = this.getVolume(sourceVolumeId);
    if (!v) throw new StorageError('NOT_FOUND', `volume ${sourceVolumeId} not found`);
    run('sync', []);
    run('cp', ['--sparse=always', this.volImage(v.id), `${this.snapImage(id)}.tmp`]);
    run('mv', [`${this.snapImage(id)}.tmp`, this.snapImage(id)]);
    const s: Snapshot = {
      id,
      sourceVolumeId,
      sizeBytes: v.sizeBytes,
      mode: v.mode,
      createdAtSeconds: Math.floor(Date.now() / 1000),
    };
    writeFileSync(this.snapMeta(id), JSON.stringify(s));
    return s;
  }

  deleteSnapshot(id: string): void {
    if (!/^[A-Za-z0-9._-]+$/.test(id)) return;
    rmSync(this.snapImage(id), { force: true });
    rmSync(this.snapMeta(id), { force: true });
  }

  /** Grows the image; an unmounted ext4 is grown right away (offline). Returns whether the node must finish. */
  expandVolume(id: string, sizeBytes: number): { volume: Volume; nodeExpansionRequired: boolean } {
    const v = this.getVolume(id);
    if (!v) throw new StorageError('NOT_FOUND', `volume ${id} not found`);
    const size = Math.ceil(sizeBytes / MiB) * MiB;
    if (size > v.sizeBytes) {
      truncateSync(this.volImage(id), size);
      v.sizeBytes = size;
      this.saveVolume(v);
    }
    if (v.mode === VolumeMode.Filesystem && !mounts().has(this.sharedMount(id))) {
      run('resize2fs', ['-f', this.volImage(id)]);
      return { volume: v, nodeExpansionRequired: false };
    }
    return { volume: v, nodeExpansionRequired: true };
  }

  /** Makes the volume visible at target: a bind of the shared ext4 mount, or a loop device node. */
  publish(id: string, target: string, readonly: boolean): void {
    const v = this.getVolume(id);
    if (!v) throw new StorageError('NOT_FOUND', `volume ${id} not found`);
    const m = mounts();
    if (m.has(target)) return;
    if (v.mode === VolumeMode.Filesystem) {
      const shared = this.sharedMount(id);
      mkdirSync(shared, { recursive: true });
      if (!m.has(shared)) {
        // finish an expansion offline: online ext4 resizing needs CAP_SYS_RESOURCE, which this machine withholds
        run('resize2fs', ['-f', this.volImage(id)]);
        run('mount', ['-t', 'ext4', '-o', 'loop', this.volImage(id), shared]);
      }
      mkdirSync(target, { recursive: true });
      run('mount', ['--bind', shared, target]);
      if (readonly) run('mount', ['-o', 'remount,bind,ro', target]);
      v.published[target] = '';
    } else {
      const dev = run('losetup', ['-f', '--show', ...(readonly ? ['-r'] : []), this.volImage(id)]);
      if (!existsSync(target)) writeFileSync(target, '');
      run('mount', ['--bind', dev, target]);
      v.published[target] = dev;
    }
    this.saveVolume(v);
  }

  unpublish(id: string, target: string): void {
    const v = this.getVolume(id);
    const m = mounts();
    if (m.has(target)) run('umount', [target]);
    if (existsSync(target) && statSync(target).isFile()) rmSync(target, { force: true });
    if (!v) return;
    const dev = v.published[target];
    if (dev) run('losetup', ['-d', dev]);
    delete v.published[target];
    if (v.mode === VolumeMode.Filesystem && Object.keys(v.published).length === 0) {
      const shared = this.sharedMount(id);
      if (mounts().has(shared)) run('umount', [shared]);
    }
    this.saveVolume(v);
  }

  /** After a controller expansion: tell loop devices and the filesystem about the new size. */
  nodeExpand(id: string): number {
    const v = this.getVolume(id);
    if (!v) throw new StorageError('NOT_FOUND', `volume ${id} not found`);
    if (v.mode === VolumeMode.Block) {
      for (const dev of Object.values(v.published)) if (dev) run('losetup', ['-c', dev]);
    } else {
      const dev = mounts().get(this.sharedMount(id));
      if (dev && dev.startsWith('/dev/loop')) {
        run('losetup', ['-c', dev]);
        try {
          run('resize2fs', [dev]);
        } catch (err) {
          throw new StorageError(
            'INTERNAL',
            `${(err as Error).message} (online ext4 resize needs CAP_SYS_RESOURCE, which this machine withholds: ` +
              'restart the pod using the volume and the resize finishes offline before the next mount)',
          );
        }
      } else {
        run('resize2fs', ['-f', this.volImage(id)]);
      }
    }
    return v.sizeBytes;
  }

  /** Detaches everything (cluster:down). */
  unpublishAll(): void {
    for (const v of this.listVolumes()) {
      for (const target of Object.keys(v.published)) {
        try {
          this.unpublish(v.id, target);
        } catch {
          // best effort on shutdown
        }
      }
    }
  }
}
