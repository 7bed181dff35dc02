import { sql } from 'drizzle-orm';
import { check, index, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { at } from './columns.ts';

/**
 * Web console sessions. The cookie (sealed, see console/auth/seal.ts) names a row here, and a
 * session is good only while its row is: not ended (sign-out ends it, so a copied cookie dies
 * with it), used within the idle timeout, and younger than its absolute end.
 *
 * Offboarding ends every session of the person (`offboarded`), in the transaction that revokes
 * their grants, so an offboarded person's console is gone with their access.
 *
 * Guarantees: a session ends at most once (`ended_at` with its reason, or neither); it never
 * outlives `expires_at`, which is after its start; it was last used within its lifetime.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    id: uuid('id').primaryKey(),
    /** The Slack user of the ID token. */
    userId: text('user_id').notNull(),
    teamId: text('team_id').notNull(),
    signedInAt: at('signed_in_at').notNull(),
    /** Moved at most once a minute by use; the idle timeout counts from it. */
    lastSeenAt: at('last_seen_at').notNull(),
    /** The absolute timeout: sign-in plus the session's longest life. */
    expiresAt: at('expires_at').notNull(),
    endedAt: at('ended_at'),
    endReason: text('end_reason', { enum: ['signed_out', 'offboarded'] }),
  },
  (t) => [
    index('console_sessions_user_idx').on(t.userId),
    index('console_sessions_expires_idx').on(t.expiresAt),
    check('console_sessions_end_check', sql`(${t.endedAt} is null) = (${t.endReason} is null)`),
    check(
      'console_sessions_end_reason_check',
      sql`${t.endReason} is null or ${t.endReason} in ('signed_out', 'offboarded')`,
    ),
    check('console_sessions_lifetime_check', sql`${t.expiresAt} > ${t.signedInAt}`),
    check(
      'console_sessions_seen_check',
      sql`${t.lastSeenAt} >= ${t.signedInAt} and ${t.lastSeenAt} <= ${t.expiresAt}`,
    ),
  ],
);
export type ConsoleSessionRow = typeof consoleSessions.$inferSelect;
