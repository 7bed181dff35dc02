import type { Readable } from 'node:stream';
import { and, asc, count, desc, eq, gt, gte, inArray, lt, max, min, or, type SQL, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { personLabels } from '../../../shared/actor.ts';
import type { Db, Tx } from '../../client.ts';
import { type AuditEventRow, auditEvents } from '../../schema/index.ts';
import type { Reach } from '../reach.ts';
import { resultRows } from '../result-rows.ts';

// ---------------------------------------------------------------------------------------
// Reading for the intent replay: which journalled calls already have their row.

const CALL_ROWS = inArray(auditEvents.kind, ['proxy.call', 'proxy.denied']);
/** Request id and time of each proxied call's row in `[since, until]` (a replayed journal's window; `at` index). */
export const callRowKeysBetween = (db: Db | Tx, since: Date, until: Date) =>
  db
    .select({ requestId: sql<string | null>`${auditEvents.data}->>'requestId'`, at: auditEvents.at })
    .from(auditEvents)
    .where(and(gte(auditEvents.at, since), lt(auditEvents.at, new Date(until.getTime() + 1)), CALL_ROWS));

// ---------------------------------------------------------------------------------------
// Reading for people: export, `/access audit`, the weekly report.

/** Which rows an export takes; every field narrows. */
interface AuditEventFilter {
  /** Rows at or after this instant. */
  since?: Date;
  /** Rows strictly before this instant. */
  until?: Date;
  grantId?: string;
  /** A Slack user id: rows the user acted in, or that are about them (proxy calls, alerts). */
  userId?: string;
}

function whereOf(filter: AuditEventFilter): SQL[] {
  const conditions: SQL[] = [];
  if (filter.since) conditions.push(gte(auditEvents.at, filter.since));
  if (filter.until) conditions.push(lt(auditEvents.at, filter.until));
  if (filter.grantId) conditions.push(eq(auditEvents.grantId, filter.grantId));
  if (filter.userId) conditions.push(aboutPerson(filter.userId));
  return conditions;
}

/**
 * Rows a person acted in, through any channel, or that are about them (proxy calls, grants
 * made for them, alerts): one branch per index (`actor, at` and `data->>'userId', at`).
 */
function aboutPerson(userId: string): SQL {
  return sql`(${inArray(auditEvents.actor, personLabels(userId))} or ${auditEvents.data}->>'userId' = ${userId})`;
}

/** Up to `limit` matching rows after `after`, in seq order (keyset paging on seq). */
export function auditEventsPage(
  db: Db | Tx,
  filter: AuditSearchFilter,
  after: number,
  limit: number,
): Promise<AuditEventRow[]> {
  return db
    .select()
    .from(auditEvents)
    .where(and(gt(auditEvents.seq, after), ...searchWhere(filter)))
    .orderBy(asc(auditEvents.seq))
    .limit(limit);
}

/** What one grant's calls add up to; see grantCallStats. */
export interface GrantCallStats {
  totals: { total: number; denied: number; bytes: number; first: Date | null; last: Date | null } | undefined;
  byStatus: { status: number; count: number }[];
  topPaths: { method: string; path: string; count: number }[];
  /** Client IPs in order of first appearance. */
  ips: { ip: string; first: number | null }[];
}

/**
 * A grant's call rows (`kinds`) added up: totals, by status, the most frequent method +
 * path pairs and client IPs. Every query is on the `(grant_id, seq)` index, so it costs
 * the grant's own rows, not the log's.
 */
export async function grantCallStats(
  db: Db | Tx,
  grantId: string,
  options: { kinds: readonly string[]; topPaths: number; maxIps: number },
): Promise<GrantCallStats> {
  const calls = and(eq(auditEvents.grantId, grantId), inArray(auditEvents.kind, [...options.kinds]));
  const status = sql<number>`(${auditEvents.data}->>'status')::int`.mapWith(Number);
  const method = sql<string>`${auditEvents.data}->>'method'`;
  const path = sql<string>`${auditEvents.data}->>'path'`;
  const ip = sql<string>`${auditEvents.data}->>'clientIp'`;
  const [totals, byStatus, topPaths, ips] = await Promise.all([
    db
      .select({
        total: count(),
        denied: sql<number>`count(*) filter (where ${auditEvents.kind} = 'proxy.denied')`.mapWith(Number),
        bytes: sql<number>`coalesce(sum((${auditEvents.data}->>'bytes')::bigint), 0)`.mapWith(Number),
        first: min(auditEvents.at),
        last: max(auditEvents.at),
      })
      .from(auditEvents)
      .where(calls),
    db.select({ status, count: count() }).from(auditEvents).where(calls).groupBy(status).orderBy(status),
    db
      .select({ method, path, count: count() })
      .from(auditEvents)
      .where(calls)
      .groupBy(method, path)
      .orderBy(desc(count()), method, path)
      .limit(options.topPaths),
    db
      .select({ ip, first: min(auditEvents.seq) })
      .from(auditEvents)
      .where(calls)
      .groupBy(ip)
      .orderBy(min(auditEvents.seq))
      .limit(options.maxIps),
  ]);
  return { totals: totals[0], byStatus, topPaths, ips };
}

const n = (expr: ReturnType<typeof sql>) => sql<number>`${expr}`.mapWith(Number);

/**
 * The weekly report's numbers over `[periodStart, periodEnd)`, one row per resource that
 * has any rows in it (the definitions are in audit/weekly-report.ts).
 */
export async function weeklyCountsByResource(
  db: Db | Tx,
  input: { resources: readonly string[]; periodStart: Date; periodEnd: Date },
) {
  const a = auditEvents;
  const unusedGrant = sql`not exists (
    select 1 from ${auditEvents} c
    where c.grant_id = ${a.grantId} and c.kind = 'proxy.call' and c.at < ${input.periodEnd.toISOString()})`;
  return db
    .select({
      resource: a.resource,
      grantsMade: n(sql`count(*) filter (where ${a.kind} = 'grant.created')`),
      grantsUsed: n(sql`count(distinct ${a.grantId}) filter (where ${a.kind} = 'proxy.call')`),
      grantsUnused: n(sql`count(*) filter (where ${a.kind} = 'grant.created' and ${unusedGrant})`),
      calls: n(sql`count(*) filter (where ${a.kind} = 'proxy.call')`),
      deniedCalls: n(sql`count(*) filter (where ${a.kind} = 'proxy.denied')`),
      alerts: n(sql`count(*) filter (where ${a.kind} = 'anomaly.alert')`),
      idleRevoked: n(sql`count(*) filter (where ${a.kind} = 'grant.revoked' and ${a.data} ? 'idle')`),
      offboarded: n(sql`count(*) filter (where ${a.kind} = 'grant.revoked' and ${a.data} ? 'offboardId')`),
    })
    .from(a)
    .where(
      and(
        inArray(a.resource, [...input.resources]),
        gte(a.at, input.periodStart),
        lt(a.at, input.periodEnd),
        inArray(a.kind, ['grant.created', 'proxy.call', 'proxy.denied', 'anomaly.alert', 'grant.revoked']),
      ),
    )
    .groupBy(a.resource);
}

// ---------------------------------------------------------------------------------------
// Reading for the web console: search, charts, timelines, alerts, chain status.

/** The console's audit search: every field narrows; `visibleResources` is the viewer's reach. */
export interface AuditSearchFilter extends AuditEventFilter {
  resource?: string;
  /** Only rows within this reach (an approver's resources and their own rows). */
  reach?: Reach;
  /** `allowed` (forwarded calls), `denied` (refused calls), or one denial code such as `out_of_scope`. */
  decision?: string;
  /** HTTP method of proxied calls. */
  method?: string;
  /** Text the call's path contains (case-insensitive, taken literally). */
  pathText?: string;
  clientIp?: string;
  kinds?: readonly string[];
}

function withinReach(reach: Reach): SQL {
  return sql`(${inArray(auditEvents.resource, [...reach.resources])} or ${aboutPerson(reach.userId)})`;
}

/** LIKE's own characters taken literally, so a searched `%` or `_` means itself. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function searchWhere(filter: AuditSearchFilter): SQL[] {
  const conditions = whereOf(filter);
  const a = auditEvents;
  if (filter.resource) conditions.push(eq(a.resource, filter.resource));
  if (filter.reach) conditions.push(withinReach(filter.reach));
  if (filter.kinds && filter.kinds.length > 0) conditions.push(inArray(a.kind, [...filter.kinds]));
  if (filter.decision === 'allowed') conditions.push(eq(a.kind, 'proxy.call'));
  else if (filter.decision === 'denied') conditions.push(eq(a.kind, 'proxy.denied'));
  else if (filter.decision) conditions.push(sql`${a.data}->>'decision' = ${filter.decision}`);
  if (filter.method) conditions.push(sql`${a.data}->>'method' = ${filter.method.toUpperCase()}`);
  if (filter.pathText) conditions.push(sql`${a.data}->>'path' ilike ${`%${likeLiteral(filter.pathText)}%`}`);
  if (filter.clientIp) conditions.push(sql`${a.data}->>'clientIp' = ${filter.clientIp}`);
  return conditions;
}

/**
 * Up to `limit` matching rows, newest first by time (then seq), after the row whose seq is
 * `before` (keyset paging). By time rather than seq: with a time range, the `at` index walks
 * back from the range's end and stops at `limit`; ordered by seq, the planner may walk the
 * whole primary key backwards through every newer row instead (seen at 1M rows: 120 ms
 * for a mid-log day, growing with the log's length).
 */
export function auditSearchPage(
  db: Db | Tx,
  filter: AuditSearchFilter,
  page: { before?: number; limit: number },
): Promise<AuditEventRow[]> {
  const a = auditEvents;
  const after =
    page.before !== undefined
      ? sql`(${a.at}, ${a.seq}) < (select c.at, c.seq from ${auditEvents} c where c.seq = ${page.before})`
      : undefined;
  return db
    .select()
    .from(a)
    .where(and(after, ...searchWhere(filter)))
    .orderBy(desc(a.at), desc(a.seq))
    .limit(page.limit);
}

/** One bucket of a search's rows over time: forwarded calls, refused calls, everything else. */
export interface AuditBucket {
  start: Date;
  allowed: number;
  denied: number;
  other: number;
}

/** The search's rows counted per `bucketSeconds` (buckets with no rows are absent), oldest first. */
export async function auditSearchHistogram(
  db: Db | Tx,
  filter: AuditSearchFilter,
  bucketSeconds: number,
): Promise<AuditBucket[]> {
  const a = auditEvents;
  const width = Math.max(1, Math.trunc(bucketSeconds));
  // The width goes in as a literal (an integer computed here): as a bind parameter, each use
  // would be a different $n and Postgres would not see the GROUP BY expression as the selected one.
  const bucket = sql<number>`floor(extract(epoch from ${a.at}) / ${sql.raw(String(width))})`.mapWith(Number);
  const rows = await db
    .select({
      bucket,
      allowed: n(sql`count(*) filter (where ${a.kind} = 'proxy.call')`),
      denied: n(sql`count(*) filter (where ${a.kind} = 'proxy.denied')`),
      other: n(sql`count(*) filter (where ${a.kind} not in ('proxy.call', 'proxy.denied'))`),
    })
    .from(a)
    .where(and(...searchWhere(filter)))
    .groupBy(bucket)
    .orderBy(bucket);
  return rows.map((r) => ({
    start: new Date(r.bucket * width * 1000),
    allowed: r.allowed,
    denied: r.denied,
    other: r.other,
  }));
}

/** The text of EXPLAIN (ANALYZE) for the search page query, for the benchmark. */
export async function explainAuditSearch(
  db: Db | Tx,
  filter: AuditSearchFilter,
  limit: number,
): Promise<string> {
  const query = db
    .select()
    .from(auditEvents)
    .where(and(...searchWhere(filter)))
    .orderBy(desc(auditEvents.at), desc(auditEvents.seq))
    .limit(limit);
  const { sql: text, params } = query.toSQL();
  // EXPLAIN takes no bind parameters of its own: the query's are inlined as literals.
  const inlined = text.replace(/\$(\d+)/g, (_, i: string) => {
    const value = params[Number(i) - 1];
    return value instanceof Date ? `'${value.toISOString()}'` : `'${String(value).replaceAll("'", "''")}'`;
  });
  const result = await db.execute(sql.raw(`explain (analyze, buffers) ${inlined}`));
  return resultRows(result)
    .map((row) => String(Object.values(row)[0]))
    .join('\n');
}

/**
 * A grant's state changes, oldest first: rows on the grant or on its requests (the one that
 * made it and its extensions), proxied calls left out.
 */
export function grantTimelineRows(
  db: Db | Tx,
  grantId: string,
  requestIds: readonly string[],
  limit = 500,
): Promise<AuditEventRow[]> {
  const a = auditEvents;
  const about =
    requestIds.length > 0
      ? or(eq(a.grantId, grantId), inArray(a.requestId, [...requestIds]))
      : eq(a.grantId, grantId);
  return db
    .select()
    .from(a)
    .where(and(about, sql`${a.kind} not in ('proxy.call', 'proxy.denied')`))
    .orderBy(asc(a.seq))
    .limit(limit);
}

/** Alerts raised in `[since, until)`, newest first (on these resources only, when given). */
export function alertRows(
  db: Db | Tx,
  input: { since: Date; until?: Date; reach?: Reach; limit: number },
): Promise<AuditEventRow[]> {
  const a = auditEvents;
  return db
    .select()
    .from(a)
    .where(
      and(
        eq(a.kind, 'anomaly.alert'),
        gte(a.at, input.since),
        input.until ? lt(a.at, input.until) : undefined,
        input.reach ? withinReach(input.reach) : undefined,
      ),
    )
    .orderBy(desc(a.seq))
    .limit(input.limit);
}

/** The newest `audit.verified` row: what the last chain check found. */
export async function lastChainCheck(db: Db | Tx): Promise<AuditEventRow | undefined> {
  const [row] = await db
    .select()
    .from(auditEvents)
    .where(eq(auditEvents.kind, 'audit.verified'))
    .orderBy(desc(auditEvents.seq))
    .limit(1);
  return row;
}

// ---------------------------------------------------------------------------------------
// Reading for the chain check (audit/verify.ts): raw SQL, tuned for speed.

/**
 * Rows as the row reader checks them, straight from the driver: columns aliased to
 * ExportedRow's names, `at` as text in Date#toISOString's layout (UTC) plus microseconds,
 * ids as text; seq (bigint) may arrive as text or BigInt and data (jsonb) as text.
 */
async function chainRows(db: Db | Tx, where: SQL, limit: number): Promise<Record<string, unknown>[]> {
  // Raw SQL rather than the query builder: its per-row mapping was a third of verify's time.
  const result = await db.execute(sql`
    select seq, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, kind, actor, resource,
      request_id::text as "requestId", grant_id::text as "grantId", data, prev_hash as "prevHash", hash
    from ${auditEvents}
    where ${where}
    order by seq
    limit ${limit}`);
  return resultRows(result);
}

/** Up to `limit` rows after seq `after`, in seq order (see chainRows for their form). */
export const auditChainPage = (db: Db | Tx, after: number, limit: number) =>
  chainRows(db, sql`seq > ${after}`, limit);

/** The row whose hash is `hash`, if any (a scan: run only to explain a break). */
export const auditChainRowWithHash = (db: Db | Tx, hash: string) => chainRows(db, sql`hash = ${hash}`, 1);

/**
 * Columns in COPY text format: tab-separated, `\N` for null, backslash escapes for
 * backslash and control characters, one line per row. Hashes are 64 hex characters and
 * `at` is 27 characters (`YYYY-MM-DDTHH:MI:SS.ffffffZ`, microseconds so a sub-millisecond
 * edit shows) in every row the appender wrote, so the checker finds them by position.
 * `data` comes in jsonb's own printing, which the checker reorders into canonical form.
 */
const COPY_COLUMNS = `seq, prev_hash, hash, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  kind, actor, resource, request_id, grant_id, data`;

/**
 * One page of the chain as COPY text (see COPY_COLUMNS): the rows with
 * `after < seq <= after + size`. A seq range rather than `LIMIT` so the next page can be
 * asked for before this one is read. COPY takes no bind parameters; both numbers are
 * integers we computed. Needs postgres.js's own client: COPY goes around drizzle.
 */
export function copyAuditChainPage(client: postgres.Sql, after: number, size: number): Promise<Readable> {
  const query = `copy (select ${COPY_COLUMNS} from audit_events
    where seq > ${Math.trunc(after)} and seq <= ${Math.trunc(after) + Math.trunc(size)} order by seq) to stdout`;
  return client.unsafe(query).readable();
}
