import { insertRequest } from '../db/queries/access-requests.ts';
import { autoApproves, checkRequest } from '../policy/index.ts';
import type { PersonActor } from '../shared/actor.ts';
import { type DecisionResult, settleNewRequest } from './approval.ts';
import { requestRow } from './audit-rows.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { type Outcome, refuse } from './outcomes.ts';
import { isRequester } from './people.ts';
import { REQUEST_MACHINE } from './transitions.ts';
import { checkUserText, cleanUserText } from './user-text.ts';

export interface CreateRequestInput {
  /** The person asking; the request is theirs. */
  actor: PersonActor;
  resource: string;
  scope: string | undefined;
  durationSeconds: number;
  reason: string;
}

/** Ask for access; approved at once when the policy auto-approves this scope and duration. */
export async function createRequest(
  ctx: AccessContext,
  input: CreateRequestInput,
): Promise<Outcome<DecisionResult>> {
  const unfit = checkUserText(input.reason, 'reason');
  if (unfit) return unfit;
  const requesterId = input.actor.userId;
  if (!(await isRequester(ctx, requesterId))) return refuse({ code: 'not_allowed_to_request' });
  const checked = checkRequest(ctx.policy.current(), {
    resource: input.resource,
    scope: input.scope,
    durationSeconds: input.durationSeconds,
    reason: cleanUserText(input.reason),
  });
  if (!checked.ok) return checked;
  const { resource, scope, reason } = checked;
  return commit<DecisionResult>(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const request = await insertRequest(tx, {
      id: ctx.newId(),
      requesterId,
      resource: resource.name,
      scope: scope.name,
      durationSeconds: input.durationSeconds,
      reason,
      status: REQUEST_MACHINE.initial,
      approvalsRequired: resource.approvalsRequired,
      createdAt: now,
      timeoutAt: new Date(now.getTime() + resource.requestTimeoutSeconds * 1000),
      approvalChannel: resource.approvalChannel,
    });
    if (!request) throw new Error('request insert returned no row');
    const auto = autoApproves(scope, input.durationSeconds);
    effects.audit.push(
      requestRow('request.created', input.actor, now, request, {
        data: { scope: scope.name, durationSeconds: input.durationSeconds, reason, autoApproved: auto },
      }),
    );
    return settleNewRequest(ctx, tx, effects, request, auto);
  });
}
