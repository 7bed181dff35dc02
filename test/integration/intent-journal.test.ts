import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { inArray, sql } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quotaSettler } from '../../src/access/quota.ts';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import { createIntentJournal } from '../../src/audit/intent-journal.ts';
import { replayIntentJournal } from '../../src/audit/intent-replay.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { grants } from '../../src/db/schema/index.ts';
import type { CallIntent, IntentMark } from '../../src/shared/call-intent.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { insertGrant } from '../helpers/proxy-fixtures.ts';

/**
 * The intent journal and its replay in one process, against a real schema: what a dead
 * process leaves (here: a journal closed without its records committed, whose header names this
 * process, as a restarted container's pid 1 would) becomes exactly the missing rows.
 */

let database: Awaited<ReturnType<typeof openTestDatabase>>;
const logger = pino({ level: 'silent' });
const LOG = 'test-audit-log';
const dirs: string[] = [];

beforeAll(async () => {
  database = await openTestDatabase('intents');
});
afterAll(async () => {
  await database?.drop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const newDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'jitgate-intents-'));
  dirs.push(dir);
  return dir;
};

const intent = (i: number, path = `/items/${i}`): CallIntent => ({
  at: new Date(Date.UTC(2026, 2, 2, 9, 0, 0, i)),
  requestId: `req-${i}`,
  resource: 'billing-api',
  grantId: '0b0e0f0a-1111-4222-8333-444455556666',
  userId: 'U0CONTRACTOR',
  scope: 'read',
  method: 'GET',
  path,
  clientIp: '10.0.0.7',
});

const written = (journal: ReturnType<typeof createIntentJournal>, value: CallIntent) =>
  new Promise<IntentMark>((resolve, reject) => {
    journal.forwarding(value, (mark) => (mark ? resolve(mark) : reject(new Error('not written'))));
  });

describe('intent journal and replay', () => {
  it('writes a row for each intent without one, fields as written (an odd path included), once', async () => {
    const dir = newDir();
    const journal = createIntentJournal({ dir, log: LOG, flushCommitted: async () => {}, logger });
    const odd = intent(3, '/items/a\tb\\c');
    const intents = [intent(1), intent(2), odd];
    const marks = await Promise.all(intents.map((i) => written(journal, i)));
    // Call 1's record made it to the log before the "crash"; 2 and 3 did not.
    journal.recorded(marks[0]!);
    await database.db.transaction(async (tx) => {
      await appendAuditEvents(tx, [
        callAuditEvent({
          ...intents[0]!,
          scope: 'read',
          decision: 'allowed',
          status: 200,
          responseBytes: 10,
          latencyMs: 1,
        }),
      ]);
    });
    expect(await journal.close(false)).toBe(1);
    expect(readdirSync(dir).length).toBe(1);
    // Another audit log's replay (a directory reused with another database) leaves it alone.
    expect((await replayIntentJournal({ dir, log: 'another-log', db: database.db, logger })).segments).toBe(
      0,
    );

    const result = await replayIntentJournal({ dir, log: LOG, db: database.db, logger });
    expect(result).toEqual({ segments: 1, intents: 3, written: 2 });
    expect(readdirSync(dir)).toEqual([]);
    const rows = await database.db.execute<{ request_id: string; path: string; result: string | null }>(
      sql`select data->>'requestId' as request_id, data->>'path' as path, data->>'result' as result
          from audit_events order by seq`,
    );
    const list = rows as unknown as { request_id: string; path: string; result: string | null }[];
    expect(list.map((r) => [r.request_id, r.path, r.result])).toEqual([
      ['req-1', '/items/1', null],
      ['req-2', '/items/2', 'unknown'],
      ['req-3', '/items/a\tb\\c', 'unknown'],
    ]);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
    expect(await replayIntentJournal({ dir, log: LOG, db: database.db, logger })).toEqual({
      segments: 0,
      intents: 0,
      written: 0,
    });
  });

  it("counts replayed calls toward their grant's quota, in the rows' transaction, and only for quota grants", async () => {
    const startsAt = new Date(Date.UTC(2026, 2, 2, 8));
    const expiresAt = new Date(Date.UTC(2026, 2, 3, 8));
    const limited = await insertGrant(database, {
      resource: 'billing-api',
      scope: 'read',
      startsAt,
      expiresAt,
      quotaRequests: 2,
    });
    const open = await insertGrant(database, { resource: 'billing-api', scope: 'read', startsAt, expiresAt });
    const dir = newDir();
    const journal = createIntentJournal({ dir, log: LOG, flushCommitted: async () => {}, logger });
    const calls = [
      { ...intent(21), grantId: limited.id },
      { ...intent(22), grantId: limited.id.toUpperCase() },
      { ...intent(23), grantId: open.id },
    ];
    for (const call of calls) await written(journal, call);
    expect(await journal.close(false)).toBe(1);

    const result = await replayIntentJournal({
      dir,
      log: LOG,
      db: database.db,
      logger,
      settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
    });
    expect(result).toMatchObject({ intents: 3, written: 3 });
    const used = (await database.db
      .select({ id: grants.id, used: grants.usedRequests, exhaustedAt: grants.quotaExhaustedAt })
      .from(grants)
      .where(inArray(grants.id, [limited.id, open.id]))) as {
      id: string;
      used: number;
      exhaustedAt: Date | null;
    }[];
    const byId = new Map(used.map((row) => [row.id, row]));
    // Both calls count (the upper-cased id too); reaching the quota is marked and audited once.
    expect(byId.get(limited.id)).toMatchObject({ used: 2 });
    expect(byId.get(limited.id)?.exhaustedAt).toEqual(calls[1]!.at);
    expect(byId.get(open.id)).toMatchObject({ used: 0, exhaustedAt: null });
    const exhausted = await database.db.execute(
      sql`select count(*)::int as n from audit_events where kind = 'grant.quota_exhausted' and grant_id = ${limited.id}`,
    );
    expect((exhausted as unknown as { n: number }[])[0]?.n).toBe(1);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
  });

  it('deletes a segment once its calls are recorded and committed, and leaves a live process alone', async () => {
    const dir = newDir();
    let flushes = 0;
    const journal = createIntentJournal({
      dir,
      log: LOG,
      flushCommitted: async () => {
        flushes++;
      },
      logger,
      segmentMs: 20,
    });
    const mark = await written(journal, intent(10));
    journal.recorded(mark);
    for (let i = 0; i < 100 && readdirSync(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(readdirSync(dir)).toEqual([]);
    expect(flushes).toBeGreaterThan(0);
    // A segment of another live process on this host (the parent of this test) is not replayed.
    writeFileSync(
      join(dir, `${process.ppid}-1-000001.jnl`),
      `${JSON.stringify({ journal: 'jitgate-intents', version: 1, host: hostname(), pid: process.ppid, log: LOG })}\n${intent(11).at.getTime()}\treq-11\tbilling-api\tg\tU\tread\tGET\t/x\t1.2.3.4\n`,
    );
    expect((await replayIntentJournal({ dir, log: LOG, db: database.db, logger })).segments).toBe(0);
    expect(readdirSync(dir).length).toBe(1);
    await journal.close(true);
  });
});
