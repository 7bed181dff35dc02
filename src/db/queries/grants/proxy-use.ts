import { and, desc, eq, gt, inArray, isNotNull, ne, or, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db, Tx } from '../../client.ts';
import { type Grant, grants } from '../../schema/index.ts';
import { withOneParameter } from '../raw-sql.ts';
import { resultRows } from '../result-rows.ts';

/** Grants as the proxy uses them: the rows its live view keeps, and the quota and last use its calls add. */

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

/** A row of the view's full reload: `endedAt` orders the ended ones, null on the active ones. */
export type GrantReloadRow = GrantViewRow & Pick<Grant, 'endedAt'>;

/**
 * What the proxy's view loads on a full reload, in ONE statement so that both parts are the
 * same snapshot: every active grant (expired-but-active ones included: the proxy checks the
 * clock), and the `maxEnded` most recently ended grants whose tokens may still verify at `now`.
 * A token's `exp` is its grant's `expires_at` when issued, and an extension only moves
 * `expires_at` later while an ending leaves it as it is, so an ended grant with `expires_at` at
 * or before `now` has no token left that verifies: the proxy refuses it as `token_expired`
 * before it looks the grant up.
 */
export function grantsForReload(db: Db | Tx, now: Date, maxEnded: number): Promise<GrantReloadRow[]> {
  const columns = { ...viewColumns, endedAt: grants.endedAt };
  const active = db.select(columns).from(grants).where(eq(grants.status, 'active'));
  if (maxEnded <= 0) return active;
  return active.unionAll(
    db
      .select(columns)
      .from(grants)
      .where(and(ne(grants.status, 'active'), gt(grants.expiresAt, now)))
      .orderBy(desc(grants.endedAt))
      .limit(maxEnded),
  );
}

/** These grants whatever their status, as the proxy's view holds them; deleted ones are absent. */
export function grantsForView(db: Db | Tx, grantIds: string[]): Promise<GrantViewRow[]> {
  return db.select(viewColumns).from(grants).where(inArray(grants.id, grantIds));
}

/** Those of these grants that have a quota (of calls, of response bytes, or both). */
export async function grantsWithQuota(db: Db | Tx, grantIds: readonly string[]): Promise<string[]> {
  if (grantIds.length === 0) return [];
  const rows = await db
    .select({ id: grants.id })
    .from(grants)
    .where(
      and(
        inArray(grants.id, [...grantIds]),
        or(isNotNull(grants.quotaRequests), isNotNull(grants.quotaResponseBytes)),
      ),
    );
  return rows.map((row) => row.id);
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
 * never moves the time back, so batches landing out of order are harmless, and a grant given
 * with `at` null is locked and left as it is (the appender locks a batch's quota grants here
 * too, so that its quota statement takes no lock of its own; see call-writer.ts). Raw SQL for
 * the same reason as addGrantQuotaUse: one JSON parameter however many grants.
 */
export async function recordGrantsLastUse(
  db: Db | Tx,
  latest: readonly { id: string; at: Date | null }[],
): Promise<void> {
  await db.execute(withOneParameter(LAST_USE_SQL, lastUseJson(latest)));
}

/** recordGrantsLastUse as a postgres.js query, for the appender's pipelined batch (not yet sent). */
export function grantsLastUseQuery(
  client: postgres.Sql,
  latest: readonly { id: string; at: Date | null }[],
): postgres.PendingQuery<postgres.Row[]> {
  return client.unsafe(LAST_USE_SQL, [lastUseJson(latest)], { prepare: true });
}

const lastUseJson = (latest: readonly { id: string; at: Date | null }[]) =>
  JSON.stringify(latest.map((u) => ({ id: u.id, at: u.at?.toISOString() ?? null })));

const LAST_USE_SQL = `with used as (
    select id, at from jsonb_to_recordset($1::text::jsonb) as v(id uuid, at timestamptz)
  ), locked as (
    select g.id from grants g join used on used.id = g.id order by g.id for update of g
  )
  update grants g set last_used_at = greatest(g.last_used_at, used.at)
  from used
  where g.id = used.id and g.id in (select id from locked)`;
