import { and, asc, count, desc, eq, gt, inArray, lte, min, or, sql } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { type Grant, type GrantStatus, grants } from '../schema/index.ts';
import type { Reach } from './reach.ts';
import { resultRows } from './result-rows.ts';

export type NewGrant = typeof grants.$inferInsert;

export async function findGrant(db: Db | Tx, grantId: string): Promise<Grant | undefined> {
  const [row] = await db.select().from(grants).where(eq(grants.id, grantId));
  return row;
}

/** The grant, its row locked until the transaction ends. */
export async function lockGrant(tx: Tx, grantId: string): Promise<Grant | undefined> {
  const [row] = await tx.select().from(grants).where(eq(grants.id, grantId)).for('update');
  return row;
}

/** The grant a request created (not the one an extension request extends). */
export async function findGrantOfRequest(db: Db | Tx, requestId: string): Promise<Grant | undefined> {
  const [row] = await db.select().from(grants).where(eq(grants.requestId, requestId));
  return row;
}

/** Whose grant it is and on what: all `/access audit` needs of the grant itself. */
export async function findGrantOwner(
  db: Db | Tx,
  grantId: string,
): Promise<{ resource: string; userId: string } | undefined> {
  const [row] = await db
    .select({ resource: grants.resource, userId: grants.userId })
    .from(grants)
    .where(eq(grants.id, grantId));
  return row;
}

export async function insertGrant(tx: Db | Tx, values: NewGrant): Promise<Grant | undefined> {
  const [row] = await tx.insert(grants).values(values).returning();
  return row;
}

/**
 * A change of status as the access state machine names it (src/access/transitions.ts): the
 * row changes only while its status is one of `from`. The table knows no transitions.
 */
export interface GrantMove {
  readonly from: readonly GrantStatus[];
  readonly to: GrantStatus;
}

/** How a grant ended: when, who (as stored in `ended_by`) and why. */
export interface GrantEnding {
  now: Date;
  by: string;
  reason: string;
}

const inFromStates = (move: GrantMove) => inArray(grants.status, [...move.from]);

/**
 * Moves a grant's expiry to `expiresAt`, only if it is still the version read as `current`
 * and `move` applies: undefined when it ended or changed in between.
 */
export async function extendGrant(
  tx: Db | Tx,
  current: Grant,
  move: GrantMove,
  expiresAt: Date,
): Promise<Grant | undefined> {
  const [row] = await tx
    .update(grants)
    .set({ status: move.to, expiresAt, extensions: current.extensions + 1, version: current.version + 1 })
    .where(and(eq(grants.id, current.id), inFromStates(move), eq(grants.version, current.version)))
    .returning();
  return row;
}

/** The columns an ending sets; the version bump is done in SQL, row by row. */
const endedSet = (move: GrantMove, ending: GrantEnding) => ({
  status: move.to,
  endedAt: ending.now,
  endedBy: ending.by,
  endReason: ending.reason,
  version: sql`${grants.version} + 1`,
});

/** Ends one grant if `move` applies to it; undefined when it had already moved on. */
export async function endGrant(
  tx: Db | Tx,
  grantId: string,
  move: GrantMove,
  ending: GrantEnding,
): Promise<Grant | undefined> {
  const [row] = await tx
    .update(grants)
    .set(endedSet(move, ending))
    .where(and(eq(grants.id, grantId), inFromStates(move)))
    .returning();
  return row;
}

/** Ends every grant of a person that `move` applies to (on `resources` only, when given). */
export function endGrantsOf(
  tx: Db | Tx,
  userId: string,
  move: GrantMove,
  ending: GrantEnding,
  resources?: readonly string[],
): Promise<Grant[]> {
  const onGrants = resources ? inArray(grants.resource, [...resources]) : undefined;
  return tx
    .update(grants)
    .set(endedSet(move, ending))
    .where(and(eq(grants.userId, userId), inFromStates(move), onGrants))
    .returning();
}

/**
 * Ends up to `limit` unexpired grants on `resource` not used since `cutoff` (counted from the
 * start when never used). Rows another transaction holds are skipped.
 */
