import type { AccessErrorCode } from '../access/outcomes.ts';
import type { AccessService, LowerQuota } from '../access/service.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { Viewer } from './viewer.ts';

/**
 * Everything the console and `/api/v1` change goes through here, and from here through the
 * access service: the same rules as in Slack (approvers only, never one's own request,
 * N-of-M, replay-safe), the same transaction writing the audit row (actor `console:U…`)
 * and the outbox rows that update Slack in place and send the DMs.
 *
 * Deliberately thin: the access refactor (one action per file around one commit()) only
 * re-points `accessServiceActions` at the new actions; routes and pages keep this interface.
 */
export type ConsoleOutcome<T> =
  | { ok: true; value: T }
  | { ok: false; code: AccessErrorCode; message: string };

export interface ApprovalDone {
  request: AccessRequest;
  /** Set when this approval completed the request and made (or extended) a grant. */
  grant: Grant | undefined;
  approvals: number;
  required: number;
}

export interface RevokeAllDone {
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
  /** Ask for more time on one's own grant (approved like any request, or by policy). */
  extendGrant(
    viewer: Viewer,
    input: { grantId: string; durationSeconds: number; reason?: string },
  ): Promise<ConsoleOutcome<ApprovalDone>>;
  /** End a person's grants and pending requests on what the viewer acts on (everything for an admin). */
  revokeAll(
    viewer: Viewer,
    input: { userId: string; reason: string },
  ): Promise<ConsoleOutcome<RevokeAllDone>>;
}

/** ConsoleActions over today's access service (src/access/service.ts). */
export function accessServiceActions(access: AccessService): ConsoleActions {
  return {
    approve: (viewer, input) =>
      access.approve({
        requestId: input.requestId,
        approverId: viewer.userId,
        ...(input.durationSeconds !== undefined ? { durationSeconds: input.durationSeconds } : {}),
        ...(input.quota !== undefined ? { quota: input.quota } : {}),
        channel: 'console',
      }),
    deny: (viewer, input) =>
      access.deny({
        requestId: input.requestId,
        approverId: viewer.userId,
        note: input.reason,
        channel: 'console',
      }),
    revokeGrant: (viewer, input) =>
      access.revokeGrant({
        grantId: input.grantId,
        // The service checks the admin claim against the policy again before honouring it.
        actor: { type: 'console', userId: viewer.userId, admin: viewer.admin },
        reason: input.reason.trim() || `revoked in the console by ${viewer.userId}`,
      }),
    extendGrant: (viewer, input) =>
      access.requestExtension({
        grantId: input.grantId,
        userId: viewer.userId,
        durationSeconds: input.durationSeconds,
        ...(input.reason?.trim() ? { reason: input.reason } : {}),
        channel: 'console',
      }),
    async revokeAll(viewer, input) {
      const reason = input.reason.trim() || `revoke-all in the console by ${viewer.userId}`;
      if (viewer.admin) {
        // An admin ends everything, like the CLI; offboardUser records the console admin as actor.
        const result = await access.offboardUser({
          userId: input.userId,
          reason,
          actor: { type: 'console', userId: viewer.userId, admin: true },
        });
        return result.ok ? { ok: true, value: { ...result.value, untouchedResources: [] } } : result;
      }
      return access.revokeAll({ targetId: input.userId, actorId: viewer.userId, reason, channel: 'console' });
    },
  };
}
