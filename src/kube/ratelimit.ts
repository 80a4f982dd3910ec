// A token bucket on an injected clock: the overall limit of a work queue's retries (client-go's BucketRateLimiter,
// 10 qps burst 100) and the event spam filter (25 burst, one token per 5 min per object).
import { realClock, type Clock } from './clock.ts';

export interface TokenBucketOptions {
  /** Tokens added per second. */
  qps: number;
  /** Bucket size (and the number of tokens it starts with). */
  burst: number;
  clock?: Clock;
}

export class TokenBucket {
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(o: TokenBucketOptions) {
    if (!(o.qps > 0) || !(o.burst >= 1)) throw new Error('a token bucket needs qps > 0 and burst >= 1');
    this.qps = o.qps;
    this.burst = o.burst;
    this.clock = o.clock ?? realClock;
    this.tokens = o.burst;
    this.last = this.clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }

  /** Takes a token if one is there now (the spam filter: no token, no event). */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Takes a token, possibly one not there yet; returns how long to wait until it is (golang.org/x/time/rate Reserve). */
  reserve(): number {
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }

  /** True when the bucket is full again: nothing has been taken for burst/qps seconds (an idle entry can be dropped). */
  get full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }
}
