import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { quotaSettler } from '../../src/access/quota.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { type Db, postgresClientOf } from '../../src/db/client.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { openTestDatabase } from '../helpers/db.ts';

/**
 * The appender's pipelined path (src/db/queries/audit-events/pipelined-append.ts) against real
 * PostgreSQL: the rows, their order and the chain; batches that settle quotas taking the
 * drizzle path beside it; a COMMIT whose reply is lost, and a batch that rolled back, retried
 * without loss or duplicate; the backlog's bound failing closed while the database is away.
 */

type TestDatabase = Awaited<ReturnType<typeof openTestDatabase>>;

const T0 = Date.UTC(2026, 0, 5, 10);

const rowsOf = (result: unknown) =>
  (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Record<string, unknown>[];

function record(i: number, grantId: string, extra: Partial<CallRecord> = {}): CallRecord {
  return {
    at: new Date(T0 + i),
    requestId: `req-${i}`,
    resource: 'billing-api',
    grantId,
    userId: 'U1',
    scope: 'read',
    method: 'GET',
    path: `/invoices/${i}`,
    clientIp: '10.0.0.1',
    decision: i % 7 === 3 ? 'out_of_scope' : 'allowed',
    status: i % 7 === 3 ? 403 : 200,
    responseBytes: 10,
    latencyMs: 0.5,
    ...extra,
  };
}

async function insertGrant(db: Db, quotaRequests: number | null): Promise<string> {
  const rows = rowsOf(
    await db.execute(sql`
      with r as (
        insert into access_requests (id, requester_id, resource, scope, duration_seconds, reason, status,
          approvals_required, created_at, timeout_at, decided_at)
        values (gen_random_uuid(), 'U1', 'billing-api', 'read', 3600, 'test', 'approved', 1, now(),
          now() + interval '1 hour', now()) returning id)
      insert into grants (id, request_id, user_id, resource, scope, status, starts_at, expires_at, quota_requests)
      select gen_random_uuid(), id, 'U1', 'billing-api', 'read', 'active', now() - interval '1 minute',
        now() + interval '1 day', ${quotaRequests} from r returning id`),
  );
  return String(rows[0]!.id);
}

/** Request ids in seq order, each row's kind: the proof of "every call once, in the order offered". */
async function callRows(db: Db): Promise<{ id: string; kind: string; seq: number }[]> {
  return rowsOf(
    await db.execute(sql`select data->>'requestId' as id, kind, seq::int as seq from audit_events
      where kind in ('proxy.call', 'proxy.denied') order by seq`),
  ).map((r) => ({ id: String(r.id), kind: String(r.kind), seq: Number(r.seq) }));
}

async function grantRow(db: Db, id: string) {
  const [row] = rowsOf(
    await db.execute(sql`select used_requests::int as used, last_used_at as "lastUsed",
      quota_exhausted_at as "exhaustedAt" from grants where id = ${id}`),
  );
  return row!;
}

/**
 * postgres.js's client with its reserved connections' statements intercepted: `onCommit`
 * decides what the appender sees of each pipelined COMMIT (the n-th, from 1).
 */
function interceptedClient(
  client: postgres.Sql,
  onCommit: (n: number, real: () => Promise<unknown>) => Promise<unknown>,
  onReserve: () => Promise<void> = async () => {},
): postgres.Sql {
  let commits = 0;
  const reserve = async () => {
    await onReserve();
    const conn = await client.reserve();
    return new Proxy(conn, {
      get(target, prop, receiver) {
        if (prop !== 'unsafe') return Reflect.get(target, prop, receiver);
        return (text: string, ...rest: unknown[]) => {
          const query = (target.unsafe as (...a: unknown[]) => postgres.PendingQuery<postgres.Row[]>)(
            text,
            ...rest,
          );
          if (text !== 'commit') return query;
          commits += 1;
          const n = commits;
          return { execute: () => onCommit(n, () => query.execute()) };
        };
      },
    });
  };
  return new Proxy(client, {
    get(target, prop, receiver) {
      return prop === 'reserve' ? reserve : Reflect.get(target, prop, receiver);
    },
  });
}

describe('pipelined audit batches', () => {
  let database: TestDatabase;
  let client: postgres.Sql;
  beforeEach(async () => {
    database = await openTestDatabase('pipe');
    const found = postgresClientOf(database.db);
    if (!found) throw new Error('no postgres.js client under the test database');
    client = found;
  });
  afterEach(async () => {
    await database.drop();
  });

  it('commits every call once, in the order offered, as a chain that verifies, moving last use', async () => {
    const grant = await insertGrant(database.db, null);
    const appender = createAuditAppender({ db: database.db, client, batchSize: 100, flushIntervalMs: 5 });
    for (let i = 0; i < 1_050; i++) {
      expect(appender.offer(record(i, grant))).toBe(true);
      if (i % 97 === 0) await new Promise((r) => setImmediate(r));
    }
    await appender.close();
    const rows = await callRows(database.db);
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 1_050 }, (_, i) => `req-${i}`));
    expect(rows.filter((r) => r.kind === 'proxy.denied')).toHaveLength(150);
    expect(appender.stats()).toMatchObject({ written: 1_050, failedAttempts: 0 });
    expect(appender.stats().batches).toBeLessThan(50);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 1_050 });
    // The latest allowed call's time (1049 is allowed: 1049 % 7 = 6).
    expect(new Date(String((await grantRow(database.db, grant)).lastUsed)).getTime()).toBe(T0 + 1_049);
  });

  it('two appenders on one chain, one pipelined and one not, interleave into one line', async () => {
    const grant = await insertGrant(database.db, null);
    const a = createAuditAppender({ db: database.db, client, batchSize: 40, flushIntervalMs: 1 });
    const b = createAuditAppender({ db: database.db, batchSize: 30, flushIntervalMs: 1 });
    for (let i = 0; i < 400; i++) {
      (i % 2 === 0 ? a : b).offer(record(i, grant));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all([a.close(), b.close()]);
    expect(new Set((await callRows(database.db)).map((r) => r.id)).size).toBe(400);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 400 });
  });

  it('a batch carrying a quota grant takes the drizzle path in the same chain: counts exact, exhaustion audited once', async () => {
    const plain = await insertGrant(database.db, null);
    const limited = await insertGrant(database.db, 25);
    const appender = createAuditAppender({
      db: database.db,
      client,
      batchSize: 20,
      flushIntervalMs: 1,
      settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
    });
    // Batches of plain calls (pipelined) and of quota calls (drizzle), in turn.
    for (let i = 0; i < 200; i++) {
      const quota = Math.floor(i / 20) % 2 === 1;
      appender.offer(
        quota
          ? record(i, limited, { decision: 'allowed', status: 200, quotaCounted: true })
          : record(i, plain),
      );
      if (i % 20 === 19) await appender.flush();
    }
    await appender.close();
    const rows = await callRows(database.db);
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 200 }, (_, i) => `req-${i}`));
    const limitedRow = await grantRow(database.db, limited);
    expect(limitedRow.used).toBe(100);
    expect(limitedRow.exhaustedAt).not.toBeNull();
    expect(new Date(String(limitedRow.lastUsed)).getTime()).toBe(T0 + 199);
    expect(new Date(String((await grantRow(database.db, plain)).lastUsed)).getTime()).toBe(T0 + 180 - 1);
    const exhausted = rowsOf(
      await database.db.execute(
        sql`select count(*)::int as n from audit_events where kind = 'grant.quota_exhausted'`,
      ),
    );
    expect(exhausted[0]!.n).toBe(1);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 201 });
  });

  it('a pipelined COMMIT whose reply is lost is not written twice', async () => {
    const grant = await insertGrant(database.db, null);
    const lossy = interceptedClient(client, async (n, real) => {
      const reply = await real();
      if (n % 2 === 1) throw new Error('connection lost after COMMIT was sent');
      return reply;
    });
    const appender = createAuditAppender({
      db: database.db,
      client: lossy,
      batchSize: 40,
      flushIntervalMs: 1,
      retryDelayMs: 1,
    });
    for (let i = 0; i < 300; i++) {
      appender.offer(record(i, grant));
      if (i % 37 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await appender.close();
    expect(appender.stats().failedAttempts).toBeGreaterThan(0);
    expect((await callRows(database.db)).map((r) => r.id)).toEqual(
      Array.from({ length: 300 }, (_, i) => `req-${i}`),
    );
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 300 });
  });

  it('a pipelined batch that rolled back at COMMIT is retried: nothing lost', async () => {
    const grant = await insertGrant(database.db, null);
    let conn: postgres.Sql | undefined;
    const rollingBack = interceptedClient(client, async (n, real) => {
      if (n % 3 !== 1) return real();
      // The transaction is ended by a ROLLBACK instead: the batch is not there, and the
      // appender is told the COMMIT failed.
      await conn!.unsafe('rollback');
      // As the server says it (a serialization failure, say): the connection itself is fine.
      throw new postgres.PostgresError({ message: 'could not commit', code: '40001' } as never);
    });
    const reserve = rollingBack.reserve;
    const spying = new Proxy(rollingBack, {
      get(target, prop, receiver) {
        if (prop !== 'reserve') return Reflect.get(target, prop, receiver);
        return async () => {
          conn = await reserve();
          return conn;
        };
      },
    });
    const appender = createAuditAppender({
      db: database.db,
      client: spying,
      batchSize: 50,
      flushIntervalMs: 1,
      retryDelayMs: 1,
    });
    for (let i = 0; i < 400; i++) {
      appender.offer(record(i, grant));
      if (i % 45 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await appender.close();
    expect(appender.stats().failedAttempts).toBeGreaterThan(0);
    expect((await callRows(database.db)).map((r) => r.id)).toEqual(
      Array.from({ length: 400 }, (_, i) => `req-${i}`),
    );
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 400 });
  });

  it('fails closed while the database is away: capacity goes before the bound, nothing is lost after', async () => {
    const grant = await insertGrant(database.db, null);
    let away = true;
    const down = interceptedClient(
      client,
      (_n, real) => real(),
      async () => {
        if (away) throw new Error('database unreachable');
      },
    );
    // The retries' drizzle path is down too.
    const db = new Proxy(database.db, {
      get(target, prop, receiver) {
        if (prop === 'transaction' && away)
          return async () => Promise.reject(new Error('database unreachable'));
        return Reflect.get(target, prop, receiver);
      },
    });
    const appender = createAuditAppender({
      db,
      client: down,
      maxQueue: 500,
      headroom: 50,
      batchSize: 100,
      flushIntervalMs: 1,
      retryDelayMs: 1,
      maxRetryDelayMs: 5,
    });
    let offered = 0;
    while (appender.hasCapacity()) expect(appender.offer(record(offered++, grant))).toBe(true);
    // No capacity once 450 wait (the proxy answers 503 audit_unavailable from here) ...
    expect(offered).toBe(450);
    // ... and calls already admitted still find room, up to the hard bound.
    while (offered < 500) expect(appender.offer(record(offered++, grant))).toBe(true);
    expect(appender.offer(record(offered, grant))).toBe(false);
    await new Promise((r) => setTimeout(r, 30));
    expect(appender.stats().failedAttempts).toBeGreaterThan(1);
    expect(appender.hasCapacity()).toBe(false);
    away = false;
    await appender.flush();
    expect(appender.hasCapacity()).toBe(true);
    await appender.close();
    expect((await callRows(database.db)).map((r) => r.id)).toEqual(
      Array.from({ length: 500 }, (_, i) => `req-${i}`),
    );
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 500 });
  });
});
