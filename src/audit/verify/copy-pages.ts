import type postgres from 'postgres';
import { copyAuditChainPage } from '../../db/queries/audit-events/reads.ts';
import { type CopyPage, CopyPageChecker } from './copy-checker.ts';
import type { ChainState, VerifyStats } from './result.ts';

// The fast reader: COPY text pages, checked without building an object per row.

/**
 * One page: the rows with `after < seq <= after + size`, in the COPY text layout that
 * copyAuditChainPage describes (the checker finds fields by position in it).
 */
function openCopyPage(client: postgres.Sql, after: number, size: number): CopyPage {
  const page: CopyPage = { chunks: [], sink: undefined, done: Promise.resolve() };
  page.done = copyAuditChainPage(client, after, size).then(
    (stream) =>
      new Promise<void>((resolve, reject) => {
        stream.on('data', (chunk: Buffer) => {
          if (page.sink) page.sink(chunk);
          else page.chunks.push(chunk);
        });
        stream.once('end', () => {
          // postgres.js pauses the connection's socket when a COPY stream's buffer is full
          // and resumes it only from the stream's _read, which Node never calls once the
          // stream has ended. A small page received whole before this listener was attached
          // ends that way and leaves its pooled connection deaf; resume it here.
          stream._read(0);
          resolve();
        });
        stream.once('error', reject);
      }),
  );
  return page;
}

/**
 * COPY pages requested beyond the one being checked. One already overlaps the database with
 * this process; a second kept both cores busy (~225k → ~245k rows/s on the 2-core bench
 * machine) because one backend producing a page is slower than this process checking it.
 */
const PAGES_AHEAD = 2;

/**
 * Check COPY pages from state.prevSeq on, advancing state over every good row, until the
 * row reader must look: a row the checker cannot vouch for, or a short page (the end of the
 * log, or a gap). The row reader then re-reads from state.prevSeq.
 */
export async function walkCopyPages(
  client: postgres.Sql,
  state: ChainState,
  stats: VerifyStats,
  pageSize: number,
  onProgress: ((rows: number) => void) | undefined,
): Promise<void> {
  const checker = new CopyPageChecker(state, stats);
  let after = state.prevSeq;
  // This page and the next ones, each on a connection of its own, so the database
  // produces them while this one is checked.
  const pages = [openCopyPage(client, after, pageSize)];
  for (let k = 1; k <= PAGES_AHEAD; k++) pages.push(openCopyPage(client, after + k * pageSize, pageSize));
  const drainAll = () => Promise.all(pages.map(drain));
  for (;;) {
    const page = pages.shift()!;
    const expected = after + pageSize;
    try {
      await checker.read(page);
    } catch (error) {
      await drainAll();
      throw error;
    }
    onProgress?.(state.rows);
    if (checker.stopped || state.prevSeq !== expected) {
      // The pages ahead are not needed; let them finish so their connections are free again.
      await drainAll();
      return;
    }
    after = expected;
    pages.push(openCopyPage(client, after + PAGES_AHEAD * pageSize, pageSize));
  }
}

/** Discard the rest of a page and wait for its query to end; errors included. */
async function drain(page: CopyPage): Promise<void> {
  page.chunks = [];
  page.sink = () => undefined;
  await page.done.catch(() => undefined);
}
