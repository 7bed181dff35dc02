import type { Tx } from '../db/client.ts';
import { auditChainTail, insertChainedRows, lockAuditChain } from '../db/queries/audit-events/append.ts';
import { type Actor, actorLabel } from '../shared/actor.ts';
import { canonicalJson, canonicalRowText, GENESIS_HASH, sha256Hex } from './chain.ts';

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
  const last = await auditChainTail(tx);
  let seq = last?.seq ?? 0;
  let prevHash = last?.hash ?? GENESIS_HASH;
  const firstSeq = seq + 1;
  let firstHash = '';
  // Each row is serialised once: its canonical text is what the hash covers and, with the two
  // hashes appended, what the INSERT sends, so no row object is built and nothing is
  // stringified twice (it was ~a third of the appender's CPU).
  const rows: string[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    seq += 1;
    // Postgres keeps microseconds, JS milliseconds: toISOString's milliseconds survive the round trip.
    const canonical = canonicalRowText(
      seq,
      event.at.toISOString(),
      event.kind,
      actorLabel(event.actor),
      event.resource ?? null,
      event.requestId ?? null,
      event.grantId ?? null,
      canonicalJson(event.data ?? {}),
    );
    const hash = sha256Hex(prevHash + canonical);
    rows[i] = `${canonical.slice(0, -1)},"prevHash":"${prevHash}","hash":"${hash}"}`;
    if (i === 0) firstHash = hash;
    prevHash = hash;
  }
  await insertChainedRows(tx, rows);
  return { count: rows.length, firstSeq, firstHash, lastSeq: seq, lastHash: prevHash };
}
