import { lockRequest } from '../db/queries/access-requests.ts';
import type { PersonActor } from '../shared/actor.ts';
import { addApprovalOf, checkDecider, type DecisionResult, notPending } from './approval.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { isRefusal, type Outcome, refuse } from './outcomes.ts';
import { checkLowerQuota, type LowerQuota } from './quota.ts';

export interface ApproveInput {
  actor: PersonActor;
  requestId: string;
  /** Less time than was asked ("approve for less"). */
  durationSeconds?: number;
  /** A lower quota than the policy's (or a cap where the policy sets none). */
  quota?: LowerQuota;
}

/**
 * One approver's yes. Only the resource's approvers decide, never the requester; distinct
 * approvers are counted, and the last required one makes the grant. The request row is
 * locked and checked pending inside the transaction, so a double click has one winner.
 */
export async function approveRequest(
  ctx: AccessContext,
  input: ApproveInput,
): Promise<Outcome<DecisionResult>> {
  const decider = await checkDecider(ctx, input.requestId, input.actor, 'approve');
  if (isRefusal(decider)) return decider;
  const { request: peek, resource } = decider;
  if (input.durationSeconds !== undefined && input.durationSeconds > peek.durationSeconds) {
    return refuse({ code: 'duration_longer_than_requested', requestedSeconds: peek.durationSeconds });
  }
  if (input.quota !== undefined) {
    const refused = checkLowerQuota(input.quota, resource.scopes[peek.scope]?.quota);
    if (refused) return refused;
  }
  return commit<DecisionResult>(ctx, async (tx, effects) => {
    const request = await lockRequest(tx, input.requestId);
    if (!request) return refuse({ code: 'request_not_found' });
    if (request.status !== 'pending') return notPending(request);
    return addApprovalOf(ctx, tx, effects, request, input.actor, {
      durationSeconds: input.durationSeconds,
      quota: input.quota,
    });
  });
}
