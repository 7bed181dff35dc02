import postgres from 'postgres';
import { grantsLastUseQuery } from '../grants/proxy-use.ts';
import { CHAIN_LOCK_SQL, chainedRowChunks, INSERT_CHAINED_ROWS_SQL } from './append.ts';

/**
 * The proxy's batch append on postgres.js directly, in two pipelined round trips instead of the
 * drizzle path's ~9 (drizzle sends every statement unprepared, so each one with a parameter
 * waits for a Describe first, and BEGIN, COMMIT and the last-use update are round trips of
 * their own): the first sends BEGIN, the grants' last-use update, the chain lock and the tail
 * read together; the second sends the chained INSERT and COMMIT together. Statements with
 * parameters are prepared once per connection and then bound by name, so none waits for a
 * Describe after the first batch. The connection is reserved for the batch: a transaction's
 * statements must share one.
 *
 * Pipelined statements run one after another on the server exactly as if awaited in turn; if
 * one fails, the transaction is aborted, every later statement fails, and the COMMIT at the
 * end answers ROLLBACK, so the batch is all or nothing as before. Which statement failed is
 * read from the replies, all of which are waited for.
 */

/** The newest row's seq and hash, undefined for an empty log. */
export type ChainTail = { seq: number; hash: string } | undefined;

const TAIL_SQL = 'select seq, hash from audit_events order by seq desc limit 1';

/**
 * Appends one batch: `lastUse` grants' rows are locked (id order) and their last use moved
 * forward, then the chain's lock is taken and its tail read; `chain` turns the tail into the
 * batch's rows (canonical JSON with both hashes, as insertChainedRows takes them) and must be
 * synchronous. Resolves once COMMIT is acknowledged; rejects when the batch did not commit,
 * or (a COMMIT whose reply was lost) when it cannot be known: the caller tells those apart.
 */
export async function appendBatchPipelined(
  client: postgres.Sql,
  lastUse: readonly { id: string; at: Date | null }[],
  chain: (tail: ChainTail) => readonly string[],
): Promise<void> {
  const conn = await client.reserve();
  // Released only while its socket is known to be alive: postgres.js puts a connection that
  // closed back into its pool by itself, and releasing it as well would hand the pool a
  // connection without a socket (its next query then throws from a setImmediate, where nothing
  // can catch it). Any failure but the server's own (a PostgresError) is taken for a closed
  // connection: in postgres.js those are the connection's and socket's errors.
  let alive = true;
  let inTransaction = false;
  const settle = async (queries: readonly Promise<unknown>[]) => {
    const results = await Promise.allSettled(queries);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      if (!(failed.reason instanceof postgres.PostgresError)) alive = false;
      throw failed.reason;
    }
    return results.map((r) => (r as PromiseFulfilledResult<unknown>).value);
  };
  try {
    inTransaction = true;
    const first = await settle([
      conn.unsafe('begin').execute(),
      ...(lastUse.length > 0 ? [grantsLastUseQuery(conn, lastUse).execute()] : []),
      conn.unsafe(CHAIN_LOCK_SQL).execute(),
      conn.unsafe(TAIL_SQL).execute(),
    ]);
    const [last] = first[first.length - 1] as { seq: unknown; hash: string }[];
    const rows = chain(last ? { seq: Number(last.seq), hash: last.hash } : undefined);
    const second: Promise<unknown>[] = chainedRowChunks(rows).map((chunk) =>
      conn.unsafe(INSERT_CHAINED_ROWS_SQL, [chunk], { prepare: true }).execute(),
    );
    second.push(conn.unsafe('commit').execute());
    const replies = await settle(second);
    inTransaction = false;
    const committed = replies[replies.length - 1] as postgres.RowList<postgres.Row[]>;
    if (committed.command !== 'COMMIT')
      throw new Error(`audit batch ended in ${committed.command}, not COMMIT`);
  } catch (error) {
    if (alive && inTransaction) {
      // A statement failed with the connection still up, or the chain builder threw: end the
      // transaction here so the connection goes back to the pool outside one.
      await conn.unsafe('rollback').catch(() => {
        alive = false;
      });
    }
    throw error;
  } finally {
    if (alive) conn.release();
  }
}
