import { sql } from 'drizzle-orm';
import { bigint, check, index, integer, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { accessRequests } from './access-requests.ts';
import { at } from './columns.ts';

export const GRANT_STATUSES = ['active', 'expired', 'revoked'] as const;
export type GrantStatus = (typeof GRANT_STATUSES)[number];

/**
 * Time-bound access. `id` is the token's `jti`. The unique `request_id` is what makes
 * a double approval produce at most one grant even if application checks were raced.
 * An ended grant has `endedAt`; an active one does not.
 */
export const grants = pgTable(
  'grants',
  {
    id: uuid('id').primaryKey(),
    requestId: uuid('request_id')
      .notNull()
      .references(() => accessRequests.id),
    userId: text('user_id').notNull(),
    resource: text('resource').notNull(),
    scope: text('scope').notNull(),
    status: text('status', { enum: GRANT_STATUSES }).notNull().default('active'),
    startsAt: at('starts_at').notNull(),
    expiresAt: at('expires_at').notNull(),
    extensions: integer('extensions').notNull().default(0),
    /** Bumped by every change of `expiresAt` or status; scheduler job ids carry it. */
    version: integer('version').notNull().default(1),
    endedAt: at('ended_at'),
    endedBy: text('ended_by'),
    endReason: text('end_reason'),
    lastUsedAt: at('last_used_at'),
    /**
     * Quota over the grant's life (null: none). Fixed at creation from the scope's policy and
     * any lower figure an approver chose. `used_*` are added to by the proxies' audit batches,
     * in the batch's transaction; `quota_exhausted_at` is set once, by the batch that reached
     * the quota, which is what makes the requester's notice go out exactly once.
     */
    quotaRequests: integer('quota_requests'),
    quotaResponseBytes: bigint('quota_response_bytes', { mode: 'number' }),
    usedRequests: bigint('used_requests', { mode: 'number' }).notNull().default(0),
    usedResponseBytes: bigint('used_response_bytes', { mode: 'number' }).notNull().default(0),
    quotaExhaustedAt: at('quota_exhausted_at'),
  },
  (t) => [
    uniqueIndex('grants_request_id_unique').on(t.requestId),
    check('grants_status_check', sql`${t.status} in ('active','expired','revoked')`),
    check('grants_window_check', sql`${t.expiresAt} > ${t.startsAt}`),
    check('grants_ended_check', sql`(${t.status} = 'active') = (${t.endedAt} is null)`),
    check('grants_extensions_check', sql`${t.extensions} >= 0`),
    index('grants_active_expiry_idx').on(t.expiresAt).where(sql`${t.status} = 'active'`),
    index('grants_user_idx').on(t.userId, t.status),
    check('grants_quota_check', sql`${t.quotaRequests} is null or ${t.quotaRequests} > 0`),
    check('grants_quota_bytes_check', sql`${t.quotaResponseBytes} is null or ${t.quotaResponseBytes} > 0`),
    check('grants_used_check', sql`${t.usedRequests} >= 0 and ${t.usedResponseBytes} >= 0`),
  ],
);
export type Grant = typeof grants.$inferSelect;
