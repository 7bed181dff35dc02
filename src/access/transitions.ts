import type { GrantStatus, RequestStatus } from '../db/schema/index.ts';

/**
 * The state machine, as data. Every write in the access service is a conditional UPDATE
 * whose WHERE clause is the `from` state here, so a transition that loses a race changes
 * nothing; these tables are what the unit tests and the service agree on.
 */
export const REQUEST_TRANSITIONS: Readonly<Record<RequestStatus, readonly RequestStatus[]>> = {
  pending: ['approved', 'denied', 'expired', 'cancelled'],
  approved: [],
  denied: [],
  expired: [],
  cancelled: [],
};

export const GRANT_TRANSITIONS: Readonly<Record<GrantStatus, readonly GrantStatus[]>> = {
  active: ['expired', 'revoked'],
  expired: [],
  revoked: [],
};

export function canMoveRequest(from: RequestStatus, to: RequestStatus): boolean {
  return REQUEST_TRANSITIONS[from].includes(to);
}

export function canMoveGrant(from: GrantStatus, to: GrantStatus): boolean {
  return GRANT_TRANSITIONS[from].includes(to);
}

/** How long the grant lasts: the shortest of what was asked and what any approver allowed. */
export function grantedSeconds(requestedSeconds: number, approverLimits: readonly (number | null)[]): number {
  return approverLimits.reduce<number>(
    (shortest, limit) => (limit !== null && limit < shortest ? limit : shortest),
    requestedSeconds,
  );
}

/** Whether a grant is usable at `now`: the proxy's rule, independent of any scheduler. */
export function isGrantLive(grant: { status: GrantStatus; expiresAt: Date }, now: Date): boolean {
  return grant.status === 'active' && grant.expiresAt.getTime() > now.getTime();
}
