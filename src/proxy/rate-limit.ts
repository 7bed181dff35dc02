import type { Clock } from '../shared/clock.ts';

/**
 * Per-grant token buckets: `requests` per `perSeconds`, refilled continuously, so a
 * client may burst up to `requests` and then gets a steady rate. Time comes from the
 * injected Clock, so tests move time instead of sleeping.
 *
 * Per process: each proxy instance keeps its own buckets, so without Redis N instances behind
 * a load balancer allow up to N × the policy's rate for one grant. With REDIS_URL the proxies
 * share one bucket per grant (src/proxy/limits/redis-limits.ts, the same arithmetic in Lua) and
 * these buckets are only the fallback while Redis cannot be reached, at the policy's rate
 * divided by the number of live proxies.
 */

export interface RateLimit {
  requests: number;
  perSeconds: number;
}

type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export interface RateLimiter {
  /**
   * Takes one request from `key`'s bucket, or says how long until one is available.
   * `now` (epoch ms) lets the proxy read its clock once per call; default: the clock now.
   */
  take(key: string, limit: RateLimit, now?: number): RateDecision;
  /** Forgets a key (a grant that ended). */
  forget(key: string): void;
  readonly size: number;
}

export interface RateLimiterOptions {
  clock: Clock;
  /** Buckets kept before idle ones are swept; bounds memory. Default 100,000. */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const ALLOWED: RateDecision = Object.freeze({ ok: true });

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { clock } = options;
  const maxKeys = options.maxKeys ?? 100_000;
  const buckets = new Map<string, Bucket>();

  // A bucket that has refilled completely is indistinguishable from a new one: drop it.
  // Runs only when the map is over its bound, so its O(n) cost is amortised.
  function sweep(now: number, limit: RateLimit): void {
    const perMs = limit.requests / (limit.perSeconds * 1000);
    for (const [key, bucket] of buckets) {
      if (bucket.tokens + (now - bucket.at) * perMs >= limit.requests) buckets.delete(key);
    }
    // Still over (a flood of distinct busy keys): drop the oldest inserted.
    for (const key of buckets.keys()) {
      if (buckets.size <= maxKeys * 0.9) break;
      buckets.delete(key);
    }
  }

  return {
    take(key, limit, at) {
      const now = at ?? clock.now().getTime();
      const capacity = limit.requests;
      const perMs = capacity / (limit.perSeconds * 1000);
      let bucket = buckets.get(key);
      if (!bucket) {
        if (buckets.size >= maxKeys) sweep(now, limit);
        bucket = { tokens: capacity, at: now };
        buckets.set(key, bucket);
      } else {
        // A clock that moved backwards refills nothing rather than going negative.
        const elapsed = Math.max(0, now - bucket.at);
        bucket.tokens = Math.min(capacity, bucket.tokens + elapsed * perMs);
        bucket.at = Math.max(bucket.at, now);
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return ALLOWED;
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)) };
    },
    forget(key) {
      buckets.delete(key);
    },
    get size() {
      return buckets.size;
    },
  };
}
