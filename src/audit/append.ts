import { desc, eq, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { auditEvents } from '../db/schema.ts';
import { type Actor, actorLabel } from '../shared/actor.ts';
import { chainHash, GENESIS_HASH } from './chain.ts';

export interface AuditEventInput {
  kind: string;
  actor: Actor;
  at: Date;
  resource?: string | null;
  requestId?: string | null;
  grantId?: string | null;
  data?: Record<string, unknown>;
}

/** Where a batch landed in the chain; the appender uses it to tell "committed" from "lost" after a fault. */
export interface AppendedBatch {
  count: number;
  firstSeq: number;
  firstHash: string;
  lastSeq: number;
  lastHash: string;
}

/**
 * Rows go to Postgres as one JSON parameter per chunk, expanded server-side by
 * jsonb_to_recordset: building a 10-parameters-per-row multi-row INSERT with the query
 * builder cost ~100 µs a row, which capped the appender near 8,000 rows/s. Chunks bound the
 * size of one parameter.
 */
const ROWS_PER_INSERT = 5_000;

interface ChainedRow {
  seq: number;
  at: Date;
  kind: string;
  actor: string;
  resource: string | null;
  requestId: string | null;
  grantId: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

async function insertRows(tx: Tx, rows: readonly ChainedRow[]): Promise<void> {
  const json = JSON.stringify(
    rows.map((r) => ({
      seq: r.seq,
      at: r.at.toISOString(),
      kind: r.kind,
      actor: r.actor,
      resource: r.resource,
      request_id: r.requestId,
      grant_id: r.grantId,
      data: r.data,
      prev_hash: r.prevHash,
      hash: r.hash,
    })),
  );
  await tx.execute(sql`
    insert into ${auditEvents} (seq, at, kind, actor, resource, request_id, grant_id, data, prev_hash, hash)
    select seq, at, kind, actor, resource, request_id, grant_id, data, prev_hash, hash
    from jsonb_to_recordset(${json}::jsonb) as r(
      seq bigint, at timestamptz, kind text, actor text, resource text, request_id uuid,
      grant_id uuid, data jsonb, prev_hash text, hash text)
    order by seq`);
}

/** Take the chain's lock for this schema; held until the transaction ends. */
export async function lockAuditChain(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext('jitgate_audit:' || current_schema()))`);
}

/** The hash stored at `seq`, or undefined when no such row exists. */
export async function auditHashAt(tx: Tx, seq: number): Promise<string | undefined> {
  const [row] = await tx.select({ hash: auditEvents.hash }).from(auditEvents).where(eq(auditEvents.seq, seq));
  return row?.hash;
}

/**
 * Append events to the chain inside the caller's transaction.
 *
 * The chain must be one line even with several processes writing: a transaction-level
 * advisory lock (per schema) is held from reading the last hash until commit, so two
 * writers cannot both extend the same row. Holding it to commit matters: were it released
 * earlier, a second writer could read a tail that is later rolled back. State changes and
 * their audit rows share the transaction, so a failed audit write rolls the change back.
 * Proxy calls reach here in batches (one lock and one INSERT per batch), which keeps the
 * lock's cost per row small.
 */
export async function appendAuditEvents(tx: Tx, events: readonly AuditEventInput[]): Promise<number> {
  if (events.length === 0) return 0;
  return (await appendAuditBatch(tx, events)).count;
}

/** As appendAuditEvents, and says which seqs and hashes the batch got. Requires at least one event. */
export async function appendAuditBatch(tx: Tx, events: readonly AuditEventInput[]): Promise<AppendedBatch> {
  if (events.length === 0) throw new Error('appendAuditBatch needs at least one event');
  await lockAuditChain(tx);
  // seq is the primary key: ORDER BY seq DESC LIMIT 1 is one backward index probe, O(log n)
  // however long the log grows.
  const [last] = await tx
    .select({ seq: auditEvents.seq, hash: auditEvents.hash })
    .from(auditEvents)
    .orderBy(desc(auditEvents.seq))
    .limit(1);
  let seq = last?.seq ?? 0;
  let prevHash = last?.hash ?? GENESIS_HASH;
  const rows = events.map((event) => {
    seq += 1;
    const fields = {
      seq,
      // Postgres keeps microseconds, JS milliseconds: hash what survives the round trip.
      at: new Date(event.at.getTime()),
      kind: event.kind,
      actor: actorLabel(event.actor),
      resource: event.resource ?? null,
      requestId: event.requestId ?? null,
      grantId: event.grantId ?? null,
      data: event.data ?? {},
    };
    const hash = chainHash(prevHash, fields);
    const row = { ...fields, prevHash, hash };
    prevHash = hash;
    return row;
  });
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    await insertRows(tx, rows.slice(i, i + ROWS_PER_INSERT));
  }
  const first = rows[0]!;
  const tail = rows[rows.length - 1]!;
  return {
    count: rows.length,
    firstSeq: first.seq,
    firstHash: first.hash,
    lastSeq: tail.seq,
    lastHash: tail.hash,
  };
}
