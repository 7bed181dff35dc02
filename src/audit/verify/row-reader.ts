import type { Db } from '../../db/client.ts';
import { auditChainPage } from '../../db/queries/audit-events/reads.ts';
import { BROKEN_LINK, type ChainRow, explainBrokenLink, rowBreak } from './classify-break.ts';
import type { ChainState, Failure } from './result.ts';

// The row reader: rows as objects, on any Db; classify-break.ts judges and explains every break.

/**
 * `at` is read with microseconds (`…SS.ffffffZ`). Rows are written with milliseconds, so
 * the last three digits are always 000 on an honest row; anything else means `at` was
 * edited in a way the millisecond hash alone could not see. Returns the hashed ISO form,
 * or undefined for such a row, which then hashes with its full text and fails as changed.
 */
function millisecondIso(at: string): string | undefined {
  if (at.length !== 27 || at.slice(23, 26) !== '000') return undefined;
  return `${at.slice(0, 23)}Z`;
}

/**
 * Columns are aliased to ChainRow's names in SQL so rows are used as they come; only seq
 * (bigint, which may arrive as text or BigInt) and `at` are fixed up in place.
 */
function rowsOf(list: Record<string, unknown>[]): ChainRow[] {
  for (const r of list) {
    r.seq = Number(r.seq);
    r.at = millisecondIso(r.at as string) ?? r.at;
    if (typeof r.data === 'string') r.data = JSON.parse(r.data);
  }
  return list as unknown as ChainRow[];
}

/** `at` comes as text in Date#toISOString's layout (UTC) plus microseconds, see millisecondIso. */
async function readPage(db: Db, after: number, limit: number): Promise<ChainRow[]> {
  return rowsOf(await auditChainPage(db, after, limit));
}

/**
 * Check up to `maxPages` pages of rows from state.prevSeq on (`seq > last ORDER BY seq
 * LIMIT n`). Returns the first break, 'end' after a short page, or 'more' when it stopped
 * after maxPages full pages.
 */
export async function walkRowPages(
  db: Db,
  state: ChainState,
  pageSize: number,
  onProgress: ((rows: number) => void) | undefined,
  maxPages: number,
): Promise<Failure | 'end' | 'more'> {
  const fetchPage = (after: number) => readPage(db, after, pageSize);
  let next = fetchPage(state.prevSeq);
  for (let pages = 1; ; pages++) {
    const page = await next;
    const last = page[page.length - 1];
    const more = page.length === pageSize && last !== undefined;
    // Start the next query before checking this page.
    if (more && pages < maxPages) next = fetchPage(last.seq);
    // Drain the prefetch so no query is left running against a caller who closes the pool.
    const settle = async () => {
      if (more && pages < maxPages) await next.catch(() => undefined);
    };
    for (const row of page) {
      const found = rowBreak(state, row);
      if (found !== undefined) {
        await settle();
        return found === BROKEN_LINK
          ? { ok: false, rows: state.rows, ...(await explainBrokenLink(db, row)) }
          : found;
      }
      state.prevSeq = row.seq;
      state.prevHash = row.hash;
      state.rows += 1;
    }
    onProgress?.(state.rows);
    if (!more) return 'end';
    if (pages >= maxPages) return 'more';
  }
}
