import { and, eq, gt, isNull, lt } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { type ConsoleSessionRow, consoleSessions } from '../schema/index.ts';

/** A new session at sign-in; rows of sessions long over are cleared on the way. */
export async function startConsoleSession(
  tx: Tx,
  row: Omit<ConsoleSessionRow, 'endedAt' | 'endReason'>,
): Promise<void> {
  // Kept a day past their end, so a sign-out just before expiry is still on record.
  await tx
    .delete(consoleSessions)
    .where(lt(consoleSessions.expiresAt, new Date(row.signedInAt.getTime() - 86_400_000)));
  await tx.insert(consoleSessions).values({ ...row, endedAt: null, endReason: null });
}

/** The session if it is still good at `now`: not ended, used since `idleSince`, not past its end. */
export async function liveConsoleSession(
  db: Db,
  id: string,
  now: Date,
  idleSince: Date,
): Promise<ConsoleSessionRow | undefined> {
  const [row] = await db
    .select()
    .from(consoleSessions)
    .where(
      and(
        eq(consoleSessions.id, id),
        isNull(consoleSessions.endedAt),
        gt(consoleSessions.expiresAt, now),
        gt(consoleSessions.lastSeenAt, idleSince),
      ),
    );
  return row;
}

/** Moves the idle deadline of a session still good; false when it is not. */
export async function touchConsoleSession(db: Db, id: string, now: Date): Promise<boolean> {
  const rows = await db
    .update(consoleSessions)
    .set({ lastSeenAt: now })
    .where(
      and(eq(consoleSessions.id, id), isNull(consoleSessions.endedAt), gt(consoleSessions.expiresAt, now)),
    )
    .returning({ id: consoleSessions.id });
  return rows.length > 0;
}

/** Ends a session (sign-out); false when it had ended already or does not exist. */
export async function endConsoleSession(db: Db | Tx, id: string, now: Date): Promise<boolean> {
  const rows = await db
    .update(consoleSessions)
    .set({ endedAt: now, endReason: 'signed_out' })
    .where(and(eq(consoleSessions.id, id), isNull(consoleSessions.endedAt)))
    .returning({ id: consoleSessions.id });
  return rows.length > 0;
}

/**
 * Ends every session of `userId` still open (offboarding), in the caller's transaction;
 * returns the ids it ended. One only idle is ended too (its cookie could not be used, but the
 * record then says why it is over); one past its absolute end is over already and left as it is.
 */
export async function endConsoleSessionsOf(tx: Tx, userId: string, now: Date): Promise<string[]> {
  const rows = await tx
    .update(consoleSessions)
    .set({ endedAt: now, endReason: 'offboarded' })
    .where(
      and(
        eq(consoleSessions.userId, userId),
        isNull(consoleSessions.endedAt),
        gt(consoleSessions.expiresAt, now),
      ),
    )
    .returning({ id: consoleSessions.id });
  return rows.map((row) => row.id).sort();
}

/** Everyone with a console session still open at `now` (unordered, each once): for the offboarding re-check. */
export function usersWithOpenConsoleSessions(db: Db | Tx, now: Date): Promise<{ userId: string }[]> {
  return db
    .selectDistinct({ userId: consoleSessions.userId })
    .from(consoleSessions)
    .where(and(isNull(consoleSessions.endedAt), gt(consoleSessions.expiresAt, now)));
}
