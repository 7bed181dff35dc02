import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export const GRANT_STATUSES = ['active', 'expired', 'revoked'] as const;
export type GrantStatus = (typeof GRANT_STATUSES)[number];

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
    createdAt: at('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.requestId, t.approverId] }),
    check('approvals_duration_check', sql`${t.durationSeconds} is null or ${t.durationSeconds} > 0`),
    check('approvals_quota_check', sql`${t.quotaRequests} is null or ${t.quotaRequests} > 0`),
  ],
);
export type Approval = typeof approvals.$inferSelect;

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

/**
 * Token signing keys. The private JWK is stored as text, encrypted when a master key
 * is configured. The newest non-retired key signs; every key verifies until retired.
 */
export const signingKeys = pgTable('signing_keys', {
  kid: text('kid').primaryKey(),
  alg: text('alg').notNull(),
  privateJwk: text('private_jwk').notNull(),
  publicJwk: jsonb('public_jwk').$type<Record<string, unknown>>().notNull(),
  createdAt: at('created_at').notNull(),
  retiredAt: at('retired_at'),
});
export type SigningKeyRow = typeof signingKeys.$inferSelect;

/**
 * Slack messages to deliver, written in the same transaction as the state change that
 * causes them, so a Slack outage loses nothing; `dedupe_key` makes a replayed
 * transition or a re-run job enqueue a message at most once.
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
  },
  (t) => [
    uniqueIndex('outbox_dedupe_key_unique').on(t.dedupeKey),
    index('outbox_due_idx').on(t.nextAttemptAt).where(sql`${t.sentAt} is null`),
  ],
);
export type OutboxRow = typeof outbox.$inferSelect;
