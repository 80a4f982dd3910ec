/**
 * The imageio source: a disk of an oVirt (or RHV) engine, read through an image transfer from the imageio daemon
 * of one of its hosts. Wire protocol as the oVirt Go SDK speaks it (the one upstream CDI uses) and the imageio
 * documentation describes (docs/importer.md "imageio" lists the sources):
 *
 *   POST /ovirt-engine/sso/oauth/token            grant_type=password, scope=ovirt-app-api → {"access_token": …}
 *   GET  …/api/disks/{diskId}                     the disk (provisioned_size, image_id, storage_domains)
 *   GET  …/api/storagedomains/{sd}/disksnapshots  for a checkpoint: the snapshot (and its parent, oVirt ≥ 4.4.3)
 *   POST …/api/imagetransfers                     <image_transfer> download, format raw (+ shallow for a delta)
 *   GET  …/api/imagetransfers/{id}                until the phase is `transferring`; then its transfer_url
 *   OPTIONS {transfer_url}                        imageio features; "extents" → GET {transfer_url}/extents
 *   GET  {transfer_url}  Range: bytes=a-b         the data extents only (206, exactly the asked bytes)
 *   POST …/api/imagetransfers/{id}/finalize       after success (…/cancel after a failure), then the SSO logout
 *
 * Requests to the engine carry `Version: 4`, XML bodies and `Authorization: Bearer <token>`; faults are
 * `<fault><reason/><detail/></fault>`.
 *
 * Warm import (checkpoints): the first checkpoint (no previous) is a full download of the disk as of that snapshot;
 * each later one downloads only that snapshot's own layer (`shallow`, oVirt ≥ 4.4.3), whose extents say which
 * ranges it changed (`"hole": false`) and which it did not (`"hole": true`); the snapshot's parent must be the
 * previous checkpoint. A checkpoint that is not a snapshot but the disk's current image ID is the active layer.
 * docs/adr/0036-warm-import-deltas.md explains why this replaces upstream's qcow2 download + rebase + commit.
 */
import { ErrorKind, ImportError } from '../errors.ts';
import { ApiClient, type ApiResponse } from './api-client.ts';
import { child, children, childText, parseXml, xmlEscape, type XmlElement } from './xml.ts';
import type { DiskExtent, DiskMap, ImportSource, SourceInfo } from './source.ts';

export interface ImageioSourceOptions {
  /** The engine's API URL, https://engine.example.com/ovirt-engine/api. */
  endpoint: string;
  user: string;
  password: string;
  caDir: string[];
  insecureSkipVerify: boolean;
  diskId: string;
  currentCheckpoint?: string;
  previousCheckpoint?: string;
  log?: (line: string) => void;
  /** Test knobs: pause between transfer phase polls (default 1 s), between "disk is locked" retries (15 s). */
  pollMs?: number;
  lockedRetryMs?: number;
}

interface Transfer {
  id: string;
  phase: string;
  transferUrl?: string;
}

interface Snapshot {
  id: string;
  diskId?: string;
  parentId?: string;
  actualSize?: number;
}

/** imageio's extents answer (images.md "EXTENTS"). */
interface ImageioExtent {
  start: number;
  length: number;
  zero: boolean;
  hole?: boolean;
}

const TLS_HINT =
  "add the engine's CA to the DataVolume's certConfigMap (IMPORTER_CERT_DIR), or set insecureSkipVerify";
