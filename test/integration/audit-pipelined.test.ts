import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { quotaSettler } from '../../src/access/quota.ts';
import { GRANT_MOVES } from '../../src/access/transitions.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { type Db, postgresClientOf } from '../../src/db/client.ts';
import { endGrantsOf } from '../../src/db/queries/grants/lifecycle.ts';
import { recordGrantsLastUse } from '../../src/db/queries/grants/proxy-use.ts';
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

async function insertGrant(
  db: Db,
  quotaRequests: number | null,
  id?: string,
  userId = 'U1',
): Promise<string> {
  const rows = rowsOf(
    await db.execute(sql`
      with r as (
        insert into access_requests (id, requester_id, resource, scope, duration_seconds, reason, status,
          approvals_required, created_at, timeout_at, decided_at)
        values (gen_random_uuid(), ${userId}, 'billing-api', 'read', 3600, 'test', 'approved', 1, now(),
          now() + interval '1 hour', now()) returning id)
      insert into grants (id, request_id, user_id, resource, scope, status, starts_at, expires_at, quota_requests)
      select coalesce(${id ?? null}::uuid, gen_random_uuid()), id, ${userId}, 'billing-api', 'read', 'active',
        now() - interval '1 minute', now() + interval '1 day', ${quotaRequests} from r returning id`),
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

  it('batches and a writer of several grants at once, side by side, never deadlock (grant rows in id order, then the chain)', async () => {
    const appender = createAuditAppender({
      db: database.db,
      client,
      batchSize: 1_000,
      flushIntervalMs: 1,
      retryDelayMs: 1,
      settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
    });
    let i = 0;
    for (let round = 0; round < 15; round++) {
      // Six grants of one person, every other one with a quota (those batches take drizzle's path).
      const ids = await Promise.all(
        Array.from({ length: 6 }, (_, k) => insertGrant(database.db, k % 2 ? 1_000 : null)),
      );
      for (const pass of [0, 1, 2, 3]) {
        // Each pass's calls in a different grant order, so the rows are met in every order.
        const order = pass % 2 ? [...ids].reverse() : ids;
        for (const id of order)
          appender.offer(
            record(i++, id, { decision: 'allowed', status: 200, quotaCounted: ids.indexOf(id) % 2 === 1 }),
          );
      }
      // The offboarding's shape: every grant of the person in one UPDATE, then the chain.
      const ending = database.db.transaction(async (tx) => {
        await endGrantsOf(tx, 'U1', GRANT_MOVES.revoke, {
          now: new Date(),
          by: 'test',
          reason: 'offboarded',
        });
        await appendAuditEvents(tx, [
          { kind: 'user.offboarded', actor: { type: 'cli' }, at: new Date(T0 + i) },
        ]);
      });
      await Promise.all([appender.flush(), ending]);
    }
    await appender.close();
    expect(appender.stats().failedAttempts).toBe(0);
    expect(new Set((await callRows(database.db)).map((r) => r.id)).size).toBe(i);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
  });

  it("a person's grants ended in one statement wait behind a batch's id-ordered locks instead of deadlocking with them", async () => {
    // Inserted in descending id order, so the table's own order is the reverse of id order.
    const ids = ['f', 'd', 'b', '9', '7', '1'].map((c) => `${c.repeat(8)}-0000-4000-8000-000000000000`);
    for (const id of ids) await insertGrant(database.db, null, id, 'U2');
    const lowest = ids[ids.length - 1]!;
    let releaseFirst: () => void = () => {};
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    let continueBatch: () => void = () => {};
    const batchMayGoOn = new Promise<void>((resolve) => {
      continueBatch = resolve;
    });
    // A batch's transaction as the appender runs it (recordGrantsLastUse, id order), paused
    // after its first row: the lowest id, the row the table holds last.
    const batch = database.db.transaction(async (tx) => {
      await tx.execute(sql`select id from grants where id = ${lowest} for update`);
      releaseFirst();
      await batchMayGoOn;
      await recordGrantsLastUse(
        tx,
        ids.map((id) => ({ id, at: new Date() })),
      );
    });
    await firstHeld;
    // Meanwhile every grant of U2 is ended (offboarding's statement), then its audit row.
    const ending = database.db.transaction(async (tx) => {
      await endGrantsOf(tx, 'U2', GRANT_MOVES.revoke, { now: new Date(), by: 'test', reason: 'offboarded' });
      await appendAuditEvents(tx, [{ kind: 'user.offboarded', actor: { type: 'cli' }, at: new Date() }]);
    });
    // Let the ending take whatever rows it can before it waits (in table order, it would hold
    // all but the lowest here), then let the batch take the rest.
    await new Promise((r) => setTimeout(r, 150));
    continueBatch();
    await expect(Promise.all([batch, ending])).resolves.toBeDefined();
    const ended = rowsOf(
      await database.db.execute(
        sql`select count(*)::int as n from grants where user_id = 'U2' and status = 'revoked'`,
      ),
    );
    expect(ended[0]!.n).toBe(6);
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
