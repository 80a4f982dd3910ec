/**
 * The vddk source: a disk of a VMware VM, read through nbdkit's vddk plugin with the VDDK library the user's init
 * image copied into the pod (upstream's design; docs/importer.md "vddk"):
 *
 *   1. vSphere API (vsphere.ts): log in, find the VM by UUID, find the disk by its backing file, and for a checkpoint
 *      the snapshot and the disk's file name in it;
 *   2. nbdkit --readonly --filter=retry --filter=cacheextents vddk libdir=… server=… user=… password=-3 (from a pipe)
 *      thumbprint=… vm=moref=… [snapshot=… transports=file:nbdssl:nbd] [config=…] file=…, on a private unix socket;
 *   3. our NBD client (image/nbd-client.ts): the size, block status (zero/data extents), reads.
 *
 * Full import: the extents of the whole disk. Delta (previous and current checkpoints): the areas vSphere's
 * changed-block tracking reports (QueryChangedDiskAreas from the previous checkpoint's change ID, or the previous
 * checkpoint itself when it is a change ID), split by block status into data and zeros, written in place (transfer/disk.ts).
 * nbdkit's log gives VDDK's version and the ESX host, reported as `vddkInfo` in the termination message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BoundedLines } from '../child.ts';
import { ErrorKind, ImportError } from '../errors.ts';
import { NbdClient, STATE_ZERO } from '../image/nbd-client.ts';
import type { DiskExtent, DiskMap, ImportSource, SourceInfo } from './source.ts';
import { VSphereClient, type MoRef, type SnapshotNode, type VirtualDiskInfo } from './vsphere.ts';

export interface VddkSourceOptions {
  /** vCenter or ESXi: https://vcenter.example.com (the path is replaced by /sdk, as upstream). */
  endpoint: string;
  user: string;
  password: string;
  /** SHA-1 thumbprint of the server's certificate. */
  thumbprint: string;
  /** The VM's instance UUID (or BIOS UUID). */
  uuid: string;
  /** The disk's backing file, "[datastore] vm/vm.vmdk". */
  backingFile: string;
  currentCheckpoint?: string;
  previousCheckpoint?: string;
  caDir?: string[];
  insecureSkipVerify?: boolean;
  /** Where the init image put the VDDK library (default /opt/vmware-vix-disklib-distrib). */
  libdir?: string;
  /** nbdkit's plugin: "vddk" (default), or a path (tests use a stand-in). */
  plugin?: string;
  /** Directory of the extra-args ConfigMap (default /vddk-args): its vddk-config-file goes to config=. */
  argsDir?: string;
  /** Attempts of nbdkit's retry filter (its default, 5, when unset; each waits longer: 2 s, 4 s, …). */
  retries?: number;
  log?: (line: string) => void;
}

/** Largest block status request (upstream's MaxBlockStatusLength). */
const MAX_STATUS = 2 ** 31;
/** Largest VDDK read: 23 MiB for ESXi, 2 MiB through vCenter (larger ones fail there; upstream's limits). */
const MAX_READ_ESX = 23 << 20;
const MAX_READ_VC = 2 << 20;
/** Changed areas smaller than this are copied as data without asking for block status (upstream does the same). */
const SMALL_AREA = 1 << 20;
/** nbdkit's log lines are read up to this length; the rest of a longer line is dropped. */
const MAX_LOG_LINE = 16 << 10;
/** "52 de c0 d9 b9 43 9d 10-61 d5 4c 1b e9 7b 65 63/81": upstream's pattern for a CBT change ID. */
const CHANGE_ID = /([0-9a-fA-F]{2}\s?)*-([0-9a-fA-F]{2}\s?)*\/([0-9a-fA-F]*)/;

function findSnapshot(tree: SnapshotNode[], key: string): SnapshotNode[] {
  const out: SnapshotNode[] = [];
  const walk = (nodes: SnapshotNode[]): void => {
    for (const n of nodes) {
      if (n.name === key || n.snapshot.value === key) out.push(n);
      walk(n.children);
    }
  };
  walk(tree);
  return out;
}

