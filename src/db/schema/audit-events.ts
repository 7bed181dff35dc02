import { sql } from 'drizzle-orm';
import { bigint, check, index, jsonb, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { at } from './columns.ts';

/**
 * Append-only, hash-chained log. `seq` is assigned under an advisory lock so the chain
 * is one line across processes; `hash = sha256(prev_hash ‖ canonical row)`.
 * A trigger (see migrations) refuses UPDATE and DELETE.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
    at: at('at').notNull(),
    kind: text('kind').notNull(),
    actor: text('actor').notNull(),
    resource: text('resource'),
    requestId: uuid('request_id'),
    grantId: uuid('grant_id'),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (t) => [
    check('audit_events_seq_check', sql`${t.seq} >= 1`),
    index('audit_events_grant_idx').on(t.grantId, t.seq),
    index('audit_events_at_idx').on(t.at),
  ],
);
export type AuditEventRow = typeof auditEvents.$inferSelect;
