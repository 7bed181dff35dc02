import { and, asc, count, eq, gt, inArray, isNotNull, isNull, lte, min, sql } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { type OutboxRow, outbox } from '../schema/index.ts';

export type NewOutboxRow = typeof outbox.$inferInsert;

/** Adds rows; one whose dedupe key is already there is skipped, so a replayed transition adds nothing. */
export async function enqueueOutboxRows(tx: Db | Tx, rows: NewOutboxRow[]): Promise<void> {
  await tx.insert(outbox).values(rows).onConflictDoNothing({ target: outbox.dedupeKey });
}

/** Whether a row with this dedupe key exists, delivered or not. */
export async function isQueued(tx: Db | Tx, dedupeKey: string): Promise<boolean> {
  const [seen] = await tx.select({ id: outbox.id }).from(outbox).where(eq(outbox.dedupeKey, dedupeKey));
  return seen !== undefined;
}

/** Of these dedupe keys, the ones that have a row (delivered or not). */
export async function queuedDedupeKeys(db: Db | Tx, keys: string[]): Promise<Set<string>> {
  const rows = await db.select({ key: outbox.dedupeKey }).from(outbox).where(inArray(outbox.dedupeKey, keys));
  return new Set(rows.map((r) => r.key));
}

/**
 * Claims up to `limit` due rows, oldest first, with a lease: `FOR UPDATE SKIP LOCKED` so
 * racing dispatchers take different rows, then `next_attempt_at` pushed `leaseMs` ahead so
 * the rows stay hidden from others while being sent; `attempts` counts the claim.
 */
export async function claimDueOutboxRows(
  db: Db | Tx,
  now: Date,
  limit: number,
  leaseMs: number,
): Promise<OutboxRow[]> {
  const due = db
    .select({ id: outbox.id })
    .from(outbox)
    .where(and(isNull(outbox.sentAt), lte(outbox.nextAttemptAt, now)))
    .orderBy(asc(outbox.id))
    .limit(limit)
    .for('update', { skipLocked: true });
  const rows = await db
    .update(outbox)
    .set({
      nextAttemptAt: new Date(now.getTime() + leaseMs),
      attempts: sql`${outbox.attempts} + 1`,
      waitingOut: null,
    })
    .where(inArray(outbox.id, due))
    .returning();
  return rows.sort((a, b) => a.id - b.id);
}

/** Nothing is left to try for this row; a dead letter keeps the `last_error` that says why. */
export async function markOutboxSent(db: Db | Tx, id: number, at: Date): Promise<void> {
  await db
    .update(outbox)
    .set({
      sentAt: at,
      lastError: sql`case when ${outbox.deadAt} is null then null else ${outbox.lastError} end`,
    })
    .where(eq(outbox.id, id));
}

/** One of the row's messages went out; a retry skips it. */
export async function markOutboxStepDone(db: Db | Tx, id: number, step: string): Promise<void> {
  await db
    .update(outbox)
    .set({ doneSteps: sql`array_append(${outbox.doneSteps}, ${step}::text)` })
    .where(eq(outbox.id, id));
}

/** One of the row's messages was given up: skipped from now on, the row marked a dead letter. */
export async function markOutboxStepDead(
  db: Db | Tx,
  id: number,
  step: string,
  at: Date,
  lastError: string,
): Promise<void> {
  await db
    .update(outbox)
    .set({
      doneSteps: sql`array_append(${outbox.doneSteps}, ${step}::text)`,
      deadAt: sql`coalesce(${outbox.deadAt}, ${at.toISOString()}::timestamptz)`,
      lastError,
    })
    .where(eq(outbox.id, id));
}

/** Rows with a message given up (dead letters), delivered otherwise or not. */
export async function countDeadLetters(db: Db | Tx): Promise<number> {
  const [row] = await db.select({ n: count() }).from(outbox).where(isNotNull(outbox.deadAt));
  return row?.n ?? 0;
}

/** Keeps a failed row for another attempt at `nextAttemptAt`, with why it failed. */
export async function scheduleOutboxRetry(
  db: Db | Tx,
  id: number,
  nextAttemptAt: Date,
  lastError: string,
  waitingOut: 'outage' | 'rate_limit' | null,
): Promise<void> {
  await db.update(outbox).set({ nextAttemptAt, lastError, waitingOut }).where(eq(outbox.id, id));
}

/**
 * Makes the row waiting out an outage that is due soonest due now, as a probe of Slack: its
 * attempt is not counted (the claim's increment is taken back here), so probing never gives a
 * row up sooner. Returns whether there was one.
 */
export async function probeWithOutageRow(db: Db | Tx, now: Date): Promise<boolean> {
  const soonest = db
    .select({ id: outbox.id })
    .from(outbox)
    .where(and(isNull(outbox.sentAt), eq(outbox.waitingOut, 'outage'), gt(outbox.nextAttemptAt, now)))
    .orderBy(asc(outbox.nextAttemptAt))
    .limit(1)
    .for('update', { skipLocked: true });
  const rows = await db
    .update(outbox)
    .set({ nextAttemptAt: now, attempts: sql`greatest(${outbox.attempts} - 1, 0)` })
    .where(inArray(outbox.id, soonest))
    .returning({ id: outbox.id });
  return rows.length > 0;
}

/**
 * Slack answers again: every row waiting out an outage is due now, whatever its backoff had
 * grown to (rows waiting out a Retry-After keep their wait). Returns how many.
 */
export async function endOutageWaits(db: Db | Tx, now: Date): Promise<number> {
  const rows = await db
    .update(outbox)
    .set({ nextAttemptAt: now, waitingOut: null })
    .where(and(isNull(outbox.sentAt), eq(outbox.waitingOut, 'outage'), gt(outbox.nextAttemptAt, now)))
    .returning({ id: outbox.id });
  return rows.length;
}

/** When the oldest row not yet delivered was written, undefined when every row is delivered. */
export async function oldestUndeliveredAt(db: Db | Tx): Promise<Date | null | undefined> {
  const [row] = await db
    .select({ oldest: min(outbox.createdAt) })
    .from(outbox)
    .where(isNull(outbox.sentAt));
  return row?.oldest;
}

export async function countUndelivered(db: Db | Tx): Promise<number> {
  const [row] = await db.select({ n: count() }).from(outbox).where(isNull(outbox.sentAt));
  return row?.n ?? 0;
}
