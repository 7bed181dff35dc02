import { desc, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../client.ts';
import { auditEvents } from '../../schema/index.ts';
import { withOneParameter } from '../raw-sql.ts';

/**
 * The `audit_events` table's queries live in this folder, by concern: appending under the
 * chain's lock here (the drizzle path: any transaction, PGlite too), the proxy's pipelined batch
 * append in pipelined-append.ts, every read (people, console, chain check) in reads.ts.
 */

// ---------------------------------------------------------------------------------------
// Appending: under the chain's lock, in the caller's transaction.

/** Take the chain's lock for this schema; held until the transaction ends. */
export async function lockAuditChain(tx: Tx): Promise<void> {
  await tx.execute(sql.raw(CHAIN_LOCK_SQL));
}

/** The chain's lock (transaction-level, per schema), as text: pipelined-append.ts sends it too. */
export const CHAIN_LOCK_SQL = `select pg_advisory_xact_lock(hashtext('jitgate_audit:' || current_schema()))`;

/** The newest row's seq and hash, undefined for an empty log. */
export async function auditChainTail(tx: Db | Tx): Promise<{ seq: number; hash: string } | undefined> {
  // seq is the primary key: ORDER BY seq DESC LIMIT 1 is one backward index probe, O(log n)
  // however long the log grows.
  const [last] = await tx
    .select({ seq: auditEvents.seq, hash: auditEvents.hash })
    .from(auditEvents)
    .orderBy(desc(auditEvents.seq))
    .limit(1);
  return last;
}

/** The hash stored at `seq`, or undefined when no such row exists. */
export async function auditHashAt(tx: Db | Tx, seq: number): Promise<string | undefined> {
  const [row] = await tx.select({ hash: auditEvents.hash }).from(auditEvents).where(eq(auditEvents.seq, seq));
  return row?.hash;
}

/**
 * Rows go to Postgres as one JSON parameter per chunk, expanded server-side by
 * jsonb_to_recordset: building a 10-parameters-per-row multi-row INSERT with the query
 * builder cost ~100 µs a row, which capped the appender near 8,000 rows/s. Chunks bound the
 * size of one parameter. The parameter is text cast to jsonb so both driver paths send the
 * JSON text as it is (postgres.js would serialise a value it is told is jsonb once more).
 */
const ROWS_PER_INSERT = 5_000;

/** The chained INSERT of one chunk, `$1` the chunk's JSON array text. */
export const INSERT_CHAINED_ROWS_SQL = `insert into audit_events (seq, at, kind, actor, resource, request_id, grant_id, data, prev_hash, hash)
  select seq, at, kind, actor, resource, "requestId", "grantId", data, "prevHash", hash
  from jsonb_to_recordset($1::text::jsonb) as r(
    seq bigint, at timestamptz, kind text, actor text, resource text, "requestId" uuid,
    "grantId" uuid, data jsonb, "prevHash" text, hash text)
  order by seq`;

/**
 * Inserts rows already chained (seq and hashes decided by the caller), a statement per chunk.
 * Each row is the JSON text of its canonical form (src/audit/chain.ts, canonicalRowText) with
 * `prevHash` and `hash` added: the bytes hashed are the bytes inserted.
 */
export async function insertChainedRows(tx: Tx, rows: readonly string[]): Promise<void> {
  for (const chunk of chainedRowChunks(rows)) {
    await tx.execute(withOneParameter(INSERT_CHAINED_ROWS_SQL, chunk));
  }
}

/** INSERT_CHAINED_ROWS_SQL's parameters for `rows`: a JSON array text per ROWS_PER_INSERT rows. */
export function chainedRowChunks(rows: readonly string[]): string[] {
  const chunks: string[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    chunks.push(`[${rows.slice(i, i + ROWS_PER_INSERT).join(',')}]`);
  }
  return chunks;
}
