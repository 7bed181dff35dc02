/**
 * What `audit verify` answers, and the walk's shared state: both readers (copy-pages.ts and
 * row-reader.ts) advance one ChainState.
 */

/** Why a row breaks the chain. */
export type ChainBreak = 'changed' | 'removed' | 'reordered' | 'inserted';

export type VerifyResult =
  | {
      ok: true;
      rows: number;
      /** The newest row; publish its hash elsewhere to make truncating the tail detectable too. */
      headSeq: number;
      headHash: string;
    }
  | {
      ok: false;
      /** Rows checked and found good before the bad one. */
      rows: number;
      /** The seq of the first row at fault. */
      seq: number;
      reason: ChainBreak;
      message: string;
    };

export interface VerifyOptions {
  /**
   * Rows per query. On Postgres through postgres.js at most three COPY pages are in
   * memory (default 10,000 rows, ~5 MB each); elsewhere two pages of row objects
   * (default 5,000 rows).
   */
  pageSize?: number;
  /** Called after each page, for progress output. */
  onProgress?: (rows: number) => void;
  /** Counts which reader checked how many rows (tests and benchmarks look at it). */
  stats?: VerifyStats;
}

export interface VerifyStats {
  /** Rows the COPY reader checked on bytes, its fast path. */
  byteRows: number;
  /** Rows the COPY reader decoded and checked as text (escapes, nested data, …). */
  textRows: number;
  /** Rows the row reader checked: the whole walk on PGlite, else past any row the COPY reader stopped at. */
  rowReaderRows: number;
}

export type Failure = Extract<VerifyResult, { ok: false }>;

/** How far the chain has been checked: everything up to prevSeq is good. */
export interface ChainState {
  prevSeq: number;
  prevHash: string;
  rows: number;
}
