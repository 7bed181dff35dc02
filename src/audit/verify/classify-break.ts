import type { Db } from '../../db/client.ts';
import { auditChainRowWithHash } from '../../db/queries/audit-events/reads.ts';
import { chainHashAt, GENESIS_HASH } from '../chain.ts';
import type { ExportedRow } from '../export.ts';
import type { ChainBreak, ChainState, Failure } from './result.ts';

/** A row as the row reader reads it: `at` already in ISO form, ids as text — the exported shape. */
export type ChainRow = ExportedRow;

const hashOf = (row: ChainRow, seq = row.seq) =>
  chainHashAt(row.prevHash, seq === row.seq ? row : { ...row, seq }, row.at);

/** A row that does not name the hash before it; explainBrokenLink says which tampering it shows. */
export const BROKEN_LINK = 'broken link';

/**
 * Whether `row` is the row that belongs after the chain checked so far: undefined when it is,
 * else the break it shows — a gap, a row whose contents no longer hash to its hash, or
 * BROKEN_LINK, which needs the database to explain.
 */
export function rowBreak(state: ChainState, row: ChainRow): Failure | typeof BROKEN_LINK | undefined {
  const expectedSeq = state.prevSeq + 1;
  if (row.seq !== expectedSeq) {
    const missing =
      row.seq - 1 === expectedSeq ? `row ${expectedSeq} is` : `rows ${expectedSeq}–${row.seq - 1} are`;
    return {
      ok: false,
      rows: state.rows,
      seq: expectedSeq,
      reason: 'removed',
      message: `${missing} missing: row ${row.seq} follows row ${state.prevSeq}`,
    };
  }
  if (row.prevHash !== state.prevHash) return BROKEN_LINK;
  if (hashOf(row) !== row.hash) {
    return {
      ok: false,
      rows: state.rows,
      seq: row.seq,
      reason: 'changed',
      message: `row ${row.seq} was changed: its contents do not hash to its stored hash`,
    };
  }
  return undefined;
}

/**
 * Row `row.seq` does not link to the row before it. Which tampering explains it? Every
 * hash commits to its row's original seq and predecessor, so find the row whose hash
 * this one names as its predecessor (one scan, run only once a break is found) and where
 * this row's hash says it originally stood.
 */
export async function explainBrokenLink(
  db: Db,
  row: ChainRow,
): Promise<{ seq: number; reason: ChainBreak; message: string }> {
  const p = row.seq;
  const owner = row.prevHash === GENESIS_HASH ? 0 : await seqOfRowWithHash(db, row.prevHash);
  if (owner !== undefined) {
    if (owner >= p) {
      return {
        seq: p,
        reason: 'reordered',
        message: `row ${p} was moved: it was chained after row ${owner}, which now comes later`,
      };
    }
    // owner < p - 1: rows owner+1 … p-1 were not in the chain when this row was written.
    const inserted = owner + 1;
    return {
      seq: inserted,
      reason: 'inserted',
      message:
        inserted === p - 1
          ? `row ${inserted} was inserted: row ${p} was chained directly after row ${owner}`
          : `rows ${inserted}–${p - 1} were inserted: row ${p} was chained directly after row ${owner}`,
    };
  }
  if (hashOf(row, p + 1) === row.hash) {
    return {
      seq: p,
      reason: 'removed',
      message: `a row before row ${p} was removed and later rows renumbered: row ${p} was written as row ${p + 1}`,
    };
  }
  if (hashOf(row) === row.hash) {
    return {
      seq: p,
      reason: 'inserted',
      message: `row ${p} does not link to row ${p - 1}: row ${p} was forged, or row ${p - 1} was changed and re-hashed`,
    };
  }
  return {
    seq: p,
    reason: 'changed',
    message: `row ${p} was changed: its prev_hash does not match row ${p - 1} and its contents do not hash to its stored hash`,
  };
}

async function seqOfRowWithHash(db: Db, hash: string): Promise<number | undefined> {
  const found = (await auditChainRowWithHash(db, hash))[0];
  return found === undefined ? undefined : Number(found.seq);
}
