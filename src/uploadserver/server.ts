/**
 * The upload server (upstream pkg/uploadserver): the short-lived HTTPS server of pod `cdi-upload-<pvc>` that receives
 * one image, or archive, through cdi-uploadproxy and writes it to the volume with the importer's data path
 * (runImport: sniffing through compression, hostile-image checks, raw written straight to the volume, scratch only
 * where the format needs it, archive extraction). It exits after one successful upload or at its deadline.
 *
 *   POST /v1beta1/upload, /v1alpha1/upload                   raw body; the answer comes after the image is written
 *   POST /v1beta1/upload-async, /v1alpha1/upload-async       raw body; the answer comes once every byte is taken in
 *   HEAD on the async paths                                  200: the capability probe
 *   POST /v1beta1/upload-form[-async], /v1alpha1/...         multipart/form-data, the part named `file`
 *   POST /v1beta1/upload-archive, /v1alpha1/upload-archive   a tar (optionally gz/xz/zst) extracted into the volume
 *   GET  /healthz                                            "OK"
 * Status codes as upstream: 401 without a verified client certificate whose CN is CLIENT_NAME, 503 while another
 * upload runs, 409 once an upload succeeded, 400 when the image does not fit, 500 for any other failure (the server
 * stays up for another try). Beyond upstream, both optional (docs/upload.md): `x-cdi-checksum` and resume.
 * With `x-cdi-content-type: filesystem-clone | blockdevice-clone` on a sync (or archive) path the body is the
 * target side of a host-assisted clone (./clone.ts; the clone stream of docs/adr/0041-clone-stream.md).
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  ArchiveUploadPaths,
  AsyncFormPaths,
  AsyncUploadPaths,
  CloneContentType,
  SyncFormPaths,
  SyncUploadPaths,
  UploadHeader,
  UploadPath,
} from '../api/upload.ts';
import { parseChecksum, type Checksum } from '../importer/checksum.ts';
import { describe, ErrorKind, ImportError } from '../importer/errors.ts';
import { ContentType, runImport, type ImportResult } from '../importer/import.ts';
import type { Limits } from '../importer/image/run.ts';
import { StreamSource } from '../importer/source/stream.ts';
import { UploadBody } from './body.ts';
import { BadCloneStream, receiveClone } from './clone.ts';
import { boundaryOf, filePart, MultipartError } from './multipart.ts';
import { resolveTarget, type TargetPaths } from './target.ts';

export interface UploadServerConfig {
  bindAddress: string;
  port: number;
  tls: {
    cert: string;
    key: string;
    clientCa: string;
    minVersion?: import('node:tls').SecureVersion;
    ciphers?: string;
  };
  /** The CN a client certificate must have (upstream CLIENT_NAME). */
  clientName: string;
  paths: TargetPaths;
  /** UPLOAD_IMAGE_SIZE in bytes, when set. */
  imageSize?: number;
  filesystemOverhead: number;
  preallocation: boolean;
  /** When reached with no upload going on, the server stops with deadlinePassed (upstream DEADLINE). */
  deadline?: Date;
  /** How long a cut-off resumable upload waits for its continuation. */
  resumeWindowMs?: number;
  /** The children's limits (qemu-img, xz), sized from the pod's memory limit; DEFAULT_LIMITS when unset. */
  limits?: Limits;
  log?: (line: string) => void;
}

/** upstream RunResult */
export interface RunResult {
  cloneTarget: boolean;
  preallocationApplied: boolean;
  deadlinePassed: boolean;
}

const DEFAULT_RESUME_WINDOW_MS = 10 * 60_000;

type Mode = 'sync' | 'async';

interface Attachment {
  req: IncomingMessage;
  res: ServerResponse;
  detached: boolean;
  pump: Promise<PumpOutcome>;
}

type PumpOutcome = 'complete' | 'cut' | 'detached' | 'stopped';

type Outcome = { ok: ImportResult } | { err: unknown };

interface Session {
  id: string | undefined;
  /** async: the client heard 200 already, so a later failure can only fail the pod */
  acknowledged?: boolean;
  resumable: boolean;
  mode: Mode;
  body: UploadBody;
  /** Settles (never rejects) when the data path is done. */
  settled: Promise<Outcome>;
  outcome?: Outcome;
  attached?: Attachment;
  waitTimer?: NodeJS.Timeout;
  /** The request was at fault (a malformed form): answered 400 whatever the data path says. */
  clientError?: RequestError;
}

