import { endGrant, findGrant } from '../db/queries/grants/lifecycle.ts';
import type { Grant } from '../db/schema/index.ts';
import { type Actor, endedByOf, personOf } from '../shared/actor.ts';
import { grantRow } from './audit-rows.ts';
import { commit } from './commit.ts';
import { type AccessContext, resourceOf } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { isApproverOf, isConsoleAdmin } from './people.ts';
import { GRANT_MOVES } from './transitions.ts';
import { checkUserText, cleanUserText } from './user-text.ts';

export interface RevokeInput {
  actor: Actor;
  grantId: string;
  reason: string;
}

/**
 * End a grant early. The owner may give it up; approvers of its resource, console admins
 * (checked against the policy now), the CLI and the system (anomaly rules) may revoke anyone's.
 */
export async function revokeGrant(ctx: AccessContext, input: RevokeInput): Promise<Outcome<Grant>> {
  const unfit = checkUserText(input.reason, 'reason');
  if (unfit) return unfit;
  const peek = await findGrant(ctx.db, input.grantId);
  if (!peek) return refuse({ code: 'grant_not_found' });
  const person = personOf(input.actor);
  if (person !== undefined && person !== peek.userId && !(await isConsoleAdmin(ctx, input.actor))) {
    const resource = resourceOf(ctx, peek.resource);
    if (!resource || !(await isApproverOf(ctx, resource, person))) {
      return refuse({ code: 'not_allowed_to_revoke', of: 'grant', resource: peek.resource });
    }
  }
  const reason = cleanUserText(input.reason).trim().slice(0, 2000) || 'revoked';
  const by = endedByOf(input.actor);
  return commit(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const revoked = await endGrant(tx, input.grantId, GRANT_MOVES.revoke, { now, by, reason });
    if (!revoked) return refuse({ code: 'grant_not_active', status: peek.status, attempted: 'revoke' });
    effects.audit.push(
      grantRow('grant.revoked', input.actor, now, revoked, {
        data: { reason, gaveUp: person === revoked.userId },
      }),
    );
    effects.messages.push({ kind: 'grant_revoked', grantId: revoked.id, revokedBy: by, reason });
    effects.changedGrants.push(revoked.id);
    return ok(revoked);
  });
}
