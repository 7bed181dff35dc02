import type { Tx } from '../db/client.ts';
import { auditChainTail, insertAuditRows, lockAuditChain } from '../db/queries/audit-events.ts';
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
  await insertAuditRows(tx, rows);
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
