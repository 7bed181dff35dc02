import { and, asc, eq, gt, inArray } from 'drizzle-orm';
import { dedupeKey } from '../access/events.ts';
import type { Db } from '../db/client.ts';
import { type AccessRequest, accessRequests, type Grant, grants, outbox } from '../db/schema.ts';

/**
 * Read-only queries the sweep needs beyond the access service: walking every live grant
 * and pending request to re-add jobs Redis lost. Writes never happen here.
 */
export interface SchedulerStore {
  /** Active grants not yet past expiry, in id order after `afterId` (keyset paging). */
  liveGrants(now: Date, afterId: string | undefined, limit: number): Promise<Grant[]>;
  /** Pending requests not yet past their timeout, in id order after `afterId`. */
  waitingRequests(now: Date, afterId: string | undefined, limit: number): Promise<AccessRequest[]>;
  /** Of these grant versions, the ones whose reminder is already in the outbox. */
  remindedVersions(keys: readonly { grantId: string; version: number }[]): Promise<Set<string>>;
}

export const reminderKey = (grantId: string, version: number): string =>
  dedupeKey({ kind: 'grant_reminder', grantId, version });

export function createSchedulerStore(db: Db): SchedulerStore {
  return {
    async liveGrants(now, afterId, limit) {
      return db
        .select()
        .from(grants)
        .where(
          and(
            eq(grants.status, 'active'),
            gt(grants.expiresAt, now),
            afterId ? gt(grants.id, afterId) : undefined,
          ),
        )
        .orderBy(asc(grants.id))
        .limit(limit);
    },
    async waitingRequests(now, afterId, limit) {
      return db
        .select()
        .from(accessRequests)
        .where(
          and(
            eq(accessRequests.status, 'pending'),
            gt(accessRequests.timeoutAt, now),
            afterId ? gt(accessRequests.id, afterId) : undefined,
          ),
        )
        .orderBy(asc(accessRequests.id))
        .limit(limit);
    },
    async remindedVersions(keys) {
      if (keys.length === 0) return new Set();
      const rows = await db
        .select({ key: outbox.dedupeKey })
        .from(outbox)
        .where(
          inArray(
            outbox.dedupeKey,
            keys.map((k) => reminderKey(k.grantId, k.version)),
          ),
        );
      return new Set(rows.map((r) => r.key));
    },
  };
}