/** Errors the client caused before any data moved (bad headers, bad form). */
class RequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Escapes what a server echoes into a body a browser might render (upstream: html.EscapeString). */
export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c]!,
  );
}

/** True for the data path's "does not fit" errors (upstream IsNoCapacityError): the importer's wording says so. */
export function isNoCapacity(err: unknown): boolean {
  return /A larger PVC is required/.test(describe(err));
}

/** The status and body upstream's handleStreamError gives, plus 400 for a checksum mismatch. */
export function streamErrorResponse(err: unknown): { status: number; body: string } {
  if (err instanceof RequestError) return { status: err.status, body: err.message };
  if (isNoCapacity(err)) {
    return {
      status: 400,
      body: `Saving stream failed: effective image size is larger than the reported available storage: ${describe(err)}`,
    };
  }
  if (err instanceof BadCloneStream) return { status: 400, body: `Saving stream failed: ${describe(err)}` };
  if (err instanceof ImportError && err.kind === ErrorKind.Checksum) {
    return { status: 400, body: `Saving stream failed: ${describe(err)}` };
  }
  return { status: 500, body: `Saving stream failed: ${describe(err)}` };
}

/** How long an answer given before the whole body arrived keeps reading (and dropping) the rest of it. */
const LingerMs = 2000;

/**
 * Answers a request. An answer given before the whole body arrived (401, 412, 503, an early 400) would otherwise
 * close a connection the client is still writing to (Node closes after the answer when the client asked for
 * `connection: close`, as Node's own clients without an agent do), and the reset can reach the client before it has
 * read the answer: it sees EPIPE or ECONNRESET instead of the status. So, like nginx's lingering close, the connection
 * stays open after such an answer and the rest of the body is read and dropped for a short while, giving the client
 * time to read the answer and stop; then it is closed. A body that ends within that time leaves it usable.
 */
function send(res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const req = res.req as IncomingMessage | undefined;
  const early = req !== undefined && !req.complete && !req.destroyed && headers['connection'] === undefined;
  if (early) res.shouldKeepAlive = true;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(escapeHtml(body));
  if (early) linger(req);
}

function linger(req: IncomingMessage): void {
  const timer = setTimeout(() => req.socket.destroy(), LingerMs);
  timer.unref();
  const drain = (): void => {
    while (req.read() !== null);
  };
  req.on('readable', drain);
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  drain();
}

/** An error answer: before the whole body arrived, send lingers; after it, the connection is closed. */
function answerEarly(req: IncomingMessage, res: ServerResponse, status: number, body: string): void {
  if (req.complete || req.destroyed) return send(res, status, body, { connection: 'close' });
  send(res, status, body);
}

