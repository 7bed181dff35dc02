import type { Tx } from '../db/client.ts';
import { auditChainTail, insertChainedRows, lockAuditChain } from '../db/queries/audit-events/append.ts';
import { type Actor, actorLabel } from '../shared/actor.ts';
import { canonicalJson, canonicalRowPrefix, GENESIS_HASH, sha256Hex } from './chain.ts';

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
 * lock's cost per row small; the proxy's batches without quota use take the same steps
 * pipelined instead (src/db/queries/audit-events/pipelined-append.ts), with chainFrom.
 */
export async function appendAuditEvents(tx: Tx, events: readonly AuditEventInput[]): Promise<number> {
  if (events.length === 0) return 0;
  return (await appendChainedPrefixes(tx, events.map(eventRowPrefix))).count;
}

/** An event's canonical row up to its seq (canonicalRowPrefix). */
export function eventRowPrefix(event: AuditEventInput): string {
  // Postgres keeps microseconds, JS milliseconds: toISOString's milliseconds survive the round trip.
  return canonicalRowPrefix(
    event.at.toISOString(),
    event.kind,
    actorLabel(event.actor),
    event.resource ?? null,
    event.requestId ?? null,
    event.grantId ?? null,
    canonicalJson(event.data ?? {}),
  );
}

/**
 * appendAuditEvents for rows already in canonical form up to their seq (canonicalRowPrefix, or
 * callAuditRow for proxied calls), in the caller's transaction, saying which seqs and hashes
 * the batch got. Requires at least one row.
 */
export async function appendChainedPrefixes(tx: Tx, prefixes: readonly string[]): Promise<AppendedBatch> {
  if (prefixes.length === 0) throw new Error('appendChainedPrefixes needs at least one row');
  await lockAuditChain(tx);
  const chained = chainFrom(await auditChainTail(tx), prefixes);
  await insertChainedRows(tx, chained.rows);
  return chained.batch;
}

/**
 * Chains rows onto `tail` (undefined: an empty log). Each row is serialised once: its
 * canonical text is what the hash covers and, with the two hashes appended, what the INSERT
 * sends, so no row object is built and nothing is stringified twice (it was ~a third of the
 * appender's CPU).
 */
export function chainFrom(
  tail: { seq: number; hash: string } | undefined,
  prefixes: readonly string[],
): { rows: string[]; batch: AppendedBatch } {
  let seq = tail?.seq ?? 0;
  let prevHash = tail?.hash ?? GENESIS_HASH;
  const firstSeq = seq + 1;
  let firstHash = '';
  const rows: string[] = new Array(prefixes.length);
  for (let i = 0; i < prefixes.length; i++) {
    seq += 1;
    const head = prefixes[i]! + seq;
    const hash = sha256Hex(`${prevHash}${head}}`);
    rows[i] = `${head},"prevHash":"${prevHash}","hash":"${hash}"}`;
    if (i === 0) firstHash = hash;
    prevHash = hash;
  }
  return { rows, batch: { count: rows.length, firstSeq, firstHash, lastSeq: seq, lastHash: prevHash } };
}
