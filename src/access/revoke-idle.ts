import { endIdleGrantsOn } from '../db/queries/grants/lifecycle.ts';
import type { Grant } from '../db/schema/index.ts';
import { describeDuration, type ResourcePolicy } from '../policy/index.ts';
import { endedByOf } from '../shared/actor.ts';
import { grantRow, SCHEDULER } from './audit-rows.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { ok } from './outcomes.ts';
import { GRANT_MOVES } from './transitions.ts';

/**
 * Revoke grants unused for their resource's `idle_timeout` (counted from the last proxied
 * call, or from the start when never used), in one transaction; the owner gets a DM via
 * the `grant_revoked` message. `last_used_at` is written per audit batch, so a grant in
 * use is seen as used within the appender's flush interval. Returns the revoked grants.
 */
export async function revokeIdleGrants(ctx: AccessContext, input: { limit?: number } = {}): Promise<Grant[]> {
  const limit = input.limit ?? 500;
  const idle = Object.values(ctx.policy.current().resources).filter(
    (r): r is ResourcePolicy & { idleTimeoutSeconds: number } => r.idleTimeoutSeconds !== undefined,
  );
  if (idle.length === 0) return [];
  const by = endedByOf(SCHEDULER);
  const result = await commit<Grant[]>(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const all: Grant[] = [];
    for (const resource of idle) {
      const reason = `idle for ${describeDuration(resource.idleTimeoutSeconds)}`;
      const revoked = await endIdleGrantsOn(tx, GRANT_MOVES.revoke, {
        resource: resource.name,
        cutoff: new Date(now.getTime() - resource.idleTimeoutSeconds * 1000),
        now,
        by,
        reason,
        limit,
      });
      for (const grant of revoked) {
        effects.audit.push(
          grantRow('grant.revoked', SCHEDULER, now, grant, {
            data: {
              reason,
              idle: true,
              idleTimeoutSeconds: resource.idleTimeoutSeconds,
              lastUsedAt: grant.lastUsedAt?.toISOString() ?? null,
            },
          }),
        );
        effects.messages.push({ kind: 'grant_revoked', grantId: grant.id, revokedBy: by, reason });
        effects.changedGrants.push(grant.id);
      }
      all.push(...revoked);
    }
    return ok(all);
  });
  return result.ok ? result.value : [];
}
