import {
  findRequest,
  pendingRequestsOf,
  pendingRequestsOn,
  requestsPastTimeout,
  usersWithPendingRequests,
} from '../db/queries/access-requests.ts';
import { approvalsOf, type GivenApproval } from '../db/queries/approvals.ts';
import { usersWithOpenConsoleSessions } from '../db/queries/console-sessions.ts';
import { usersWithLinkedDevices } from '../db/queries/devices.ts';
import { findGrant } from '../db/queries/grants/lifecycle.ts';
import {
  activeGrantsPastExpiry,
  liveGrantsOf,
  liveGrantsOn,
  usersWithLiveGrants,
} from '../db/queries/grants/live.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { type AccessContext, resourceOf } from './context.ts';
import { approvedResources, isApproverOf, isRequester } from './people.ts';

export interface PeopleToRecheck {
  holders: string[];
  consoleOnly: string[];
}

/** Pending requests and live (active, unexpired) grants. */
export interface AccessList {
  pending: AccessRequest[];
  active: Grant[];
}

/**
 * What the access state looks like to those who ask: Slack's `/access list` and `active`,
 * App Home, the outbox's renderers, the device API and the scheduler's sweep. Reads only;
 * the console's own reads, filtered to each viewer's reach, are in src/console/reads.ts.
 */
export function accessReads(ctx: AccessContext) {
  const { db, clock } = ctx;

  async function pendingAndLive(
    requests: Promise<AccessRequest[]>,
    live: Promise<Grant[]>,
  ): Promise<AccessList> {
    const [pending, active] = await Promise.all([requests, live]);
    return { pending, active };
  }

  return {
    getRequest: (requestId: string): Promise<AccessRequest | undefined> => findRequest(db, requestId),

    getGrant: (grantId: string): Promise<Grant | undefined> => findGrant(db, grantId),

    approvalsOf: (requestId: string): Promise<GivenApproval[]> => approvalsOf(db, requestId),

    /** A person's pending requests and live grants, for `/access list` and App Home. */
    listForUser: (userId: string): Promise<AccessList> =>
      pendingAndLive(pendingRequestsOf(db, userId), liveGrantsOf(db, userId, clock.now())),

    /** Live grants and pending requests on the resources `userId` approves (all when `userId` is omitted). */
    async listForApprover(userId?: string): Promise<AccessList> {
      const names =
        userId === undefined
          ? Object.values(ctx.policy.current().resources).map((r) => r.name)
          : await approvedResources(ctx, userId);
      if (names.length === 0) return { pending: [], active: [] };
      return pendingAndLive(pendingRequestsOn(db, names), liveGrantsOn(db, names, clock.now()));
    },

    /** The resources this person approves (none: they approve nothing), in policy order. */
    approvedResources: (userId: string): Promise<string[]> => approvedResources(ctx, userId),

    isApproverOf: async (resourceName: string, userId: string): Promise<boolean> => {
      const resource = resourceOf(ctx, resourceName);
      return resource !== undefined && (await isApproverOf(ctx, resource, userId));
    },

    /** Whether this person may ask for access at all, so Slack need not offer a form in vain. */
    mayRequestAccess: (userId: string): Promise<boolean> => isRequester(ctx, userId),

    /**
     * Whom the offboarding re-check asks Slack about. `holders` have something only requesters get
     * (a live grant, a pending request, a linked device) and must still be requesters; `consoleOnly`
     * are signed in to the console and nothing more (approvers, mostly), so only a deactivation ends
     * their sessions: not being among the requesters is what an approver normally is.
     */
    async peopleToRecheck(): Promise<PeopleToRecheck> {
      const now = clock.now();
      const [holders, askers, deviceOwners, signedIn] = await Promise.all([
        usersWithLiveGrants(db, now),
        usersWithPendingRequests(db),
        usersWithLinkedDevices(db),
        usersWithOpenConsoleSessions(db, now),
      ]);
      const holding = new Set([...holders, ...askers, ...deviceOwners].flatMap((r) => r.userId ?? []));
      const consoleOnly = new Set(signedIn.map((r) => r.userId).filter((userId) => !holding.has(userId)));
      return { holders: [...holding].sort(), consoleOnly: [...consoleOnly].sort() };
    },

    /** Grants past their expiry still marked active, and requests past their timeout: for the sweep. */
    async findOverdue(limit = 500): Promise<{ grants: Grant[]; requests: AccessRequest[] }> {
      const now = clock.now();
      const [grants, requests] = await Promise.all([
        activeGrantsPastExpiry(db, now, limit),
        requestsPastTimeout(db, now, limit),
      ]);
      return { grants, requests };
    },
  };
}
