/**
 * STAND-IN for an oVirt engine and an ovirt-imageio daemon, for the imageio importer tests only
 * (test/importer/imageio.test.ts): neither can run on this machine. Two HTTPS servers on 127.0.0.1 speak the
 * subset of the real APIs the importer uses, with the wire details of the oVirt REST API (XML, `Version: 4`,
 * Bearer tokens from the SSO service, faults as <fault><reason/><detail/></fault>, image transfer phases) and of
 * imageio's images API (OPTIONS features, /extents with zero and hole flags, ranged GETs answered 206, 403 for a
 * ticket that is gone). Sources: docs/importer.md "imageio".
 *
 * Disks are real qcow2 chains the test makes with qemu-img; what a transfer serves is computed with qemu-img too:
 *   full (format raw)        the chain up to the layer, flattened (qemu-img convert), extents from qemu-img map
 *   shallow (format raw)     the layer alone (backing: null); ranges it does not allocate are holes
 * Faults on demand: `faults` below.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface StandinLayer {
  /** Image (volume) ID: the disk snapshot ID for snapshot layers, the disk's image_id for the active one. */
  id: string;
  /** A qcow2 file whose backing file is the parent layer's file. */
  file: string;
  /** Parent layer ID (omitted for the base layer). */
  parent?: string;
  /** true for the active layer (not a disk snapshot). */
  active?: boolean;
}

export interface StandinDisk {
  id: string;
  size: number;
  storageDomain: string;
  layers: StandinLayer[];
}

export interface StandinTransfer {
  id: string;
  ticket: string;
  layer: string;
  shallow: boolean;
  phase: string;
  /** Actions the client posted, in order (finalize, cancel, extend). */
  actions: string[];
  bytesServed: number;
}

export interface OvirtFaults {
  /** Answer the next N transfer requests with "Disk is locked". */
  lockedTimes?: number;
  /** After this many bytes served on a ticket, the engine cancels the transfer (phase cancelled_system). */
  abortAfterBytes?: number;
  /** The imageio daemon has no extents feature (an old daemon). */
  noExtents?: boolean;
  /** Disk snapshots without their <parent> (an engine before 4.4.3). */
  noParents?: boolean;
}

export interface OvirtStandin {
  /** The engine's API URL (what a DataVolume's imageio.url holds). */
  url: string;
  user: string;
  password: string;
  disks: Map<string, StandinDisk>;
  transfers: StandinTransfer[];
  faults: OvirtFaults;
  /** Tokens issued and not revoked. */
  liveTokens(): number;
  close(): Promise<void>;
}

interface Content {
  raw: string;
  extents: { start: number; length: number; zero: boolean; hole: boolean }[];
}

interface MapEntry {
  start: number;
  length: number;
  present: boolean;
  zero: boolean;
  data: boolean;
}

const xml = (s: string): string =>
  s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

