import type { ActiveGrant } from './active-grants.ts';

/**
 * Per-grant quotas as one proxy process sees them: the whole check without Redis; with REDIS_URL
 * the shared count decides (src/proxy/limits/redis-limits.ts) and this tracker keeps what this
 * process admitted and PostgreSQL has not committed yet (re-registered after Redis loses its data,
 * and the `local` fallback while Redis is down).
 *
 * The count of record is `grants.used_requests` / `used_response_bytes`, added to by every
 * proxy's audit batch in the batch's own transaction (src/audit/call-writer.ts), which also
 * NOTIFYs the grant so every proxy's live view re-reads the row. Between two batches this
 * process adds what it has admitted but not yet committed (`pending`), so its own calls are
 * counted at once and exactly; other processes' calls arrive with the next re-read.
 *
 * How far over a burst can go: a call is admitted when committed + this process's pending
 * is below the quota. Calls admitted by OTHER proxies since their last committed batch are
 * not seen yet, so with P proxies the total can exceed the request quota by what the other
 * P−1 admit in one batch-and-notify cycle (flush interval 25 ms + the batch write + the
 * NOTIFY re-read: typically well under 100 ms of that grant's traffic). With one proxy it
 * is exact. Byte quotas are checked before a call, so the call that crosses the limit
 * finishes (and each call in flight at that moment) — a byte quota can be exceeded by up to
 * the responses in flight when it is reached.
 */
export interface QuotaTracker {
  /** True, and counts the call as pending, when the grant has room for one more call. */
  admit(grant: ActiveGrant): boolean;
  /**
   * Counts a call as pending that the shared count (src/proxy/limits/redis-limits.ts) admitted,
   * without checking: this process still knows what it has admitted and not yet committed.
   */
  reserve(grantId: string): void;
  /** Each grant's calls and bytes this process admitted or sent that no committed batch holds yet. */
  unsettled(): Map<string, { requests: number; bytes: number }>;
  /** Response bytes of an admitted call, once known. */
  addBytes(grantId: string, bytes: number): void;
  /**
   * A batch committed `requests` calls and `bytes` for the grant; the row now says `used`.
   * Called by the audit appender after commit.
   */
  settled(grantId: string, requests: number, bytes: number, used: { requests: number; bytes: number }): void;
}

interface Counts {
  pendingRequests: number;
  pendingBytes: number;
  /** The newest totals this process knows were committed (from its own batches). */
  knownRequests: number;
  knownBytes: number;
}

/** Entries kept at most; past it, entries with nothing pending are dropped (the row still counts). */
const MAX_ENTRIES = 100_000;

export function createQuotaTracker(): QuotaTracker {
  const counts = new Map<string, Counts>();
  const entry = (id: string): Counts => {
    let c = counts.get(id);
    if (!c) {
      if (counts.size >= MAX_ENTRIES) {
        for (const [key, value] of counts) {
          if (value.pendingRequests === 0 && value.pendingBytes === 0) counts.delete(key);
        }
      }
      c = { pendingRequests: 0, pendingBytes: 0, knownRequests: 0, knownBytes: 0 };
      counts.set(id, c);
    }
    return c;
  };
  return {
    admit(grant) {
      const c = entry(grant.id);
      if (grant.quotaRequests !== undefined) {
        const used = Math.max(grant.usedRequests, c.knownRequests) + c.pendingRequests;
        if (used >= grant.quotaRequests) return false;
      }
      if (grant.quotaResponseBytes !== undefined) {
        const used = Math.max(grant.usedResponseBytes, c.knownBytes) + c.pendingBytes;
        if (used >= grant.quotaResponseBytes) return false;
      }
      c.pendingRequests++;
      return true;
    },
    reserve(grantId) {
      entry(grantId).pendingRequests++;
    },
    unsettled() {
      const out = new Map<string, { requests: number; bytes: number }>();
      for (const [id, c] of counts) {
        if (c.pendingRequests > 0 || c.pendingBytes > 0)
          out.set(id, { requests: c.pendingRequests, bytes: c.pendingBytes });
      }
      return out;
    },
    addBytes(grantId, bytes) {
      entry(grantId).pendingBytes += bytes;
    },
    settled(grantId, requests, bytes, used) {
      const c = entry(grantId);
      c.pendingRequests = Math.max(0, c.pendingRequests - requests);
      c.pendingBytes = Math.max(0, c.pendingBytes - bytes);
      c.knownRequests = Math.max(c.knownRequests, used.requests);
      c.knownBytes = Math.max(c.knownBytes, used.bytes);
    },
  };
}
