import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { type Database, openDatabase } from '../../src/db/client.ts';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * A migrated database in a schema of its own, so test files run in parallel against one
 * real PostgreSQL without seeing each other's rows or NOTIFY channels.
 */
export async function openTestDatabase(prefix = 't'): Promise<Database & { drop(): Promise<void> }> {
  const schemaName = `${prefix}_${randomBytes(5).toString('hex')}`;
  const database = await openDatabase({
    databaseUrl: TEST_DATABASE_URL,
    dataDir: '.jitgate-test',
    schemaName,
  });
  await database.migrate();
  return Object.assign(database, {
    async drop() {
      await database.close();
      const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop schema if exists "${schemaName}" cascade`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  });
}
