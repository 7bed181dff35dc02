import { appendAuditEvents } from '../audit/chain-append.ts';
import { verifyAuditChain } from '../audit/verify.ts';
import type { Db } from '../db/client.ts';
import { auditChainTail } from '../db/queries/audit-events/append.ts';
import { lastChainCheck } from '../db/queries/audit-events/reads.ts';
import type { Actor } from '../shared/actor.ts';
import type { Clock } from '../shared/clock.ts';

/** What the console shows of the chain: the last check's result and how far the log has grown since. */
export interface ChainStatus {
  lastCheck:
    | {
        at: string;
        ok: boolean;
        rows: number;
        headSeq: number | null;
        headHash: string | null;
        /** When the chain broke: the first bad row and why. */
        brokenAt: { seq: number; reason: string; message: string } | null;
        by: string;
      }
    | undefined;
  /** The newest row now. */
  tail: { seq: number; hash: string } | undefined;
  /** Rows appended after the checked head (all rows when never checked). */
  rowsSinceCheck: number;
}

/**
 * A check walks the whole chain (audit/verify.ts) and its result is appended to the chain as
 * an `audit.verified` row, so every console process, and every later reader, sees when the
 * log was last found intact and up to which hash — and a check cannot be quietly forgotten.
 */
export function createChainStatus(deps: { db: Db; clock: Clock }) {
  return {
    async status(): Promise<ChainStatus> {
      const [row, tail] = await Promise.all([lastChainCheck(deps.db), auditChainTail(deps.db)]);
      const data = row?.data ?? {};
      const headSeq = typeof data.headSeq === 'number' ? data.headSeq : null;
      const lastCheck = row
        ? {
            at: row.at.toISOString(),
            ok: data.ok === true,
            rows: typeof data.rows === 'number' ? data.rows : 0,
            headSeq,
            headHash: typeof data.headHash === 'string' ? data.headHash : null,
            brokenAt:
              data.ok === true
                ? null
                : {
                    seq: Number(data.seq ?? 0),
                    reason: String(data.reason ?? ''),
                    message: String(data.message ?? ''),
                  },
            by: row.actor,
          }
        : undefined;
      // The check's own row comes after the head it checked.
      const checkedUpTo = row ? row.seq : 0;
      return { lastCheck, tail, rowsSinceCheck: Math.max(0, (tail?.seq ?? 0) - checkedUpTo) };
    },

    /** Verify now and record the result; returns the status with it. */
    async verify(actor: Actor): Promise<ChainStatus> {
      const result = await verifyAuditChain(deps.db);
      const data = result.ok
        ? { ok: true, rows: result.rows, headSeq: result.headSeq, headHash: result.headHash }
        : { ok: false, rows: result.rows, seq: result.seq, reason: result.reason, message: result.message };
      await deps.db.transaction((tx) =>
        appendAuditEvents(tx, [{ kind: 'audit.verified', actor, at: deps.clock.now(), data }]),
      );
      return this.status();
    },
  };
}

export type ChainStatusReader = ReturnType<typeof createChainStatus>;
