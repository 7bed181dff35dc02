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
    // The console's audit search by person: rows the person acted in (`slack:U…`, `console:U…`)
    // and rows about them (`data.userId`), each within a time range; Postgres ORs the two.
    index('audit_events_actor_at_idx').on(t.actor, t.at),
    index('audit_events_subject_at_idx').on(sql`(${t.data}->>'userId')`, t.at),
    // A grant's timeline reads its request's rows; proxy rows have no request and stay out.
    index('audit_events_request_idx').on(t.requestId).where(sql`${t.requestId} is not null`),
    // Alerts and the last chain check are rare kinds, found without walking the log.
    index('audit_events_alert_at_idx').on(t.at).where(sql`${t.kind} = 'anomaly.alert'`),
    index('audit_events_verified_idx').on(t.seq).where(sql`${t.kind} = 'audit.verified'`),
  ],
);
export type AuditEventRow = typeof auditEvents.$inferSelect;
