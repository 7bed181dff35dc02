import { inArray, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { type PersonNameRow, personNames } from '../schema/index.ts';

/** The names known for `userIds`, in one query. */
export function namesOf(db: Db, userIds: readonly string[]): Promise<PersonNameRow[]> {
  if (userIds.length === 0) return Promise.resolve([]);
  return db
    .select()
    .from(personNames)
    .where(inArray(personNames.userId, [...userIds]));
}

/** Keeps the newest name for a person. */
export async function rememberName(db: Db, row: PersonNameRow): Promise<void> {
  await db
    .insert(personNames)
    .values(row)
    .onConflictDoUpdate({
      target: personNames.userId,
      set: { name: row.name, source: row.source, updatedAt: row.updatedAt },
      // An older answer arriving late does not overwrite a newer one.
      setWhere: sql`${personNames.updatedAt} <= excluded.updated_at`,
    });
}
