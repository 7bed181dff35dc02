import type { Tx } from '../db/client.ts';
import { decideRequest, findRequest } from '../db/queries/access-requests.ts';
import { addApproval, approvalsOf } from '../db/queries/approvals.ts';
import { extendGrant, insertGrant, lockGrant } from '../db/queries/grants/lifecycle.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { ResourcePolicy } from '../policy/index.ts';
import { type Actor, endedByOf, type PersonActor } from '../shared/actor.ts';
import { grantRow, requestRow } from './audit-rows.ts';
import type { Effects } from './commit.ts';
import { type AccessContext, resourceOf } from './context.ts';
import { type Outcome, ok, type Refusal, refuse } from './outcomes.ts';
import { isApproverOf } from './people.ts';
import type { LowerQuota } from './quota.ts';
import {
  GRANT_MACHINE,
  GRANT_MOVES,
  grantEndAt,
  grantedQuota,
  grantedSeconds,
  isGrantLive,
  REQUEST_MOVES,
} from './transitions.ts';

/** Where a decision left a request. */
export interface DecisionResult {
  request: AccessRequest;
  /** Set when this decision completed the approval and created (or extended) a grant. */
  grant: Grant | undefined;
  approvals: number;
  required: number;
}

/** The policy itself, when a scope and duration are approved without anyone. */
const POLICY: Actor = { type: 'system', component: 'policy' };

/**
 * Who may decide a request: an approver of its resource (still in the policy), never its
 * requester. Read before the transaction; the decision itself re-checks the status under lock.
 */
export async function checkDecider(
  ctx: AccessContext,
  requestId: string,
  decider: PersonActor,
  attempted: 'approve' | 'deny',
): Promise<{ request: AccessRequest; resource: ResourcePolicy } | Refusal> {
  const request = await findRequest(ctx.db, requestId);
  if (!request) return refuse({ code: 'request_not_found' });
  const resource = resourceOf(ctx, request.resource);
  if (!resource) return refuse({ code: 'unknown_resource', resource: request.resource });
  if (request.requesterId === decider.userId) return refuse({ code: 'self_approval', attempted });
  if (!(await isApproverOf(ctx, resource, decider.userId))) {
    return refuse({ code: 'not_an_approver', resource: resource.name, attempted: 'decide' });
  }
  return { request, resource };
}

export const notPending = (request: AccessRequest): Refusal =>
  refuse({ code: 'request_not_pending', status: request.status, decidedBy: request.decidedBy });

/**
 * Approve inside `tx`: make the grant (or extend one) once the required approvals are in.
 * `limits` are the durations approvers allowed, `quotaLimits` the lower quotas they chose
 * (null fields: the policy's).
 */
async function completeApproval(
  ctx: AccessContext,
  tx: Tx,
  effects: Effects,
  request: AccessRequest,
  decidedBy: Actor,
  approverIds: string[],
  limits: (number | null)[],
  quotaLimits: readonly { quotaRequests: number | null; quotaResponseBytes: number | null }[] = [],
): Promise<Outcome<{ request: AccessRequest; grant: Grant }>> {
  const now = ctx.clock.now();
  const seconds = grantedSeconds(request.durationSeconds, limits);
  const approved = await decideRequest(tx, request.id, REQUEST_MOVES.approve, {
    decidedAt: now,
    decidedBy: endedByOf(decidedBy),
  });
  if (!approved) return notPending(request);

  let grant: Grant | undefined;
  if (request.extendsGrantId) {
    const current = await lockGrant(tx, request.extendsGrantId);
    if (!current) return refuse({ code: 'grant_not_found' });
    if (!isGrantLive(current, now)) {
      return refuse({ code: 'grant_not_active', status: current.status, attempted: 'approve_extension' });
    }
    const until = grantEndAt(current.expiresAt, seconds);
    grant = await extendGrant(tx, current, GRANT_MOVES.extend, until);
    if (!grant) {
      return refuse({
        code: 'grant_not_active',
        status: current.status,
        attempted: 'approve_extension',
        raced: true,
      });
    }
    effects.messages.push(
      { kind: 'request_approved', requestId: request.id, grantId: grant.id, approvers: approverIds },
      { kind: 'grant_extended', grantId: grant.id, requestId: request.id, version: grant.version },
    );
    effects.audit.push(
      grantRow('grant.extended', decidedBy, now, grant, {
        requestId: request.id,
        data: { approvers: approverIds, addedSeconds: seconds, expiresAt: grant.expiresAt.toISOString() },
      }),
    );
  } else {
    // The quota is fixed here, from the scope's policy now and the lowest figures approvers chose.
    const quota = grantedQuota(resourceOf(ctx, request.resource)?.scopes[request.scope]?.quota, quotaLimits);
    // grants.request_id is unique: even a raced second approval cannot make a second grant.
    grant = await insertGrant(tx, {
      id: ctx.newId(),
      requestId: request.id,
      userId: request.requesterId,
      resource: request.resource,
      scope: request.scope,
      status: GRANT_MACHINE.initial,
      startsAt: now,
      expiresAt: grantEndAt(now, seconds),
      quotaRequests: quota.requests,
      quotaResponseBytes: quota.responseBytes,
    });
    if (!grant) throw new Error('grant insert returned no row');
    effects.messages.push(
      { kind: 'request_approved', requestId: request.id, grantId: grant.id, approvers: approverIds },
      { kind: 'grant_created', grantId: grant.id, requestId: request.id },
    );
    effects.audit.push(
      grantRow('grant.created', decidedBy, now, grant, {
        data: {
          userId: grant.userId,
          scope: grant.scope,
          approvers: approverIds,
          grantedSeconds: seconds,
          expiresAt: grant.expiresAt.toISOString(),
          quotaRequests: grant.quotaRequests,
          quotaResponseBytes: grant.quotaResponseBytes,
        },
      }),
    );
  }
  effects.audit.push(
    requestRow('request.approved', decidedBy, now, request, {
      grantId: grant.id,
      data: { approvers: approverIds },
    }),
  );
  effects.changedGrants.push(grant.id);
  return ok({ request: approved, grant });
}

