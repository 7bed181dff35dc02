import type { AuditEventInput } from '../audit/chain-append.ts';
import { appendAuditEvents } from '../audit/chain-append.ts';
import type { Tx } from '../db/client.ts';
import { enqueue, type OutboxMessage, publishOnGrantFeed } from '../outbox/index.ts';
import type { AccessContext } from './context.ts';
import type { Outcome } from './outcomes.ts';

/** What one transaction wants to say: audit rows, outbox messages, and grants whose proxies must re-read them. */
export interface Effects {
  audit: AuditEventInput[];
  messages: OutboxMessage[];
  changedGrants: string[];
}

const noEffects = (): Effects => ({ audit: [], messages: [], changedGrants: [] });

/**
 * Runs one state change as ONE transaction: `work` makes the conditional UPDATEs and says
 * what happened in `effects`; the audit rows, outbox messages and grant-feed NOTIFYs are
 * written in the same transaction, so a failed audit write rolls the change back and
 * nothing happens without its audit row. A refusal found inside `work` rolls everything
 * back too: a refused transition changes nothing. After commit, `onCommitted` hears of
 * the messages (prompt delivery, scheduling); a crash before that loses nothing, since
 * the outbox rows are already there.
 */
export async function commit<T>(
  ctx: AccessContext,
  work: (tx: Tx, effects: Effects) => Promise<Outcome<T>>,
): Promise<Outcome<T>> {
  let written: Effects = noEffects();
  let result: Outcome<T> | undefined;
  const rollback = Symbol('refused');
  try {
    await ctx.db.transaction(async (tx) => {
      const effects = noEffects();
      result = await work(tx, effects);
      if (!result.ok) throw rollback;
      await appendAuditEvents(tx, effects.audit);
      await enqueue(tx, effects.messages, ctx.clock.now());
      await publishOnGrantFeed(tx, ctx.grantChannel, [...new Set(effects.changedGrants)]);
      written = effects;
    });
  } catch (error) {
    if (error !== rollback) throw error;
  }
  if (result === undefined) throw new Error('transaction finished without a result');
  if (result.ok && written.messages.length > 0) ctx.onCommitted?.(written.messages);
  return result;
}
