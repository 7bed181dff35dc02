import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { at } from './columns.ts';

export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/**
 * A person's ask for access (or for more time on a grant, when `extendsGrantId` is set).
 * Guarantees: status is one of REQUEST_STATUSES; a decided request has `decidedAt`;
 * the duration is positive; at most one pending extension per grant.
 */
export const accessRequests = pgTable(
  'access_requests',
  {
    id: uuid('id').primaryKey(),
    requesterId: text('requester_id').notNull(),
    resource: text('resource').notNull(),
    scope: text('scope').notNull(),
    durationSeconds: integer('duration_seconds').notNull(),
    reason: text('reason').notNull(),
    status: text('status', { enum: REQUEST_STATUSES }).notNull().default('pending'),
    approvalsRequired: integer('approvals_required').notNull(),
    extendsGrantId: uuid('extends_grant_id'),
    createdAt: at('created_at').notNull(),
    timeoutAt: at('timeout_at').notNull(),
    decidedAt: at('decided_at'),
    decidedBy: text('decided_by'),
    decisionNote: text('decision_note'),
    approvalChannel: text('approval_channel'),
    approvalMessageTs: text('approval_message_ts'),
  },
  (t) => [
    check(
      'access_requests_status_check',
      sql`${t.status} in ('pending','approved','denied','expired','cancelled')`,
    ),
    check('access_requests_duration_check', sql`${t.durationSeconds} > 0`),
    check('access_requests_approvals_check', sql`${t.approvalsRequired} >= 1`),
    check('access_requests_reason_check', sql`char_length(${t.reason}) between 1 and 2000`),
    check('access_requests_decided_check', sql`(${t.status} = 'pending') = (${t.decidedAt} is null)`),
    check('access_requests_timeout_check', sql`${t.timeoutAt} > ${t.createdAt}`),
    index('access_requests_pending_idx').on(t.timeoutAt).where(sql`${t.status} = 'pending'`),
    index('access_requests_requester_idx').on(t.requesterId, t.status),
    uniqueIndex('access_requests_one_pending_extension')
      .on(t.extendsGrantId)
      .where(sql`${t.status} = 'pending' and ${t.extendsGrantId} is not null`),
  ],
);
export type AccessRequest = typeof accessRequests.$inferSelect;
