import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import postgres from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { chainHash } from '../../src/audit/chain.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import { type VerifyStats, verifyAuditChain } from '../../src/audit/verify.ts';
import { runAuditCommand } from '../../src/cli/server/audit.ts';
import { openDatabase } from '../../src/db/client.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { openTestDatabase, TEST_DATABASE_URL } from '../helpers/db.ts';

type TestDatabase = Awaited<ReturnType<typeof openTestDatabase>>;

const GRANT = '0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70';
const record = (i: number): CallRecord => ({
  at: new Date(Date.UTC(2026, 0, 5, 10) + i * 1000),
  requestId: `req-${i}`,
  resource: 'billing-api',
  grantId: GRANT,
  userId: 'U1',
  scope: 'read',
  method: 'GET',
  path: `/invoices/${i}`,
  clientIp: '10.0.0.1',
  decision: 'allowed',
  status: 200,
  responseBytes: 10 * i,
  latencyMs: 2,
});

function runChild(schemaName: string, writer: string, count: number): Promise<string> {
  const file = fileURLToPath(new URL('./audit-writer.child.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      env: {
        ...process.env,
        TEST_DATABASE_URL,
        AUDIT_CHILD_SCHEMA: schemaName,
        AUDIT_CHILD_COUNT: String(count),
        AUDIT_CHILD_WRITER: writer,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`writer ${writer} exited ${code}: ${err}`)),
    );
  });
}

describe('audit chain across processes', () => {
  let database: TestDatabase;
  beforeEach(async () => {
    database = await openTestDatabase('audit');
  });
  afterEach(async () => {
    await database.drop();
  });

  it('10,000 events from two proxy processes form one chain that verifies', async () => {
    const outputs = await Promise.all([
      runChild(database.schemaName, 'a', 5000),
      runChild(database.schemaName, 'b', 5000),
    ]);
    expect(outputs.join('')).toContain('a wrote 5000');
    const result = await verifyAuditChain(database.db, { pageSize: 1000 });
    expect(result).toMatchObject({ ok: true, rows: 10_000, headSeq: 10_000 });
    // Both writers really interleaved (more than one switch between them along the chain).
    const rows = await database.db.execute(sql`
      select count(*)::int as switches from (
        select left(data->>'requestId', 1) as w, lag(left(data->>'requestId', 1)) over (order by seq) as prev
        from audit_events) s where w <> prev`);
    const list = (Array.isArray(rows) ? rows : (rows as unknown as { rows: unknown[] }).rows) as {
      switches: number;
    }[];
    expect(list[0]?.switches).toBeGreaterThan(1);
  }, 120_000);

  it('two appenders on separate connections in one process, and the access service writing too', async () => {
    // A second pool on the same schema: another writer with connections of its own.
    const second = await openDatabase({
      databaseUrl: TEST_DATABASE_URL,
      dataDir: '.jitgate-test',
      schemaName: database.schemaName,
    });
    try {
      const a = createAuditAppender({ db: database.db, batchSize: 50, flushIntervalMs: 1 });
      const b = createAuditAppender({ db: second.db, batchSize: 70, flushIntervalMs: 1 });
      for (let i = 0; i < 1500; i++) {
        a.offer(record(i));
        b.offer(record(10_000 + i));
        if (i % 300 === 0) {
          await database.db.transaction((tx) =>
            appendAuditEvents(tx, [
              { kind: 'grant.created', actor: { type: 'cli' }, at: new Date(), grantId: GRANT },
            ]),
          );
        }
      }
      await Promise.all([a.close(), b.close()]);
      expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 3005 });
    } finally {
      await second.close();
    }
  });
});

