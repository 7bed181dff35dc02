import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import type { Db } from '../../src/db/client.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { openTestDatabase } from '../helpers/db.ts';

type TestDatabase = Awaited<ReturnType<typeof openTestDatabase>>;

const record = (i: number): CallRecord => ({
  at: new Date(Date.UTC(2026, 0, 5, 10) + i),
  requestId: `req-${i}`,
  resource: 'billing-api',
  grantId: '0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70',
  userId: 'U1',
  scope: 'read',
  method: 'GET',
  path: `/invoices/${i}`,
  clientIp: '10.0.0.1',
  decision: i % 7 === 0 ? 'out_of_scope' : 'allowed',
  status: i % 7 === 0 ? 403 : 200,
  responseBytes: i,
  latencyMs: 1,
});

const rowsOf = (result: unknown) =>
  (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Record<string, unknown>[];

/** Every request id written, with how often; the proof of "no loss, no duplicates". */
async function writtenIds(db: Db): Promise<Map<string, number>> {
  const rows = rowsOf(
    await db.execute(sql`select data->>'requestId' as id, count(*)::int as n from audit_events group by 1`),
  );
  return new Map(rows.map((r) => [r.id as string, r.n as number]));
}

function expectExactlyOnce(ids: Map<string, number>, count: number) {
  expect(ids.size).toBe(count);
  for (let i = 0; i < count; i++) expect(ids.get(`req-${i}`), `req-${i}`).toBe(1);
}

/** A Db whose `transaction` is wrapped: lets a test fail before or after the real commit. */
function faultyDb(db: Db, wrap: (run: () => Promise<unknown>, call: number) => Promise<unknown>): Db {
  let calls = 0;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'transaction') {
        return (fn: Parameters<Db['transaction']>[0]) => {
          calls += 1;
          return wrap(() => target.transaction(fn), calls);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

describe('audit appender', () => {
  let database: TestDatabase;
  beforeEach(async () => {
    database = await openTestDatabase('audit');
  });
  afterEach(async () => {
    await database.drop();
  });

  it('batches calls: far fewer transactions than rows, each row as proxy.call or proxy.denied', async () => {
    const appender = createAuditAppender({ db: database.db, batchSize: 100, flushIntervalMs: 5 });
    for (let i = 0; i < 1000; i++) expect(appender.offer(record(i))).toBe(true);
    await appender.flush();
    expect(appender.stats()).toMatchObject({ written: 1000, queued: 0 });
    expect(appender.stats().batches).toBeLessThanOrEqual(20);
    const kinds = rowsOf(
      await database.db.execute(
        sql`select kind, count(*)::int as n from audit_events group by kind order by kind`,
      ),
    );
    expect(kinds).toEqual([
      { kind: 'proxy.call', n: 857 },
      { kind: 'proxy.denied', n: 143 },
    ]);
    const [row] = rowsOf(
      await database.db.execute(sql`select grant_id, resource, actor, data from audit_events where seq = 1`),
    );
    expect(row).toMatchObject({
      grant_id: '0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70',
      resource: 'billing-api',
      actor: 'slack:U1',
      data: {
        method: 'GET',
        path: '/invoices/0',
        status: 403,
        bytes: 0,
        latencyMs: 1,
        clientIp: '10.0.0.1',
        decision: 'out_of_scope',
        requestId: 'req-0',
      },
    });
    await appender.close();
  });

  it('a partial batch is written after the flush interval without anyone asking', async () => {
    const appender = createAuditAppender({ db: database.db, batchSize: 1000, flushIntervalMs: 10 });
    appender.offer(record(0));
    for (let i = 0; i < 100 && appender.stats().written === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(appender.stats().written).toBe(1);
    await appender.close();
  });

  it('backpressure: capacity reads false before the bound, offers past the bound are refused', async () => {
    // The database never answers while the gate is shut, so the queue only grows.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const db = faultyDb(database.db, async (run) => {
      await gate;
      return run();
    });
    const appender = createAuditAppender({
      db,
      maxQueue: 100,
      headroom: 10,
      batchSize: 20,
      flushIntervalMs: 1,
    });
    let admitted = 0;
    while (appender.hasCapacity()) {
      expect(appender.offer(record(admitted))).toBe(true);
      admitted += 1;
    }
    expect(admitted).toBe(90);
    // Calls already admitted (in flight upstream) still find room up to the hard bound.
    for (let i = 0; i < 10; i++) expect(appender.offer(record(admitted + i))).toBe(true);
    expect(appender.offer(record(999))).toBe(false);
    expect(appender.hasCapacity()).toBe(false);
    open();
    await appender.flush();
    expect(appender.hasCapacity()).toBe(true);
    await appender.close();
    expectExactlyOnce(await writtenIds(database.db), 100);
  });

  it('close() drains everything queued and then refuses new records', async () => {
    const appender = createAuditAppender({ db: database.db, batchSize: 64, flushIntervalMs: 60_000 });
    for (let i = 0; i < 500; i++) appender.offer(record(i));
    await appender.close();
    expect(appender.offer(record(500))).toBe(false);
    expect(appender.hasCapacity()).toBe(false);
    expectExactlyOnce(await writtenIds(database.db), 500);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 500 });
  });

  it('a transaction failing before commit is retried: nothing lost', async () => {
    const db = faultyDb(database.db, async (run, call) => {
      if (call % 3 === 1) throw new Error('connection reset (before commit)');
      return run();
    });
    const appender = createAuditAppender({ db, batchSize: 50, flushIntervalMs: 1, retryDelayMs: 1 });
    for (let i = 0; i < 400; i++) appender.offer(record(i));
    await appender.close();
    expect(appender.stats().failedAttempts).toBeGreaterThan(0);
    expectExactlyOnce(await writtenIds(database.db), 400);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 400 });
  });

  // A real killed connection (pg_terminate_backend) is not tested here: postgres.js 3.4.9
  // can then throw an uncatchable TypeError from a setImmediate (porsager/postgres#1154,
  // #1208), which takes the test process down. These two cases drive the same paths.
  it('a COMMIT whose reply is lost is not written twice', async () => {
    // The transaction really commits, then the caller sees an error: the ambiguous case.
    const db = faultyDb(database.db, async (run, call) => {
      const result = await run();
      if (call % 2 === 1) throw new Error('connection lost after COMMIT was sent');
      return result;
    });
    const appender = createAuditAppender({ db, batchSize: 40, flushIntervalMs: 1, retryDelayMs: 1 });
    for (let i = 0; i < 300; i++) {
      appender.offer(record(i));
      if (i % 37 === 0) await new Promise((r) => setImmediate(r));
    }
    await appender.close();
    expect(appender.stats().failedAttempts).toBeGreaterThan(0);
    expectExactlyOnce(await writtenIds(database.db), 300);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 300 });
  });
});
