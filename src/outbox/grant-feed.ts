import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';

/**
 * The grant change feed: a NOTIFY on `database.channel('grants')` per changed grant, which
 * every proxy LISTENs to (src/proxy/active-grants.ts) and answers by re-reading the grant.
 * Sent inside the transaction that changed the grant, so PostgreSQL delivers it on commit
 * and only then. The one place that calls `pg_notify`: one statement however many payloads.
 */
export async function publishOnGrantFeed(
  tx: Db | Tx,
  channel: string,
  payloads: readonly string[],
): Promise<void> {
  if (payloads.length === 0) return;
  if (payloads.length === 1) {
    await tx.execute(sql`select pg_notify(${channel}, ${payloads[0]})`);
    return;
  }
  const json = JSON.stringify([...new Set(payloads)]);
  await tx.execute(sql`select pg_notify(${channel}, p) from jsonb_array_elements_text(${json}::jsonb) as p`);
}
