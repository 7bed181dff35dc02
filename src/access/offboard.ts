import { decideRequestsOf, resourcesWithPendingRequestsOf } from '../db/queries/access-requests.ts';
import { endConsoleSessionsOf } from '../db/queries/console-sessions.ts';
import { endGrantsOf } from '../db/queries/grants/lifecycle.ts';
import { resourcesWithLiveGrantsOf } from '../db/queries/grants/live.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { type Actor, actorLabel, endedByOf, type PersonActor } from '../shared/actor.ts';
import { consoleSessionEndedRow, grantRow, requestRow, userOffboardedRow } from './audit-rows.ts';
import { commit } from './commit.ts';
import type { AccessContext } from './context.ts';
import { type Outcome, ok, refuse } from './outcomes.ts';
import { approvedResources, isConsoleAdmin } from './people.ts';
import { GRANT_MOVES, REQUEST_MOVES } from './transitions.ts';
import { checkUserText, cleanUserText } from './user-text.ts';

export interface OffboardInput {
  userId: string;
  /** Stored as each grant's end reason and in the audit rows, e.g. `offboarded: account deactivated`. */
  reason: string;
  actor: Actor;
  /**
   * Only grants and requests on these resources (revoke-all by an approver of some); all when
   * omitted, and then the person's console sessions end too.
   */
  resources?: readonly string[];
  /** False when the person cannot be messaged any more (deactivated account). Default true. */
  dmOwner?: boolean;
}

export interface OffboardResult {
  /** Grants this call revoked (ones already ended are not counted). */
  grants: Grant[];
  /** Pending requests (and pending extensions) this call ended. */
  requests: AccessRequest[];
  /** Ids of the console sessions this call ended (only when everything is ended). */
  consoleSessions: string[];
}

export interface RevokeAllResult extends OffboardResult {
  /** Resources where the target still holds something the caller does not act on. */
  untouchedResources: string[];
}

const NOTHING: OffboardResult = { grants: [], requests: [], consoleSessions: [] };

/**
 * End everything a person holds at once: every active grant revoked, every pending
 * request (extensions included) cancelled, every console session ended (so a console open in
 * their browser is signed out on its next request), in ONE transaction with one audit row per
 * change plus a `user.offboarded` row, the outbox notes to each affected resource's
 * approval channel, and a NOTIFY per grant so proxies drop them within milliseconds.
 * Nothing to end means nothing is written (a deactivated user who never asked for
 * access leaves no trace). Safe to repeat: a second run finds nothing active.
 */
export async function offboardUser(
  ctx: AccessContext,
  input: OffboardInput,
): Promise<Outcome<OffboardResult>> {
  if (input.resources !== undefined && input.resources.length === 0) return ok(NOTHING);
  const unfit = checkUserText(input.reason, 'reason');
  if (unfit) return unfit;
  const reason = cleanUserText(input.reason).trim().slice(0, 2000) || 'offboarded';
  const by = endedByOf(input.actor);
  const dmOwner = input.dmOwner ?? true;
  return commit<OffboardResult>(ctx, async (tx, effects) => {
    const now = ctx.clock.now();
    const revoked = await endGrantsOf(
      tx,
      input.userId,
      GRANT_MOVES.revoke,
      { now, by, reason },
      input.resources,
    );
    const ended = await decideRequestsOf(
      tx,
      input.userId,
      REQUEST_MOVES.cancel,
      { decidedAt: now, decidedBy: by, decisionNote: reason },
      input.resources,
    );
    // Revoking what lies on some resources is not offboarding: the console stays theirs.
    const sessions = input.resources === undefined ? await endConsoleSessionsOf(tx, input.userId, now) : [];
    if (revoked.length === 0 && ended.length === 0 && sessions.length === 0) return ok(NOTHING);
    const offboardId = ctx.newId();
    for (const grant of revoked) {
      effects.audit.push(
        grantRow('grant.revoked', input.actor, now, grant, { data: { reason, gaveUp: false, offboardId } }),
      );
      effects.messages.push({ kind: 'grant_revoked', grantId: grant.id, revokedBy: by, reason, dmOwner });
      effects.changedGrants.push(grant.id);
    }
    for (const request of ended) {
      effects.audit.push(
        requestRow('request.cancelled', input.actor, now, request, { data: { reason, offboardId } }),
      );
      effects.messages.push({ kind: 'request_cancelled', requestId: request.id });
    }
    for (const sessionId of sessions) {
      effects.audit.push(
        consoleSessionEndedRow(input.actor, now, { userId: input.userId, sessionId, reason, offboardId }),
      );
    }
    const resources = [...new Set([...revoked, ...ended].map((row) => row.resource))].sort();
    effects.audit.push(
      userOffboardedRow(input.actor, now, {
        userId: input.userId,
        reason,
        offboardId,
        resources,
        grants: revoked.map((g) => g.id),
        requests: ended.map((r) => r.id),
        consoleSessions: sessions,
      }),
    );
    for (const resource of resources) {
      effects.messages.push({
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
    return ok({ grants: revoked, requests: ended, consoleSessions: sessions });
  });
}

export interface RevokeAllInput {
  actor: PersonActor;
  targetId: string;
  reason?: string;
}

/**
 * `revoke-all <person>` by a person: a console admin (checked against the policy now) ends
 * everything, as the CLI does; anyone else ends the target's grants and pending requests on
 * every resource they approve. Refused when the caller approves nothing, or none of the
 * resources the target holds something on; what lies on other resources is left and named.
 */
export async function revokeAll(
  ctx: AccessContext,
  input: RevokeAllInput,
): Promise<Outcome<RevokeAllResult>> {
  const unfit = checkUserText(input.reason, 'reason');
  if (unfit) return unfit;
  const reason = input.reason?.trim() ? input.reason : `revoke-all by ${input.actor.userId}`;
  if (await isConsoleAdmin(ctx, input.actor)) {
    const result = await offboardUser(ctx, { userId: input.targetId, reason, actor: input.actor });
    return result.ok ? ok({ ...result.value, untouchedResources: [] }) : result;
  }
  const approved = await approvedResources(ctx, input.actor.userId);
  if (approved.length === 0) return refuse({ code: 'not_allowed_to_revoke', of: 'person', held: null });
  const now = ctx.clock.now();
  const [held, asked] = await Promise.all([
    resourcesWithLiveGrantsOf(ctx.db, input.targetId, now),
    resourcesWithPendingRequestsOf(ctx.db, input.targetId),
  ]);
  const touched = [...new Set([...held, ...asked].map((r) => r.resource))].sort();
  if (touched.length === 0) return ok({ ...NOTHING, untouchedResources: [] });
  const mine = touched.filter((name) => approved.includes(name));
  const untouchedResources = touched.filter((name) => !approved.includes(name));
  if (mine.length === 0) return refuse({ code: 'not_allowed_to_revoke', of: 'person', held: touched });
  const result = await offboardUser(ctx, {
    userId: input.targetId,
    reason,
    actor: input.actor,
    resources: approved,
  });
  if (!result.ok) return result;
  return ok({ ...result.value, untouchedResources });
}
