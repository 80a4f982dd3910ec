// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics: a candidate takes the lease
// when its holder has not renewed it within leaseDuration *as observed on the candidate's own clock*
// (so clock skew between nodes does not matter), every write is a PUT carrying resourceVersion (a
// concurrent writer gets 409 and loses), the leader renews every retryPeriod and steps down when it could
// not renew for renewDeadline, or at once when it sees another holder in the lease. Like client-go's Run, run()
// returns once leadership ends: on loss at once (the work is told through its signal, not waited for: the process
// is expected to exit, as every ReleaseOnCancel user of client-go does), on shutdown after the work drained and the
// lease was released so a successor need not wait.
import { onAbort, realClock, sleep, type Clock } from './clock.ts';
import type { KubeClient } from './client.ts';
import { isAlreadyExists, isConflict, isNotFound } from './errors.ts';
import { errorMessage, silentLogger, type Logger } from './log.ts';
import type { RuntimeMetrics } from './metrics.ts';
import { microTime, Resources, type Lease } from './types.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock?: Clock;
  logger?: Logger;
  /** Called once leadership is acquired; `lost` aborts when it is lost or the elector stops. */
  onStartedLeading: (lost: AbortSignal) => void | Promise<void>;
  /** Called when leadership ends; `why` says how (another holder, renewals failing, or shutdown). */
  onStoppedLeading?: (why: LeadershipEnd) => void;
  onNewLeader?: (identity: string) => void;
  metrics?: RuntimeMetrics;
}

