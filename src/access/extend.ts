import type { Tx } from '../db/client.ts';
import { insertRequest, pendingExtensionOf } from '../db/queries/access-requests.ts';
import { findGrant } from '../db/queries/grants/lifecycle.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { autoApproves, checkRequest, type ResourcePolicy, type ScopePolicy } from '../policy/index.ts';
import type { PersonActor } from '../shared/actor.ts';
import { addApprovalOf, type DecisionResult, settleNewRequest } from './approval.ts';
import { requestRow } from './audit-rows.ts';
import { commit, type Effects } from './commit.ts';
import { type AccessContext, resourceOf } from './context.ts';
import { isRefusal, type Outcome, type Refusal, refuse } from './outcomes.ts';
import { isApproverOf } from './people.ts';
import { isGrantLive, REQUEST_MACHINE } from './transitions.ts';
import { checkUserText, cleanUserText } from './user-text.ts';

export interface ExtendInput {
  actor: PersonActor;
  grantId: string;
  /** How much longer. */
  durationSeconds: number;
  reason?: string;
}

/** An extension that may be asked for: the grant, its resource and scope, the cleaned reason. */
interface Extendable {
  grant: Grant;
  resource: ResourcePolicy;
  scope: ScopePolicy;
  reason: string;
}

/**
 * What every extension must pass, whoever asks: a live grant on a resource still in the
 * policy, below its `max_extensions`, for a duration within the resource's bounds.
 */
async function checkExtendable(
  ctx: AccessContext,
  grant: Grant,
  input: ExtendInput,
): Promise<Extendable | Refusal> {
  if (!isGrantLive(grant, ctx.clock.now())) {
    return refuse({ code: 'grant_not_active', status: grant.status, attempted: 'extend' });
  }
  const resource = resourceOf(ctx, grant.resource);
  if (!resource) return refuse({ code: 'unknown_resource', resource: grant.resource });
  if (grant.extensions >= resource.maxExtensions) {
    return refuse({ code: 'extension_limit_reached', resource: resource.name, extensions: grant.extensions });
  }
  const checked = checkRequest(ctx.policy.current(), {
    resource: grant.resource,
    scope: grant.scope,
    durationSeconds: input.durationSeconds,
    reason: input.reason === undefined ? `Extension of grant ${grant.id}` : cleanUserText(input.reason),
  });
  if (!checked.ok) return checked;
  return { grant, resource, scope: checked.scope, reason: checked.reason };
}

/**
 * The extension as a request of the grant's owner (in `tx`), refused while another one is
 * waiting: approvals, N-of-M and the approval message then work as for any request. An
 * extension nobody answers before the grant ends is moot, so it times out by then.
 */
async function insertExtension(
  ctx: AccessContext,
  tx: Tx,
  effects: Effects,
  ask: Extendable,
  input: ExtendInput,
  autoApproved: boolean,
): Promise<AccessRequest | Refusal> {
  const { grant, resource } = ask;
  const now = ctx.clock.now();
  if (await pendingExtensionOf(tx, grant.id)) return refuse({ code: 'extension_pending' });
  const request = await insertRequest(tx, {
    id: ctx.newId(),
    requesterId: grant.userId,
    resource: grant.resource,
    scope: grant.scope,
    durationSeconds: input.durationSeconds,
    reason: ask.reason,
    status: REQUEST_MACHINE.initial,
    approvalsRequired: resource.approvalsRequired,
    extendsGrantId: grant.id,
    createdAt: now,
    timeoutAt: new Date(
      Math.max(
        now.getTime() + 1000,
        Math.min(now.getTime() + resource.requestTimeoutSeconds * 1000, grant.expiresAt.getTime()),
      ),
    ),
    approvalChannel: resource.approvalChannel,
  });
  if (!request) throw new Error('request insert returned no row');
  const byOwner = input.actor.userId === grant.userId;
  effects.audit.push(
    requestRow('request.created', input.actor, now, request, {
      grantId: grant.id,
      data: {
        extension: true,
        durationSeconds: input.durationSeconds,
        reason: ask.reason,
        autoApproved,
        ...(byOwner ? {} : { byApprover: true }),
      },
    }),
  );
  return request;
}

/**
 * Who may extend: the owner asks; an approver of the grant's resource (never the owner)
 * gives. Then the limits every extension meets.
 */
async function askFor(
  ctx: AccessContext,
  input: ExtendInput,
  asker: 'owner' | 'approver',
): Promise<Extendable | Refusal> {
  const unfit = checkUserText(input.reason, 'reason');
  if (unfit) return unfit;
  const grant = await findGrant(ctx.db, input.grantId);
  if (!grant) return refuse({ code: 'grant_not_found' });
  const own = grant.userId === input.actor.userId;
  if (asker === 'owner' && !own) return refuse({ code: 'not_grant_owner', attempted: 'extend' });
  if (asker === 'approver') {
    if (own) return refuse({ code: 'self_approval', attempted: 'approve' });
    const resource = resourceOf(ctx, grant.resource);
    if (!resource) return refuse({ code: 'unknown_resource', resource: grant.resource });
    if (!(await isApproverOf(ctx, resource, input.actor.userId))) {
      return refuse({ code: 'not_an_approver', resource: resource.name, attempted: 'extend' });
    }
  }
  return checkExtendable(ctx, grant, input);
}

/**
 * The owner asks for more time on an active grant: an approval like any other
 * (auto-approved when the scope's policy allows), capped by the resource's `max_extensions`.
 */
export async function requestExtension(
  ctx: AccessContext,
  input: ExtendInput,
): Promise<Outcome<DecisionResult>> {
  const ask = await askFor(ctx, input, 'owner');
  if (isRefusal(ask)) return ask;
  const auto = autoApproves(ask.scope, input.durationSeconds);
  return commit<DecisionResult>(ctx, async (tx, effects) => {
    const request = await insertExtension(ctx, tx, effects, ask, input, auto);
    if (isRefusal(request)) return request;
    return settleNewRequest(ctx, tx, effects, request, auto);
  });
}

/**
 * An approver of the grant's resource gives someone's grant more time: the extension is the
 * owner's request with this approver's approval already counted, so N-of-M still holds (a
 * second approver completes it), the limits are those of any extension, the audit rows name
 * the approver, and the owner is told by DM once the grant is extended.
 */
export async function extendByApprover(
  ctx: AccessContext,
  input: ExtendInput,
): Promise<Outcome<DecisionResult>> {
  const ask = await askFor(ctx, input, 'approver');
  if (isRefusal(ask)) return ask;
  return commit<DecisionResult>(ctx, async (tx, effects) => {
    const request = await insertExtension(ctx, tx, effects, ask, input, false);
    if (isRefusal(request)) return request;
    effects.messages.push({ kind: 'request_created', requestId: request.id, autoApproved: false });
    return addApprovalOf(ctx, tx, effects, request, input.actor, {});
  });
}

/** More time on a grant, by whoever asks: its owner requests it, an approver of its resource grants it. */
export async function extendGrant(ctx: AccessContext, input: ExtendInput): Promise<Outcome<DecisionResult>> {
  const grant = await findGrant(ctx.db, input.grantId);
  if (grant && grant.userId !== input.actor.userId) return extendByApprover(ctx, input);
  return requestExtension(ctx, input);
}
