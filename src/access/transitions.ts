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

/** A grant's quota as stored: null where it has no cap. */
export interface GrantQuota {
  requests: number | null;
  responseBytes: number | null;
}

/**
 * The quota a grant gets: for each of calls and response bytes, the lowest of the policy's
 * figure and any approver's choice. An approver may cap what the policy leaves open; nobody
 * can raise a cap (the service refuses a choice above the policy before it is stored).
 */
export function grantedQuota(
  policy: { requests?: number | undefined; responseBytes?: number | undefined } | undefined,
  chosen: readonly { quotaRequests?: number | null; quotaResponseBytes?: number | null }[],
): GrantQuota {
  const lowest = (base: number | undefined, picks: readonly (number | null | undefined)[]): number | null => {
    let low = base ?? null;
    for (const pick of picks) if (pick != null && (low === null || pick < low)) low = pick;
    return low;
  };
  return {
    requests: lowest(
      policy?.requests,
      chosen.map((c) => c.quotaRequests),
    ),
    responseBytes: lowest(
      policy?.responseBytes,
      chosen.map((c) => c.quotaResponseBytes),
    ),
  };
}