describe('tampering', () => {
  let database: TestDatabase;
  let admin: postgres.Sql;

  beforeEach(async () => {
    database = await openTestDatabase('audit');
    await database.db.transaction((tx) =>
      appendAuditEvents(
        tx,
        Array.from({ length: 20 }, (_, i) => callAuditEvent(record(i))),
      ),
    );
    // As a superuser who disables the trigger: what `audit verify` exists to catch.
    admin = postgres(TEST_DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: database.schemaName },
    });
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 20 });
  });
  afterEach(async () => {
    await admin.end({ timeout: 5 });
    await database.drop();
  });

  const bypass = async (work: (sql: postgres.Sql) => Promise<unknown>) => {
    await admin`alter table audit_events disable trigger audit_events_append_only`;
    try {
      await work(admin);
    } finally {
      await admin`alter table audit_events enable trigger audit_events_append_only`;
    }
  };

  it('the trigger refuses UPDATE, DELETE and TRUNCATE', async () => {
    await expect(admin`update audit_events set kind = 'x' where seq = 3`).rejects.toThrow(/append-only/);
    await expect(admin`delete from audit_events where seq = 3`).rejects.toThrow(/append-only/);
    await expect(admin`truncate audit_events`).rejects.toThrow(/append-only/);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true, rows: 20 });
  });

  it('an edited row is named as changed, and `audit verify` prints it and exits 1', async () => {
    await bypass(
      (sql) => sql`update audit_events set data = jsonb_set(data, '{status}', '500') where seq = 7`,
    );
    expect(await verifyAuditChain(database.db)).toMatchObject({
      ok: false,
      seq: 7,
      reason: 'changed',
      rows: 6,
    });
    let out = '';
    const stdout = {
      write: (chunk: string) => {
        out += chunk;
        return true;
      },
      once: () => undefined,
    };
    expect(await runAuditCommand(['verify'], { db: database.db, stdout, stderr: stdout })).toBe(1);
    expect(out).toContain('audit chain BROKEN at seq 7 (changed): row 7 was changed');
  });

  it('an edit that also re-hashes the row is caught at the next link', async () => {
    const [row] = await admin`select * from audit_events where seq = 7`;
    const data = { ...(row?.data as Record<string, unknown>), status: 500 };
    const hash = chainHash(row?.prev_hash as string, {
      seq: 7,
      at: row?.at as Date,
      kind: row?.kind as string,
      actor: row?.actor as string,
      resource: row?.resource as string,
      requestId: null,
      grantId: row?.grant_id as string,
      data,
    });
    await bypass(
      (sql) => sql`update audit_events set data = ${sql.json(data)}, hash = ${hash} where seq = 7`,
    );
    const result = await verifyAuditChain(database.db);
    expect(result).toMatchObject({ ok: false, seq: 8, reason: 'inserted' });
    expect(!result.ok && result.message).toContain('row 7 was changed');
  });

  it('a deleted row is named as removed', async () => {
    await bypass((sql) => sql`delete from audit_events where seq = 12`);
    const result = await verifyAuditChain(database.db);
    expect(result).toMatchObject({ ok: false, seq: 12, reason: 'removed', rows: 11 });
    expect(!result.ok && result.message).toBe('row 12 is missing: row 13 follows row 11');
  });

  it('a deleted row with the later rows renumbered is named as removed', async () => {
    await bypass(async (sql) => {
      await sql`delete from audit_events where seq = 12`;
      await sql`update audit_events set seq = seq + 1000 where seq > 12`;
      await sql`update audit_events set seq = seq - 1001 where seq > 1000`;
    });
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: false, seq: 12, reason: 'removed' });
  });

  it('two rows with swapped seq are named as reordered', async () => {
    await bypass(async (sql) => {
      await sql`update audit_events set seq = 1000 where seq = 5`;
      await sql`update audit_events set seq = 5 where seq = 9`;
      await sql`update audit_events set seq = 9 where seq = 1000`;
    });
    expect(await verifyAuditChain(database.db)).toMatchObject({
      ok: false,
      seq: 5,
      reason: 'reordered',
      rows: 4,
    });
  });

  it('adjacent rows swapped are named as reordered', async () => {
    await bypass(async (sql) => {
      await sql`update audit_events set seq = 1000 where seq = 15`;
      await sql`update audit_events set seq = 15 where seq = 16`;
      await sql`update audit_events set seq = 16 where seq = 1000`;
    });
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: false, seq: 15, reason: 'reordered' });
  });

  it('a forged row slipped into the middle (later rows shifted, forgery correctly hashed) is named as inserted', async () => {
    const [before] = await admin`select hash from audit_events where seq = 10`;
    const forged = {
      seq: 11,
      at: new Date(Date.UTC(2026, 0, 5, 10, 0, 10, 500)),
      kind: 'proxy.call',
      actor: 'slack:U1',
      resource: 'billing-api',
      requestId: null,
      grantId: GRANT,
      data: { method: 'GET', path: '/invoices/forged', status: 200 },
    };
    const prevHash = before?.hash as string;
    const hash = chainHash(prevHash, forged);
    await bypass(async (sql) => {
      await sql`update audit_events set seq = seq + 1000 where seq > 10`;
      await sql`update audit_events set seq = seq - 999 where seq > 1000`;
      await sql`insert into audit_events (seq, at, kind, actor, resource, grant_id, data, prev_hash, hash)
        values (11, ${forged.at}, ${forged.kind}, ${forged.actor}, ${forged.resource}, ${GRANT}, ${sql.json(forged.data)}, ${prevHash}, ${hash})`;
    });
    const result = await verifyAuditChain(database.db);
    expect(result).toMatchObject({ ok: false, seq: 11, reason: 'inserted' });
    expect(!result.ok && result.message).toContain('row 11 was inserted');
  });

  it('a forged row appended with a made-up hash is named', async () => {
    await admin`insert into audit_events (seq, at, kind, actor, data, prev_hash, hash)
      values (21, now(), 'grant.created', 'cli', '{}', ${'f'.repeat(64)}, ${'e'.repeat(64)})`;
    expect(await verifyAuditChain(database.db)).toMatchObject({
      ok: false,
      seq: 21,
      reason: 'changed',
      rows: 20,
    });
  });

  it('a sub-millisecond edit of a timestamp is named as changed', async () => {
    await bypass((sql) => sql`update audit_events set at = at + interval '1 microsecond' where seq = 4`);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: false, seq: 4, reason: 'changed' });
  });

  it('finds a break beyond the first page', async () => {
    await bypass((sql) => sql`update audit_events set actor = 'slack:U2' where seq = 17`);
    expect(await verifyAuditChain(database.db, { pageSize: 3 })).toMatchObject({
      ok: false,
      seq: 17,
      reason: 'changed',
    });
  });
});

