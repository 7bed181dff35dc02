import { randomUUID } from 'node:crypto';
import { type AuditEventInput, appendAuditEvents } from '../audit/append.ts';
import type { Db, Tx } from '../db/client.ts';
import {
  cancelPendingRequestsOf,
  findRequest,
  insertRequest,
  lockRequest,
  markRequestApproved,
  markRequestCancelled,
  markRequestDenied,
  markRequestTimedOut,
  pendingExtensionOf,
  pendingRequestsOf,
  pendingRequestsOn,
  requestsPastTimeout,
  resourcesWithPendingRequestsOf,
  usersWithPendingRequests,
} from '../db/queries/access-requests.ts';
import { addApproval, approvalsOf, type GivenApproval } from '../db/queries/approvals.ts';
import {
  activeGrantsPastExpiry,
  expireGrantsPastExpiry,
  extendGrant,
  findGrant,
  insertGrant,
  liveGrantsOf,
  liveGrantsOn,
  lockGrant,
  markGrantExpired,
  markGrantRevoked,
  resourcesWithLiveGrantsOf,
  revokeActiveGrantsOf,
  revokeIdleGrantsOn,
  usersWithLiveGrants,
} from '../db/queries/grants.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { enqueue, type OutboxMessage, publishOnGrantFeed } from '../outbox/index.ts';
import {
  autoApproves,
  checkRequest,
  describeDuration,
  isApprover,
  isListed,
  mayRequest,
  type Policy,
  type PolicyStore,
  type Quota,
  type ResourcePolicy,
} from '../policy/index.ts';
import { type Actor, actorLabel, type PersonChannel, personActor, personOf } from '../shared/actor.ts';
import type { Clock } from '../shared/clock.ts';
import type { Directory } from './directory.ts';
import { type Outcome, ok, type Refusal, refuse } from './outcomes.ts';
import { grantedQuota, grantedSeconds } from './transitions.ts';
import { checkUserText, cleanUserText } from './user-text.ts';

export interface AccessServiceDeps {
  db: Db;
  policy: PolicyStore;
  clock: Clock;
  directory: Directory;
  /** NOTIFY channel the proxies listen on for grant changes. */
  grantChannel: string;
  newId?: () => string;
  /** Called after a transaction commits, with the events it wrote (for prompt delivery). */
  onCommitted?: (events: readonly OutboxMessage[]) => void;
}

export interface CreateRequestInput {
  requesterId: string;
  resource: string;
  scope: string | undefined;
  durationSeconds: number;
  reason: string;
}

export interface DecisionResult {
  request: AccessRequest;
  /** Set when this decision completed the approval and created (or extended) a grant. */
  grant: Grant | undefined;
  approvals: number;
  required: number;
}

/** What one transaction wants to say: audit rows (same transaction) and events (outbox). */
interface Effects {
  audit: AuditEventInput[];
  events: OutboxMessage[];
  changedGrants: string[];
}

const noEffects = (): Effects => ({ audit: [], events: [], changedGrants: [] });

function recordExpiry(effects: Effects, grant: Grant, now: Date): void {
  effects.audit.push({
    kind: 'grant.expired',
    actor: { type: 'system', component: 'scheduler' },
    at: now,
    resource: grant.resource,
    requestId: grant.requestId,
    grantId: grant.id,
    data: { expiresAt: grant.expiresAt.toISOString() },
  });
  effects.events.push({ kind: 'grant_expired', grantId: grant.id });
  effects.changedGrants.push(grant.id);
}

export interface OffboardInput {
  userId: string;
  /** Stored as each grant's end reason and in the audit rows, e.g. `offboarded: account deactivated`. */
  reason: string;
  actor: Actor;
  /** Only grants and requests on these resources (revoke-all by an approver of some); all when omitted. */
  resources?: readonly string[];
  /** False when the person cannot be messaged any more (deactivated account). Default true. */
  dmOwner?: boolean;
}

export interface OffboardResult {
  /** Grants this call revoked (ones already ended are not counted). */
  grants: Grant[];
  /** Pending requests (and pending extensions) this call ended. */
  requests: AccessRequest[];
}

export interface RevokeAllResult extends OffboardResult {
  /** Resources where the target still holds something the caller does not approve. */
  untouchedResources: string[];
}

/** Who ended a grant, as stored in `grants.ended_by`: a Slack user id, or the system part, or `cli`. */
function endedByOf(actor: Actor): string {
  switch (actor.type) {
    case 'slack':
    case 'console':
      return actor.userId;
    case 'system':
      return actor.component;
    case 'cli':
      return 'cli';
  }
}

/** A quota an approver chose when approving: fewer calls, fewer response bytes, or both. */
export interface LowerQuota {
  requests?: number;
  responseBytes?: number;
}

