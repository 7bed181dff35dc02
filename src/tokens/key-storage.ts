import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { type SigningKeyRow, signingKeys } from '../db/schema.ts';

/** What the KeyStore needs from persistence; a Postgres and an in-memory implementation exist. */
export interface KeyStorage {
  /** Every stored key, retired ones included, oldest first. */
  list(): Promise<SigningKeyRow[]>;
  /**
   * Inserts `create()`'s row only if no non-retired key exists, atomically across processes, so
   * two instances starting together on an empty database end up with one signer, not two.
   */
  insertIfNoActiveKey(create: () => Promise<SigningKeyRow>): Promise<void>;
  insert(row: SigningKeyRow): Promise<void>;
  /** Sets `retiredAt` on a not yet retired key; false when there was no such key. */
  retire(kid: string, at: Date): Promise<boolean>;
}

export function createDbKeyStorage(db: Db): KeyStorage {
  return {
    async list() {
      return db.select().from(signingKeys).orderBy(asc(signingKeys.createdAt), asc(signingKeys.kid));
    },
    async insertIfNoActiveKey(create) {
      await db.transaction(async (tx) => {
        // Transaction-scoped lock per schema: the second starter waits, then sees the first's key.
        await tx.execute(
          sql`select pg_advisory_xact_lock(hashtext('jitgate_signing_keys:' || current_schema()))`,
        );
        const active = await tx
          .select({ kid: signingKeys.kid })
          .from(signingKeys)
          .where(isNull(signingKeys.retiredAt))
          .limit(1);
        if (active.length > 0) return;
        await tx
          .insert(signingKeys)
          .values(await create())
          .onConflictDoNothing();
      });
    },
    async insert(row) {
      await db.insert(signingKeys).values(row);
    },
    async retire(kid, at) {
      const rows = await db
        .update(signingKeys)
        .set({ retiredAt: at })
        .where(and(eq(signingKeys.kid, kid), isNull(signingKeys.retiredAt)))
        .returning({ kid: signingKeys.kid });
      return rows.length > 0;
    },
  };
}

/** For unit tests and tools: same contract, kept in a Map. Share one between stores to mimic processes. */
export function createMemoryKeyStorage(): KeyStorage {
  const rows = new Map<string, SigningKeyRow>();
  let queue: Promise<unknown> = Promise.resolve();
  // Serialises insertIfNoActiveKey like the advisory lock does.
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const copy = (row: SigningKeyRow): SigningKeyRow => ({ ...row, publicJwk: { ...row.publicJwk } });
  return {
    async list() {
      return [...rows.values()]
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.kid.localeCompare(b.kid))
        .map(copy);
    },
    insertIfNoActiveKey(create) {
      return exclusive(async () => {
        if ([...rows.values()].some((r) => r.retiredAt === null)) return;
        const row = await create();
        if (!rows.has(row.kid)) rows.set(row.kid, copy(row));
      });
    },
    async insert(row) {
      if (rows.has(row.kid)) throw new Error(`signing key ${row.kid} already exists`);
      rows.set(row.kid, copy(row));
    },
    async retire(kid, at) {
      const row = rows.get(kid);
      if (!row || row.retiredAt !== null) return false;
      row.retiredAt = at;
      return true;
    },
  };
}
