import type { GrantStatus, RequestStatus } from '../db/schema/index.ts';

/** One named change of status: from any of `from` to `to`. */
export interface Transition<S extends string> {
  readonly from: readonly S[];
  readonly to: S;
}

/** A state machine as data: where a row starts, and every change an action may make to it. */
export interface Machine<S extends string, T extends string> {
  readonly initial: S;
  readonly transitions: { readonly [name in T]: Transition<S> };
}

/**
 * The state machines the actions consult. Every status write is a conditional UPDATE whose
 * `WHERE status IN (…)` is the transition's `from` and whose new status is its `to`, taken
 * from here (the queries take the transition; none names a status of its own). So a
 * transition that loses a race changes nothing, and an action can only make the changes
 * listed: test/unit/transitions.test.ts checks the tables' shape, and
 * test/integration/state-machine.test.ts that the actions move rows only along them.
 */
export const REQUEST_MACHINE = {
  initial: 'pending',
  transitions: {
    approve: { from: ['pending'], to: 'approved' },
    deny: { from: ['pending'], to: 'denied' },
    cancel: { from: ['pending'], to: 'cancelled' },
    timeOut: { from: ['pending'], to: 'expired' },
  },
} as const satisfies Machine<RequestStatus, string>;

export const GRANT_MACHINE = {
  initial: 'active',
  transitions: {
    /** A longer expiry; the status stays. */
    extend: { from: ['active'], to: 'active' },
    revoke: { from: ['active'], to: 'revoked' },
    expire: { from: ['active'], to: 'expired' },
  },
} as const satisfies Machine<GrantStatus, string>;

export const REQUEST_MOVES = REQUEST_MACHINE.transitions;
export const GRANT_MOVES = GRANT_MACHINE.transitions;

/** How long the grant lasts: the shortest of what was asked and what any approver allowed. */
export function grantedSeconds(requestedSeconds: number, approverLimits: readonly (number | null)[]): number {
  return approverLimits.reduce<number>(
    (shortest, limit) => (limit !== null && limit < shortest ? limit : shortest),
    requestedSeconds,
  );
}

/**
 * When a grant that runs `seconds` from `from` ends: on a whole second, rounded down. A token's
 * `exp` is whole seconds (JWT NumericDate), so a millisecond end would make the token die up to
 * a second before the grant says; on the second, the two agree, and nobody gets more than was
 * approved.
 */
export function grantEndAt(from: Date, seconds: number): Date {
  return new Date(Math.floor((from.getTime() + seconds * 1000) / 1000) * 1000);
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
 * can raise a cap (the approve action refuses a choice above the policy before it is stored).
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