/**
 * Why an approver's quota cannot be used, or undefined when it can: each figure must be a
 * whole number of at least 1 and no higher than the policy's (where the policy sets one).
 * Checked before anything is stored, so a stored choice is always a lowering.
 */
export function checkLowerQuota(quota: LowerQuota, policy: Quota | undefined): Refusal | undefined {
  if (quota.requests === undefined && quota.responseBytes === undefined) {
    return refuse('quota_above_policy', 'A lower quota names a number of calls or of response bytes.');
  }
  const fields = [
    { value: quota.requests, cap: policy?.requests, unit: 'calls' },
    { value: quota.responseBytes, cap: policy?.responseBytes, unit: 'response bytes' },
  ];
  for (const { value, cap, unit } of fields) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      return refuse('quota_above_policy', `A quota is a whole number of ${unit}, at least 1.`);
    }
    if (cap !== undefined && value > cap) {
      return refuse(
        'quota_above_policy',
        `You can lower the quota below the policy's ${cap.toLocaleString('en-US')} ${unit}, not raise it.`,
      );
    }
  }
  return undefined;
}

export type AccessService = ReturnType<typeof createAccessService>;

/**
 * Requests → approvals → grants. Every transition is a conditional UPDATE in a
 * transaction that also writes its audit row and outbox events, so a double click,
 * a replayed action or racing approvers leave exactly one outcome, and nothing
 * happens without its audit row.
 */