/** A message as a header value: one line of printable ASCII. */
function headerText(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class UploadServer {
  private readonly cfg: UploadServerConfig;
  private readonly log: (line: string) => void;
  private readonly server: https.Server;
  private session: Session | undefined;
  /** The last failed resumable upload, so its continuation hears why rather than "unknown". */
  private lastFailure: { id: string; status: number; body: string } | undefined;
  private done: RunResult | undefined;
  private readonly finished: Promise<RunResult>;
  private finish!: (r: RunResult) => void;
  private fatal!: (e: Error) => void;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Answers still being written: close() lets them reach the client first. */
  private readonly answering = new Set<ServerResponse>();
  /** A clone stream being received (settles, never rejects). */
  private cloning: Promise<void> | undefined;

  constructor(cfg: UploadServerConfig) {
    this.cfg = cfg;
    this.log = cfg.log ?? ((l) => process.stderr.write(l + '\n'));
    this.finished = new Promise((resolve, reject) => {
      this.finish = resolve;
      this.fatal = reject;
    });
    this.server = https.createServer(
      {
        cert: cfg.tls.cert,
        key: cfg.tls.key,
        ca: cfg.tls.clientCa,
        requestCert: true,
        rejectUnauthorized: false, // upstream VerifyClientCertIfGiven: /healthz and the HEAD probe need none
        minVersion: cfg.tls.minVersion ?? 'TLSv1.2',
        ...(cfg.tls.ciphers ? { ciphers: cfg.tls.ciphers } : {}),
      },
      (req, res) => void this.handle(req, res),
    );
    // An image upload can take hours: no whole-request timeout (Node's default is 5 minutes).
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
  }

  /** Starts listening; resolves with the port. */
  async listen(): Promise<number> {
    this.server.listen(this.cfg.port, this.cfg.bindAddress);
    await once(this.server, 'listening');
    if (this.cfg.deadline) {
      const ms = Math.max(0, this.cfg.deadline.getTime() - Date.now());
      this.deadlineTimer = setTimeout(() => void this.onDeadline(), Math.min(ms, 2 ** 31 - 1));
    }
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Resolves after one successful upload or at the deadline; rejects when processing failed after an async upload
   * was acknowledged. The server keeps answering (409 after a success) until close().
   */
  result(): Promise<RunResult> {
    return this.finished;
  }

  /**
   * Stops the server. Idle keep-alive sockets go now; one still answering goes right after its answer; anything
   * left after `graceMs` is cut.
   */
  async close(graceMs = 5000): Promise<void> {
    clearTimeout(this.deadlineTimer);
    // the answer to the request that finished the upload may still be on its way out
    const pending = [...this.answering].map((r) => new Promise((resolve) => r.once('close', resolve)));
    const wait = setTimeout(() => this.server.closeAllConnections(), graceMs);
    await Promise.all(pending);
    clearTimeout(wait);
    this.server.keepAliveTimeout = 50;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    const grace = setTimeout(() => this.server.closeAllConnections(), graceMs);
    grace.unref();
    await closed;
    clearTimeout(grace);
  }

  private async onDeadline(): Promise<void> {
    const s = this.session;
    if (s && !s.attached && !s.body.complete && !s.outcome) {
      this.log('deadline passed while a cut-off upload waited for its continuation; giving it up');
      s.body.fail(new ImportError(ErrorKind.Transfer, 'the upload server reached its deadline'));
    }
    while (this.session || this.cloning) {
      if (this.session) await this.session.settled;
      else await this.cloning;
    }
    if (this.done) return;
    this.log('deadline passed with no upload; exiting');
    this.finish({ cloneTarget: false, preallocationApplied: false, deadlinePassed: true });
  }

  private clientVerified(req: IncomingMessage): boolean {
    const sock = req.socket as TLSSocket;
    if (!sock.authorized) return false;
    const cn = sock.getPeerCertificate()?.subject?.CN;
    return (Array.isArray(cn) ? cn : [cn]).includes(this.cfg.clientName);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.answering.add(res);
    res.once('close', () => this.answering.delete(res));
    try {
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      if (path === UploadPath.Healthz) return send(res, 200, 'OK');
      const sync = SyncUploadPaths.includes(path);
      const async = AsyncUploadPaths.includes(path);
      const archive = ArchiveUploadPaths.includes(path);
      const formSync = SyncFormPaths.includes(path);
      const formAsync = AsyncFormPaths.includes(path);
      if (!(sync || async || archive || formSync || formAsync)) return send(res, 404, '404 page not found');
      const id = header(req, UploadHeader.UploadId);
      if (req.method === 'HEAD') {
        if (id !== undefined) return await this.handleQuery(req, res, id);
        return send(res, async || formAsync ? 200 : 404);
      }
      if (req.method !== 'POST') return send(res, 404);
      if (!this.clientVerified(req)) return send(res, 401);
      const clone = header(req, UploadHeader.ContentType);
      if (clone === CloneContentType.Filesystem || clone === CloneContentType.Block) {
        if (!(sync || archive)) return send(res, 400, `a clone stream (${clone}) goes to ${UploadPath.Sync}`);
        return await this.handleClone(req, res, clone);
      }
      await this.handleUpload(req, res, {
        mode: async || formAsync ? 'async' : 'sync',
        form: formSync || formAsync,
        contentType: archive ? ContentType.Archive : ContentType.KubeVirt,
        id,
      });
    } catch (e) {
      this.log(`error handling ${req.method} ${req.url}: ${describe(e)}`);
      const { status, body } = streamErrorResponse(e);
      answerEarly(req, res, status, body);
    }
  }

  /** The target side of a host-assisted clone: the body is a clone stream, written to the volume as it arrives. */
  private async handleClone(req: IncomingMessage, res: ServerResponse, contentType: string): Promise<void> {
    if (this.done) return send(res, 409, '', { connection: 'close' });
    if (this.session || this.cloning) {
      this.log('got a clone stream while another upload or clone runs');
      return send(res, 503);
    }
    let settle!: () => void;
    this.cloning = new Promise((r) => (settle = r));
    this.log(`clone stream started (${contentType})`);
    const started = Date.now();
    try {
      // not destroyed when the reader stops early: the error answer must still reach the client (below)
      const body = req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
      const r = await receiveClone(body, {
        complete: () => req.complete,
        paths: this.cfg.paths,
        contentType,
        filesystemOverhead: this.cfg.filesystemOverhead,
        ...(this.cfg.imageSize !== undefined ? { imageSize: this.cfg.imageSize } : {}),
        preallocation: this.cfg.preallocation,
        log: this.log,
      });
      const secs = (Date.now() - started) / 1000;
      this.log(
        `clone done: ${r.kind} stream, ${r.entries} entries, ${r.dataBytes} data bytes in ${secs.toFixed(2)}s${r.diskSize !== undefined ? `, disk ${r.diskSize} bytes` : ''}`,
      );
      this.done = { cloneTarget: true, preallocationApplied: r.preallocationApplied, deadlinePassed: false };
      clearTimeout(this.deadlineTimer);
      send(res, 200);
      this.finish(this.done);
    } catch (e) {
      this.log(`clone failed: ${describe(e)}`);
      const { status, body } = streamErrorResponse(e);
      if (req.complete || req.destroyed) {
        send(res, status, body, { connection: 'close' });
        return;
      }
      // The source is still sending: answer, and throw the rest away until it stops (it does once it reads the
      // answer) rather than closing at once: a socket closed with unread bytes resets, and the answer could be lost
      // on the way. A source that goes on is cut after 10 s. (Node would close the connection with the answer, as
      // the body is not all read; keep-alive keeps it open while the rest is drained.)
      res.shouldKeepAlive = true;
      send(res, status, body);
      req.resume();
      const cut = setTimeout(() => req.socket.destroy(), 10_000);
      cut.unref();
      req.socket.once('close', () => clearTimeout(cut));
    } finally {
      this.cloning = undefined;
      settle();
    }
  }

  private async handleQuery(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    if (!this.clientVerified(req)) return send(res, 401);
    if (this.done) return send(res, 409, '', { connection: 'close' });
    const s = this.session;
    if (s && s.id === id && !s.outcome) {
      // The client asks because it thinks its request died: let go of it, so the offset is final. (Once every
      // byte is in, the offset is the whole length: nothing is left to send.)
      if (s.attached && !s.body.complete) await this.detach(s, true);
      return send(res, 200, '', { [UploadHeader.UploadOffset]: String(s.body.received) });
    }
    if (this.lastFailure?.id === id) {
      return send(res, this.lastFailure.status, '', {
        [UploadHeader.UploadError]: headerText(this.lastFailure.body),
      });
    }
    return send(res, 404, '', { [UploadHeader.UploadError]: `no upload ${headerText(id)} to continue` });
  }

  /** Stops reading the attached request (its client gave up on it); `wait` arms the resume window. */
  private async detach(s: Session, wait: boolean): Promise<void> {
    const att = s.attached;
    if (!att) return;
    att.detached = true;
    att.req.destroy();
    await att.pump;
    if (s.attached === att) s.attached = undefined;
    if (wait) this.awaitContinuation(s, this.cutMessage(s));
  }

  private cutMessage(s: Session): string {
    return `the upload was cut off after ${s.body.received}${s.body.total !== undefined ? ` of ${s.body.total}` : ''} bytes`;
  }

  private awaitContinuation(s: Session, msg: string): void {
    if (s.outcome) return;
    const window = this.cfg.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS;
    this.log(`${msg}; waiting ${Math.round(window / 1000)}s for its continuation (id ${s.id ?? ''})`);
    clearTimeout(s.waitTimer);
    s.waitTimer = setTimeout(() => {
      s.body.fail(
        new ImportError(
          ErrorKind.Transfer,
          `${msg} and was not continued within ${Math.round(window / 1000)}s`,
        ),
      );
    }, window);
  }

  private async handleUpload(
    req: IncomingMessage,
    res: ServerResponse,
    o: { mode: Mode; form: boolean; contentType: ContentType; id: string | undefined },
  ): Promise<void> {
    if (this.done) return send(res, 409, '', { connection: 'close' });
    const offsetText = header(req, UploadHeader.UploadOffset);
    let s = this.session;
    if (
      s &&
      o.id !== undefined &&
      s.id === o.id &&
      offsetText !== undefined &&
      !s.outcome &&
      !s.body.complete
    ) {
      return this.continueUpload(s, req, res, offsetText);
    }
    if (s && !s.attached && !s.body.complete && !s.outcome && s.resumable) {
      // A cut-off upload waits for its continuation, and a new upload came instead (e.g. a client that retries
      // from the start): the new one wins, as it would upstream.
      this.log('a new upload replaces the cut-off one that waited for its continuation');
      s.body.fail(new ImportError(ErrorKind.Transfer, 'replaced by a new upload'));
      await s.settled;
      s = this.session;
    }
    if (s || this.cloning) {
      this.log('got a concurrent upload request');
      return send(res, 503);
    }
    if (offsetText !== undefined && offsetText !== '0') {
      if (o.id !== undefined && this.lastFailure?.id === o.id) {
        return send(res, this.lastFailure.status, this.lastFailure.body);
      }
      return send(res, 404, `no upload ${o.id ?? ''} to continue; start it again from the first byte`);
    }
    await this.startUpload(req, res, o);
  }

  private async startUpload(
    req: IncomingMessage,
    res: ServerResponse,
    o: { mode: Mode; form: boolean; contentType: ContentType; id: string | undefined },
  ): Promise<void> {
    const checksumText = header(req, UploadHeader.Checksum);
    let checksum: Checksum | undefined;
    try {
      checksum = checksumText !== undefined ? parseChecksum(checksumText) : undefined;
    } catch (e) {
      return send(res, 400, `${UploadHeader.Checksum}: ${describe(e)}`);
    }
    const lengthText = header(req, 'content-length');
    const total = !o.form && lengthText !== undefined ? Number(lengthText) : undefined;
    const resumable = o.id !== undefined && !o.form && total !== undefined;
    const body = new UploadBody({
      ...(total !== undefined ? { total } : {}),
      ...(checksum ? { checksum } : {}),
    });
    // The session exists from here on (no await before): a concurrent request hears 503, a query finds it.
    const session: Session = {
      id: o.id,
      resumable,
      mode: o.mode,
      body,
      settled: Promise.resolve({ err: undefined }),
    };
    this.session = session;
    session.settled = this.importInto(session, o.contentType, total).then(
      (ok) => ({ ok }),
      (err: unknown) => ({ err }),
    );
    void session.settled.then((out) => this.onSettled(session, out));
    const input = o.form ? this.formFile(session, req) : req;
    await this.serveAttached(session, req, res, input, o.form);
  }

  /** The `file` part of a form body; a malformed form is the client's error (400). */
  private async *formFile(s: Session, req: IncomingMessage): AsyncGenerator<Buffer> {
    let part: AsyncIterable<Buffer>;
    try {
      part = await filePart(req, boundaryOf(header(req, 'content-type')));
    } catch (e) {
      if (e instanceof MultipartError) s.clientError = new RequestError(400, e.message);
      throw e;
    }
    try {
      yield* part;
    } catch (e) {
      if (e instanceof MultipartError) s.clientError = new RequestError(400, e.message);
      throw e;
    }
  }

  private async importInto(
    s: Session,
    contentType: ContentType,
    total: number | undefined,
  ): Promise<ImportResult> {
    const target = await resolveTarget(this.cfg.paths, contentType, {
      filesystemOverhead: this.cfg.filesystemOverhead,
      ...(this.cfg.imageSize !== undefined ? { imageSize: this.cfg.imageSize } : {}),
    });
    this.log(
      `upload started: ${contentType}, ${s.mode}${total !== undefined ? `, ${total} bytes` : ''}${s.resumable ? `, resumable (id ${s.id ?? ''})` : ''} -> ${target.target.path}`,
    );
    return runImport({
      source: new StreamSource(s.body.readable, { ...(total !== undefined ? { size: total } : {}) }),
      contentType,
      target: target.target,
      ...(target.size !== undefined ? { size: target.size } : {}),
      available: target.available,
      preallocate: this.cfg.preallocation,
      ...(target.scratchDir ? { scratchDir: target.scratchDir } : {}),
      cache: 'writeback',
      ...(this.cfg.limits ? { limits: this.cfg.limits } : {}),
    });
  }

  private async continueUpload(
    s: Session,
    req: IncomingMessage,
    res: ServerResponse,
    offsetText: string,
  ): Promise<void> {
    if (s.attached) {
      // The old request is still attached (its connection is half dead): take over from it.
      this.log('a continuation arrived while the cut-off request was still attached; detaching it');
      await this.detach(s, false);
    }
    clearTimeout(s.waitTimer);
    const offset = Number(offsetText);
    if (!Number.isSafeInteger(offset) || offset !== s.body.received) {
      // Precondition failed: the client must continue from what the server holds.
      return send(res, 412, `the upload continues at byte ${s.body.received}, not ${offsetText}`, {
        [UploadHeader.UploadOffset]: String(s.body.received),
      });
    }
    const length = Number(header(req, 'content-length'));
    if (s.body.total !== undefined && length !== s.body.total - offset) {
      return send(
        res,
        400,
        `a continuation at byte ${offset} must carry the remaining ${s.body.total - offset} bytes`,
      );
    }
    this.log(`upload ${s.id ?? ''} continues at byte ${offset}`);
    await this.serveAttached(s, req, res, req);
  }

  /** Feeds the request into the session's body, then answers it (or leaves it to a continuation). */
  private async serveAttached(
    s: Session,
    req: IncomingMessage,
    res: ServerResponse,
    input: AsyncIterable<Buffer>,
    form = false,
  ): Promise<void> {
    const att: Attachment = { req, res, detached: false, pump: Promise.resolve('stopped') };
    att.pump = this.pump(s, att, input, form);
    s.attached = att;
    const outcome = await att.pump;
    if (s.attached === att) s.attached = undefined;
    if (outcome === 'detached') return;
    if (outcome === 'cut') {
      const msg = this.cutMessage(s);
      if (s.resumable) this.awaitContinuation(s, msg);
      else {
        this.log(msg);
        s.body.fail(new ImportError(ErrorKind.Transfer, msg));
      }
      return;
    }
    let out: Outcome | undefined;
    if (outcome === 'complete') {
      s.body.end();
      // async: answer once every byte is taken in; the rest (conversion, resize) goes on after the answer
      out =
        s.mode === 'async'
          ? await Promise.race([s.body.consumed.then(() => undefined), s.settled])
          : await s.settled;
    } else out = await s.settled;
    if (out && 'err' in out) {
      const { status, body } = streamErrorResponse(s.clientError ?? out.err);
      // the rest of the body is not wanted: answer now, then let the connection go
      return answerEarly(att.req, res, status, body);
    }
    if (s.mode === 'async' && !out) {
      s.acknowledged = true;
      send(res, 200);
      return;
    }
    send(res, 200);
  }

  private async pump(
    s: Session,
    att: Attachment,
    input: AsyncIterable<Buffer>,
    form: boolean,
  ): Promise<PumpOutcome> {
    const it = input[Symbol.asyncIterator]();
    const failed = s.body.whenFailed.then(() => undefined);
    try {
      for (;;) {
        const next = it.next();
        next.catch(() => undefined); // settles after we stop waiting on it (the socket closes)
        const r = await Promise.race([next, failed]);
        if (att.detached) return 'detached';
        if (r === undefined) return 'stopped';
        if (r.done) break;
        await s.body.write(r.value);
      }
    } catch (e) {
      if (att.detached) return 'detached';
      if (s.body.failed) return 'stopped';
      if (e instanceof MultipartError) {
        s.body.fail(s.clientError ?? new ImportError(ErrorKind.Invalid, e.message));
        return 'stopped';
      }
      return 'cut';
    }
    if (att.detached) return 'detached';
    // A body that ended by the transport but short of its length was cut off as well.
    if (!form && !att.req.complete) return 'cut';
    return 'complete';
  }

  private onSettled(s: Session, out: Outcome): void {
    s.outcome = out;
    clearTimeout(s.waitTimer);
    if (this.session === s) this.session = undefined;
    if ('err' in out) {
      const { status, body } = streamErrorResponse(out.err);
      this.log(`upload failed: ${describe(out.err)}`);
      if (s.id !== undefined) this.lastFailure = { id: s.id, status, body };
      if (s.acknowledged) {
        // Upstream: the client already heard 200 (async); the pod fails and is restarted, the error in its logs
        // and termination message.
        clearTimeout(this.deadlineTimer);
        this.fatal(new Error(describe(out.err)));
      }
      return;
    }
    const r = out.ok;
    this.log(`upload done: ${[...r.layers, r.format].join(' -> ')} via ${r.path}, ${r.size} bytes`);
    this.done = { cloneTarget: false, preallocationApplied: r.preallocationApplied, deadlinePassed: false };
    clearTimeout(this.deadlineTimer);
    this.finish(this.done);
  }
}