/** A new request (first or extension) is approved at once by the policy, or waits for approvers. */
export async function settleNewRequest(
  ctx: AccessContext,
  tx: Tx,
  effects: Effects,
  request: AccessRequest,
  autoApproved: boolean,
): Promise<Outcome<DecisionResult>> {
  effects.messages.push({ kind: 'request_created', requestId: request.id, autoApproved });
  if (!autoApproved) {
    return ok({ request, grant: undefined, approvals: 0, required: request.approvalsRequired });
  }
  const done = await completeApproval(ctx, tx, effects, request, POLICY, [], []);
  if (!done.ok) return done;
  return ok({ request: done.value.request, grant: done.value.grant, approvals: 0, required: 0 });
}

/**
 * One approver's yes inside `tx`, on a request locked and found pending: counted once per
 * person; the last required one makes (or extends) the grant. `durationSeconds` and `quota`
 * are the approver's "for less" (checked by the caller against the request and the policy).
 */
export async function addApprovalOf(
  ctx: AccessContext,
  tx: Tx,
  effects: Effects,
  request: AccessRequest,
  approver: PersonActor,
  choice: { durationSeconds?: number | undefined; quota?: LowerQuota | undefined },
): Promise<Outcome<DecisionResult>> {
  const now = ctx.clock.now();
  const added = await addApproval(tx, {
    requestId: request.id,
    approverId: approver.userId,
    durationSeconds: choice.durationSeconds ?? null,
    quotaRequests: choice.quota?.requests ?? null,
    quotaResponseBytes: choice.quota?.responseBytes ?? null,
    createdAt: now,
  });
  if (!added) return refuse({ code: 'already_approved' });
  const given = await approvalsOf(tx, request.id);
  effects.audit.push(
    requestRow('request.approval_added', approver, now, request, {
      data: {
        approvals: given.length,
        required: request.approvalsRequired,
        durationSeconds: choice.durationSeconds,
        ...(choice.quota?.requests !== undefined ? { quotaRequests: choice.quota.requests } : {}),
        ...(choice.quota?.responseBytes !== undefined
          ? { quotaResponseBytes: choice.quota.responseBytes }
          : {}),
      },
    }),
  );
  const required = request.approvalsRequired;
  if (given.length < required) {
    effects.messages.push({
      kind: 'request_approval_added',
      requestId: request.id,
      approverId: approver.userId,
      approvals: given.length,
      required,
    });
    return ok({ request, grant: undefined, approvals: given.length, required });
  }
  const done = await completeApproval(
    ctx,
    tx,
    effects,
    request,
    approver,
    given.map((a) => a.approverId),
    given.map((a) => a.durationSeconds),
    given,
  );
  if (!done.ok) return done;
  return ok({ request: done.value.request, grant: done.value.grant, approvals: given.length, required });
}
