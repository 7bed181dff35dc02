import type { Db } from '../db/client.ts';
import { waitingRequestsPage } from '../db/queries/access-requests.ts';
import { liveGrantsPage } from '../db/queries/grants/live.ts';
import { queuedDedupeKeys } from '../db/queries/outbox.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { reminderKey } from '../outbox/index.ts';

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

export function createSchedulerStore(db: Db): SchedulerStore {
  return {
    liveGrants: (now, afterId, limit) => liveGrantsPage(db, now, afterId, limit),
    waitingRequests: (now, afterId, limit) => waitingRequestsPage(db, now, afterId, limit),
    async remindedVersions(keys) {
      if (keys.length === 0) return new Set();
      return queuedDedupeKeys(
        db,
        keys.map((k) => reminderKey(k.grantId, k.version)),
      );
    },
  };
}