export function endIdleGrantsOn(
  tx: Db | Tx,
  move: GrantMove,
  input: GrantEnding & { resource: string; cutoff: Date; limit: number },
): Promise<Grant[]> {
  const { now } = input;
  const lastUse = sql`coalesce(${grants.lastUsedAt}, ${grants.startsAt})`;
  // A plain SQL expression gets no column type, so the cutoff goes in as an explicit timestamptz.
  const idleSince = sql`${lastUse} <= ${input.cutoff.toISOString()}::timestamptz`;
  const due = tx
    .select({ id: grants.id })
    .from(grants)
    .where(and(eq(grants.resource, input.resource), inFromStates(move), gt(grants.expiresAt, now), idleSince))
    .limit(input.limit)
    .for('update', { skipLocked: true });
  return (
    tx
      .update(grants)
      .set(endedSet(move, input))
      // The idle test again under the row lock: a batch of calls may have landed since.
      .where(and(inArray(grants.id, due), inFromStates(move), idleSince))
      .returning()
  );
}

/** The columns an expiry sets (the version stays: the token's own `exp` already says so). */
const expiredSet = (move: GrantMove, ending: GrantEnding) => ({
  status: move.to,
  endedAt: ending.now,
  endedBy: ending.by,
  endReason: ending.reason,
});

/** Expires one grant if `move` applies and it is past its expiry; undefined otherwise. */
export async function expireGrant(
  tx: Db | Tx,
  grantId: string,
  move: GrantMove,
  ending: GrantEnding,
): Promise<Grant | undefined> {
  const [row] = await tx
    .update(grants)
    .set(expiredSet(move, ending))
    .where(and(eq(grants.id, grantId), inFromStates(move), lte(grants.expiresAt, ending.now)))
    .returning();
  return row;
}

/**
 * Expires up to `limit` grants past their expiry, soonest first, in one statement; rows
 * another transaction holds are skipped, not waited for.
 */
export function expireGrantsPastExpiry(
  tx: Db | Tx,
  move: GrantMove,
  ending: GrantEnding,
  limit: number,
): Promise<Grant[]> {
  const due = tx
    .select({ id: grants.id })
    .from(grants)
    .where(and(inFromStates(move), lte(grants.expiresAt, ending.now)))
    .orderBy(asc(grants.expiresAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  return tx
    .update(grants)
    .set(expiredSet(move, ending))
    .where(and(inArray(grants.id, due), inFromStates(move)))
    .returning();
}

/** A person's live (active, unexpired) grants, soonest to expire first. */
export function liveGrantsOf(db: Db | Tx, userId: string, now: Date): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(and(eq(grants.userId, userId), eq(grants.status, 'active'), gt(grants.expiresAt, now)))
    .orderBy(asc(grants.expiresAt));
}

/** Live grants on these resources, soonest to expire first. */
export function liveGrantsOn(db: Db | Tx, resources: readonly string[], now: Date): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(
      and(inArray(grants.resource, [...resources]), eq(grants.status, 'active'), gt(grants.expiresAt, now)),
    )
    .orderBy(asc(grants.expiresAt));
}

/** The resources a person holds a live grant on (unordered, each once). */
export function resourcesWithLiveGrantsOf(
  db: Db | Tx,
  userId: string,
  now: Date,
): Promise<{ resource: string }[]> {
  return db
    .selectDistinct({ resource: grants.resource })
    .from(grants)
    .where(and(eq(grants.userId, userId), eq(grants.status, 'active'), gt(grants.expiresAt, now)));
}

/** Everyone holding a live grant (unordered, each once). */
export function usersWithLiveGrants(db: Db | Tx, now: Date): Promise<{ userId: string }[]> {
  return db
    .selectDistinct({ userId: grants.userId })
    .from(grants)
    .where(and(eq(grants.status, 'active'), gt(grants.expiresAt, now)));
}

/** Grants still marked active past their expiry, longest overdue first: what the sweep re-expires. */
export function activeGrantsPastExpiry(db: Db | Tx, now: Date, limit: number): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(and(eq(grants.status, 'active'), lte(grants.expiresAt, now)))
    .orderBy(asc(grants.expiresAt))
    .limit(limit);
}

/** The earliest expiry among grants still active past it, undefined when none is. */
export async function oldestOverdueGrantExpiry(db: Db | Tx, now: Date): Promise<Date | null | undefined> {
  const [row] = await db
    .select({ oldest: min(grants.expiresAt) })
    .from(grants)
    .where(and(eq(grants.status, 'active'), lte(grants.expiresAt, now)));
  return row?.oldest;
}

export async function countLiveGrants(db: Db | Tx, now: Date): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(grants)
    .where(and(eq(grants.status, 'active'), gt(grants.expiresAt, now)));
  return row?.n ?? 0;
}

