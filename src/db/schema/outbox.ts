import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { at } from './columns.ts';

/**
 * Slack messages to deliver, written in the same transaction as the state change that
 * causes them, so a Slack outage loses nothing; `dedupe_key` makes a replayed
 * transition or a re-run job enqueue a message at most once.
 *
 * One row may send several messages (the approval message, then a DM): `done_steps` names
 * those already sent or given up, so a retry sends only the rest. `sent_at` is set once
 * nothing is left to try; `dead_at` once any of its messages was given up (Slack refused it
 * for good, or kept failing): a dead letter, audited, with `last_error` saying why.
 * `waiting_out` says why a row waits for its `next_attempt_at` after a failure: `outage`
 * (Slack's 5xx or the network: the wait is cut short once Slack answers again) or
 * `rate_limit` (Slack's Retry-After, never cut short); null while leased or never failed.
 */
export const outbox = pgTable(
  'outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    dedupeKey: text('dedupe_key').notNull(),
    kind: text('kind').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: at('created_at').notNull(),
    nextAttemptAt: at('next_attempt_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    sentAt: at('sent_at'),
    lastError: text('last_error'),
    doneSteps: text('done_steps').array().notNull().default(sql`'{}'::text[]`),
    deadAt: at('dead_at'),
    waitingOut: text('waiting_out').$type<'outage' | 'rate_limit'>(),
  },
  (t) => [
    uniqueIndex('outbox_dedupe_key_unique').on(t.dedupeKey),
    index('outbox_due_idx').on(t.nextAttemptAt).where(sql`${t.sentAt} is null`),
    index('outbox_dead_idx').on(t.deadAt).where(sql`${t.deadAt} is not null`),
    index('outbox_outage_idx')
      .on(t.nextAttemptAt)
      .where(sql`${t.waitingOut} = 'outage' and ${t.sentAt} is null`),
  ],
);
export type OutboxRow = typeof outbox.$inferSelect;