describe('verify reads rows on two paths and both agree', () => {
  let database: TestDatabase;
  beforeEach(async () => {
    database = await openTestDatabase('audit');
  });
  afterEach(async () => {
    await database.drop();
  });

  const newStats = (): VerifyStats => ({ byteRows: 0, textRows: 0, rowReaderRows: 0 });

  // What the byte path copies verbatim, what it must hand to the text path, and what the
  // canonical form makes of jsonb's printing (key order by length, numbers as numeric).
  const odd: Record<string, unknown>[] = [
    { say: 'a "quoted" \\ back\\slash', tab: 'a\tb', nl: 'x\ny', ctl: '\u0001\u001f\u007f' },
    { é: 1, z: 2, '\uffff': 3, '😀': 4, a: 'ünïcødé ✓ 😀', __proto__x: null },
    { nested: { b: [1, { d: 2, c: 3 }], a: {} }, empty: {}, list: [], t: true, f: false, n: null },
    { big: 1e21, small: 1e-7, frac: 3.2745999999999, neg: -12.5, zero: 0, long: 1.2345678901234568e17 },
    { latencyMs: 0.1 + 0.2, bytes: 9007199254740991, status: -0 },
    {},
    { 'key with space': 'v', 'k,"weird": ': 'v2', '': 'empty key' },
  ];

  it('rows with escapes, unicode, nested data and odd numbers verify, and the COPY reader vouches for all of them', async () => {
    await database.db.transaction((tx) =>
      appendAuditEvents(
        tx,
        odd.flatMap((data, i) => [
          callAuditEvent(record(i)),
          {
            kind: 'test.odd',
            // A Slack user id is free text as far as the log is concerned: make some awkward.
            actor:
              i % 3 === 0
                ? { type: 'slack' as const, userId: `tab\tnew\nline "q" \\ é ${i}` }
                : { type: 'slack' as const, userId: `Ü${i}` },
            at: new Date(Date.UTC(2026, 0, 5, 11, 0, i)),
            resource: i % 3 === 0 ? 'res "x"' : i % 2 === 0 ? null : 'billing-api',
            data,
          },
        ]),
      ),
    );
    const stats = newStats();
    expect(await verifyAuditChain(database.db, { stats })).toMatchObject({ ok: true, rows: 2 * odd.length });
    // Proxy rows and some odd ones on bytes, the rest as text; none left to the row reader.
    expect(stats.byteRows).toBeGreaterThan(odd.length);
    expect(stats.textRows).toBeGreaterThan(0);
    expect(stats.byteRows + stats.textRows).toBe(2 * odd.length);
    expect(stats.rowReaderRows).toBe(0);
  });

  it('random JSON data: the COPY reader agrees with the row reader on every row', async () => {
    // jsonb cannot hold U+0000 in a string; everything else goes.
    const noNul = (v: unknown) => !JSON.stringify(v).includes('\\u0000');
    const data = fc
      .sample(fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue()), { numRuns: 400 })
      .filter(noNul);
    const flat = fc
      .sample(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean())), {
        numRuns: 400,
      })
      .filter(noNul);
    const all = [...data, ...flat];
    await database.db.transaction((tx) =>
      appendAuditEvents(
        tx,
        all.map((d, i) => ({
          kind: 'test.random',
          actor: { type: 'cli' as const },
          at: new Date(Date.UTC(2026, 0, 5, 12) + i),
          data: d as Record<string, unknown>,
        })),
      ),
    );
    const stats = newStats();
    expect(await verifyAuditChain(database.db, { pageSize: 97, stats })).toMatchObject({
      ok: true,
      rows: all.length,
    });
    // Had either COPY path built a row's canonical form wrongly, the row reader would have
    // had to vouch for it.
    expect(stats.rowReaderRows).toBe(0);
    expect(stats.byteRows).toBeGreaterThan(100);
  });

  it('an edit to an odd row is named, whichever path read it', async () => {
    await database.db.transaction((tx) =>
      appendAuditEvents(
        tx,
        odd.map((data, i) => ({
          kind: 'test.odd',
          actor: { type: 'cli' as const },
          at: new Date(Date.UTC(2026, 0, 5, 11, 0, i)),
          data,
        })),
      ),
    );
    const admin = postgres(TEST_DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: database.schemaName },
    });
    try {
      await admin`alter table audit_events disable trigger audit_events_append_only`;
      // 1e21 → 1e22 in the jsonb: same text length, different value.
      await admin`update audit_events set data = jsonb_set(data, '{big}', '1e22') where seq = 4`;
      await admin`update audit_events set data = jsonb_set(data, '{a}', '"ünïcødé ✗ 😀"') where seq = 2`;
      await admin`alter table audit_events enable trigger audit_events_append_only`;
    } finally {
      await admin.end({ timeout: 5 });
    }
    expect(await verifyAuditChain(database.db)).toMatchObject({
      ok: false,
      seq: 2,
      reason: 'changed',
      rows: 1,
    });
  });

  it('any page size: the chain ends on, before and after a page boundary, and a break on one is found', async () => {
    await database.db.transaction((tx) =>
      appendAuditEvents(
        tx,
        Array.from({ length: 20 }, (_, i) => callAuditEvent(record(i))),
      ),
    );
    for (const pageSize of [1, 3, 7, 10, 19, 20, 21, 1000]) {
      const stats = newStats();
      expect(await verifyAuditChain(database.db, { pageSize, stats })).toMatchObject({ ok: true, rows: 20 });
      expect(stats).toEqual({ byteRows: 20, textRows: 0, rowReaderRows: 0 });
    }
    const admin = postgres(TEST_DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: database.schemaName },
    });
    try {
      await admin`alter table audit_events disable trigger audit_events_append_only`;
      await admin`delete from audit_events where seq = 11`;
      await admin`alter table audit_events enable trigger audit_events_append_only`;
    } finally {
      await admin.end({ timeout: 5 });
    }
    for (const pageSize of [1, 5, 10, 11, 20]) {
      expect(await verifyAuditChain(database.db, { pageSize })).toMatchObject({
        ok: false,
        seq: 11,
        reason: 'removed',
        rows: 10,
      });
    }
  });

  it('verifies on embedded Postgres (PGlite), where only the row reader runs', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jitgate-verify-'));
    const embedded = await openDatabase({ databaseUrl: undefined, dataDir });
    try {
      await embedded.migrate();
      await embedded.db.transaction((tx) =>
        appendAuditEvents(tx, [
          ...Array.from({ length: 30 }, (_, i) => callAuditEvent(record(i))),
          ...odd.map((data, i) => ({
            kind: 'test.odd',
            actor: { type: 'cli' as const },
            at: new Date(Date.UTC(2026, 0, 5, 11, 0, i)),
            data,
          })),
        ]),
      );
      const stats = newStats();
      const rows = 30 + odd.length;
      expect(await verifyAuditChain(embedded.db, { pageSize: 7, stats })).toMatchObject({ ok: true, rows });
      expect(stats).toEqual({ byteRows: 0, textRows: 0, rowReaderRows: rows });
    } finally {
      await embedded.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
