import { decideRequestPastTimeout, findRequest } from '../db/queries/access-requests.ts';
import type { AccessRequest } from '../db/schema/index.ts';
import { notPending } from './approval.ts';
import { requestRow, SCHEDULER } from './audit-rows.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { REQUEST_MOVES } from './transitions.ts';

/** `decided_by` of a request nobody decided: the decision of no one, stored as it always was. */
const TIMED_OUT = 'timeout';

/** A request nobody decided in time. Refused before its deadline: the scheduler may fire early. */
export async function timeOutRequest(
  ctx: AccessContext,
  input: { requestId: string },
): Promise<Outcome<AccessRequest>> {
  const { requestId } = input;
  return commit(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const expired = await decideRequestPastTimeout(tx, requestId, REQUEST_MOVES.timeOut, {
      decidedAt: now,
      decidedBy: TIMED_OUT,
    });
    if (!expired) {
      const row = await findRequest(tx, requestId);
      if (!row) return refuse({ code: 'request_not_found' });
      return row.status === 'pending' ? refuse({ code: 'not_due', subject: 'request' }) : notPending(row);
    }
    effects.audit.push(requestRow('request.expired', SCHEDULER, now, expired));
    effects.messages.push({ kind: 'request_expired', requestId: expired.id });
    return ok(expired);
  });
}
