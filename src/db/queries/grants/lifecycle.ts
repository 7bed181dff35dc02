import { and, asc, eq, gt, inArray, lte, type SQL, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../client.ts';
import { type Grant, type GrantStatus, grants } from '../../schema/index.ts';

/**
 * The `grants` table's queries live in this folder, by concern: a grant's life here (find,
 * lock, insert, extend, end, expire), who holds what now in live.ts, what the proxy reads and
 * adds in proxy-use.ts, the console's list in console-list.ts.
 */

export type NewGrant = typeof grants.$inferInsert;

export async function findGrant(db: Db | Tx, grantId: string): Promise<Grant | undefined> {
  const [row] = await db.select().from(grants).where(eq(grants.id, grantId));
  return row;
}

/** The grant, its row locked until the transaction ends. */
export async function lockGrant(tx: Tx, grantId: string): Promise<Grant | undefined> {
  const [row] = await tx.select().from(grants).where(eq(grants.id, grantId)).for('update');
  return row;
}

/** The grant a request created (not the one an extension request extends). */
export async function findGrantOfRequest(db: Db | Tx, requestId: string): Promise<Grant | undefined> {
  const [row] = await db.select().from(grants).where(eq(grants.requestId, requestId));
  return row;
}

/** Whose grant it is and on what: all `/access audit` needs of the grant itself. */
export async function findGrantOwner(
  db: Db | Tx,
  grantId: string,
): Promise<{ resource: string; userId: string } | undefined> {
  const [row] = await db
    .select({ resource: grants.resource, userId: grants.userId })
    .from(grants)
    .where(eq(grants.id, grantId));
  return row;
}

export async function insertGrant(tx: Db | Tx, values: NewGrant): Promise<Grant | undefined> {
  const [row] = await tx.insert(grants).values(values).returning();
  return row;
}

/**
 * A change of status as the access state machine names it (src/access/transitions.ts): the
 * row changes only while its status is one of `from`. The table knows no transitions.
 */
export interface GrantMove {
  readonly from: readonly GrantStatus[];
  readonly to: GrantStatus;
}

/** How a grant ended: when, who (as stored in `ended_by`) and why. */
export interface GrantEnding {
  now: Date;
  by: string;
  reason: string;
}

const inFromStates = (move: GrantMove) => inArray(grants.status, [...move.from]);

/**
 * Moves a grant's expiry to `expiresAt`, only if it is still the version read as `current`
 * and `move` applies: undefined when it ended or changed in between.
 */
export async function extendGrant(
  tx: Db | Tx,
  current: Grant,
  move: GrantMove,
  expiresAt: Date,
): Promise<Grant | undefined> {
  const [row] = await tx
    .update(grants)
    .set({ status: move.to, expiresAt, extensions: current.extensions + 1, version: current.version + 1 })
    .where(and(eq(grants.id, current.id), inFromStates(move), eq(grants.version, current.version)))
    .returning();
  return row;
}

/** The columns an expiry sets (the version stays: the token's own `exp` already says so). */
const expiredSet = (move: GrantMove, ending: GrantEnding) => ({
  status: move.to,
  endedAt: ending.now,
  endedBy: ending.by,
  endReason: ending.reason,
});

/** The columns any other ending sets; the version bump is done in SQL, row by row. */
const endedSet = (move: GrantMove, ending: GrantEnding) => ({
  ...expiredSet(move, ending),
  version: sql`${grants.version} + 1`,
});

/** Moves one grant if `move` applies to it (and `also` holds); undefined when it had already moved on. */
async function moveOne(
  tx: Db | Tx,
  grantId: string,
  move: GrantMove,
  columns: ReturnType<typeof expiredSet> & { version?: SQL },
  also?: SQL,
): Promise<Grant | undefined> {
  const [row] = await tx
    .update(grants)
    .set(columns)
    .where(and(eq(grants.id, grantId), inFromStates(move), also))
    .returning();
  return row;
}

/** Ends one grant if `move` applies to it; undefined when it had already moved on. */
export function endGrant(
  tx: Db | Tx,
  grantId: string,
  move: GrantMove,
  ending: GrantEnding,
): Promise<Grant | undefined> {
  return moveOne(tx, grantId, move, endedSet(move, ending));
}

/**
 * Ends every grant of a person that `move` applies to (on `resources` only, when given). The
 * rows are locked first, in id order, as the audit appender locks a batch's grants
 * (recordGrantsLastUse, addGrantQuotaUse): an UPDATE alone locks them in scan order, and two
 * writers taking several rows in different orders could each hold one the other waits for.
 */
export function endGrantsOf(
  tx: Db | Tx,
  userId: string,
  move: GrantMove,
  ending: GrantEnding,
  resources?: readonly string[],
): Promise<Grant[]> {
  const onGrants = resources ? inArray(grants.resource, [...resources]) : undefined;
  const mine = and(eq(grants.userId, userId), inFromStates(move), onGrants);
  const locked = tx.select({ id: grants.id }).from(grants).where(mine).orderBy(asc(grants.id)).for('update');
  return tx
    .update(grants)
    .set(endedSet(move, ending))
    .where(and(inArray(grants.id, locked), mine))
    .returning();
}

/**
 * Ends up to `limit` unexpired grants on `resource` not used since `cutoff` (counted from the
 * start when never used). Rows another transaction holds are skipped.
 */
export function endIdleGrantsOn(
  tx: Db | Tx,
  move: GrantMove,
  input: GrantEnding & { resource: string; cutoff: Date; limit: number },
): Promise<Grant[]> {
  const { now } = input;
  const lastUse = sql`coalesce(${grants.lastUsedAt}, ${grants.startsAt})`;
  // A plain SQL expression gets no column type, so the cutoff goes in as an explicit timestamptz.
  const idleSince = sql`${lastUse} <= ${input.cutoff.toISOString()}::timestamptz`;
  const due = tx
    .select({ id: grants.id })
    .from(grants)
    .where(and(eq(grants.resource, input.resource), inFromStates(move), gt(grants.expiresAt, now), idleSince))
    .limit(input.limit)
    .for('update', { skipLocked: true });
  return (
    tx
      .update(grants)
      .set(endedSet(move, input))
      // The idle test again under the row lock: a batch of calls may have landed since.
      .where(and(inArray(grants.id, due), inFromStates(move), idleSince))
      .returning()
  );
}

/** Expires one grant if `move` applies and it is past its expiry; undefined otherwise. */
export function expireGrant(
  tx: Db | Tx,
  grantId: string,
  move: GrantMove,
  ending: GrantEnding,
): Promise<Grant | undefined> {
  return moveOne(tx, grantId, move, expiredSet(move, ending), lte(grants.expiresAt, ending.now));
}

/**
 * Expires up to `limit` grants past their expiry, soonest first, in one statement; rows
 * another transaction holds are skipped, not waited for.
 */
export function expireGrantsPastExpiry(
  tx: Db | Tx,
  move: GrantMove,
  ending: GrantEnding,
  limit: number,
): Promise<Grant[]> {
  const due = tx
    .select({ id: grants.id })
    .from(grants)
    .where(and(inFromStates(move), lte(grants.expiresAt, ending.now)))
    .orderBy(asc(grants.expiresAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  return tx
    .update(grants)
    .set(expiredSet(move, ending))
    .where(and(inArray(grants.id, due), inFromStates(move)))
    .returning();
}