/** Live grants in id order after `afterId` (keyset paging), for the sweep's walk. */
export function liveGrantsPage(
  db: Db | Tx,
  now: Date,
  afterId: string | undefined,
  limit: number,
): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(
      and(
        eq(grants.status, 'active'),
        gt(grants.expiresAt, now),
        afterId ? gt(grants.id, afterId) : undefined,
      ),
    )
    .orderBy(asc(grants.id))
    .limit(limit);
}

/** The columns the proxy's live grant view keeps. */
const viewColumns = {
  id: grants.id,
  userId: grants.userId,
  resource: grants.resource,
  scope: grants.scope,
  status: grants.status,
  startsAt: grants.startsAt,
  expiresAt: grants.expiresAt,
  quotaRequests: grants.quotaRequests,
  quotaResponseBytes: grants.quotaResponseBytes,
  usedRequests: grants.usedRequests,
  usedResponseBytes: grants.usedResponseBytes,
};
export type GrantViewRow = Pick<Grant, keyof typeof viewColumns>;

/** Every active grant, as the proxy's view holds it (expired-but-active ones included: the proxy checks the clock). */
export function activeGrantsForView(db: Db | Tx): Promise<GrantViewRow[]> {
  return db.select(viewColumns).from(grants).where(eq(grants.status, 'active'));
}

/** These grants whatever their status, as the proxy's view holds them; deleted ones are absent. */
export function grantsForView(db: Db | Tx, grantIds: string[]): Promise<GrantViewRow[]> {
  return db.select(viewColumns).from(grants).where(inArray(grants.id, grantIds));
}

/** One grant's share of an audit batch: calls, response bytes and the latest call's time. */
export interface GrantQuotaUse {
  id: string;
  requests: number;
  bytes: number;
  at: Date;
}

/** A grant's quota state after a batch's use was added. */
export interface GrantQuotaTotals {
  id: string;
  userId: string;
  resource: string;
  usedRequests: number;
  usedBytes: number;
  quotaRequests: number | null;
  quotaBytes: number | null;
  /** This statement is the one that set `quota_exhausted_at`. */
  exhausted: boolean;
}

/**
 * Adds a batch's use to its grants' quota totals in ONE statement, rows locked in id order
 * (two proxies' batches cannot deadlock), and sets `quota_exhausted_at` on the grants this
 * use brought to their quota, at the time of the batch's latest call to each. Raw SQL: the
 * use goes as one JSON parameter expanded by jsonb_to_recordset, whatever the batch's size.
 */
export async function addGrantQuotaUse(
  tx: Db | Tx,
  uses: readonly GrantQuotaUse[],
): Promise<GrantQuotaTotals[]> {
  const json = JSON.stringify(
    uses.map((u) => ({ id: u.id, n: u.requests, b: u.bytes, at: u.at.toISOString() })),
  );
  const result = await tx.execute(sql`
    with used as (
      select id, n, b, at from jsonb_to_recordset(${json}::jsonb) as v(id uuid, n bigint, b bigint, at timestamptz)
    ), locked as (
      select g.id, g.quota_exhausted_at as was
      from ${grants} g join used on used.id = g.id order by g.id for update of g
    )
    update ${grants} g set
      used_requests = g.used_requests + used.n,
      used_response_bytes = g.used_response_bytes + used.b,
      quota_exhausted_at = coalesce(g.quota_exhausted_at, case
        when (g.quota_requests is not null and g.used_requests + used.n >= g.quota_requests)
          or (g.quota_response_bytes is not null and g.used_response_bytes + used.b >= g.quota_response_bytes)
        then used.at end)
    from used, locked
    where g.id = used.id and locked.id = g.id
    returning g.id as "id", g.user_id as "userId", g.resource as "resource",
      g.used_requests as "usedRequests", g.used_response_bytes as "usedBytes",
      g.quota_requests as "quotaRequests", g.quota_response_bytes as "quotaBytes",
      (locked.was is null and g.quota_exhausted_at is not null) as "exhausted",
      g.quota_exhausted_at as "exhaustedAt"`);
  return resultRows(result).map((row) => ({
    id: String(row.id),
    userId: String(row.userId),
    resource: String(row.resource),
    usedRequests: Number(row.usedRequests),
    usedBytes: Number(row.usedBytes),
    quotaRequests: row.quotaRequests === null ? null : Number(row.quotaRequests),
    quotaBytes: row.quotaBytes === null ? null : Number(row.quotaBytes),
    exhausted: row.exhausted === true || row.exhausted === 't',
  }));
}

/**
 * A grant's committed quota use (every audit batch adds to it): what the proxies' shared count in
 * Redis is seeded from (src/proxy/limits/redis-limits.ts). Undefined: no such grant.
 */
