import { decideRequest, lockRequest } from '../db/queries/access-requests.ts';
import type { AccessRequest } from '../db/schema/index.ts';
import { endedByOf, type PersonActor } from '../shared/actor.ts';
import { notPending } from './approval.ts';
import { requestRow } from './audit-rows.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { REQUEST_MOVES } from './transitions.ts';

export interface CancelInput {
  actor: PersonActor;
  requestId: string;
}

/** The requester withdraws a pending request. */
export async function cancelRequest(ctx: AccessContext, input: CancelInput): Promise<Outcome<AccessRequest>> {
  const userId = input.actor.userId;
  return commit(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const request = await lockRequest(tx, input.requestId);
    if (!request) return refuse({ code: 'request_not_found' });
    if (request.requesterId !== userId) return refuse({ code: 'not_grant_owner', attempted: 'cancel' });
    const cancelled = await decideRequest(tx, input.requestId, REQUEST_MOVES.cancel, {
      decidedAt: now,
      decidedBy: endedByOf(input.actor),
    });
    if (!cancelled) return notPending(request);
    effects.audit.push(requestRow('request.cancelled', input.actor, now, cancelled));
    effects.messages.push({ kind: 'request_cancelled', requestId: cancelled.id });
    return ok(cancelled);
  });
}
