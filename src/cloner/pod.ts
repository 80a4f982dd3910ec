/**
 * The clone source pod's contract (pod `<target-uid>-source-pod`, image cdi-cloner), upstream's cmd/cdi-cloner env:
 *   VOLUME_MODE     block | filesystem
 *   MOUNT_POINT     the source: the block device (/dev/cdi-block-volume) or the read-only mount
 *                   (/var/run/cdi/clone/source)
 *   UPLOAD_URL      the target's upload server, https://cdi-upload-<pvc>.<ns>.svc:8443/v1beta1/upload
 *   CLIENT_CERT, CLIENT_KEY   this clone's client certificate (PEM; from the Secret named like the pod); its CN is
 *                   the one the target's upload server accepts
 *   SERVER_CA_CERT  the upload server CA bundle (PEM)
 *   OWNER_UID       the label of the progress metric (the DataVolume's uid)
 *   PREALLOCATION   true | false (the target preallocates; the source only reports it)
 * It sends the volume as a clone stream (./source.ts, docs/adr/0041-clone-stream.md) with `x-cdi-content-type:
 * filesystem-clone | blockdevice-clone`, serves `kubevirt_cdi_clone_progress_total{ownerUID}` on
 * https://:8443/metrics, and ends with the termination message `Clone Complete` (exit 0) or `Clone failed: <why>`
 * (exit 1: the pod restarts and the clone starts over; the target's upload server takes a new stream).
 * Tests: CDI_IMPORTER_TERMINATION_LOG moves /dev/termination-log, CDI_CLONER_METRICS_PORT (8443; "off") the metrics.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import { CloneContentType, UploadHeader } from '../api/upload.ts';
import { describe } from '../importer/errors.ts';
import { ProgressMetric, startProgressMetrics, type MetricsServer } from '../importer/metrics.ts';
import { parseBool, podPaths, writeTermination } from '../importer/pod.ts';
import { Progress } from '../importer/progress.ts';
import { humanSize } from '../importer/size.ts';
import { sendBlock, sendFilesystem, type Output, type SendResult } from './source.ts';

type Env = Record<string, string | undefined>;

export interface ClonerConfig {
  mode: 'block' | 'filesystem';
  mountPoint: string;
  url: URL;
  cert: string;
  key: string;
  ca: string;
  ownerUID: string;
  preallocation: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function required(env: Env, name: string): string {
  const v = env[name];
  if (!v)
    throw new ConfigError(`${name} is not set (the clone source pod is configured by the clone controller)`);
  return v;
}

export function configFromEnv(env: Env): ClonerConfig {
  const mode = required(env, 'VOLUME_MODE');
  if (mode !== 'block' && mode !== 'filesystem')
    throw new ConfigError(`VOLUME_MODE "${mode}" is neither block nor filesystem`);
  let url: URL;
  try {
    url = new URL(required(env, 'UPLOAD_URL'));
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`UPLOAD_URL "${env.UPLOAD_URL}" is not a URL`);
  }
  if (url.protocol !== 'https:') throw new ConfigError(`UPLOAD_URL ${url.href} is not https`);
  return {
    mode,
    mountPoint: required(env, 'MOUNT_POINT'),
    url,
    cert: required(env, 'CLIENT_CERT'),
    key: required(env, 'CLIENT_KEY'),
    ca: required(env, 'SERVER_CA_CERT'),
    ownerUID: env.OWNER_UID ?? '',
    preallocation: parseBool('PREALLOCATION', env.PREALLOCATION, false),
  };
}

interface Answer {
  status: number;
  body: string;
}

/** The target refused the stream: its status and message. */
export class TargetRefused extends Error {
  override name = 'TargetRefused';
  readonly status: number;
  constructor(status: number, body: string) {
    super(`the clone target answered ${status}${body ? `: ${body.trim()}` : ''}`);
    this.status = status;
  }
}

/**
 * One POST of the clone stream to the target, with back-pressure; an answer that comes while the stream is still
 * being sent (the target refused it) stops the sending and is what the caller hears.
 */
