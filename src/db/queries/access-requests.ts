import { and, asc, count, desc, eq, gt, inArray, isNull, like, lte, min, or, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { type AccessRequest, accessRequests, type RequestStatus } from '../schema/index.ts';
import type { Reach } from './reach.ts';

export type NewAccessRequest = typeof accessRequests.$inferInsert;

export async function findRequest(db: Db | Tx, requestId: string): Promise<AccessRequest | undefined> {
  const [row] = await db.select().from(accessRequests).where(eq(accessRequests.id, requestId));
  return row;
}

/** The request, its row locked until the transaction ends. */
export async function lockRequest(tx: Tx, requestId: string): Promise<AccessRequest | undefined> {
  const [row] = await tx.select().from(accessRequests).where(eq(accessRequests.id, requestId)).for('update');
  return row;
}

export async function insertRequest(
  tx: Db | Tx,
  values: NewAccessRequest,
): Promise<AccessRequest | undefined> {
  const [row] = await tx.insert(accessRequests).values(values).returning();
  return row;
}

/**
 * A change of status as the access state machine names it (src/access/transitions.ts): the
 * row changes only while its status is one of `from`. The table knows no transitions.
 */
export interface RequestMove {
  readonly from: readonly RequestStatus[];
  readonly to: RequestStatus;
}

type Decision = Pick<NewAccessRequest, 'decidedAt' | 'decidedBy' | 'decisionNote'>;

/**
 * Decides a request only while its status is one of `move.from`: of two racing decisions
 * exactly one gets the row back; undefined means it had moved on (or `also` did not hold).
 */
async function decide(
  tx: Db | Tx,
  requestId: string,
  move: RequestMove,
  decision: Decision,
  also?: SQL,
): Promise<AccessRequest | undefined> {
  const [row] = await tx
    .update(accessRequests)
    .set({ ...decision, status: move.to })
    .where(and(eq(accessRequests.id, requestId), inArray(accessRequests.status, [...move.from]), also))
    .returning();
  return row;
}

export const decideRequest = (tx: Db | Tx, requestId: string, move: RequestMove, decision: Decision) =>
  decide(tx, requestId, move, decision);

/** Decides a request only once its deadline has passed (the scheduler may fire early). */
export const decideRequestPastTimeout = (
  tx: Db | Tx,
  requestId: string,
  move: RequestMove,
  decision: Decision & { decidedAt: Date },
) => decide(tx, requestId, move, decision, lte(accessRequests.timeoutAt, decision.decidedAt));

/** Decides every request of a person that `move` applies to (on `resources` only, when given). */
export function decideRequestsOf(
  tx: Db | Tx,
  userId: string,
  move: RequestMove,
  decision: Decision,
  resources?: readonly string[],
): Promise<AccessRequest[]> {
  const onRequests = resources ? inArray(accessRequests.resource, [...resources]) : undefined;
  return tx
    .update(accessRequests)
    .set({ ...decision, status: move.to })
    .where(
      and(eq(accessRequests.requesterId, userId), inArray(accessRequests.status, [...move.from]), onRequests),
    )
    .returning();
}

/** A person's pending requests, newest first. */
export function pendingRequestsOf(db: Db | Tx, userId: string): Promise<AccessRequest[]> {
  return db
    .select()
    .from(accessRequests)
    .where(and(eq(accessRequests.requesterId, userId), eq(accessRequests.status, 'pending')))
    .orderBy(desc(accessRequests.createdAt));
}

/** Pending requests on these resources, oldest first. */
export function pendingRequestsOn(db: Db | Tx, resources: readonly string[]): Promise<AccessRequest[]> {
  return db
    .select()
    .from(accessRequests)
    .where(and(inArray(accessRequests.resource, [...resources]), eq(accessRequests.status, 'pending')))
    .orderBy(asc(accessRequests.createdAt));
}

/** The resources a person has a pending request on (unordered, each once). */
export function resourcesWithPendingRequestsOf(db: Db | Tx, userId: string): Promise<{ resource: string }[]> {
  return db
    .selectDistinct({ resource: accessRequests.resource })
    .from(accessRequests)
    .where(and(eq(accessRequests.requesterId, userId), eq(accessRequests.status, 'pending')));
}

/** Everyone with a pending request (unordered, each once). */
export function usersWithPendingRequests(db: Db | Tx): Promise<{ userId: string }[]> {
  return db
    .selectDistinct({ userId: accessRequests.requesterId })
    .from(accessRequests)
    .where(eq(accessRequests.status, 'pending'));
}

/** The id of the extension of this grant still waiting for a decision, if there is one. */
export async function pendingExtensionOf(db: Db | Tx, grantId: string): Promise<{ id: string } | undefined> {
  const [row] = await db
    .select({ id: accessRequests.id })
    .from(accessRequests)
    .where(and(eq(accessRequests.extendsGrantId, grantId), eq(accessRequests.status, 'pending')));
  return row;
}

/** What `approval_message_ts` holds now (a Slack ts, a posting marker or null); undefined: no such request. */
export async function findApprovalMessageTs(
  db: Db | Tx,
  requestId: string,
): Promise<{ ts: string | null } | undefined> {
  const [row] = await db
    .select({ ts: accessRequests.approvalMessageTs })
    .from(accessRequests)
    .where(eq(accessRequests.id, requestId));
  return row;
}

/**
 * Compare-and-set of `approval_message_ts` from `seen` (what the caller read) to `marker`:
 * true for the one caller that found it unchanged.
 */
export async function claimApprovalMessageTs(
  db: Db | Tx,
  requestId: string,
  seen: string | null,
  marker: string,
): Promise<boolean> {
  const claimed = await db
    .update(accessRequests)
    .set({ approvalMessageTs: marker })
    .where(
      and(
        eq(accessRequests.id, requestId),
        seen === null ? isNull(accessRequests.approvalMessageTs) : eq(accessRequests.approvalMessageTs, seen),
      ),
    )
    .returning({ id: accessRequests.id });
  return claimed.length === 1;
}

/** Gives a claim back (a `prefix…` marker → empty) after Slack answered that it posted nothing. */
export async function releaseApprovalMessageClaim(
  db: Db | Tx,
  requestId: string,
  prefix: string,
  /** What the slot holds afterwards: empty, or another marker. */
  replacement: string | null = null,
): Promise<void> {
  await db
    .update(accessRequests)
    .set({ approvalMessageTs: replacement })
    .where(and(eq(accessRequests.id, requestId), like(accessRequests.approvalMessageTs, `${prefix}%`)));
}

export async function setApprovalMessage(
  db: Db | Tx,
  requestId: string,
  channel: string,
  ts: string,
): Promise<void> {
  await db
    .update(accessRequests)
    .set({ approvalChannel: channel, approvalMessageTs: ts })
    .where(eq(accessRequests.id, requestId));
}

/** Requests still pending past their timeout, longest overdue first: what the sweep re-expires. */
export function requestsPastTimeout(db: Db | Tx, now: Date, limit: number): Promise<AccessRequest[]> {
  return db
    .select()
    .from(accessRequests)
    .where(and(eq(accessRequests.status, 'pending'), lte(accessRequests.timeoutAt, now)))
    .orderBy(asc(accessRequests.timeoutAt))
    .limit(limit);
}

/** The earliest timeout among requests still pending past it, undefined when none is. */
export async function oldestOverdueRequestTimeout(db: Db | Tx, now: Date): Promise<Date | null | undefined> {
  const [row] = await db
    .select({ oldest: min(accessRequests.timeoutAt) })
    .from(accessRequests)
    .where(and(eq(accessRequests.status, 'pending'), lte(accessRequests.timeoutAt, now)));
  return row?.oldest;
}

export async function countPendingRequests(db: Db | Tx): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(accessRequests)
    .where(eq(accessRequests.status, 'pending'));
  return row?.n ?? 0;
}

