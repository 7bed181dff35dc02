import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from './schema/index.ts';

/** Both the postgres.js and the PGlite drizzle instances; code above db/ sees only this. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction handle, usable wherever a Db is. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** postgres.js's client under a drizzle Db; undefined for PGlite or a transaction handle. */
export function postgresClientOf(db: Db): postgres.Sql | undefined {
  const client: unknown = (db as unknown as { $client?: unknown }).$client;
  return typeof client === 'function' && typeof (client as { unsafe?: unknown }).unsafe === 'function'
    ? (client as postgres.Sql)
    : undefined;
}

/**
 * The committed `drizzle/` folder: the nearest one above this module, so the same code finds
 * it when run from `src/` (tsx) and from the build's `dist/src/`.
 */
const MIGRATIONS_FOLDER = findMigrationsFolder(dirname(fileURLToPath(import.meta.url)));

function findMigrationsFolder(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = resolve(dir, 'drizzle');
    if (existsSync(resolve(candidate, 'meta', '_journal.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`no drizzle/meta/_journal.json above ${from}`);
  }
}

interface ListenHandlers {
  onMessage: (payload: string) => void;
  /** Called when the subscription is (re)established; callers reload state here. */
  onConnect: () => void;
  /** Called when the subscription is lost; callers fail closed until onConnect. */
  onDisconnect: () => void;
}

export interface Database {
  db: Db;
  kind: 'postgres' | 'embedded';
  /** The Postgres schema the tables live in (tests use one schema each). */
  schemaName: string;
  /** A NOTIFY channel name scoped to this schema, so test schemas never hear each other. */
  channel(name: string): string;
  /** Subscribe to a NOTIFY channel on a connection of its own. */
  listen(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>>;
  migrate(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  /** Postgres schema to use; created if missing. Default `public`. */
  schemaName?: string;
  maxConnections?: number;
}

const channelFor = (schemaName: string) => (name: string) =>
  schemaName === 'public' ? `jitgate_${name}` : `jitgate_${name}_${schemaName}`;

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, options.schemaName ?? 'public', options.maxConnections ?? 10)
    : openEmbedded(options.dataDir);
}

function assertSchemaName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid schema name: ${name}`);
}

async function openPostgres(url: string, schemaName: string, max: number): Promise<Database> {
  assertSchemaName(schemaName);
  const connection = { search_path: schemaName, application_name: 'jitgate' };
  const sql = postgres(url, { max, connection, onnotice: () => {} });
  if (schemaName !== 'public') await sql.unsafe(`create schema if not exists "${schemaName}"`);
  const db = drizzlePostgres(sql, { schema }) as unknown as Db;
  const listeners = new Set<postgres.Sql>();
  return {
    db,
    kind: 'postgres',
    schemaName,
    channel: channelFor(schemaName),
    async listen(channel, handlers) {
      // A dedicated connection of our own rather than postgres.js's `listen()`: its shared
      // listener client swallows `onclose`, and the proxy must know the moment the feed drops.
      let stopped = false;
      let connected = false;
      let retryMs = 50;
      // `onnotify` is a runtime option of postgres.js that its type definitions omit.
      const listenerOptions = {
        max: 1,
        connection,
        idle_timeout: 0,
        max_lifetime: null,
        fetch_types: false,
        onnotice: () => {},
        onnotify: (name: string, payload: string) => {
          if (name === channel) handlers.onMessage(payload);
        },
        onclose: () => {
          if (connected) {
            connected = false;
            handlers.onDisconnect();
          }
          if (!stopped) void subscribe();
        },
      };
      const listener = postgres(url, listenerOptions as postgres.Options<Record<string, never>>);
      const quoted = `"${channel.replace(/"/g, '""')}"`;
      let subscribing: Promise<void> | undefined;
      const subscribe = (): Promise<void> => {
        subscribing ??= (async () => {
          while (!stopped) {
            try {
              await listener.unsafe(`listen ${quoted}`);
              retryMs = 50;
              connected = true;
              handlers.onConnect();
              return;
            } catch {
              await new Promise((resolve) => setTimeout(resolve, retryMs));
              retryMs = Math.min(retryMs * 2, 2000);
            }
          }
        })().finally(() => {
          subscribing = undefined;
        });
        return subscribing;
      };
      listeners.add(listener);
      await subscribe();
      return async () => {
        stopped = true;
        connected = false;
        listeners.delete(listener);
        await listener.end({ timeout: 1 });
      };
    },
    async migrate() {
      // One migrator at a time across processes that start together.
      const lockSql = postgres(url, { max: 1, connection, onnotice: () => {} });
      try {
        await lockSql`select pg_advisory_lock(hashtext('jitgate_migrate:' || current_schema()))`;
        await migratePostgres(drizzlePostgres(lockSql), {
          migrationsFolder: MIGRATIONS_FOLDER,
          migrationsSchema: schemaName,
        });
      } finally {
        await lockSql.end({ timeout: 5 });
      }
    },
    async close() {
      await Promise.all([...listeners].map((l) => l.end({ timeout: 1 })));
      await sql.end({ timeout: 5 });
    },
  };
}

async function openEmbedded(dataDir: string): Promise<Database> {
  const dir = resolve(dataDir, 'db');
  await mkdir(dir, { recursive: true });
  const client = await PGlite.create(dir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    kind: 'embedded',
    schemaName: 'public',
    channel: channelFor('public'),
    async listen(channel, handlers) {
      // In-process: the feed cannot drop without the whole process going down.
      const unlisten = await client.listen(channel, handlers.onMessage);
      handlers.onConnect();
      return unlisten;
    },
    async migrate() {
      await migratePglite(drizzlePglite(client), {
        migrationsFolder: MIGRATIONS_FOLDER,
        migrationsSchema: 'public',
      });
    },
    async close() {
      await client.close();
    },
  };
}