export class VddkSource implements ImportSource {
  readonly description: string;
  private readonly o: VddkSourceOptions;
  private vsphere: VSphereClient | undefined;
  private nbdkit: ChildProcess | undefined;
  private nbd: NbdClient | undefined;
  private tmp: string | undefined;
  private map: DiskMap | undefined;
  private maxRead = MAX_READ_ESX;
  private readonly logTail: string[] = [];
  /** How many error lines nbdkit wrote, and the last one (nothing of its output is kept unbounded). */
  private errorCount = 0;
  private lastError: string | undefined;
  private version = '';
  private host = '';

  constructor(o: VddkSourceOptions) {
    if (!o.endpoint)
      throw new ImportError(ErrorKind.Invalid, 'no vCenter/ESXi URL given (IMPORTER_ENDPOINT)');
    if (!o.uuid) throw new ImportError(ErrorKind.Invalid, 'no VM UUID given (IMPORTER_UUID)');
    if (!o.backingFile)
      throw new ImportError(ErrorKind.Invalid, 'no disk backing file given (IMPORTER_BACKING_FILE)');
    if (o.previousCheckpoint && !o.currentCheckpoint)
      throw new ImportError(ErrorKind.Invalid, 'a previous checkpoint is set without a current one');
    this.o = o;
    this.description = `VMware disk ${o.backingFile} of VM ${o.uuid}`;
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  private get delta(): boolean {
    return !!this.o.currentCheckpoint && !!this.o.previousCheckpoint;
  }

  async info(): Promise<SourceInfo> {
    return { size: (await this.disk()).size, ranges: true };
  }

  async disk(): Promise<DiskMap> {
    if (this.map) return this.map;
    const o = this.o;
    const caDir = o.caDir ?? [];
    let insecure = o.insecureSkipVerify ?? false;
    if (caDir.length === 0 && !o.thumbprint && !insecure) {
      // upstream: without a certificate directory it cannot verify, and connects anyway
      this.log(
        'no certificate directory and no thumbprint: connecting to vCenter without verifying its certificate',
      );
      insecure = true;
    }
    const vs = new VSphereClient(o.endpoint, {
      caDir,
      insecureSkipVerify: insecure,
      ...(o.thumbprint ? { thumbprint: o.thumbprint } : {}),
      userAgent: 'cdi-ts-importer',
    });
    this.vsphere = vs;
    await vs.login(o.user, o.password);
    if (vs.apiType === 'VirtualCenter') this.maxRead = MAX_READ_VC;
    const vm = await vs.findVm(o.uuid);
    if (!vm) {
      throw new ImportError(
        ErrorKind.Invalid,
        `no VM with UUID ${o.uuid} on vCenter at ${vs.host}: check the DataVolume's vddk.uuid`,
      );
    }
    const tree = await vs.snapshots(vm);
    const disk = await this.findDisk(vm, tree);
    let file = o.backingFile;
    let current: SnapshotNode | undefined;
    if (o.currentCheckpoint) {
      current = this.oneSnapshot(tree, o.currentCheckpoint, 'current');
      const inSnap = this.sameDisk(await vs.disks(current.snapshot), disk);
      if (!inSnap)
        throw new ImportError(
          ErrorKind.Invalid,
          `snapshot ${o.currentCheckpoint} has no disk ${o.backingFile}`,
        );
      file = inSnap.fileName;
      this.log(`disk ${o.backingFile} in snapshot ${current.snapshot.value}: ${file}`);
    }
    await this.startNbdkit(vs.host, vm, current?.snapshot, file);
    const nbd = this.nbd!;
    let extents: DiskExtent[];
    if (this.delta) {
      extents = await this.changedExtents(vm, tree, current!, disk);
    } else {
      extents = await this.status(0, nbd.size);
    }
    this.map = { size: nbd.size, extents, delta: this.delta };
    const data = extents.reduce((n, e) => n + (e.zero ? 0 : e.length), 0);
    this.log(
      `${this.description}: ${nbd.size} bytes, ${data} of them data to read${this.delta ? ` (changes since ${o.previousCheckpoint})` : ''}`,
    );
    return this.map;
  }

  /** The disk object for the backing file: on the VM now, or in one of its snapshots (upstream's search). */
  private async findDisk(vm: MoRef, tree: SnapshotNode[]): Promise<VirtualDiskInfo> {
    const vs = this.vsphere!;
    const want = this.o.backingFile;
    const now = (await vs.disks(vm)).find((d) => d.fileName === want);
    if (now) return now;
    const all: SnapshotNode[] = [];
    const walk = (n: SnapshotNode[]): void => n.forEach((s) => (all.push(s), walk(s.children)));
    walk(tree);
    for (const s of all) {
      const d = (await vs.disks(s.snapshot)).find((x) => x.fileName === want);
      if (d) return d;
    }
    throw new ImportError(
      ErrorKind.Invalid,
      `disk ${want} is not a disk of VM ${this.o.uuid} nor of its snapshots: check the DataVolume's vddk.backingFile`,
    );
  }

  /** The same virtual disk in another configuration: by disk object ID when vSphere gives one, else by device key. */
  private sameDisk(list: VirtualDiskInfo[], disk: VirtualDiskInfo): VirtualDiskInfo | undefined {
    return disk.diskObjectId
      ? list.find((d) => d.diskObjectId === disk.diskObjectId)
      : list.find((d) => d.key === disk.key);
  }

  private oneSnapshot(tree: SnapshotNode[], key: string, which: string): SnapshotNode {
    const found = findSnapshot(tree, key);
    if (found.length === 1) return found[0]!;
    throw new ImportError(
      ErrorKind.Invalid,
      found.length === 0
        ? `the ${which} checkpoint ${key} is not a snapshot of VM ${this.o.uuid}`
        : `the ${which} checkpoint ${key} names ${found.length} snapshots of VM ${this.o.uuid}`,
    );
  }

  /** Block status of [offset, offset + length) as data and zero extents (neighbours of one kind merged). */
  private async status(offset: number, length: number): Promise<DiskExtent[]> {
    const nbd = this.nbd!;
    const out: DiskExtent[] = [];
    const push = (e: DiskExtent): void => {
      const last = out.at(-1);
      if (last && last.zero === e.zero && last.offset + last.length === e.offset) last.length += e.length;
      else out.push(e);
    };
    const end = offset + length;
    for (let at = offset; at < end;) {
      const got = await nbd.blockStatus(at, Math.min(MAX_STATUS, end - at));
      if (got.length === 0) {
        // no answer for this range: copy it as data (upstream falls back to the whole block too)
        push({ offset: at, length: end - at, zero: false });
        break;
      }
      for (const s of got) {
        const len = Math.min(s.length, end - at);
        if (len <= 0) break;
        push({ offset: at, length: len, zero: (s.flags & STATE_ZERO) !== 0 });
        at += len;
      }
    }
    return out;
  }

  /** The changed areas since the previous checkpoint, paged as vSphere answers them, as data and zero extents. */
  private async changedExtents(
    vm: MoRef,
    tree: SnapshotNode[],
    current: SnapshotNode,
    disk: VirtualDiskInfo,
  ): Promise<DiskExtent[]> {
    const vs = this.vsphere!;
    const prev = this.o.previousCheckpoint!;
    let changeId: string;
    if (CHANGE_ID.test(prev)) changeId = prev;
    else {
      const base = this.oneSnapshot(tree, prev, 'previous');
      const d = this.sameDisk(await vs.disks(base.snapshot), disk);
      if (!d?.changeId) {
        throw new ImportError(
          ErrorKind.Invalid,
          `changed block tracking is not enabled on disk ${this.o.backingFile} in snapshot ${prev}: enable CBT on the VM for warm import`,
        );
      }
      changeId = d.changeId;
    }
    const capacity = this.nbd!.size;
    const out: DiskExtent[] = [];
    for (let offset = 0; offset < capacity;) {
      const page = await vs.changedAreas(vm, current.snapshot, disk.key, offset, changeId);
      if (page.areas.length === 0) break;
      for (const a of page.areas) {
        if (a.start + a.length > capacity)
          throw new ImportError(
            ErrorKind.Transfer,
            `vCenter reported a changed area past the end of the disk (${a.start}+${a.length})`,
          );
        if (out.length > 0 && a.start < out.at(-1)!.offset + out.at(-1)!.length)
          throw new ImportError(
            ErrorKind.Transfer,
            'vCenter reported overlapping or unordered changed areas',
          );
        if (a.length < SMALL_AREA) out.push({ offset: a.start, length: a.length, zero: false });
        else out.push(...(await this.status(a.start, a.length)));
      }
      const next = page.startOffset + page.length;
      if (next <= offset) break;
      offset = next;
    }
    return out;
  }

  private async startNbdkit(
    server: string,
    vm: MoRef,
    snapshot: MoRef | undefined,
    file: string,
  ): Promise<void> {
    const o = this.o;
    const libdir = o.libdir ?? '/opt/vmware-vix-disklib-distrib';
    if (!(await stat(libdir).catch(() => undefined))?.isDirectory()) {
      throw new ImportError(
        ErrorKind.Invalid,
        `the VDDK library is not in ${libdir}: the importer pod needs the VDDK init image (ConfigMap v2v-vmware key vddk-init-image, or the DataVolume's vddk.initImageURL) to copy it there`,
      );
    }
    const argsFile = path.join(o.argsDir ?? '/vddk-args', 'vddk-config-file');
    const config = (await stat(argsFile).catch(() => undefined))?.isFile() ? argsFile : undefined;
    this.tmp = await mkdtemp(path.join(tmpdir(), 'cdi-vddk-'));
    const sock = path.join(this.tmp, 'nbd.sock');
    const args = [
      '--foreground',
      '--readonly',
      '--exit-with-parent',
      '-U',
      sock,
      '--pidfile',
      path.join(this.tmp, 'nbd.pid'),
      '--filter=retry',
      '--filter=cacheextents',
      '--verbose',
      '-D',
      'nbdkit.backend.datapath=0',
      '-D',
      'vddk.datapath=0',
      '-D',
      'vddk.stats=1',
      o.plugin ?? 'vddk',
      `libdir=${libdir}`,
      `server=${server}`,
      `user=${o.user}`,
      // the password never appears on a command line: nbdkit reads it from fd 3
      ...(o.password ? ['password=-3'] : []),
      `thumbprint=${o.thumbprint}`,
      `vm=moref=${vm.value}`,
      ...(snapshot ? [`snapshot=${snapshot.value}`, 'transports=file:nbdssl:nbd'] : []),
      ...(config ? [`config=${config}`] : []),
      `file=${file}`,
      ...(o.retries !== undefined ? [`retries=${o.retries}`] : []),
    ];
    // No prlimit here, unlike qemu-img and xz: nbdkit runs VMware's closed VDDK library, whose address-space needs
    // (thread stacks, its own caches) cannot be measured on this machine; the pod's memory cgroup bounds it. What we
    // read of its output is bounded (MAX_LOG_LINE, logTail, the last error only).
    const child = spawn('nbdkit', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    this.nbdkit = child;
    const pw = child.stdio[3] as NodeJS.WritableStream;
    pw.end(o.password);
    let exited: string | undefined;
    const onExit = new Promise<void>((resolve) => {
      child.once('exit', (code, sig) => {
        exited = sig ? `killed by ${sig}` : `exit code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        exited = err.message;
        resolve();
      });
    });
    // nbdkit's output is read line by line, each line bounded: a child that never ends a line holds no memory
    const lines = new BoundedLines(MAX_LOG_LINE);
    const onData = (d: Buffer): void => {
      for (const line of lines.add(d.toString('utf8'))) this.watch(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    for (let i = 0; ; i++) {
      if (exited !== undefined) throw this.nbdkitError(`nbdkit exited (${exited})`);
      try {
        this.nbd = await NbdClient.connect(sock);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'ENOENT' || code === 'ECONNREFUSED') && i < 600) {
          await Promise.race([onExit, new Promise((r) => setTimeout(r, 50))]);
          continue;
        }
        await this.errorAfter(0);
        throw this.nbdkitError(err instanceof Error ? err.message : String(err));
      }
    }
  }

  /** VDDK's version and the ESX host, from nbdkit's debug log (upstream's patterns); errors kept for messages. */
  private watch(line: string): void {
    if (line.includes('vddk: config key=password')) return;
    this.logTail.push(line);
    if (this.logTail.length > 200) this.logTail.shift();
    if (/error:/.test(line)) {
      this.errorCount++;
      this.lastError = line.replace(/^nbdkit: (vddk\[\d+\]: )?error: /, '');
    }
    const v = /^nbdkit: debug: VMware VixDiskLib \((.*)\).*build-(.*)/.exec(line);
    if (v) this.version = v[1]!;
    const h = /^nbdkit: vddk\[\d+\]: debug: DISKLIB-LINK\s+: Opened '.*@(.*):.*' \(0x/.exec(line);
    if (h) this.host = h[1]!;
  }

  /** The plugin's error reaches nbdkit's log a moment after the failed request: wait for it (at most a second). */
  private async errorAfter(seen: number): Promise<void> {
    for (let w = 0; w < 50 && this.errorCount <= seen && this.nbdkit?.exitCode === null; w++)
      await new Promise((r) => setTimeout(r, 20));
  }

  private nbdkitError(what: string, doing = `could not open ${this.o.backingFile}`, seen = 0): ImportError {
    const last = this.errorCount > seen ? this.lastError : undefined;
    if (last && /cannot open plugin|nbdkit-vddk-plugin/.test(last)) {
      return new ImportError(
        ErrorKind.Internal,
        `nbdkit's vddk plugin is not installed in this importer image (${last})`,
      );
    }
    return new ImportError(ErrorKind.Transfer, `nbdkit's vddk plugin ${doing}: ${last ?? what}`);
  }

  open(): Promise<never> {
    return Promise.reject(
      new ImportError(ErrorKind.Internal, `${this.description} is read by extents, not as one stream`),
    );
  }

  async readRange(offset: number, length: number): Promise<Buffer[]> {
    const nbd = this.nbd;
    if (!nbd) throw new ImportError(ErrorKind.Internal, 'nbdkit is not running');
    const out: Buffer[] = [];
    const seen = this.errorCount;
    for (let o = 0; o < length; o += this.maxRead) {
      const n = Math.min(this.maxRead, length - o);
      try {
        out.push(await nbd.read(offset + o, n));
      } catch (err) {
        await this.errorAfter(seen);
        throw this.nbdkitError(
          (err as Error).message,
          `failed reading ${n} bytes at ${offset + o} of ${this.o.backingFile}`,
          seen,
        );
      }
    }
    return out;
  }

  terminationInfo(): Record<string, unknown> {
    return { vddkInfo: { Version: this.version, Host: this.host } };
  }

  async close(): Promise<void> {
    await this.nbd?.close().catch(() => undefined);
    this.nbd = undefined;
    const child = this.nbdkit;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await gone;
    }
    this.nbdkit = undefined;
    await this.vsphere?.logout().catch(() => undefined);
    if (this.tmp) await rm(this.tmp, { recursive: true, force: true });
  }
}
