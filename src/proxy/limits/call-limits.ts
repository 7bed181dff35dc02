import type { ActiveGrant } from '../active-grants.ts';
import type { Denial } from '../denial.ts';
import type { QuotaTracker } from '../quota.ts';
import type { RateLimit, RateLimiter } from '../rate-limit.ts';

/**
 * A call's rate limit and quota, taken in one step just before it is forwarded. Without Redis
 * the step is synchronous (this process's buckets and pending counts); with REDIS_URL it is one
 * round trip to the shared counters (src/proxy/limits/redis-limits.ts).
 */
export type LimitDecision = { ok: true; quotaCounted: boolean } | { ok: false; denial: Denial };

export interface CallLimits {
  /**
   * Takes one call from the grant's rate limit and, when the grant has a quota, reserves one call
   * of it. `now` is the call's one clock reading (epoch ms).
   */
  take(grant: ActiveGrant, rate: RateLimit, now: number): LimitDecision | Promise<LimitDecision>;
  /** Response bytes of a call that counts against its grant's quota, as they leave. */
  addBytes(grantId: string, bytes: number): void;
}

export const hasQuota = (grant: ActiveGrant): boolean =>
  grant.quotaRequests !== undefined || grant.quotaResponseBytes !== undefined;

export const ALLOWED: LimitDecision = Object.freeze({ ok: true, quotaCounted: false });
export const COUNTED: LimitDecision = Object.freeze({ ok: true, quotaCounted: true });
export const QUOTA_EXHAUSTED: LimitDecision = Object.freeze({
  ok: false,
  denial: Object.freeze({
    code: 'quota_exhausted',
    message: 'This grant has used up its quota; ask for a new grant.',
  }),
});
export const QUOTA_UNCONFIRMED: LimitDecision = Object.freeze({
  ok: false,
  denial: Object.freeze({
    code: 'quota_unconfirmed',
    message: "The proxy cannot confirm this grant's quota right now; try again shortly.",
  }),
});

export function rateLimited(retryAfterSeconds: number): LimitDecision {
  return {
    ok: false,
    denial: { code: 'rate_limited', message: 'Too many calls for this grant.', retryAfterSeconds },
  };
}

/**
 * Limits of this process alone (no REDIS_URL): each proxy process has its own buckets, so N
 * processes let a grant make up to N × its rate; a quota is exact with one process and may
 * overshoot with several (see src/proxy/quota.ts).
 */
export function createLocalLimits(rateLimiter: RateLimiter, quota: QuotaTracker): CallLimits {
  return {
    take(grant, rate, now) {
      const taken = rateLimiter.take(grant.id, rate, now);
      if (!taken.ok) return rateLimited(taken.retryAfterSeconds);
      if (!hasQuota(grant)) return ALLOWED;
      return quota.admit(grant) ? COUNTED : QUOTA_EXHAUSTED;
    },
    addBytes: (grantId, bytes) => quota.addBytes(grantId, bytes),
  };
}
