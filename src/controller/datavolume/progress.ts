// Import progress from the importer's Prometheus endpoint (upstream GetProgressReportFromURL): GET
// https://<podIP>:8443/metrics, read kubevirt_cdi_import_progress_total{ownerUID="<uid>"}; for a host-assisted clone
// the source pod's kubevirt_cdi_clone_progress_total, the same way.
// The importer serves a self-signed certificate that nothing could verify, so verification is off for this scrape
// only, exactly as upstream's BuildHTTPClient does; the response is a percentage and carries nothing secret.
//
// The scrape runs beside the reconcilers, not inside them (ProgressScraper): a bounded pool of scrapes every 2 s for
// the DataVolumes whose import is running, each with an overall deadline and a body cap. A changed value queues the
// DataVolume; the reconcile only reads the last value. The pod and its address are tenant territory (a user can create
// a pod with CDI's labels and an owner reference to their PVC, and serve anything on it), so a scrape goes only to
// the pod the PVC names in storage.import.importPodName, controlled by that PVC, carrying the importer's labels, on
// the importer's port; and a server that trickles bytes, never ends, or sends megabytes costs one pool slot for at
// most the deadline.
//
// The volume populators use the same pool for their targets (a prime's importer, a tmp-pvc's source pod) through
// scoped views (ProgressScraper.scoped), one per populator: their keys, PVC keys, live apart from the DataVolume keys
// and from each other's, and a change wakes the scope's own controller, not the DataVolume controllers.
import https from 'node:https';
import {
  errorMessage,
  isControlledBy,
  realClock,
  type Clock,
  type Logger,
  type PersistentVolumeClaim as Pvc,
  type Pod as PodObj,
} from '../../kube/index.ts';
import { Res, type Kube } from '../shared/client.ts';
import { Ann, Label, Pod } from '../shared/constants.ts';

const metricNames = 'kubevirt_cdi_import_progress_total|kubevirt_cdi_clone_progress_total';

/** The progress value for `ownerUID` in a Prometheus text body, or undefined when absent. */
export function parseProgress(body: string, ownerUID: string): number | undefined {
  const esc = ownerUID.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`(?:${metricNames})\\{ownerUID="${esc}"\\} (\\d{1,3}\\.?\\d*)`);
  const m = re.exec(body);
  if (!m?.[1]) return undefined;
  const v = Number.parseFloat(m[1]);
  return Number.isFinite(v) && v >= 0 && v <= 100 ? v : undefined;
}

/** "NN.NN%" as upstream formats it (%.2f%%). */
export const formatProgress = (v: number): string => `${v.toFixed(2)}%`;

/**
 * The metrics URL of the importer pod `pvc` names, or why there is none: the pod must be the one in the PVC's
 * importPodName annotation, controlled by the PVC, labelled as CDI's importer, running, with a pod IP, and declare
 * the importer's metrics port.
 */
export function importerMetricsUrl(pvc: Pvc, pod: PodObj | undefined): { url: string } | { reason: string } {
  const name = pvc.metadata?.annotations?.[Ann.importPod];
  if (!name) return { reason: 'the PVC names no importer pod' };
  if (!pod || pod.metadata?.name !== name) return { reason: `pod ${name} does not exist` };
  if (!isControlledBy(pod, pvc))
    return { reason: `pod ${name} is not controlled by PVC ${pvc.metadata?.name}` };
  const l = pod.metadata?.labels ?? {};
  if (l[Label.app] !== Label.appValue || l[Label.component] !== Label.importerValue)
    return { reason: `pod ${name} does not carry the importer's labels` };
  return podMetricsUrl(pod);
}

/**
 * The metrics URL of a host-assisted clone's source pod: `<pvc uid>-source-pod` in the source's namespace (from
 * k8s.io/CloneRequest), with the cloner's labels and the annotation naming this PVC as its target.
 */
export function cloneSourceMetricsUrl(
  pvc: Pvc,
  pod: PodObj | undefined,
): { url: string } | { reason: string } {
  const name = `${pvc.metadata?.uid ?? ''}-source-pod`;
  if (!pod || pod.metadata?.name !== name) return { reason: `pod ${name} does not exist` };
  const l = pod.metadata?.labels ?? {};
  const target = `${pvc.metadata?.namespace}/${pvc.metadata?.name}`;
  if (l[Label.app] !== Label.appValue || l[Label.component] !== Label.cloneSourceValue)
    return { reason: `pod ${name} does not carry the cloner's labels` };
  if (pod.metadata?.annotations?.[Ann.ownerRef] !== target)
    return { reason: `pod ${name} does not work for ${target}` };
  return podMetricsUrl(pod);
}

