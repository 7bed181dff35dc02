import { decideRequest, findRequest } from '../db/queries/access-requests.ts';
import type { AccessRequest } from '../db/schema/index.ts';
import { endedByOf, type PersonActor } from '../shared/actor.ts';
import { notPending } from './approval.ts';
import { requestRow } from './audit-rows.ts';
import { commit } from './commit.ts';
import { type AccessContext, resourceOf } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { isApproverOf } from './people.ts';
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
  const approverId = input.actor.userId;
  const peek = await findRequest(ctx.db, input.requestId);
  if (!peek) return refuse({ code: 'request_not_found' });
  const resource = resourceOf(ctx, peek.resource);
  if (!resource) return refuse({ code: 'unknown_resource', resource: peek.resource });
  if (peek.requesterId === approverId) return refuse({ code: 'self_approval', attempted: 'deny' });
  if (!(await isApproverOf(ctx, resource, approverId))) {
    return refuse({ code: 'not_an_approver', resource: resource.name, attempted: 'decide' });
  }
  const unfit = input.note === undefined ? undefined : checkUserText(input.note, 'note');
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
    effects.messages.push({ kind: 'request_denied', requestId: denied.id, deniedBy: approverId, note });
    return ok(denied);
  });
}
