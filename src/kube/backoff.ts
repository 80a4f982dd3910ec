// Capped exponential back-off with jitter.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  /** 0..1: the share of each delay that is randomised (0.5 means between 50% and 100% of the step). */
  jitter?: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly opts: Required<BackoffOptions>;

  constructor(opts: BackoffOptions) {
    this.opts = { factor: 2, jitter: 0.5, random: Math.random, ...opts };
  }

  /** The delay before the next attempt; grows until maxMs. */
  next(): number {
    const { initialMs, maxMs, factor, jitter, random } = this.opts;
    const step = Math.min(maxMs, initialMs * factor ** this.attempt);
    if (step < maxMs) this.attempt++;
    return Math.round(step * (1 - jitter * random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** The per-item failure delay of a work queue: base * 2^failures, capped (client-go's ItemExponentialFailureRateLimiter). */
export function itemBackoffMs(failures: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures, 52));
}