/** Phases after which a transfer needs nothing more from us (upstream's list, plus the cleanup ones RHV reports). */
const ENDED = new Set([
  'cancelled',
  'cancelled_system',
  'cancelled_user',
  'finalizing_success',
  'finalizing_failure',
  'finalizing_cleanup',
  'finished_success',
  'finished_failure',
  'finished_cleanup',
]);
/** Below this, a period without reads could let the engine's inactivity timeout (60 s) cancel the transfer. */
const KEEPALIVE_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function num(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

export class ImageioSource implements ImportSource {
  readonly description: string;
  private readonly o: ImageioSourceOptions;
  private readonly api: string;
  private readonly client: ApiClient;
  private token: string | undefined;
  private transfer: Transfer | undefined;
  private map: DiskMap | undefined;
  private ok = false;
  private closed = false;
  private lastRead = Date.now();
  private keepalive: NodeJS.Timeout | undefined;

  constructor(o: ImageioSourceOptions) {
    let u: URL;
    try {
      u = new URL(o.endpoint);
    } catch {
      throw new ImportError(ErrorKind.Invalid, `invalid oVirt engine URL "${o.endpoint}"`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new ImportError(
        ErrorKind.Invalid,
        `the oVirt engine URL must be https://…/ovirt-engine/api, not ${o.endpoint}`,
      );
    if (!o.diskId) throw new ImportError(ErrorKind.Invalid, 'no oVirt disk ID given (IMPORTER_DISK_ID)');
    if (o.previousCheckpoint && !o.currentCheckpoint)
      throw new ImportError(ErrorKind.Invalid, 'a previous checkpoint is set without a current one');
    this.o = o;
    this.api = u.toString().replace(/\/+$/, '');
    this.description = `oVirt disk ${o.diskId} at ${u.host}`;
    this.client = new ApiClient({
      caDir: o.caDir,
      insecureSkipVerify: o.insecureSkipVerify,
      what: 'the oVirt engine',
      tlsHint: TLS_HINT,
      userAgent: 'cdi-ts-importer',
    });
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  private get delta(): boolean {
    return !!this.o.currentCheckpoint && !!this.o.previousCheckpoint;
  }

  async info(): Promise<SourceInfo> {
    const m = await this.disk();
    return { size: m.size, ranges: true };
  }

  /** Logs in, finds the disk (and checkpoint), opens the image transfer, reads its extents. Once. */
  async disk(): Promise<DiskMap> {
    if (this.map) return this.map;
    await this.login();
    const disk = await this.getDisk();
    let target: { kind: 'disk' | 'snapshot'; id: string } = { kind: 'disk', id: this.o.diskId };
    const cur = this.o.currentCheckpoint;
    if (cur) {
      const snaps = await this.snapshots(disk);
      const snap = snaps.find((s) => s.id === cur);
      if (snap) target = { kind: 'snapshot', id: cur };
      else if (childText(disk, 'image_id') !== cur) {
        throw new ImportError(
          ErrorKind.Invalid,
          `checkpoint ${cur} is neither a snapshot of oVirt disk ${this.o.diskId} nor its current image`,
        );
      } else
        this.log(
          `checkpoint ${cur} is the current image of disk ${this.o.diskId}: transferring the active layer`,
        );
      if (this.delta) this.checkParent(snap, snaps, cur);
    }
    this.transfer = await this.startTransfer(target);
    const url = this.transfer.transferUrl!;
    const features = await this.features(url);
    const virtualSize = num(childText(disk, 'provisioned_size'));
    let extents: DiskExtent[];
    if (features.includes('extents')) {
      const list = await this.extents(url);
      if (this.delta) {
        if (list.some((e) => typeof e.hole !== 'boolean')) {
          throw new ImportError(
            ErrorKind.Invalid,
            `the imageio daemon reports no holes for the shallow transfer of ${cur}: warm import needs oVirt 4.4.3 or later`,
          );
        }
        extents = list
          .filter((e) => !e.hole)
          .map((e) => ({ offset: e.start, length: e.length, zero: e.zero }));
      } else extents = list.map((e) => ({ offset: e.start, length: e.length, zero: e.zero }));
      const size = list.reduce((n, e) => Math.max(n, e.start + e.length), 0);
      this.map = { size, extents, delta: this.delta };
    } else {
      if (this.delta) {
        throw new ImportError(
          ErrorKind.Invalid,
          `the imageio daemon at ${new URL(url).host} has no extents API: a delta (checkpoint ${cur}) needs it to know what changed`,
        );
      }
      if (virtualSize === undefined)
        throw new ImportError(
          ErrorKind.Transfer,
          `the oVirt engine gave no provisioned_size for disk ${this.o.diskId}`,
        );
      // An old daemon without extents: the whole disk is read, by range (zero blocks still become holes).
      extents = [{ offset: 0, length: virtualSize, zero: false }];
      this.map = { size: virtualSize, extents, delta: false };
    }
    const data = extents.reduce((n, e) => n + (e.zero ? 0 : e.length), 0);
    this.log(
      `image transfer ${this.transfer.id} of ${target.kind} ${target.id}: ${this.map.size} bytes, ${data} of them data${this.delta ? ` (delta since ${this.o.previousCheckpoint})` : ''}`,
    );
    this.keepalive = setInterval(() => void this.extendIfIdle(), KEEPALIVE_MS);
    this.keepalive.unref();
    return this.map;
  }

  open(): Promise<never> {
    // A disk source's bytes are read by extents (transfer/disk.ts); a stream from offset 0 would re-read every zero.
    return Promise.reject(
      new ImportError(ErrorKind.Internal, `${this.description} is read by extents, not as one stream`),
    );
  }

  async readRange(offset: number, length: number): Promise<Buffer[]> {
    const url = this.transfer?.transferUrl;
    if (!url) throw new ImportError(ErrorKind.Internal, 'no image transfer is open');
    const res = await this.client.request(url, {
      headers: { range: `bytes=${offset}-${offset + length - 1}` },
      max: length + 1,
    });
    if (res.status !== 206 && !(res.status === 200 && offset === 0 && res.body.length === length)) {
      throw new ImportError(
        ErrorKind.Transfer,
        this.imageioError(res, `reading ${length} bytes at ${offset}`),
      );
    }
    if (res.body.length !== length) {
      throw new ImportError(
        ErrorKind.Transfer,
        `the imageio daemon sent ${res.body.length} bytes for a range of ${length} at ${offset} (the transfer broke)`,
      );
    }
    this.lastRead = Date.now();
    return [res.body];
  }

  succeeded(): void {
    this.ok = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    try {
      if (this.transfer) await this.endTransfer(this.transfer.id, this.ok);
      if (this.token) await this.logout();
    } catch (err) {
      this.log(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await this.client.close();
    }
  }

  // ---- the engine ----

  private async login(): Promise<void> {
    const url = new URL('/ovirt-engine/sso/oauth/token', this.api).toString();
    const form = new URLSearchParams({
      grant_type: 'password',
      scope: 'ovirt-app-api',
      username: this.o.user,
      password: this.o.password,
    });
    const res = await this.client.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    });
    let j: { access_token?: unknown; error?: unknown; error_code?: unknown } = {};
    try {
      j = JSON.parse(res.text()) as typeof j;
    } catch {
      // a 401 is HTML; anything else unparsable is reported below
    }
    if (typeof j.access_token === 'string' && j.access_token !== '' && res.status < 300) {
      this.token = j.access_token;
      return;
    }
    const why = typeof j.error === 'string' ? j.error : `HTTP ${res.status}`;
    throw new ImportError(
      ErrorKind.Invalid,
      `the oVirt engine refused the credentials of user "${this.o.user}" (${why}): check the user name and password in the DataVolume's secretRef (keys accessKeyId and secretKey)`,
    );
  }

  private async logout(): Promise<void> {
    const url = new URL('/ovirt-engine/services/sso-logout', this.api).toString();
    await this.client.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ scope: '', token: this.token ?? '' }).toString(),
    });
    this.token = undefined;
  }

  private async call(
    method: string,
    path: string,
    body?: string,
  ): Promise<{ res: ApiResponse; xml?: XmlElement }> {
    const res = await this.client.request(this.api + path, {
      method,
      headers: {
        version: '4',
        accept: 'application/xml',
        authorization: `Bearer ${this.token ?? ''}`,
        ...(body !== undefined ? { 'content-type': 'application/xml' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
    const text = res.text();
    const xml = text.trim().startsWith('<')
      ? parseXml(text, `the oVirt engine's answer to ${method} ${path}`)
      : undefined;
    return { res, ...(xml ? { xml } : {}) };
  }

  /** The engine's fault as one line: `Operation Failed: [Cannot …]` (HTTP 409). */
  private fault(res: ApiResponse, xml: XmlElement | undefined): string {
    const reason = xml?.name === 'fault' ? childText(xml, 'reason') : undefined;
    const detail = xml?.name === 'fault' ? childText(xml, 'detail') : undefined;
    const text = [reason, detail].filter(Boolean).join(': ');
    return `${text || res.text().slice(0, 200).trim() || 'no details'} (HTTP ${res.status})`;
  }

  private async getDisk(): Promise<XmlElement> {
    const path = `/disks/${encodeURIComponent(this.o.diskId)}`;
    const { res, xml } = await this.call('GET', path);
    if (res.status === 404) {
      throw new ImportError(
        ErrorKind.Invalid,
        `disk ${this.o.diskId} not found on the oVirt engine at ${new URL(this.api).host}: check the DataVolume's imageio diskId`,
      );
    }
    if (res.status === 401 || res.status === 403)
      throw new ImportError(
        ErrorKind.Invalid,
        `the oVirt engine does not let user "${this.o.user}" read disk ${this.o.diskId}: ${this.fault(res, xml)}`,
      );
    if (res.status !== 200 || xml?.name !== 'disk')
      throw new ImportError(
        ErrorKind.Transfer,
        `reading disk ${this.o.diskId} from the oVirt engine failed: ${this.fault(res, xml)}`,
      );
    return xml;
  }

  /** The disk snapshots of this disk, from every storage domain it lists. */
  private async snapshots(disk: XmlElement): Promise<Snapshot[]> {
    const out: Snapshot[] = [];
    const domains = children(child(disk, 'storage_domains'), 'storage_domain')
      .map((d) => d.attrs.id)
      .filter((id): id is string => !!id);
    if (domains.length === 0)
      throw new ImportError(
        ErrorKind.Transfer,
        `the oVirt engine lists no storage domain for disk ${this.o.diskId}`,
      );
    for (const sd of domains) {
      const { res, xml } = await this.call('GET', `/storagedomains/${encodeURIComponent(sd)}/disksnapshots`);
      if (res.status !== 200 || xml?.name !== 'disk_snapshots')
        throw new ImportError(
          ErrorKind.Transfer,
          `listing the snapshots of storage domain ${sd} failed: ${this.fault(res, xml)}`,
        );
      for (const s of children(xml, 'disk_snapshot')) {
        const diskId = child(s, 'disk')?.attrs.id;
        if (!s.attrs.id || (diskId !== undefined && diskId !== this.o.diskId)) continue;
        const parentId = child(s, 'parent')?.attrs.id;
        const actualSize = num(childText(s, 'actual_size'));
        out.push({
          id: s.attrs.id,
          ...(diskId ? { diskId } : {}),
          ...(parentId ? { parentId } : {}),
          ...(actualSize !== undefined ? { actualSize } : {}),
        });
      }
    }
    return out;
  }

  /**
   * A delta applies onto what the previous checkpoint imported: the current snapshot's parent must be it (upstream
   * checks the qcow2 backing file name for the same reason). The active layer's parent is the newest snapshot: the
   * one no other snapshot of the disk names as parent.
   */
  private checkParent(snap: Snapshot | undefined, snaps: Snapshot[], cur: string): void {
    const prev = this.o.previousCheckpoint!;
    // the base snapshot has no parent; when none has one, the engine does not report them
    if (snaps.length > 1 && snaps.every((s) => s.parentId === undefined)) {
      throw new ImportError(
        ErrorKind.Invalid,
        'the oVirt engine reports no parent of its disk snapshots: warm import needs oVirt 4.4.3 or later',
      );
    }
    let parent: string | undefined;
    if (snap) parent = snap.parentId;
    else {
      const named = new Set(snaps.map((s) => s.parentId));
      const leaves = snaps.filter((s) => !named.has(s.id));
      parent = leaves.length === 1 ? leaves[0]!.id : undefined;
    }
    if (parent !== prev) {
      throw new ImportError(
        ErrorKind.Invalid,
        `checkpoint ${cur} does not follow checkpoint ${prev} (its parent is ${parent ?? 'unknown'}): applying it onto the imported disk would corrupt it`,
      );
    }
  }

  private async startTransfer(target: { kind: 'disk' | 'snapshot'; id: string }): Promise<Transfer> {
    const body =
      `<image_transfer><${target.kind} id="${xmlEscape(target.id)}"/><direction>download</direction>` +
      `<format>raw</format><inactivity_timeout>60</inactivity_timeout>${this.delta ? '<shallow>true</shallow>' : ''}</image_transfer>`;
    let t: Transfer | undefined;
    for (let attempt = 0; ; attempt++) {
      const { res, xml } = await this.call('POST', '/imagetransfers', body);
      if (res.status < 300 && xml?.name === 'image_transfer') {
        t = this.parseTransfer(xml);
        break;
      }
      const why = this.fault(res, xml);
      if (/disk is locked|disks are locked/i.test(why) && attempt < 40) {
        this.log(`disk ${this.o.diskId} is locked; waiting for it (${why})`);
        await sleep(this.o.lockedRetryMs ?? 15_000);
        continue;
      }
      throw new ImportError(
        ErrorKind.Transfer,
        `the oVirt engine refused the image transfer of ${target.kind} ${target.id}: ${why}`,
      );
    }
    this.transfer = t;
    for (let polls = 0; t.phase === 'initializing' && polls < 600; polls++) {
      await sleep(this.o.pollMs ?? 1000);
      t = await this.getTransfer(t.id);
      this.transfer = t;
    }
    if (t.phase !== 'transferring') {
      throw new ImportError(
        ErrorKind.Transfer,
        `image transfer ${t.id} of ${target.kind} ${target.id} is "${t.phase}" instead of "transferring"`,
      );
    }
    if (!t.transferUrl)
      throw new ImportError(ErrorKind.Transfer, `image transfer ${t.id} has no transfer URL`);
    return t;
  }

  private parseTransfer(xml: XmlElement): Transfer {
    const id = xml.attrs.id;
    if (!id)
      throw new ImportError(ErrorKind.Transfer, 'the oVirt engine returned an image transfer without an id');
    const transferUrl = childText(xml, 'transfer_url') || childText(xml, 'proxy_url');
    return { id, phase: childText(xml, 'phase') ?? 'unknown', ...(transferUrl ? { transferUrl } : {}) };
  }

  private async getTransfer(id: string): Promise<Transfer> {
    const { res, xml } = await this.call('GET', `/imagetransfers/${encodeURIComponent(id)}`);
    if (res.status === 404) return { id, phase: 'gone' };
    if (res.status !== 200 || xml?.name !== 'image_transfer')
      throw new ImportError(
        ErrorKind.Transfer,
        `reading image transfer ${id} failed: ${this.fault(res, xml)}`,
      );
    return this.parseTransfer(xml);
  }

  private async action(id: string, verb: 'finalize' | 'cancel' | 'extend'): Promise<void> {
    const { res, xml } = await this.call(
      'POST',
      `/imagetransfers/${encodeURIComponent(id)}/${verb}`,
      '<action/>',
    );
    if (res.status >= 300 || (xml?.name === 'action' && child(xml, 'fault')))
      throw new ImportError(
        ErrorKind.Transfer,
        `${verb} of image transfer ${id} failed: ${this.fault(res, xml)}`,
      );
  }

  /** Finalizes (success) or cancels (failure) the transfer, so the disk is unlocked; as upstream, by its phase. */
  private async endTransfer(id: string, ok: boolean): Promise<void> {
    let last: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const t = await this.getTransfer(id);
        if (t.phase === 'gone' || ENDED.has(t.phase)) return;
        const verb = t.phase === 'transferring' && ok ? 'finalize' : 'cancel';
        await this.action(id, verb);
        this.log(`image transfer ${id}: ${verb === 'finalize' ? 'finalized' : 'cancelled'}`);
        return;
      } catch (err) {
        last = err;
        await sleep(this.o.pollMs ?? 1000);
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }

  /** Upstream's ticket renewal: no read for a while (block devices being zeroed) must not let the transfer expire. */
  private async extendIfIdle(): Promise<void> {
    const t = this.transfer;
    if (!t || this.closed || Date.now() - this.lastRead < KEEPALIVE_MS) return;
    await this.action(t.id, 'extend').catch((err: unknown) =>
      this.log(`renewing the transfer ticket: ${String(err)}`),
    );
  }

  // ---- the imageio daemon ----

  private imageioError(res: ApiResponse, doing: string): string {
    const detail = res.text().slice(0, 300).trim();
    const why =
      res.status === 403
        ? 'the image transfer was cancelled or its ticket expired'
        : res.status === 416
          ? 'the range is outside the image'
          : `HTTP ${res.status}`;
    return `the imageio daemon refused ${doing}: ${why}${detail ? ` (${detail})` : ''}`;
  }

  private async features(url: string): Promise<string[]> {
    const res = await this.client.request(url, { method: 'OPTIONS' });
    // 405 (an old daemon) or 204 (an old proxy): GET and PUT only, no extents.
    if (res.status === 405 || res.status === 204) return [];
    if (res.status !== 200)
      throw new ImportError(ErrorKind.Transfer, this.imageioError(res, 'the OPTIONS request'));
    try {
      const j = JSON.parse(res.text()) as { features?: unknown };
      return Array.isArray(j.features) ? j.features.filter((f): f is string => typeof f === 'string') : [];
    } catch {
      throw new ImportError(
        ErrorKind.Transfer,
        `the imageio daemon's OPTIONS answer is not JSON: ${res.text().slice(0, 100)}`,
      );
    }
  }

  private async extents(url: string): Promise<ImageioExtent[]> {
    const res = await this.client.request(`${url}/extents`);
    if (res.status !== 200)
      throw new ImportError(ErrorKind.Transfer, this.imageioError(res, 'the extents request'));
    let j: unknown;
    try {
      j = JSON.parse(res.text());
    } catch {
      throw new ImportError(ErrorKind.Transfer, "the imageio daemon's extents answer is not JSON");
    }
    const ok = (e: unknown): e is ImageioExtent => {
      const x = e as ImageioExtent;
      return (
        typeof x === 'object' &&
        x !== null &&
        Number.isSafeInteger(x.start) &&
        Number.isSafeInteger(x.length) &&
        typeof x.zero === 'boolean' &&
        (x.hole === undefined || typeof x.hole === 'boolean')
      );
    };
    if (!Array.isArray(j) || !j.every(ok))
      throw new ImportError(
        ErrorKind.Transfer,
        "the imageio daemon's extents answer is not a list of {start, length, zero}",
      );
    return j;
  }
}
