import {
  expireGrant as expireGrantRow,
  expireGrantsPastExpiry,
  findGrant,
} from '../db/queries/grants/lifecycle.ts';
import type { Grant } from '../db/schema/index.ts';
import { endedByOf } from '../shared/actor.ts';
import { grantRow, SCHEDULER } from './audit-rows.ts';
import { commit, type Effects } from './commit.ts';
import type { AccessContext } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { GRANT_MOVES } from './transitions.ts';

const ending = (now: Date) => ({ now, by: endedByOf(SCHEDULER), reason: 'expired' });

function recordExpiry(effects: Effects, grant: Grant, now: Date): void {
  effects.audit.push(
    grantRow('grant.expired', SCHEDULER, now, grant, { data: { expiresAt: grant.expiresAt.toISOString() } }),
  );
  effects.messages.push({ kind: 'grant_expired', grantId: grant.id });
  effects.changedGrants.push(grant.id);
}

/** Mark a grant expired once its time is up. The proxy never waits for this: it checks the clock. */
export async function expireGrant(ctx: AccessContext, input: { grantId: string }): Promise<Outcome<Grant>> {
  const { grantId } = input;
  return commit(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const expired = await expireGrantRow(tx, grantId, GRANT_MOVES.expire, ending(now));
    if (!expired) {
      const row = await findGrant(tx, grantId);
      if (!row) return refuse({ code: 'grant_not_found' });
      return row.status === 'active'
        ? refuse({ code: 'not_due', subject: 'grant' })
        : refuse({ code: 'grant_not_active', status: row.status, attempted: 'expire' });
    }
    recordExpiry(effects, expired, now);
    return ok(expired);
  });
}

/**
 * Expire every grant past its expiry, up to `limit`, in one transaction. Grants expiring
 * together (a policy change, a batch of short grants, a worker back from an outage) then
 * cost one lock on the audit chain instead of one each; rows another transaction holds
 * are skipped, not waited for. Returns the ids it expired.
 */
export async function expireDueGrants(ctx: AccessContext, input: { limit?: number } = {}): Promise<string[]> {
  const limit = input.limit ?? 500;
  const result = await commit<string[]>(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const expired = await expireGrantsPastExpiry(tx, GRANT_MOVES.expire, ending(now), limit);
    for (const grant of expired) recordExpiry(effects, grant, now);
    return ok(expired.map((g) => g.id));
  });
  return result.ok ? result.value : [];
}
