import { and, asc, count, eq, gt, inArray, lte, min, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../client.ts';
import { type Grant, grants } from '../../schema/index.ts';

/** Grants live now (active, unexpired) and those still active past their expiry: who holds what, and what the sweep re-expires. */

/** A person's live (active, unexpired) grants, soonest to expire first. */
export function liveGrantsOf(db: Db | Tx, userId: string, now: Date): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(and(eq(grants.userId, userId), eq(grants.status, 'active'), gt(grants.expiresAt, now)))
    .orderBy(asc(grants.expiresAt));
}

/** Live grants on these resources, soonest to expire first. */
export function liveGrantsOn(db: Db | Tx, resources: readonly string[], now: Date): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(
      and(inArray(grants.resource, [...resources]), eq(grants.status, 'active'), gt(grants.expiresAt, now)),
    )
    .orderBy(asc(grants.expiresAt));
}

/** The resources a person holds a live grant on (unordered, each once). */
export function resourcesWithLiveGrantsOf(
  db: Db | Tx,
  userId: string,
  now: Date,
): Promise<{ resource: string }[]> {
  return db
    .selectDistinct({ resource: grants.resource })
    .from(grants)
    .where(and(eq(grants.userId, userId), eq(grants.status, 'active'), gt(grants.expiresAt, now)));
}

/** Everyone holding a live grant (unordered, each once). */
export function usersWithLiveGrants(db: Db | Tx, now: Date): Promise<{ userId: string }[]> {
  return db
    .selectDistinct({ userId: grants.userId })
    .from(grants)
    .where(and(eq(grants.status, 'active'), gt(grants.expiresAt, now)));
}

/** Grants still marked active past their expiry, longest overdue first: what the sweep re-expires. */
export function activeGrantsPastExpiry(db: Db | Tx, now: Date, limit: number): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(and(eq(grants.status, 'active'), lte(grants.expiresAt, now)))
    .orderBy(asc(grants.expiresAt))
    .limit(limit);
}

/** The earliest expiry among grants still active past it, undefined when none is. */
export async function oldestOverdueGrantExpiry(db: Db | Tx, now: Date): Promise<Date | null | undefined> {
  const [row] = await db
    .select({ oldest: min(grants.expiresAt) })
    .from(grants)
    .where(and(eq(grants.status, 'active'), lte(grants.expiresAt, now)));
  return row?.oldest;
}

export async function countLiveGrants(db: Db | Tx, now: Date): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(grants)
    .where(and(eq(grants.status, 'active'), gt(grants.expiresAt, now)));
  return row?.n ?? 0;
}

/** Live grants in id order after `afterId` (keyset paging), for the sweep's walk. */
export function liveGrantsPage(
  db: Db | Tx,
  now: Date,
  afterId: string | undefined,
  limit: number,
): Promise<Grant[]> {
  return db
    .select()
    .from(grants)
    .where(
      and(
        eq(grants.status, 'active'),
        gt(grants.expiresAt, now),
        afterId ? gt(grants.id, afterId) : undefined,
      ),
    )
    .orderBy(asc(grants.id))
    .limit(limit);
}

/** Per person with live grants (on these resources, when given): how many, where, until when. */
export async function liveGrantHolders(
  db: Db | Tx,
  now: Date,
  visibleResources?: readonly string[],
): Promise<{ userId: string; grants: number; resources: string[]; nextExpiry: Date }[]> {
  const rows = await db
    .select({
      userId: grants.userId,
      grants: count(),
      resources: sql<string[]>`array_agg(distinct ${grants.resource} order by ${grants.resource})`,
      nextExpiry: min(grants.expiresAt),
    })
    .from(grants)
    .where(
      and(
        eq(grants.status, 'active'),
        gt(grants.expiresAt, now),
        visibleResources ? inArray(grants.resource, [...visibleResources]) : undefined,
      ),
    )
    .groupBy(grants.userId)
    .orderBy(grants.userId);
  return rows.map((r) => ({
    userId: r.userId,
    grants: r.grants,
    resources: r.resources,
    nextExpiry: r.nextExpiry ?? now,
  }));
}