function podMetricsUrl(pod: PodObj): { url: string } | { reason: string } {
  const name = pod.metadata?.name ?? '';
  if (pod.status?.phase !== 'Running') return { reason: `pod ${name} is not running` };
  const ip = pod.status.podIP;
  if (!ip) return { reason: `pod ${name} has no IP yet` };
  const declared = (pod.spec?.containers ?? []).some((c) =>
    (c.ports ?? []).some((p) => p.name === 'metrics' && p.containerPort === Pod.metricsPort),
  );
  if (!declared) return { reason: `pod ${name} does not declare the metrics port ${Pod.metricsPort}` };
  return { url: `https://${ip.includes(':') ? `[${ip}]` : ip}:${Pod.metricsPort}/metrics` };
}

const insecureAgent = new https.Agent({ rejectUnauthorized: false, keepAlive: false });

export interface FetchLimits {
  /** The whole scrape, connect to last byte (upstream: 2 s). */
  timeoutMs?: number;
  /** The largest body read; a bigger one is cut off and refused. */
  maxBytes?: number;
  signal?: AbortSignal;
}

/**
 * Fetches the metrics body within an overall deadline and a size cap. Connection refused reads as "no report yet"
 * (undefined); everything else that goes wrong throws one line.
 */
export function fetchMetrics(url: string, limits: FetchLimits = {}): Promise<string | undefined> {
  const timeoutMs = limits.timeoutMs ?? 2000;
  const maxBytes = limits.maxBytes ?? 64 * 1024;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = limits.signal ? AbortSignal.any([limits.signal, deadline]) : deadline;
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err: Error | undefined, body?: string): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(body);
    };
    const req = https.get(url, { agent: insecureAgent, signal }, (res) => {
      if (res.statusCode !== 200) {
        req.destroy();
        return done(new Error(`metrics scrape of ${url}: HTTP ${res.statusCode}`));
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > maxBytes) {
        req.destroy();
        return done(
          new Error(`metrics scrape of ${url}: body of ${declared} bytes is over the ${maxBytes} limit`),
        );
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          req.destroy();
          done(new Error(`metrics scrape of ${url}: body is over the ${maxBytes}-byte limit`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => done(undefined, Buffer.concat(chunks).toString('utf8')));
      res.on('error', (e) => done(e));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (deadline.aborted)
        done(new Error(`metrics scrape of ${url}: no complete answer within ${timeoutMs} ms`));
      else if (e.code === 'ECONNREFUSED') done(undefined, undefined);
      else done(new Error(`metrics scrape of ${url}: ${e.message}`));
    });
  });
}

/** One DataVolume (or populator target) whose importer or clone source pod is running. */
export interface ScrapeTarget {
  /** The DataVolume's key (a populator target's, in its scope), queued when its progress changes. */
  key: string;
  /** The ownerUID label of the metric: the DataVolume's uid, a populator target's. */
  ownerUID: string;
  namespace: string;
  /** The PVC the pod works for: the DataVolume's, a prime, a tmp-pvc. */
  pvcName: string;
}

/** What the DataVolume reconciler sees of the scraper. */
export interface ProgressSource {
  track(t: ScrapeTarget): void;
  untrack(key: string): void;
  /** The last value read for the key, if any. */
  progress(key: string): number | undefined;
}

export interface ScraperOptions {
  /** Reads the PVC and the pod (from the cache). */
  kube: Kube;
  /** Queues a DataVolume whose progress changed. */
  onChange: (key: string) => void;
  log: Logger;
  clock?: Clock;
  intervalMs?: number;
  /** Scrapes at a time. */
  concurrency?: number;
  timeoutMs?: number;
  maxBytes?: number;
  fetch?: (url: string, limits: FetchLimits) => Promise<string | undefined>;
}

interface Tracked {
  target: ScrapeTarget;
  value: number | undefined;
  /** When the last scrape ended: the next one waits intervalMs after it (a slow pod is not hammered). */
  lastEnd: number;
  busy: boolean;
  lastProblem: string;
}

export class ProgressScraper implements ProgressSource {
  private readonly o: Required<Omit<ScraperOptions, 'fetch'>> & Pick<ScraperOptions, 'fetch'>;
  private readonly clock: Clock;
  private readonly targets = new Map<string, Tracked>();
  private readonly waiting: string[] = [];
  private readonly scopes = new Map<string, (key: string) => void>();
  private active = 0;
  private stopped: AbortSignal | undefined;
  private idle: (() => void)[] = [];

