import { lockGrant } from '../db/queries/grants/lifecycle.ts';
import type { Grant } from '../db/schema/index.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { isGrantLive } from './transitions.ts';

/**
 * Queue the before-expiry reminder once per grant version; a repeat is a no-op. The row
 * is locked and its version checked, so an extension committing meanwhile is either seen
 * (refused: the caller schedules the new version's reminder) or waits for this one —
 * never an early reminder recorded against the extended grant.
 */
export async function remindGrant(
  ctx: AccessContext,
  input: { grantId: string; version: number },
): Promise<Outcome<Grant>> {
  return commit(ctx, async (tx, effects) => {
    const grant = await lockGrant(tx, input.grantId);
    if (!grant) return refuse({ code: 'grant_not_found' });
    if (!isGrantLive(grant, ctx.clock.now())) {
      return refuse({ code: 'grant_not_active', status: grant.status, attempted: 'remind' });
    }
    if (grant.version !== input.version) return refuse({ code: 'grant_version_changed' });
    effects.messages.push({ kind: 'grant_reminder', grantId: grant.id, version: grant.version });
    return ok(grant);
  });
}
