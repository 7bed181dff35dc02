import { and, desc, eq, gt, inArray, lte, or, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../client.ts';
import { type Grant, grants } from '../../schema/index.ts';
import type { Reach } from '../reach.ts';

/** The web console's grant list: filters by resource, person, state and scope, paged newest first. */

/** `live`: active and unexpired now; the stored statuses otherwise (an active grant past its expiry counts as expired). */
export type GrantState = 'live' | 'expired' | 'revoked';

export interface GrantListFilter {
  resource?: string;
  userId?: string;
  state?: GrantState;
  scope?: string;
  /** Only grants within this reach (an approver's resources, and their own). */
  reach?: Reach;
}

function grantListWhere(filter: GrantListFilter, now: Date) {
  const state =
    filter.state === 'live'
      ? and(eq(grants.status, 'active'), gt(grants.expiresAt, now))
      : filter.state === 'expired'
        ? or(eq(grants.status, 'expired'), and(eq(grants.status, 'active'), lte(grants.expiresAt, now)))
        : filter.state === 'revoked'
          ? eq(grants.status, 'revoked')
          : undefined;
  return and(
    filter.resource ? eq(grants.resource, filter.resource) : undefined,
    filter.userId ? eq(grants.userId, filter.userId) : undefined,
    filter.scope ? eq(grants.scope, filter.scope) : undefined,
    filter.reach
      ? or(inArray(grants.resource, [...filter.reach.resources]), eq(grants.userId, filter.reach.userId))
      : undefined,
    state,
  );
}

/**
 * Matching grants, newest start first, `limit` at a time; `before` is the last row of the
 * previous page (keyset on start time, then id, so equal start times page exactly).
 */
export function grantsMatching(
  db: Db | Tx,
  filter: GrantListFilter,
  page: { now: Date; limit: number; before?: { startsAt: Date; id: string } },
): Promise<Grant[]> {
  const after = page.before
    ? sql`(${grants.startsAt}, ${grants.id}) < (${page.before.startsAt.toISOString()}::timestamptz, ${page.before.id}::uuid)`
    : undefined;
  return db
    .select()
    .from(grants)
    .where(and(grantListWhere(filter, page.now), after))
    .orderBy(desc(grants.startsAt), desc(grants.id))
    .limit(page.limit);
}