function fault(reason: string, detail: string): string {
  return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<fault><reason>${xml(reason)}</reason><detail>${xml(detail)}</detail></fault>`;
}

async function readBody(req: import('node:http').IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startOvirtStandin(opts: {
  dir: string;
  tls: { cert: string; key: string };
  user?: string;
  password?: string;
  /** Where both servers listen (default 127.0.0.1; the e2e tests use the node address, for pods). */
  host?: string;
}): Promise<OvirtStandin> {
  const host = opts.host ?? '127.0.0.1';
  const user = opts.user ?? 'admin@internal';
  const password = opts.password ?? 'secret';
  const disks = new Map<string, StandinDisk>();
  const transfers: StandinTransfer[] = [];
  const faults: OvirtFaults = {};
  const tokens = new Set<string>();
  const contents = new Map<string, Promise<Content>>();
  let imageioBase = '';

  const layerOf = (id: string): { disk: StandinDisk; layer: StandinLayer } | undefined => {
    for (const disk of disks.values()) {
      const layer = disk.layers.find((l) => l.id === id);
      if (layer) return { disk, layer };
    }
    return undefined;
  };

  /** What a transfer of `layer` serves, made once with qemu-img. */
  const content = (layer: StandinLayer, shallow: boolean): Promise<Content> => {
    const key = `${layer.id}/${shallow}`;
    let c = contents.get(key);
    if (!c) {
      c = (async (): Promise<Content> => {
        const spec = shallow
          ? `json:${JSON.stringify({ driver: 'qcow2', backing: null, file: { driver: 'file', filename: layer.file } })}`
          : layer.file;
        const raw = path.join(opts.dir, `${layer.id}${shallow ? '.shallow' : ''}.raw`);
        const fmt = shallow ? [] : ['-f', 'qcow2'];
        await run('qemu-img', ['convert', ...fmt, '-O', 'raw', spec, raw]);
        const { stdout } = await run('qemu-img', ['map', '--output=json', ...fmt, spec]);
        const map = JSON.parse(stdout) as MapEntry[];
        const extents = map.map((e) => ({
          start: e.start,
          length: e.length,
          zero: e.zero || !e.data,
          // imageio's "hole": unallocated in this layer, exposing the backing chain (shallow transfers only)
          hole: shallow && !e.present,
        }));
        // merge neighbours with the same flags, as imageio does
        const merged: Content['extents'] = [];
        for (const e of extents) {
          const last = merged.at(-1);
          if (last && last.zero === e.zero && last.hole === e.hole && last.start + last.length === e.start)
            last.length += e.length;
          else merged.push({ ...e });
        }
        return { raw, extents: merged };
      })();
      contents.set(key, c);
    }
    return c;
  };

  const transferXml = (t: StandinTransfer): string =>
    `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<image_transfer href="/ovirt-engine/api/imagetransfers/${t.id}" id="${t.id}">` +
    `<direction>download</direction><format>raw</format><inactivity_timeout>60</inactivity_timeout>` +
    `<phase>${t.phase}</phase><shallow>${t.shallow}</shallow>` +
    (t.phase === 'transferring' ? `<transfer_url>${imageioBase}/images/${t.ticket}</transfer_url>` : '') +
    `<proxy_url>https://engine.invalid:54323/images/${t.ticket}</proxy_url></image_transfer>`;

  const engine = https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://engine');
      const send = (status: number, body: string, type = 'application/xml'): void => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      const body = await readBody(req);
      if (url.pathname === '/ovirt-engine/sso/oauth/token' && req.method === 'POST') {
        const f = new URLSearchParams(body);
        if (f.get('grant_type') !== 'password' || f.get('scope') !== 'ovirt-app-api') {
          send(
            400,
            JSON.stringify({ error_code: 'invalid_request', error: 'bad grant' }),
            'application/json',
          );
        } else if (f.get('username') !== user || f.get('password') !== password) {
          send(
            400,
            JSON.stringify({
              error_code: 'access_denied',
              error: `Cannot authenticate user '${f.get('username') ?? ''}': The username or password is incorrect..`,
            }),
            'application/json',
          );
        } else {
          const token = randomUUID();
          tokens.add(token);
          send(
            200,
            JSON.stringify({
              access_token: token,
              scope: 'ovirt-app-api',
              token_type: 'bearer',
              exp: '9999999999999',
            }),
            'application/json',
          );
        }
        return;
      }
      if (url.pathname === '/ovirt-engine/services/sso-logout' && req.method === 'POST') {
        tokens.delete(new URLSearchParams(body).get('token') ?? '');
        send(200, '{}', 'application/json');
        return;
      }
      if (!url.pathname.startsWith('/ovirt-engine/api')) {
        send(404, fault('Not Found', url.pathname));
        return;
      }
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth || !tokens.has(auth[1]!) || req.headers.version !== '4') {
        send(401, fault('Unauthorized', 'a valid Bearer token and Version: 4 are required'));
        return;
      }
      const p = url.pathname.slice('/ovirt-engine/api'.length);
      let m: RegExpExecArray | null;
      if ((m = /^\/disks\/([^/]+)$/.exec(p)) && req.method === 'GET') {
        const d = disks.get(decodeURIComponent(m[1]!));
        if (!d) return send(404, fault('Not Found', `Entity not found: ${m[1]}`));
        const active = d.layers.find((l) => l.active) ?? d.layers.at(-1)!;
        send(
          200,
          `<disk href="/ovirt-engine/api/disks/${d.id}" id="${d.id}"><name>disk-${d.id}</name>` +
            `<provisioned_size>${d.size}</provisioned_size><total_size>${d.size}</total_size>` +
            `<image_id>${active.id}</image_id><format>cow</format><storage_domains>` +
            `<storage_domain href="/ovirt-engine/api/storagedomains/${d.storageDomain}" id="${d.storageDomain}"/>` +
            `</storage_domains></disk>`,
        );
        return;
      }
      if ((m = /^\/storagedomains\/([^/]+)\/disksnapshots$/.exec(p)) && req.method === 'GET') {
        const sd = decodeURIComponent(m[1]!);
        const items = [...disks.values()]
          .filter((d) => d.storageDomain === sd)
          .flatMap((d) =>
            d.layers
              .filter((l) => !l.active)
              .map(
                (l) =>
                  `<disk_snapshot href="/ovirt-engine/api/storagedomains/${sd}/disksnapshots/${l.id}" id="${l.id}">` +
                  `<disk href="/ovirt-engine/api/disks/${d.id}" id="${d.id}"/><format>cow</format>` +
                  (l.parent && !faults.noParents ? `<parent id="${l.parent}"/>` : '') +
                  `<storage_domain id="${sd}"/></disk_snapshot>`,
              ),
          );
        send(200, `<disk_snapshots>${items.join('')}</disk_snapshots>`);
        return;
      }
      if (p === '/imagetransfers' && req.method === 'POST') {
        if ((faults.lockedTimes ?? 0) > 0) {
          faults.lockedTimes!--;
          return send(
            409,
            fault(
              'Operation Failed',
              '[Cannot transfer Virtual Disk: Disk is locked. Please try again later.]',
            ),
          );
        }
        const target = /<(disk|snapshot) id="([^"]+)"\s*\/>/.exec(body);
        const dl = /<direction>download<\/direction>/.test(body) && /<format>raw<\/format>/.test(body);
        if (!target || !dl)
          return send(400, fault('Bad Request', 'a raw download of a disk or snapshot is expected'));
        const shallow = /<shallow>true<\/shallow>/.test(body);
        let layerId: string | undefined;
        if (target[1] === 'disk') {
          const d = disks.get(target[2]!);
          layerId = d ? (d.layers.find((l) => l.active) ?? d.layers.at(-1)!).id : undefined;
        } else {
          const found = layerOf(target[2]!);
          layerId = found && !found.layer.active ? found.layer.id : undefined;
        }
        if (!layerId) return send(404, fault('Not Found', `Entity not found: ${target[2]}`));
        const t: StandinTransfer = {
          id: randomUUID(),
          ticket: randomUUID(),
          layer: layerId,
          shallow,
          phase: 'initializing',
          actions: [],
          bytesServed: 0,
        };
        transfers.push(t);
        send(201, transferXml(t));
        return;
      }
      if ((m = /^\/imagetransfers\/([^/]+)(?:\/(finalize|cancel|extend))?$/.exec(p))) {
        const t = transfers.find((x) => x.id === m![1]);
        if (!t) return send(404, fault('Not Found', `Entity not found: ${m[1]}`));
        if (!m[2] && req.method === 'GET') {
          // the engine needs a moment to set up the ticket: the first look still says initializing
          const shown = transferXml(t);
          if (t.phase === 'initializing') t.phase = 'transferring';
          return send(200, shown);
        }
        if (m[2] && req.method === 'POST') {
          t.actions.push(m[2]);
          if (m[2] === 'finalize') t.phase = 'finished_success';
          if (m[2] === 'cancel') t.phase = 'cancelled_user';
          return send(200, '<action><status>complete</status></action>');
        }
      }
      send(404, fault('Not Found', p));
    })().catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });

  const imageio = https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, (req, res) => {
    void (async () => {
      const m = /^\/images\/([^/?]+)(\/extents)?(?:\?.*)?$/.exec(req.url ?? '');
      const t = m ? transfers.find((x) => x.ticket === m[1] && x.phase === 'transferring') : undefined;
      if (!m || !t) {
        const text = `You are not allowed to access this resource: No such ticket ${m?.[1] ?? ''}`;
        res.writeHead(403, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      const found = layerOf(t.layer)!;
      if (req.method === 'OPTIONS') {
        const j = JSON.stringify({
          unix_socket: '\u0000/org/ovirt/imageio',
          features: faults.noExtents ? [] : ['extents'],
          max_readers: 8,
          max_writers: 1,
        });
        res.writeHead(200, {
          allow: 'GET,OPTIONS',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(j),
        });
        res.end(j);
        return;
      }
      const c = await content(found.layer, t.shallow);
      if (m[2]) {
        if (faults.noExtents) {
          res.writeHead(404).end();
          return;
        }
        const j = JSON.stringify(c.extents);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(j) });
        res.end(j);
        return;
      }
      const size = found.disk.size;
      const r = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const start = r ? Number(r[1]) : 0;
      const end = r ? Number(r[2]) : size - 1;
      if (start > end || end >= size) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      const length = end - start + 1;
      const buf = Buffer.alloc(length);
      const fh = await open(c.raw, 'r');
      await fh.read(buf, 0, length, start);
      await fh.close();
      let send = buf;
      if (faults.abortAfterBytes !== undefined && t.bytesServed + length > faults.abortAfterBytes) {
        // the engine gives up on the transfer: the ticket goes away mid-answer
        send = buf.subarray(0, Math.max(0, faults.abortAfterBytes - t.bytesServed));
        t.phase = 'cancelled_system';
      }
      t.bytesServed += send.length;
      res.writeHead(r ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'content-length': length,
        ...(r ? { 'content-range': `bytes ${start}-${end}/*` } : {}),
      });
      if (send.length < length) {
        res.write(send);
        res.destroy();
        return;
      }
      res.end(send);
    })().catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });

  await new Promise<void>((r) => engine.listen(0, host, r));
  await new Promise<void>((r) => imageio.listen(0, host, r));
  imageioBase = `https://${host}:${(imageio.address() as AddressInfo).port}`;
  return {
    url: `https://${host}:${(engine.address() as AddressInfo).port}/ovirt-engine/api`,
    user,
    password,
    disks,
    transfers,
    faults,
    liveTokens: () => tokens.size,
    close: async () => {
      for (const s of [engine, imageio]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}

/**
 * The qcow2 chain both imageio suites use, as oVirt keeps one: a base, two snapshot layers and the active layer
 * (qemu-img, qemu-io), each layer changing the disk; `want[i]` is the md5 of the chain up to layer i, flattened by
 * qemu-img. `disk` is ready for `OvirtStandin.disks`.
 */
export async function makeOvirtChain(
  dir: string,
  o: { diskId: string; storageDomain: string; layerIds: string[]; size: number },
): Promise<{ disk: StandinDisk; want: string[] }> {
  const { createHash } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  const L = o.layerIds;
  const f = (i: number): string => path.join(dir, `${L[i]}.qcow2`);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', f(0), String(o.size)]);
  for (let i = 1; i < L.length; i++)
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', f(i - 1), f(i)]);
  const writes = [
    ['write -P 0x11 0 1M', 'write -P 0x22 5M 512k', 'write -P 0x33 20M 3M'],
    ['write -P 0x44 512k 1M', 'write -z 20M 1M', 'write -P 0x55 30M 64k'],
    ['write -P 0x66 0 64k', 'write -z 5M 256k', 'write -P 0x67 12M 2M'],
    ['write -P 0x77 10M 1M'],
  ];
  const want: string[] = [];
  for (let i = 0; i < L.length; i++) {
    await run('qemu-io', ['-f', 'qcow2', ...writes[i % writes.length]!.flatMap((c) => ['-c', c]), f(i)]);
    const raw = path.join(dir, `want-${i}.raw`);
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', f(i), raw]);
    want.push(
      createHash('md5')
        .update(await readFile(raw))
        .digest('hex'),
    );
  }
  const disk: StandinDisk = {
    id: o.diskId,
    size: o.size,
    storageDomain: o.storageDomain,
    layers: L.map((id, i) => ({
      id,
      file: f(i),
      ...(i > 0 ? { parent: L[i - 1]! } : {}),
      ...(i === L.length - 1 ? { active: true } : {}),
    })),
  };
  return { disk, want };
}