export function createAccessService(deps: AccessServiceDeps) {
  const { db, clock, directory } = deps;
  const newId = deps.newId ?? randomUUID;

  async function commit<T>(work: (tx: Tx, effects: Effects) => Promise<Outcome<T>>): Promise<Outcome<T>> {
    let written: Effects = noEffects();
    let result: Outcome<T> | undefined;
    // A refusal found inside the transaction rolls it back: a refused transition changes nothing.
    const rollback = Symbol('refused');
    try {
      await db.transaction(async (tx) => {
        const effects = noEffects();
        result = await work(tx, effects);
        if (!result.ok) throw rollback;
        await appendAuditEvents(tx, effects.audit);
        await enqueue(tx, effects.events, clock.now());
        await publishOnGrantFeed(tx, deps.grantChannel, [...new Set(effects.changedGrants)]);
        written = effects;
      });
    } catch (error) {
      if (error !== rollback) throw error;
    }
    if (result === undefined) throw new Error('transaction finished without a result');
    if (result.ok && written.events.length > 0) deps.onCommitted?.(written.events);
    return result;
  }

  const resourceOf = (name: string): ResourcePolicy | undefined => {
    const resources = deps.policy.current().resources;
    return Object.hasOwn(resources, name) ? resources[name] : undefined;
  };

  async function isApproverOf(resource: ResourcePolicy, userId: string): Promise<boolean> {
    if (resource.approvers.users.includes(userId)) return true;
    const groups = await directory.groupsOf(userId, resource.approvers.groups);
    return isApprover(resource, userId, (g) => groups.has(g));
  }

  /**
   * A console actor claiming admin, checked against the policy's `console.admins` now: the
   * claim alone widens nothing (a policy reload may have removed the person since sign-in).
   */
  async function isConsoleAdmin(actor: Actor): Promise<boolean> {
    if (actor.type !== 'console' || actor.admin !== true) return false;
    const admins = deps.policy.current().console.admins;
    if (admins.users.includes(actor.userId)) return true;
    const groups = await directory.groupsOf(actor.userId, admins.groups);
    return isListed(admins, actor.userId, (g) => groups.has(g));
  }

  /** Pending requests and live (active, unexpired) grants, both read at once. */
  async function pendingAndLive(
    requests: Promise<AccessRequest[]>,
    live: Promise<Grant[]>,
  ): Promise<{ pending: AccessRequest[]; active: Grant[] }> {
    const [pending, active] = await Promise.all([requests, live]);
    return { pending, active };
  }

  const notPending = (request: AccessRequest): Refusal =>
    refuse(
      'request_not_pending',
      `This request was already ${request.status}${request.decidedBy ? ` by ${request.decidedBy}` : ''}.`,
    );

  /** Approve inside `tx`: make the grant (or extend one) once the required approvals are in. */
  async function completeApproval(
    tx: Tx,
    effects: Effects,
    request: AccessRequest,
    decidedBy: Actor,
    approverIds: string[],
    limits: (number | null)[],
    /** Lower quotas approvers chose (null fields: the policy's). */
    quotaLimits: readonly { quotaRequests: number | null; quotaResponseBytes: number | null }[] = [],
  ): Promise<Outcome<{ request: AccessRequest; grant: Grant }>> {
    const now = clock.now();
    const seconds = grantedSeconds(request.durationSeconds, limits);
    const decidedByLabel = personOf(decidedBy) ?? 'policy';
    const approved = await markRequestApproved(tx, request.id, now, decidedByLabel);
    if (!approved) return notPending(request);

    let grant: Grant | undefined;
    if (request.extendsGrantId) {
      const current = await lockGrant(tx, request.extendsGrantId);
      if (current?.status !== 'active' || current.expiresAt <= now) {
        return refuse('grant_not_active', 'The grant to extend has already ended.');
      }
      grant = await extendGrant(tx, current, new Date(current.expiresAt.getTime() + seconds * 1000));
      if (!grant) return refuse('grant_not_active', 'The grant changed while extending it; try again.');
      effects.events.push(
        { kind: 'request_approved', requestId: request.id, grantId: grant.id, approvers: approverIds },
        { kind: 'grant_extended', grantId: grant.id, requestId: request.id, version: grant.version },
      );
      effects.audit.push({
        kind: 'grant.extended',
        actor: decidedBy,
        at: now,
        resource: grant.resource,
        requestId: request.id,
        grantId: grant.id,
        data: { approvers: approverIds, addedSeconds: seconds, expiresAt: grant.expiresAt.toISOString() },
      });
    } else {
      // The quota is fixed here, from the scope's policy now and the lowest figures approvers chose.
      const quota = grantedQuota(resourceOf(request.resource)?.scopes[request.scope]?.quota, quotaLimits);
      // grants.request_id is unique: even a raced second approval cannot make a second grant.
      grant = await insertGrant(tx, {
        id: newId(),
        requestId: request.id,
        userId: request.requesterId,
        resource: request.resource,
        scope: request.scope,
        status: 'active',
        startsAt: now,
        expiresAt: new Date(now.getTime() + seconds * 1000),
        quotaRequests: quota.requests,
        quotaResponseBytes: quota.responseBytes,
      });
      if (!grant) throw new Error('grant insert returned no row');
      effects.events.push(
        { kind: 'request_approved', requestId: request.id, grantId: grant.id, approvers: approverIds },
        { kind: 'grant_created', grantId: grant.id, requestId: request.id },
      );
      effects.audit.push({
        kind: 'grant.created',
        actor: decidedBy,
        at: now,
        resource: grant.resource,
        requestId: request.id,
        grantId: grant.id,
        data: {
          userId: grant.userId,
          scope: grant.scope,
          approvers: approverIds,
          grantedSeconds: seconds,
          expiresAt: grant.expiresAt.toISOString(),
          quotaRequests: grant.quotaRequests,
          quotaResponseBytes: grant.quotaResponseBytes,
        },
      });
    }
    effects.audit.push({
      kind: 'request.approved',
      actor: decidedBy,
      at: now,
      resource: request.resource,
      requestId: request.id,
      grantId: grant.id,
      data: { approvers: approverIds },
    });
    effects.changedGrants.push(grant.id);
    return ok({ request: approved, grant });
  }

  /**
   * End everything a person holds at once: every active grant revoked, every pending
   * request (extensions included) cancelled, in ONE transaction with one audit row per
   * change plus a `user.offboarded` row, the outbox notes to each affected resource's
   * approval channel, and a NOTIFY per grant so proxies drop them within milliseconds.
   * Nothing to end means nothing is written (a deactivated user who never asked for
   * access leaves no trace). Safe to repeat: a second run finds nothing active.
   */
  async function offboardUser(input: OffboardInput): Promise<Outcome<OffboardResult>> {
    if (input.resources !== undefined && input.resources.length === 0)
      return ok({ grants: [], requests: [] });
    const unfit = checkUserText(input.reason, 'reason');
    if (unfit) return unfit;
    const reason = cleanUserText(input.reason).trim().slice(0, 2000) || 'offboarded';
    const by = endedByOf(input.actor);
    const dmOwner = input.dmOwner ?? true;
    return commit<OffboardResult>(async (tx, effects) => {
      const now = clock.now();
      const change = { now, by, reason };
      const revoked = await revokeActiveGrantsOf(tx, input.userId, change, input.resources);
      const ended = await cancelPendingRequestsOf(tx, input.userId, change, input.resources);
      if (revoked.length === 0 && ended.length === 0) return ok({ grants: [], requests: [] });
      const offboardId = newId();
      for (const grant of revoked) {
        effects.audit.push({
          kind: 'grant.revoked',
          actor: input.actor,
          at: now,
          resource: grant.resource,
          requestId: grant.requestId,
          grantId: grant.id,
          data: { reason, gaveUp: false, offboardId },
        });
        effects.events.push({ kind: 'grant_revoked', grantId: grant.id, revokedBy: by, reason, dmOwner });
        effects.changedGrants.push(grant.id);
      }
      for (const request of ended) {
        effects.audit.push({
          kind: 'request.cancelled',
          actor: input.actor,
          at: now,
          resource: request.resource,
          requestId: request.id,
          data: { reason, offboardId },
        });
        effects.events.push({ kind: 'request_cancelled', requestId: request.id });
      }
      const resources = [...new Set([...revoked, ...ended].map((row) => row.resource))].sort();
      effects.audit.push({
        kind: 'user.offboarded',
        actor: input.actor,
        at: now,
        data: {
          userId: input.userId,
          reason,
          offboardId,
          resources,
          grants: revoked.map((g) => g.id),
          requests: ended.map((r) => r.id),
        },
      });
      for (const resource of resources) {
        effects.events.push({
          kind: 'user_offboarded',
          offboardId,
          resource,
          userId: input.userId,
          reason,
          by: actorLabel(input.actor),
          grantIds: revoked.filter((g) => g.resource === resource).map((g) => g.id),
          requestIds: ended.filter((r) => r.resource === resource).map((r) => r.id),
        });
      }
      return ok({ grants: revoked, requests: ended });
    });
  }

  /** A new request (first or extension) is approved at once by the policy, or waits for approvers. */
  async function settleNewRequest(
    tx: Tx,
    effects: Effects,
    request: AccessRequest,
    autoApproved: boolean,
  ): Promise<Outcome<DecisionResult>> {
    effects.events.push({ kind: 'request_created', requestId: request.id, autoApproved });
    if (!autoApproved) {
      return ok({ request, grant: undefined, approvals: 0, required: request.approvalsRequired });
    }
    const done = await completeApproval(
      tx,
      effects,
      request,
      { type: 'system', component: 'policy' },
      [],
      [],
    );
    if (!done.ok) return done;
    return ok({ request: done.value.request, grant: done.value.grant, approvals: 0, required: 0 });
  }

  /** Whether the policy's `requesters` (people or groups) include this person. */
  async function isRequester(policy: Policy, userId: string): Promise<boolean> {
    const groups = policy.requesters ? await directory.groupsOf(userId, policy.requesters.groups) : new Set();
    return mayRequest(policy, userId, (g) => groups.has(g));
  }

  return {
    /** Whether this person may ask for access at all, so Slack need not offer a form in vain. */
    async mayRequestAccess(userId: string): Promise<boolean> {
      return isRequester(deps.policy.current(), userId);
    },

    /** Ask for access; approved at once when the policy auto-approves this scope and duration. */
    async createRequest(input: CreateRequestInput): Promise<Outcome<DecisionResult>> {
      const unfit = checkUserText(input.reason, 'reason');
      if (unfit) return unfit;
      const policy = deps.policy.current();
      if (!(await isRequester(policy, input.requesterId))) {
        return refuse(
          'not_allowed_to_request',
          'You are not among the people this workspace lets request access.',
        );
      }
      const checked = checkRequest(policy, { ...input, reason: cleanUserText(input.reason) });
      if (!checked.ok) return checked;
      const { resource, scope, reason } = checked;
      return commit<DecisionResult>(async (tx, effects) => {
        const now = clock.now();
        const request = await insertRequest(tx, {
          id: newId(),
          requesterId: input.requesterId,
          resource: resource.name,
          scope: scope.name,
          durationSeconds: input.durationSeconds,
          reason,
          approvalsRequired: resource.approvalsRequired,
          createdAt: now,
          timeoutAt: new Date(now.getTime() + resource.requestTimeoutSeconds * 1000),
          approvalChannel: resource.approvalChannel,
        });
        if (!request) throw new Error('request insert returned no row');
        const auto = autoApproves(scope, input.durationSeconds);
        effects.audit.push({
          kind: 'request.created',
          actor: { type: 'slack', userId: input.requesterId },
          at: now,
          resource: resource.name,
          requestId: request.id,
          data: { scope: scope.name, durationSeconds: input.durationSeconds, reason, autoApproved: auto },
        });
        return settleNewRequest(tx, effects, request, auto);
      });
    },

    /**
     * One approver's yes. Counts distinct approvers; the last required one makes the grant.
     * `durationSeconds` lets an approver allow less time than was asked.
     */
    async approve(input: {
      requestId: string;
      approverId: string;
      durationSeconds?: number;
      /** A lower quota than the policy's (or a cap where the policy sets none). */
      quota?: LowerQuota;
      /** Where the approver clicked; the audit rows say so. Default Slack. */
      channel?: PersonChannel;
    }): Promise<Outcome<DecisionResult>> {
      const approver = personActor(input.approverId, input.channel);
      const peek = await findRequest(db, input.requestId);
      if (!peek) return refuse('request_not_found', 'No such request.');
      const resource = resourceOf(peek.resource);
      if (!resource)
        return refuse('unknown_resource', `Resource ${peek.resource} is no longer in the policy.`);
      if (peek.requesterId === input.approverId) {
        return refuse('self_approval', 'Nobody approves their own request.');
      }
      if (!(await isApproverOf(resource, input.approverId))) {
        return refuse('not_an_approver', `Only approvers of ${resource.name} can decide this request.`);
      }
      if (input.durationSeconds !== undefined && input.durationSeconds > peek.durationSeconds) {
        return refuse(
          'duration_longer_than_requested',
          `You can approve up to the ${describeDuration(peek.durationSeconds)} asked for, not more.`,
        );
      }
      if (input.quota !== undefined) {
        const refused = checkLowerQuota(input.quota, resource.scopes[peek.scope]?.quota);
        if (refused) return refused;
      }
      return commit<DecisionResult>(async (tx, effects) => {
        const request = await lockRequest(tx, input.requestId);
        if (!request) return refuse('request_not_found', 'No such request.');
        if (request.status !== 'pending') return notPending(request);
        const now = clock.now();
        const added = await addApproval(tx, {
          requestId: request.id,
          approverId: input.approverId,
          durationSeconds: input.durationSeconds ?? null,
          quotaRequests: input.quota?.requests ?? null,
          quotaResponseBytes: input.quota?.responseBytes ?? null,
          createdAt: now,
        });
        if (!added) return refuse('already_approved', 'You have already approved this request.');
        const given = await approvalsOf(tx, request.id);
        effects.audit.push({
          kind: 'request.approval_added',
          actor: approver,
          at: now,
          resource: request.resource,
          requestId: request.id,
          data: {
            approvals: given.length,
            required: request.approvalsRequired,
            durationSeconds: input.durationSeconds,
            ...(input.quota?.requests !== undefined ? { quotaRequests: input.quota.requests } : {}),
            ...(input.quota?.responseBytes !== undefined
              ? { quotaResponseBytes: input.quota.responseBytes }
              : {}),
          },
        });
        if (given.length < request.approvalsRequired) {
          effects.events.push({
            kind: 'request_approval_added',
            requestId: request.id,
            approverId: input.approverId,
            approvals: given.length,
            required: request.approvalsRequired,
          });
          return ok({
            request,
            grant: undefined,
            approvals: given.length,
            required: request.approvalsRequired,
          });
        }
        const done = await completeApproval(
          tx,
          effects,
          request,
          approver,
          given.map((a) => a.approverId),
          given.map((a) => a.durationSeconds),
          given,
        );
        if (!done.ok) return done;
        return ok({
          request: done.value.request,
          grant: done.value.grant,
          approvals: given.length,
          required: request.approvalsRequired,
        });
      });
    },

    async deny(input: {
      requestId: string;
      approverId: string;
      note?: string;
      channel?: PersonChannel;
    }): Promise<Outcome<AccessRequest>> {
      const peek = await findRequest(db, input.requestId);
      if (!peek) return refuse('request_not_found', 'No such request.');
      const resource = resourceOf(peek.resource);
      if (!resource)
        return refuse('unknown_resource', `Resource ${peek.resource} is no longer in the policy.`);
      if (peek.requesterId === input.approverId)
        return refuse('self_approval', 'Nobody decides their own request.');
      if (!(await isApproverOf(resource, input.approverId))) {
        return refuse('not_an_approver', `Only approvers of ${resource.name} can decide this request.`);
      }
      const unfit = input.note === undefined ? undefined : checkUserText(input.note, 'note');
      if (unfit) return unfit;
      const clean = input.note === undefined ? '' : cleanUserText(input.note).trim();
      const note = clean ? clean.slice(0, 2000) : null;
      return commit(async (tx, effects) => {
        const now = clock.now();
        const denied = await markRequestDenied(tx, input.requestId, now, input.approverId, note);
        if (!denied) return notPending(peek);
        effects.audit.push({
          kind: 'request.denied',
          actor: personActor(input.approverId, input.channel),
          at: now,
          resource: denied.resource,
          requestId: denied.id,
          data: { note },
        });
        effects.events.push({
          kind: 'request_denied',
          requestId: denied.id,
          deniedBy: input.approverId,
          note,
        });
        return ok(denied);
      });
    },

    /** The requester withdraws a pending request. */
    async cancel(input: { requestId: string; userId: string }): Promise<Outcome<AccessRequest>> {
      return commit(async (tx, effects) => {
        const now = clock.now();
        const request = await lockRequest(tx, input.requestId);
        if (!request) return refuse('request_not_found', 'No such request.');
        if (request.requesterId !== input.userId) {
          return refuse('not_grant_owner', 'Only the requester can cancel a request.');
        }
        const cancelled = await markRequestCancelled(tx, input.requestId, now, input.userId);
        if (!cancelled) return notPending(request);
        effects.audit.push({
          kind: 'request.cancelled',
          actor: { type: 'slack', userId: input.userId },
          at: now,
          resource: cancelled.resource,
          requestId: cancelled.id,
        });
        effects.events.push({ kind: 'request_cancelled', requestId: cancelled.id });
        return ok(cancelled);
      });
    },

    /** A request nobody decided in time. Refused before its deadline: the scheduler may fire early. */
    async expireRequest(requestId: string): Promise<Outcome<AccessRequest>> {
      return commit(async (tx, effects) => {
        const now = clock.now();
        const expired = await markRequestTimedOut(tx, requestId, now);
        if (!expired) {
          const row = await findRequest(tx, requestId);
          if (!row) return refuse('request_not_found', 'No such request.');
          return row.status === 'pending'
            ? refuse('not_due', 'The request has not timed out yet.')
            : notPending(row);
        }
        effects.audit.push({
          kind: 'request.expired',
          actor: { type: 'system', component: 'scheduler' },
          at: now,
          resource: expired.resource,
          requestId: expired.id,
        });
        effects.events.push({ kind: 'request_expired', requestId: expired.id });
        return ok(expired);
      });
    },

    /**
     * End a grant early. The owner may give it up; approvers of its resource, the CLI and
     * the system (anomaly rules, offboarding) may revoke anyone's.
     */
    async revokeGrant(input: { grantId: string; actor: Actor; reason: string }): Promise<Outcome<Grant>> {
      const unfit = checkUserText(input.reason, 'reason');
      if (unfit) return unfit;
      const peek = await findGrant(db, input.grantId);
      if (!peek) return refuse('grant_not_found', 'No such grant.');
      const person = personOf(input.actor);
      if (person !== undefined && person !== peek.userId && !(await isConsoleAdmin(input.actor))) {
        const resource = resourceOf(peek.resource);
        if (!resource || !(await isApproverOf(resource, person))) {
          return refuse(
            'not_allowed_to_revoke',
            `Only the grant's owner or approvers of ${peek.resource} can revoke it.`,
          );
        }
      }
      const reason = cleanUserText(input.reason).trim().slice(0, 2000) || 'revoked';
      return commit(async (tx, effects) => {
        const now = clock.now();
        const by = person ?? input.actor.type;
        const revoked = await markGrantRevoked(tx, input.grantId, {
          now,
          by,
          reason,
          version: peek.version + 1,
        });
        if (!revoked)
          return refuse(
            'grant_not_active',
            `This grant has already ${peek.status === 'active' ? 'ended' : peek.status}.`,
          );
        effects.audit.push({
          kind: 'grant.revoked',
          actor: input.actor,
          at: now,
          resource: revoked.resource,
          requestId: revoked.requestId,
          grantId: revoked.id,
          data: { reason, gaveUp: person === revoked.userId },
        });
        effects.events.push({ kind: 'grant_revoked', grantId: revoked.id, revokedBy: by, reason });
        effects.changedGrants.push(revoked.id);
        return ok(revoked);
      });
    },

    offboardUser,

    /**
     * `/access revoke-all <user>` by a person: ends the target's grants and pending requests
     * on every resource the caller approves (an approver of all resources ends everything).
     * Refused when the caller approves nothing, or none of the resources the target holds
     * something on; what lies on other resources is left and named in the result.
     */
    async revokeAll(input: {
      targetId: string;
      actorId: string;
      reason?: string;
      channel?: PersonChannel;
    }): Promise<Outcome<RevokeAllResult>> {
      const unfit = input.reason === undefined ? undefined : checkUserText(input.reason, 'reason');
      if (unfit) return unfit;
      const approved: string[] = [];
      for (const resource of Object.values(deps.policy.current().resources)) {
        if (await isApproverOf(resource, input.actorId)) approved.push(resource.name);
      }
      if (approved.length === 0) {
        return refuse('not_allowed_to_revoke', '`revoke-all` is for approvers, and you approve no resource.');
      }
      const now = clock.now();
      const [held, asked] = await Promise.all([
        resourcesWithLiveGrantsOf(db, input.targetId, now),
        resourcesWithPendingRequestsOf(db, input.targetId),
      ]);
      const touched = [...new Set([...held, ...asked].map((r) => r.resource))].sort();
      if (touched.length === 0) return ok({ grants: [], requests: [], untouchedResources: [] });
      const mine = touched.filter((name) => approved.includes(name));
      const untouchedResources = touched.filter((name) => !approved.includes(name));
      if (mine.length === 0) {
        return refuse(
          'not_allowed_to_revoke',
          `You approve none of the resources this person holds access to (${touched.join(', ')}).`,
        );
      }
      const result = await offboardUser({
        userId: input.targetId,
        reason: input.reason?.trim() ? input.reason : `revoke-all by ${input.actorId}`,
        actor: personActor(input.actorId, input.channel),
        resources: approved,
      });
      if (!result.ok) return result;
      return ok({ ...result.value, untouchedResources });
    },

    /**
     * Revoke grants unused for their resource's `idle_timeout` (counted from the last proxied
     * call, or from the start when never used), in one transaction; the owner gets a DM via
     * the `grant_revoked` event. `last_used_at` is written per audit batch, so a grant in
     * use is seen as used within the appender's flush interval. Returns the revoked grants.
     */
    async revokeIdleGrants(limit = 500): Promise<Grant[]> {
      const idle = Object.values(deps.policy.current().resources).filter(
        (r): r is ResourcePolicy & { idleTimeoutSeconds: number } => r.idleTimeoutSeconds !== undefined,
      );
      if (idle.length === 0) return [];
      const result = await commit<Grant[]>(async (tx, effects) => {
        const now = clock.now();
        const all: Grant[] = [];
        for (const resource of idle) {
          const reason = `idle for ${describeDuration(resource.idleTimeoutSeconds)}`;
          const revoked = await revokeIdleGrantsOn(tx, {
            resource: resource.name,
            cutoff: new Date(now.getTime() - resource.idleTimeoutSeconds * 1000),
            now,
            reason,
            limit,
          });
          for (const grant of revoked) {
            effects.audit.push({
              kind: 'grant.revoked',
              actor: { type: 'system', component: 'scheduler' },
              at: now,
              resource: grant.resource,
              requestId: grant.requestId,
              grantId: grant.id,
              data: {
                reason,
                idle: true,
                idleTimeoutSeconds: resource.idleTimeoutSeconds,
                lastUsedAt: grant.lastUsedAt?.toISOString() ?? null,
              },
            });
            effects.events.push({ kind: 'grant_revoked', grantId: grant.id, revokedBy: 'scheduler', reason });
            effects.changedGrants.push(grant.id);
          }
          all.push(...revoked);
        }
        return ok(all);
      });
      return result.ok ? result.value : [];
    },

    /** Everyone holding a live grant or a pending request: whom the offboarding re-check asks Slack about. */
    async usersWithAccess(): Promise<string[]> {
      const now = clock.now();
      const [holders, askers] = await Promise.all([
        usersWithLiveGrants(db, now),
        usersWithPendingRequests(db),
      ]);
      return [...new Set([...holders.map((r) => r.userId), ...askers.map((r) => r.userId)])].sort();
    },

    /** Mark a grant expired once its time is up. The proxy never waits for this: it checks the clock. */
    async expireGrant(grantId: string): Promise<Outcome<Grant>> {
      return commit(async (tx, effects) => {
        const now = clock.now();
        const expired = await markGrantExpired(tx, grantId, now);
        if (!expired) {
          const row = await findGrant(tx, grantId);
          if (!row) return refuse('grant_not_found', 'No such grant.');
          return row.status === 'active'
            ? refuse('not_due', 'The grant has not reached its expiry yet.')
            : refuse(
                'grant_not_active',
                `This grant has already ${row.status === 'revoked' ? 'been revoked' : 'expired'}.`,
              );
        }
        recordExpiry(effects, expired, now);
        return ok(expired);
      });
    },

    /**
     * Expire every grant past its expiry, up to `limit`, in one transaction. Grants expiring
     * together (a policy change, a batch of short grants, a worker back from an outage) then
     * cost one lock on the audit chain instead of one each; rows another transaction holds
     * are skipped, not waited for. Returns the ids it expired.
     */
    async expireDueGrants(limit = 500): Promise<string[]> {
      const result = await commit<string[]>(async (tx, effects) => {
        const now = clock.now();
        const expired = await expireGrantsPastExpiry(tx, now, limit);
        for (const grant of expired) recordExpiry(effects, grant, now);
        return ok(expired.map((g) => g.id));
      });
      return result.ok ? result.value : [];
    },

    /**
     * Ask for more time on an active grant: an approval like any other (auto-approved when
     * the scope's policy allows), capped by the resource's `max_extensions`.
     */
    async requestExtension(input: {
      grantId: string;
      userId: string;
      durationSeconds: number;
      reason?: string;
      channel?: PersonChannel;
    }): Promise<Outcome<DecisionResult>> {
      const unfit = input.reason === undefined ? undefined : checkUserText(input.reason, 'reason');
      if (unfit) return unfit;
      const grant = await findGrant(db, input.grantId);
      if (!grant) return refuse('grant_not_found', 'No such grant.');
      if (grant.userId !== input.userId)
        return refuse('not_grant_owner', 'Only the grant owner can extend it.');
      if (grant.status !== 'active' || grant.expiresAt <= clock.now()) {
        return refuse('grant_not_active', 'This grant has already ended; request access again.');
      }
      const resource = resourceOf(grant.resource);
      if (!resource)
        return refuse('unknown_resource', `Resource ${grant.resource} is no longer in the policy.`);
      if (grant.extensions >= resource.maxExtensions) {
        return refuse(
          'extension_limit_reached',
          `This grant has been extended ${grant.extensions} times, the most ${resource.name} allows.`,
        );
      }
      const checked = checkRequest(deps.policy.current(), {
        resource: grant.resource,
        scope: grant.scope,
        durationSeconds: input.durationSeconds,
        reason: input.reason === undefined ? `Extension of grant ${grant.id}` : cleanUserText(input.reason),
      });
      if (!checked.ok) return checked;
      return commit<DecisionResult>(async (tx, effects) => {
        const now = clock.now();
        const pending = await pendingExtensionOf(tx, grant.id);
        if (pending)
          return refuse('extension_pending', 'An extension of this grant is already waiting for approval.');
        const request = await insertRequest(tx, {
          id: newId(),
          requesterId: grant.userId,
          resource: grant.resource,
          scope: grant.scope,
          durationSeconds: input.durationSeconds,
          reason: checked.reason,
          approvalsRequired: resource.approvalsRequired,
          extendsGrantId: grant.id,
          createdAt: now,
          // An extension nobody answers before the grant ends is moot.
          timeoutAt: new Date(
            Math.max(
              now.getTime() + 1000,
              Math.min(now.getTime() + resource.requestTimeoutSeconds * 1000, grant.expiresAt.getTime()),
            ),
          ),
          approvalChannel: resource.approvalChannel,
        });
        if (!request) throw new Error('request insert returned no row');
        const auto = autoApproves(checked.scope, input.durationSeconds);
        effects.audit.push({
          kind: 'request.created',
          actor: personActor(grant.userId, input.channel),
          at: now,
          resource: grant.resource,
          requestId: request.id,
          grantId: grant.id,
          data: {
            extension: true,
            durationSeconds: input.durationSeconds,
            reason: checked.reason,
            autoApproved: auto,
          },
        });
        return settleNewRequest(tx, effects, request, auto);
      });
    },

    /**
     * Queue the before-expiry reminder once per grant version; a repeat is a no-op. The row
     * is locked and its version checked, so an extension committing meanwhile is either seen
     * (refused: the caller schedules the new version's reminder) or waits for this one —
     * never an early reminder recorded against the extended grant.
     */
    async remindGrant(grantId: string, expectedVersion: number): Promise<Outcome<Grant>> {
      return commit(async (tx, effects) => {
        const now = clock.now();
        const grant = await lockGrant(tx, grantId);
        if (!grant) return refuse('grant_not_found', 'No such grant.');
        if (grant.status !== 'active' || grant.expiresAt <= now) {
          return refuse('grant_not_active', 'This grant has already ended.');
        }
        if (grant.version !== expectedVersion) {
          return refuse(
            'grant_version_changed',
            'The grant changed (extended) since this reminder was planned.',
          );
        }
        effects.events.push({ kind: 'grant_reminder', grantId: grant.id, version: grant.version });
        return ok(grant);
      });
    },

    getRequest: (requestId: string): Promise<AccessRequest | undefined> => findRequest(db, requestId),

    getGrant: (grantId: string): Promise<Grant | undefined> => findGrant(db, grantId),

    approvalsOf: (requestId: string): Promise<GivenApproval[]> => approvalsOf(db, requestId),

    /** A person's pending requests and live grants, for `/access list` and App Home. */
    listForUser(userId: string): Promise<{ pending: AccessRequest[]; active: Grant[] }> {
      return pendingAndLive(pendingRequestsOf(db, userId), liveGrantsOf(db, userId, clock.now()));
    },

    /** Live grants and pending requests on the resources `userId` approves (all when `userId` is omitted). */
    async listForApprover(userId?: string): Promise<{ pending: AccessRequest[]; active: Grant[] }> {
      const names: string[] = [];
      for (const resource of Object.values(deps.policy.current().resources)) {
        if (userId === undefined || (await isApproverOf(resource, userId))) names.push(resource.name);
      }
      if (names.length === 0) return { pending: [], active: [] };
      return pendingAndLive(pendingRequestsOn(db, names), liveGrantsOn(db, names, clock.now()));
    },

    isApproverOf: async (resourceName: string, userId: string): Promise<boolean> => {
      const resource = resourceOf(resourceName);
      return resource !== undefined && (await isApproverOf(resource, userId));
    },

    /** Grants past their expiry still marked active, and requests past their timeout: for the sweep. */
    async findOverdue(limit = 500): Promise<{ grants: Grant[]; requests: AccessRequest[] }> {
      const now = clock.now();
      const [dueGrants, dueRequests] = await Promise.all([
        activeGrantsPastExpiry(db, now, limit),
        requestsPastTimeout(db, now, limit),
      ]);
      return { grants: dueGrants, requests: dueRequests };
    },
  };
}