/** Pending requests not yet past their timeout, in id order after `afterId` (keyset paging), for the sweep. */
export function waitingRequestsPage(
  db: Db | Tx,
  now: Date,
  afterId: string | undefined,
  limit: number,
): Promise<AccessRequest[]> {
  return db
    .select()
    .from(accessRequests)
    .where(
      and(
        eq(accessRequests.status, 'pending'),
        gt(accessRequests.timeoutAt, now),
        afterId ? gt(accessRequests.id, afterId) : undefined,
      ),
    )
    .orderBy(asc(accessRequests.id))
    .limit(limit);
}

// ---------------------------------------------------------------------------------------
// Reading for the web console.

export interface RequestListFilter {
  status?: AccessRequest['status'];
  requesterId?: string;
  resource?: string;
  /** Only requests within this reach (an approver's resources, and their own). */
  reach?: Reach;
}

/** Matching requests, newest first, at most `limit`. */
export function requestsMatching(
  db: Db | Tx,
  filter: RequestListFilter,
  limit: number,
): Promise<AccessRequest[]> {
  return db
    .select()
    .from(accessRequests)
    .where(
      and(
        filter.status ? eq(accessRequests.status, filter.status) : undefined,
        filter.requesterId ? eq(accessRequests.requesterId, filter.requesterId) : undefined,
        filter.resource ? eq(accessRequests.resource, filter.resource) : undefined,
        filter.reach
          ? or(
              inArray(accessRequests.resource, [...filter.reach.resources]),
              eq(accessRequests.requesterId, filter.reach.userId),
            )
          : undefined,
      ),
    )
    .orderBy(desc(accessRequests.createdAt))
    .limit(limit);
}

/** The ids of every request to extend this grant, whatever became of them. */
export async function extensionRequestIdsOf(db: Db | Tx, grantId: string): Promise<string[]> {
  const rows = await db
    .select({ id: accessRequests.id })
    .from(accessRequests)
    .where(eq(accessRequests.extendsGrantId, grantId));
  return rows.map((r) => r.id);
}

/** Pending requests per person (on these resources, when given). */
export function pendingRequestCounts(
  db: Db | Tx,
  visibleResources?: readonly string[],
): Promise<{ userId: string; pending: number }[]> {
  return db
    .select({ userId: accessRequests.requesterId, pending: count() })
    .from(accessRequests)
    .where(
      and(
        eq(accessRequests.status, 'pending'),
        visibleResources ? inArray(accessRequests.resource, [...visibleResources]) : undefined,
      ),
    )
    .groupBy(accessRequests.requesterId);
}