  constructor(o: ScraperOptions) {
    this.clock = o.clock ?? realClock;
    this.o = {
      intervalMs: 2000,
      concurrency: 4,
      timeoutMs: 2000,
      maxBytes: 64 * 1024,
      ...o,
      clock: this.clock,
    };
  }

  track(target: ScrapeTarget): void {
    const t = this.targets.get(target.key);
    if (t && t.target.ownerUID === target.ownerUID && t.target.pvcName === target.pvcName) return;
    this.targets.set(target.key, { target, value: undefined, lastEnd: 0, busy: false, lastProblem: '' });
    this.schedule();
  }

  untrack(key: string): void {
    this.targets.delete(key);
  }

  progress(key: string): number | undefined {
    return this.targets.get(key)?.value;
  }

  /**
   * The scraper for keys of their own (`<scope><key>` here; a scope has no `/`, so no DataVolume key starts with it):
   * a change calls `onChange` with the key, not the scraper's.
   */
  scoped(scope: string, onChange: (key: string) => void): ProgressSource {
    this.scopes.set(scope, onChange);
    return {
      track: (t) => this.track({ ...t, key: scope + t.key }),
      untrack: (key) => this.untrack(scope + key),
      progress: (key) => this.progress(scope + key),
    };
  }

  /** Number of DataVolumes being scraped (metrics, tests). */
  get tracked(): number {
    return this.targets.size;
  }

  /** Scrapes every intervalMs until the signal aborts; then waits for the scrapes in flight (each is bounded). */
  async run(signal: AbortSignal): Promise<void> {
    this.stopped = signal;
    while (!signal.aborted) {
      this.schedule();
      await new Promise<void>((resolve) => {
        const cancel = this.clock.setTimer(resolve, this.o.intervalMs);
        signal.addEventListener('abort', () => (cancel(), resolve()), { once: true });
      });
    }
    if (this.active > 0) await new Promise<void>((r) => this.idle.push(r));
  }

  private schedule(): void {
    if (!this.stopped || this.stopped.aborted) return;
    const now = this.clock.now();
    for (const [key, t] of this.targets) {
      if (t.busy || now - t.lastEnd < this.o.intervalMs || this.waiting.includes(key)) continue;
      this.waiting.push(key);
    }
    while (this.active < this.o.concurrency && this.waiting.length > 0) {
      const key = this.waiting.shift()!;
      const t = this.targets.get(key);
      if (!t || t.busy) continue;
      t.busy = true;
      this.active++;
      void this.scrape(t).finally(() => {
        t.busy = false;
        t.lastEnd = this.clock.now();
        this.active--;
        if (this.active === 0) for (const w of this.idle.splice(0)) w();
        this.schedule();
      });
    }
  }

  private changed(key: string): void {
    for (const [scope, onChange] of this.scopes)
      if (key.startsWith(scope)) return onChange(key.slice(scope.length));
    this.o.onChange(key);
  }

  private async scrape(t: Tracked): Promise<void> {
    const { namespace, pvcName, ownerUID, key } = t.target;
    let problem = '';
    try {
      const pvc = await this.o.kube.get<Pvc>(Res.pvc, pvcName, namespace);
      const clone = pvc?.metadata?.annotations?.[Ann.cloneRequest];
      let where: { url: string } | { reason: string };
      if (!pvc) where = { reason: `PVC ${pvcName} does not exist` };
      else if (clone) {
        const srcNs = clone.slice(0, clone.indexOf('/'));
        const pod = await this.o.kube.get<PodObj>(Res.pod, `${pvc.metadata?.uid ?? ''}-source-pod`, srcNs);
        where = cloneSourceMetricsUrl(pvc, pod);
      } else {
        const podName = pvc.metadata?.annotations?.[Ann.importPod];
        const pod = podName ? await this.o.kube.get<PodObj>(Res.pod, podName, namespace) : undefined;
        where = importerMetricsUrl(pvc, pod);
      }
      if ('reason' in where) problem = where.reason;
      else {
        const body = await (this.o.fetch ?? fetchMetrics)(where.url, {
          timeoutMs: this.o.timeoutMs,
          maxBytes: this.o.maxBytes,
          ...(this.stopped ? { signal: this.stopped } : {}),
        });
        const v = body === undefined ? undefined : parseProgress(body, ownerUID);
        if (v !== undefined && v !== t.value && this.targets.get(key) === t) {
          t.value = v;
          this.changed(key);
        }
      }
    } catch (e) {
      problem = errorMessage(e);
    }
    if (problem && problem !== t.lastProblem)
      this.o.log.info('no progress from the importer', { key, why: problem });
    t.lastProblem = problem;
  }
}