export async function grantQuotaUse(
  db: Db | Tx,
  grantId: string,
): Promise<{ requests: number; bytes: number } | undefined> {
  const [row] = await db
    .select({ requests: grants.usedRequests, bytes: grants.usedResponseBytes })
    .from(grants)
    .where(eq(grants.id, grantId));
  return row ? { requests: Number(row.requests), bytes: Number(row.bytes) } : undefined;
}

/**
 * Moves `last_used_at` forward to each grant's latest call in ONE statement, rows locked in
 * id order so two proxies' batches cannot deadlock each other. `greatest` ignores NULL and
 * never moves the time back, so batches landing out of order are harmless. Raw SQL for the
 * same reason as addGrantQuotaUse: one JSON parameter however many grants.
 */
export async function recordGrantsLastUse(
  db: Db | Tx,
  latest: readonly { id: string; at: Date }[],
): Promise<void> {
  const json = JSON.stringify(latest.map((u) => ({ id: u.id, at: u.at.toISOString() })));
  await db.execute(sql`
    with used as (
      select id, at from jsonb_to_recordset(${json}::jsonb) as v(id uuid, at timestamptz)
    ), locked as (
      select g.id from ${grants} g join used on used.id = g.id order by g.id for update of g
    )
    update ${grants} set last_used_at = greatest(${grants.lastUsedAt}, used.at)
    from used
    where ${grants.id} = used.id and ${grants.id} in (select id from locked)`);
}

// ---------------------------------------------------------------------------------------
// Reading for the web console.

/** `live`: active and unexpired now; the stored statuses otherwise (an active grant past its expiry counts as expired). */
export type GrantState = 'live' | 'expired' | 'revoked';

export interface GrantListFilter {
  resource?: string;
  userId?: string;
  state?: GrantState;
  scope?: string;
  /** Only grants within this reach (an approver's resources, and their own). */
  reach?: Reach;
}

function grantListWhere(filter: GrantListFilter, now: Date) {
  const state =
    filter.state === 'live'
      ? and(eq(grants.status, 'active'), gt(grants.expiresAt, now))
      : filter.state === 'expired'
        ? or(eq(grants.status, 'expired'), and(eq(grants.status, 'active'), lte(grants.expiresAt, now)))
        : filter.state === 'revoked'
          ? eq(grants.status, 'revoked')
          : undefined;
  return and(
    filter.resource ? eq(grants.resource, filter.resource) : undefined,
    filter.userId ? eq(grants.userId, filter.userId) : undefined,
    filter.scope ? eq(grants.scope, filter.scope) : undefined,
    filter.reach
      ? or(inArray(grants.resource, [...filter.reach.resources]), eq(grants.userId, filter.reach.userId))
      : undefined,
    state,
  );
}

/**
 * Matching grants, newest start first, `limit` at a time; `before` is the last row of the
 * previous page (keyset on start time, then id, so equal start times page exactly).
 */
export function grantsMatching(
  db: Db | Tx,
  filter: GrantListFilter,
  page: { now: Date; limit: number; before?: { startsAt: Date; id: string } },
): Promise<Grant[]> {
  const after = page.before
    ? sql`(${grants.startsAt}, ${grants.id}) < (${page.before.startsAt.toISOString()}::timestamptz, ${page.before.id}::uuid)`
    : undefined;
  return db
    .select()
    .from(grants)
    .where(and(grantListWhere(filter, page.now), after))
    .orderBy(desc(grants.startsAt), desc(grants.id))
    .limit(page.limit);
}

/** Per person with live grants (on these resources, when given): how many, where, until when. */
export async function liveGrantHolders(
  db: Db | Tx,
  now: Date,
  visibleResources?: readonly string[],
): Promise<{ userId: string; grants: number; resources: string[]; nextExpiry: Date }[]> {
  const rows = await db
    .select({
      userId: grants.userId,
      grants: count(),
      resources: sql<string[]>`array_agg(distinct ${grants.resource} order by ${grants.resource})`,
      nextExpiry: min(grants.expiresAt),
    })
    .from(grants)
    .where(
      and(
        eq(grants.status, 'active'),
        gt(grants.expiresAt, now),
        visibleResources ? inArray(grants.resource, [...visibleResources]) : undefined,
      ),
    )
    .groupBy(grants.userId)
    .orderBy(grants.userId);
  return rows.map((r) => ({
    userId: r.userId,
    grants: r.grants,
    resources: r.resources,
    nextExpiry: r.nextExpiry ?? now,
  }));
}
