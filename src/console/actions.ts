import type { AccessErrorCode, Outcome } from '../access/outcomes.ts';
import type { LowerQuota } from '../access/quota.ts';
import type { AccessService } from '../access/service.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { PersonActor } from '../shared/actor.ts';
import { refusalText } from '../slack/blocks/refusals.ts';
import type { Viewer } from './viewer.ts';

/**
 * Everything the console and `/api/v1` change goes through here, and from here through the
 * access service: the same rules as in Slack (approvers only, never one's own request,
 * N-of-M, replay-safe), the same transaction writing the audit row (actor `console:U…`)
 * and the outbox rows that update Slack in place and send the DMs.
 *
 * Deliberately thin: the viewer becomes the actor, a refusal gets its sentence; every rule is
 * the actions' own.
 */
type ConsoleOutcome<T> = { ok: true; value: T } | { ok: false; code: AccessErrorCode; message: string };

interface ApprovalDone {
  request: AccessRequest;
  /** Set when this approval completed the request and made (or extended) a grant. */
  grant: Grant | undefined;
  approvals: number;
  required: number;
}

interface RevokeAllDone {
  grants: Grant[];
  requests: AccessRequest[];
  /** Resources where the person still holds something the viewer does not act on. */
  untouchedResources: string[];
}

export interface ConsoleActions {
  /** Approve, optionally for less time or a lower quota than asked ("approve for less"). */
  approve(
    viewer: Viewer,
    input: { requestId: string; durationSeconds?: number; quota?: LowerQuota },
  ): Promise<ConsoleOutcome<ApprovalDone>>;
  deny(viewer: Viewer, input: { requestId: string; reason: string }): Promise<ConsoleOutcome<AccessRequest>>;
  /** End a grant now: its approvers, console admins, or its owner (giving it up). */
  revokeGrant(viewer: Viewer, input: { grantId: string; reason: string }): Promise<ConsoleOutcome<Grant>>;
  /**
   * More time on a grant: its owner asks (approved like any request, or by policy); an
   * approver of its resource gives it (their approval counted, the owner told in Slack).
   */
  extendGrant(
    viewer: Viewer,
    input: { grantId: string; durationSeconds: number; reason?: string },
  ): Promise<ConsoleOutcome<ApprovalDone>>;
  /** End a person's grants and pending requests on what the viewer approves (everything for an admin). */
  revokeAll(
    viewer: Viewer,
    input: { userId: string; reason: string },
  ): Promise<ConsoleOutcome<RevokeAllDone>>;
}

/** A refusal of the access actions, with the sentence Slack shows for it. */
function worded<T>(outcome: Outcome<T>): ConsoleOutcome<T> {
  return outcome.ok ? outcome : { ok: false, code: outcome.code, message: refusalText(outcome) };
}

/** The signed-in person as the actor of what they do here: the audit rows say `console:U…`. */
const actorOf = (viewer: Viewer): PersonActor => ({
  type: 'console',
  userId: viewer.userId,
  admin: viewer.admin,
});

/** ConsoleActions over the access actions (src/access/): each takes the viewer as its actor. */
export function accessServiceActions(access: AccessService): ConsoleActions {
  return {
    approve: async (viewer, input) =>
      worded(
        await access.approve({
          actor: actorOf(viewer),
          requestId: input.requestId,
          ...(input.durationSeconds !== undefined ? { durationSeconds: input.durationSeconds } : {}),
          ...(input.quota !== undefined ? { quota: input.quota } : {}),
        }),
      ),
    deny: async (viewer, input) =>
      worded(await access.deny({ actor: actorOf(viewer), requestId: input.requestId, note: input.reason })),
    revokeGrant: async (viewer, input) =>
      worded(
        await access.revokeGrant({
          // The action checks an admin claim against the policy again before honouring it.
          actor: actorOf(viewer),
          grantId: input.grantId,
          reason: input.reason.trim() || `revoked in the console by ${viewer.userId}`,
        }),
      ),
    extendGrant: async (viewer, input) =>
      worded(
        await access.extendGrant({
          actor: actorOf(viewer),
          grantId: input.grantId,
          durationSeconds: input.durationSeconds,
          ...(input.reason?.trim() ? { reason: input.reason } : {}),
        }),
      ),
    revokeAll: async (viewer, input) =>
      worded(
        await access.revokeAll({
          actor: actorOf(viewer),
          targetId: input.userId,
          reason: input.reason.trim() || `revoke-all in the console by ${viewer.userId}`,
        }),
      ),
  };
}
