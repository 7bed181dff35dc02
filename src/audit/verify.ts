import type { Db } from '../db/client.ts';
import { postgresClientOf } from '../db/client.ts';
import { GENESIS_HASH } from './chain.ts';
import { walkCopyPages } from './verify/copy-pages.ts';
import type { ChainState, VerifyOptions, VerifyResult } from './verify/result.ts';
import { walkRowPages } from './verify/row-reader.ts';

export type { VerifyOptions, VerifyResult, VerifyStats } from './verify/result.ts';

/**
 * Walk the whole chain in seq order and report the first row that is not where, or what,
 * the chain says it should be.
 *
 * Two readers share one definition of "good" (chain.ts):
 * - On Postgres through postgres.js, the fast reader: COPY pages of plain text, parsed and
 *   hashed without building an object per row (verify/copy-pages.ts, verify/copy-checker.ts). It only ever says
 *   "good"; at the first row it cannot vouch for, it stops and
 * - the row reader (verify/row-reader.ts), which reads rows as objects and decides (and explains, verify/classify-break.ts) every break,
 *   takes over from the last good row. It is also the whole walk on PGlite or a
 *   transaction handle. A break is thus always judged by one code path whichever reader
 *   found it, and the fast reader can only make verify faster, never change its answer.
 *
 * Memory stays constant either way: pages by seq (an index range scan on the primary key,
 * so page 200 costs what page 1 does, and no snapshot is held for the whole walk), with
 * the next pages under way while this one is checked so the database and the CPU work at
 * once.
 */
export async function verifyAuditChain(db: Db, options: VerifyOptions = {}): Promise<VerifyResult> {
  const state: ChainState = { prevSeq: 0, prevHash: GENESIS_HASH, rows: 0 };
  const stats = options.stats ?? { byteRows: 0, textRows: 0, rowReaderRows: 0 };
  const client = postgresClientOf(db);
  for (;;) {
    if (client) await walkCopyPages(client, state, stats, options.pageSize ?? 10_000, options.onProgress);
    // One page of the row reader past the point the fast reader stopped at (or the whole
    // walk without it): it finds the break, or the end, or hands back.
    const before = state.rows;
    const slow = await walkRowPages(
      db,
      state,
      options.pageSize ?? 5_000,
      options.onProgress,
      client ? 1 : Infinity,
    );
    stats.rowReaderRows += state.rows - before;
    if (slow === 'end')
      return { ok: true, rows: state.rows, headSeq: state.prevSeq, headHash: state.prevHash };
    if (slow !== 'more') return slow;
  }
}