class StreamRequest {
  private readonly req: ClientRequest;
  private readonly answer: Promise<Answer>;
  private answered = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(c: ClonerConfig, contentType: string) {
    this.req = https.request(c.url, {
      method: 'POST',
      cert: c.cert,
      key: c.key,
      ca: c.ca,
      minVersion: 'TLSv1.2',
      agent: false,
      headers: { [UploadHeader.ContentType]: contentType, 'content-type': 'application/octet-stream' },
    });
    this.req.on('error', (e) => {
      this.failure ??= e;
      this.poke();
    });
    this.answer = new Promise<Answer>((resolve, reject) => {
      this.req.on('response', (res: IncomingMessage) => {
        this.answered = true;
        this.poke();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 4096) body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      this.req.on('error', reject);
    });
    this.answer.catch(() => undefined);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  readonly write: Output = async (...chunks) => {
    if (this.answered || this.failure) throw new Error('stopped');
    // corked: the frame header and its payload go out as one write (one chunk of the chunked body)
    this.req.cork();
    let last!: Promise<void>;
    for (const c of chunks) last = new Promise<void>((resolve) => this.req.write(c, () => resolve()));
    this.req.uncork();
    // written (the caller reuses the memory), or the target answered or failed meanwhile
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      void last.then(resolve);
    });
    this.wake = undefined;
    if (this.answered || this.failure) throw new Error('stopped');
  };

  /** Ends the body and returns the target's answer, or the reason there is none. */
  async finish(): Promise<Answer> {
    this.req.end();
    return this.answer;
  }

  /** After a failure while sending: the target's answer when it gave one (it says why), else the failure. */
  async explain(e: unknown): Promise<Error> {
    if (this.answered) {
      const a = await Promise.race([
        this.answer.catch(() => undefined),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000).unref()),
      ]);
      this.req.destroy();
      if (a) return new TargetRefused(a.status, a.body);
    }
    this.req.destroy();
    if (this.failure) return new Error(`sending to ${this.req.host}: ${describe(this.failure)}`);
    return e instanceof Error ? e : new Error(String(e));
  }
}

export interface CloneRun extends SendResult {
  seconds: number;
}

/** Sends the source to the target once; throws with a message a user can act on. */
export async function runClone(
  c: ClonerConfig,
  progress: Progress,
  log: (l: string) => void,
): Promise<CloneRun> {
  const contentType = c.mode === 'block' ? CloneContentType.Block : CloneContentType.Filesystem;
  const stream = new StreamRequest(c, contentType);
  const started = Date.now();
  let sent: SendResult;
  try {
    const opts = {
      onTotal: (n: number) => (progress.total = n),
      onRead: (n: number) => progress.add(n),
      log,
    };
    sent =
      c.mode === 'block'
        ? await sendBlock(c.mountPoint, stream.write, opts)
        : await sendFilesystem(c.mountPoint, stream.write, opts);
  } catch (e) {
    throw await stream.explain(e);
  }
  let answer: Answer;
  try {
    answer = await stream.finish();
  } catch (e) {
    throw await stream.explain(e);
  }
  if (answer.status < 200 || answer.status >= 300) throw new TargetRefused(answer.status, answer.body);
  return { ...sent, seconds: (Date.now() - started) / 1000 };
}

/** The whole pod: returns the exit code. */
export async function runClonerPod(
  env: Env,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Promise<number> {
  const p = podPaths(env);
  let metrics: MetricsServer | undefined;
  try {
    const c = configFromEnv(env);
    log(`cloning the ${c.mode} volume at ${c.mountPoint} to ${c.url.href}`);
    const progress = new Progress();
    const portText = env.CDI_CLONER_METRICS_PORT ?? '8443';
    if (portText !== 'off') {
      metrics = await startProgressMetrics({
        progress,
        ownerUID: c.ownerUID,
        port: Number(portText),
        metric: ProgressMetric.Clone,
        certName: 'cdi-cloner',
      });
      log(`progress metrics on https://0.0.0.0:${metrics.port}/metrics`);
    }
    const r = await runClone(c, progress, log);
    const rate = r.seconds > 0 ? `${humanSize(r.readBytes / r.seconds)}/s` : '';
    log(
      `clone complete: ${r.entries} entries, ${r.totalBytes} bytes of files, ${r.dataBytes} data bytes sent (holes and zero blocks left out), ${r.readBytes} bytes read in ${r.seconds.toFixed(2)}s ${rate}`,
    );
    await writeTermination(p, `Clone Complete${c.preallocation ? ', Preallocation applied' : ''}`);
    return 0;
  } catch (e) {
    const text = describe(e);
    log(`error: ${text}`);
    await writeTermination(p, `Clone failed: ${text}`);
    return 1;
  } finally {
    await metrics?.close();
  }
}