export interface LeadershipEnd {
  /** "shutdown": the run signal aborted and the lease was released; otherwise it was lost. */
  kind: 'shutdown' | 'taken' | 'renew-failed';
  message: string;
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly opts: Required<
    Omit<LeaderElectionOptions, 'onStoppedLeading' | 'onNewLeader' | 'logger' | 'metrics'>
  > &
    LeaderElectionOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private observed: { holder: string; renewTime: string; resourceVersion: string } | undefined;
  private observedAt = 0;
  private lease: Lease | undefined;
  private leading = false;
  private reportedLeader = '';
  private stopSignal: AbortSignal | undefined;
  private lastRenewAt = 0;
  /** Set when a renewal found the lease held by someone else. */
  private takenBy: string | undefined;

  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    this.opts = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock: realClock,
      ...opts,
    };
    if (this.opts.leaseDurationMs <= this.opts.renewDeadlineMs)
      throw new Error('leaseDuration must be greater than renewDeadline');
    this.clock = this.opts.clock;
    this.log = (opts.logger ?? silentLogger).child({
      lease: `${opts.namespace}/${opts.name}`,
      identity: opts.identity,
    });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * client-go's HealthzAdaptor: a leader whose last successful renewal is older than leaseDuration + toleranceMs is
   * unhealthy (another replica may be leading by now); a candidate is always healthy.
   */
  health(toleranceMs = 20_000): { healthy: boolean; reason?: string } {
    if (!this.leading) return { healthy: true };
    const age = this.clock.now() - this.lastRenewAt;
    if (age <= this.opts.leaseDurationMs + toleranceMs) return { healthy: true };
    return {
      healthy: false,
      reason: `leader election: lease ${this.opts.namespace}/${this.opts.name} not renewed for ${Math.round(age / 1000)} s`,
    };
  }

  /**
   * Campaigns until the signal aborts or leadership ends once. While leading, renews. Returns at once when the lease
   * is lost (the work's signal aborts; it is not waited for), or, on abort, after the work finished and the lease was
   * released (ReleaseOnCancel).
   */
  async run(signal: AbortSignal): Promise<void> {
    this.stopSignal = signal;
    if (!(await this.acquire(signal))) return;
    const lost = new AbortController();
    const unlisten = onAbort(signal, () => lost.abort());
    this.leading = true;
    this.lastRenewAt = this.clock.now();
    this.opts.metrics?.leader.set({ name: this.opts.name }, 1);
    this.log.info('became leader');
    const work = Promise.resolve()
      .then(() => this.opts.onStartedLeading(lost.signal))
      .catch((e: unknown) => this.log.error('onStartedLeading failed', { error: errorMessage(e) }));
    await this.renewLoop(lost.signal);
    lost.abort();
    unlisten();
    this.leading = false;
    this.opts.metrics?.leader.set({ name: this.opts.name }, 0);
    const lease = `${this.opts.namespace}/${this.opts.name}`;
    if (signal.aborted) {
      await work;
      await this.release();
      this.opts.onStoppedLeading?.({ kind: 'shutdown', message: `released the lease ${lease}` });
      return;
    }
    const end: LeadershipEnd = this.takenBy
      ? { kind: 'taken', message: `lost the lease ${lease}: it is now held by ${this.takenBy}` }
      : {
          kind: 'renew-failed',
          message: `lost the lease ${lease}: could not renew it for ${this.opts.renewDeadlineMs} ms`,
        };
    this.log.warn('lost leadership', { reason: end.message });
    this.opts.onStoppedLeading?.(end);
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew(this.opts.renewDeadlineMs)) return true;
      await sleep(this.clock, jittered(this.opts.retryPeriodMs), signal);
    }
    return false;
  }

  /** Renews every retryPeriod; returns when renewing failed for renewDeadline, or the signal aborted. */
  private async renewLoop(signal: AbortSignal): Promise<void> {
    let lastRenew = this.clock.now();
    while (!signal.aborted) {
      await sleep(this.clock, this.opts.retryPeriodMs, signal);
      if (signal.aborted) return;
      // Like client-go, a renewal round must finish within renewDeadline: a hung API call must not keep
      // us "leading" past the point where another candidate may take the lease.
      const remaining = this.opts.renewDeadlineMs - (this.clock.now() - lastRenew);
      if (remaining > 0 && (await this.tryAcquireOrRenew(remaining))) {
        lastRenew = this.clock.now();
        this.lastRenewAt = lastRenew;
      } else if (this.takenBy !== undefined)
        return; // someone else holds it: no point renewing until the deadline
      else if (this.clock.now() - lastRenew >= this.opts.renewDeadlineMs) return;
    }
  }

  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const deadline = AbortSignal.timeout(Math.max(1, timeoutMs));
    const signal = this.stopSignal ? AbortSignal.any([this.stopSignal, deadline]) : deadline;
    const now = this.clock.now();
    const stamp = microTime(new Date(now));
    const leaseDurationSeconds = Math.round(this.opts.leaseDurationMs / 1000);
    let current: Lease | undefined;
    try {
      current = await this.client.getOrUndefined<Lease>(
        Resources.Lease,
        this.opts.name,
        this.opts.namespace,
        signal,
      );
    } catch (e) {
      this.log.warn('could not read the lease', { error: errorMessage(e) });
      return false;
    }
    if (!current) {
      try {
        this.lease = await this.client.create<Lease>(
          Resources.Lease,
          {
            metadata: { name: this.opts.name, namespace: this.opts.namespace },
            spec: {
              holderIdentity: this.opts.identity,
              leaseDurationSeconds,
              acquireTime: stamp,
              renewTime: stamp,
              leaseTransitions: 0,
            },
          },
          { signal },
        );
        this.observe(this.lease, now);
        return true;
      } catch (e) {
        if (!isAlreadyExists(e)) this.log.warn('could not create the lease', { error: errorMessage(e) });
        return false;
      }
    }
    this.observe(current, now);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const iHold = holder === this.opts.identity;
    const durationMs = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (!iHold && holder !== '' && this.observedAt + durationMs > now) {
      if (this.leading) this.takenBy = holder;
      return false;
    }
    const next: Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.opts.identity,
        leaseDurationSeconds,
        renewTime: stamp,
        acquireTime: iHold ? (spec.acquireTime ?? stamp) : stamp,
        leaseTransitions: iHold ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      this.lease = await this.client.replace<Lease>(Resources.Lease, next, { signal });
      this.observe(this.lease, now);
      return true;
    } catch (e) {
      if (!isConflict(e) && !isNotFound(e))
        this.log.warn('could not update the lease', { error: errorMessage(e) });
      return false;
    }
  }

  /** Remembers when the lease record last changed, on our clock. */
  private observe(lease: Lease, now: number): void {
    const rec = {
      holder: lease.spec?.holderIdentity ?? '',
      renewTime: lease.spec?.renewTime ?? '',
      resourceVersion: lease.metadata?.resourceVersion ?? '',
    };
    if (!this.observed || this.observed.holder !== rec.holder || this.observed.renewTime !== rec.renewTime) {
      this.observed = rec;
      this.observedAt = now;
    }
    if (rec.holder !== this.reportedLeader && rec.holder !== '') {
      this.reportedLeader = rec.holder;
      this.opts.onNewLeader?.(rec.holder);
    }
  }

  /** Gives the lease up (client-go ReleaseOnCancel): empty holder, 1 s duration. */
  private async release(): Promise<void> {
    if (!this.lease || this.lease.spec?.holderIdentity !== this.opts.identity) return;
    const stamp = microTime(new Date(this.clock.now()));
    try {
      await this.client.replace<Lease>(
        Resources.Lease,
        {
          ...this.lease,
          spec: {
            ...this.lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: stamp,
            acquireTime: stamp,
          },
        },
        { signal: AbortSignal.timeout(this.opts.renewDeadlineMs) },
      );
      this.log.info('released the lease');
    } catch (e) {
      this.log.warn('could not release the lease', { error: errorMessage(e) });
    }
  }
}

/** client-go waits retryPeriod * (1 + rand * 1.2) between acquire attempts. */
function jittered(ms: number): number {
  return Math.round(ms * (1 + Math.random() * 1.2));
}
