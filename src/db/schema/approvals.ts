import { sql } from 'drizzle-orm';
import { bigint, check, integer, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { accessRequests } from './access-requests.ts';
import { at } from './columns.ts';

/**
 * One approver's yes on one request. The primary key makes "N approvals" mean N
 * distinct people: a second click by the same approver cannot add a row.
 */
export const approvals = pgTable(
  'approvals',
  {
    requestId: uuid('request_id')
      .notNull()
      .references(() => accessRequests.id),
    approverId: text('approver_id').notNull(),
    durationSeconds: integer('duration_seconds'),
    /** A lower request quota than the policy's, chosen by this approver; null keeps the policy's. */
    quotaRequests: integer('quota_requests'),
    /** A lower response-byte quota than the policy's, chosen by this approver; null keeps the policy's. */
    quotaResponseBytes: bigint('quota_response_bytes', { mode: 'number' }),
    createdAt: at('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.requestId, t.approverId] }),
    check('approvals_duration_check', sql`${t.durationSeconds} is null or ${t.durationSeconds} > 0`),
    check('approvals_quota_check', sql`${t.quotaRequests} is null or ${t.quotaRequests} > 0`),
    check('approvals_quota_bytes_check', sql`${t.quotaResponseBytes} is null or ${t.quotaResponseBytes} > 0`),
  ],
);
export type Approval = typeof approvals.$inferSelect;
