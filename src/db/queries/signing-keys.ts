import { and, asc, eq, isNotNull, isNull, sql } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { type SigningKeyRow, signingKeys } from '../schema/index.ts';

/** Every stored key, retired ones included, oldest first. */
export function listSigningKeys(db: Db | Tx): Promise<SigningKeyRow[]> {
  return db.select().from(signingKeys).orderBy(asc(signingKeys.createdAt), asc(signingKeys.kid));
}

/** Transaction-scoped lock per schema: of two processes creating the first key, the second waits, then sees it. */
export async function lockSigningKeys(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext('jitgate_signing_keys:' || current_schema()))`);
}

export async function hasActiveSigningKey(db: Db | Tx): Promise<boolean> {
  const active = await db
    .select({ kid: signingKeys.kid })
    .from(signingKeys)
    .where(isNull(signingKeys.retiredAt))
    .limit(1);
  return active.length > 0;
}

/** Fails on a kid that exists. */
export async function insertSigningKey(db: Db | Tx, row: SigningKeyRow): Promise<void> {
  await db.insert(signingKeys).values(row);
}

/** Does nothing when the kid exists. */
export async function insertSigningKeyUnlessExists(db: Db | Tx, row: SigningKeyRow): Promise<void> {
  await db.insert(signingKeys).values(row).onConflictDoNothing();
}

/** Sets `retired_at` on a key not yet retired; false when there was no such key. */
export async function retireSigningKey(db: Db | Tx, kid: string, at: Date): Promise<boolean> {
  const rows = await db
    .update(signingKeys)
    .set({ retiredAt: at })
    .where(and(eq(signingKeys.kid, kid), isNull(signingKeys.retiredAt)))
    .returning({ kid: signingKeys.kid });
  return rows.length > 0;
}

/** Deletes a retired key's row, private key and all; false when no retired key has that kid. */
export async function deleteRetiredSigningKey(db: Db | Tx, kid: string): Promise<boolean> {
  const rows = await db
    .delete(signingKeys)
    .where(and(eq(signingKeys.kid, kid), isNotNull(signingKeys.retiredAt)))
    .returning({ kid: signingKeys.kid });
  return rows.length > 0;
}
