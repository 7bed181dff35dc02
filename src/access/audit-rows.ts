import type { AuditEventInput } from '../audit/chain-append.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import type { Actor } from '../shared/actor.ts';

/** The audit rows the access actions write about a request. */
export type RequestRowKind =
  | 'request.created'
  | 'request.approval_added'
  | 'request.approved'
  | 'request.denied'
  | 'request.cancelled'
  | 'request.expired';

/** The audit rows the access actions write about a grant. */
export type GrantRowKind =
  | 'grant.created'
  | 'grant.extended'
  | 'grant.revoked'
  | 'grant.expired'
  | 'grant.quota_exhausted';

/** The actor of time-driven changes (expiry, time-out, idle revocation). */
export const SCHEDULER: Actor = { type: 'system', component: 'scheduler' };

type Data = Record<string, unknown>;

/** A row about `request`; `grantId` when the request concerns a grant (an extension, an approval that made one). */
export function requestRow(
  kind: RequestRowKind,
  actor: Actor,
  at: Date,
  request: Pick<AccessRequest, 'id' | 'resource'>,
  options: { grantId?: string; data?: Data } = {},
): AuditEventInput {
  return {
    kind,
    actor,
    at,
    resource: request.resource,
    requestId: request.id,
    ...(options.grantId !== undefined ? { grantId: options.grantId } : {}),
    ...(options.data !== undefined ? { data: options.data } : {}),
  };
}

/**
 * A row about `grant`, naming the request it came from (`requestId` overrides that with the
 * extension request that changed it); `withRequest: false` names no request at all.
 */
export function grantRow(
  kind: GrantRowKind,
  actor: Actor,
  at: Date,
  grant: Pick<Grant, 'id' | 'resource' | 'requestId'>,
  options: { requestId?: string; withRequest?: boolean; data?: Data } = {},
): AuditEventInput {
  return {
    kind,
    actor,
    at,
    resource: grant.resource,
    ...(options.withRequest === false ? {} : { requestId: options.requestId ?? grant.requestId }),
    grantId: grant.id,
    ...(options.data !== undefined ? { data: options.data } : {}),
  };
}

/** The one row of an offboarding (or revoke-all) that names everything it ended. */
export function userOffboardedRow(actor: Actor, at: Date, data: Data): AuditEventInput {
  return { kind: 'user.offboarded', actor, at, data };
}

/**
 * A console session ended by an offboarding, about the person (as `console.signed_in` and
 * `console.signed_out` are, so a search by them finds all three), in the offboarder's name.
 */
export function consoleSessionEndedRow(
  actor: Actor,
  at: Date,
  data: { userId: string; sessionId: string; reason: string; offboardId: string },
): AuditEventInput {
  return { kind: 'console.session_ended', actor, at, data };
}
