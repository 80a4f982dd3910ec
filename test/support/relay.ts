/**
 * An HTTP relay on loopback in front of a real server (versitygw, fake-gcs-server, docker-registry) that passes every
 * request on unchanged (headers verbatim, so signed requests stay valid) and cuts the connection in the middle of the
 * answers a test picks: the client sees a body that breaks after `cut` bytes, as on a flaky network. It records each
 * request and how many body bytes went back, so a test can tell a continuation by range from a second full download.
 *
 *   const relay = await startCuttingRelay('http://127.0.0.1:9000', (r) => (r.n === 0 ? 1 << 20 : undefined));
 *   // options: onCut (change the object while the client waits to continue), mangle (send other bytes)
 *   // … point the source at relay.url …; relay.records[1].range === 'bytes=1048576-'
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RelayRecord {
  /** Index among the requests this relay got (0 first). */
  n: number;
  method: string;
  url: string;
  range?: string;
  ifRange?: string;
  ifMatch?: string;
  status?: number;
  /** Body bytes sent back to the client. */
  sent: number;
  /** The answer was cut after `sent` bytes. */
  cut: boolean;
}

export interface CuttingRelay {
  url: string;
  records: RelayRecord[];
  /** Body bytes sent back for requests whose URL matches. */
  sentFor(match: RegExp): number;
  close(): Promise<void>;
}

export interface RelayOptions {
  /** Runs after a cut, before the next request is served (a test can change the object in between). */
  onCut?: (r: RelayRecord) => Promise<void> | void;
  /** Changes the body bytes of an answer on their way (a server, or a network, that sends the wrong bytes). */
  mangle?: (r: RelayRecord, chunk: Buffer) => Buffer;
}

/**
 * `cutAfter(record)`: the body bytes after which this request's answer is cut (its connection destroyed), or
 * undefined to pass it on whole. It sees the request's record before the answer (method, url, range).
 */
export async function startCuttingRelay(
  target: string,
  cutAfter: (r: RelayRecord) => number | undefined,
  o: RelayOptions = {},
): Promise<CuttingRelay> {
  const to = new URL(target);
  const records: RelayRecord[] = [];
  let pending: Promise<void> = Promise.resolve();
  const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  const srv = http.createServer((req, res) => {
    void pending.then(() => {
      const rec: RelayRecord = {
        n: records.length,
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        sent: 0,
        cut: false,
        ...(req.headers.range ? { range: req.headers.range } : {}),
        ...(req.headers['if-range'] ? { ifRange: header(req.headers['if-range']) } : {}),
        ...(req.headers['if-match'] ? { ifMatch: header(req.headers['if-match']) } : {}),
      };
      records.push(rec);
      const limit = cutAfter(rec);
      const up = http.request(
        { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          rec.status = answer.statusCode;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.on('data', (raw: Buffer) => {
            if (rec.cut) return;
            const d = o.mangle ? o.mangle(rec, raw) : raw;
            if (limit !== undefined && rec.sent + d.length >= limit) {
              const keep = d.subarray(0, limit - rec.sent);
              rec.sent += keep.length;
              rec.cut = true;
              answer.destroy();
              pending = new Promise<void>((done) => {
                res.write(keep, () => {
                  req.socket.destroy();
                  void Promise.resolve(o.onCut?.(rec)).finally(done);
                });
              });
              return;
            }
            rec.sent += d.length;
            res.write(d);
          });
          answer.on('end', () => {
            if (!rec.cut) res.end();
          });
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    records,
    sentFor: (match) => records.filter((r) => match.test(r.url)).reduce((n, r) => n + r.sent, 0),
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}
