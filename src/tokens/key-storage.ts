import type { Db } from '../db/client.ts';
import {
  deleteRetiredSigningKey,
  hasActiveSigningKey,
  insertSigningKey,
  insertSigningKeyUnlessExists,
  listSigningKeys,
  lockSigningKeys,
  retireSigningKey,
} from '../db/queries/signing-keys.ts';
import type { SigningKeyRow } from '../db/schema/index.ts';

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
  /** Deletes a retired key's row; false when no retired key has that kid. */
  purge(kid: string): Promise<boolean>;
}

export function createDbKeyStorage(db: Db): KeyStorage {
  return {
    list: () => listSigningKeys(db),
    async insertIfNoActiveKey(create) {
      await db.transaction(async (tx) => {
        await lockSigningKeys(tx);
        if (await hasActiveSigningKey(tx)) return;
        await insertSigningKeyUnlessExists(tx, await create());
      });
    },
    insert: (row) => insertSigningKey(db, row),
    retire: (kid, at) => retireSigningKey(db, kid, at),
    purge: (kid) => deleteRetiredSigningKey(db, kid),
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
    async purge(kid) {
      const row = rows.get(kid);
      if (!row || row.retiredAt === null) return false;
      return rows.delete(kid);
    },
  };
}
