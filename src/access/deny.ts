import { decideRequest } from '../db/queries/access-requests.ts';
import type { AccessRequest } from '../db/schema/index.ts';
import { endedByOf, type PersonActor } from '../shared/actor.ts';
import { checkDecider, notPending } from './approval.ts';
import { requestRow } from './audit-rows.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { isRefusal, type Outcome, ok } from './outcomes.ts';
import { REQUEST_MOVES } from './transitions.ts';
import { checkUserText, cleanUserText } from './user-text.ts';

export interface DenyInput {
  actor: PersonActor;
  requestId: string;
  /** Why, for the requester (shown in their DM and on the approval message). */
  note?: string;
}

/** One approver's no ends the request, whatever N-of-M asks for a yes. */
export async function denyRequest(ctx: AccessContext, input: DenyInput): Promise<Outcome<AccessRequest>> {
  const decider = await checkDecider(ctx, input.requestId, input.actor, 'deny');
  if (isRefusal(decider)) return decider;
  const peek = decider.request;
  const unfit = checkUserText(input.note, 'note');
  if (unfit) return unfit;
  const clean = input.note === undefined ? '' : cleanUserText(input.note).trim();
  const note = clean ? clean.slice(0, 2000) : null;
  return commit(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const denied = await decideRequest(tx, input.requestId, REQUEST_MOVES.deny, {
      decidedAt: now,
      decidedBy: endedByOf(input.actor),
      decisionNote: note,
    });
    if (!denied) return notPending(peek);
    effects.audit.push(requestRow('request.denied', input.actor, now, denied, { data: { note } }));
    effects.messages.push({
      kind: 'request_denied',
      requestId: denied.id,
      deniedBy: input.actor.userId,
      note,
    });
    return ok(denied);
  });
}
