import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessService, staticDirectory } from '../../src/access/index.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import {
  CSV_COLUMNS,
  csvText,
  type ExportedRow,
  exportAuditEvents,
  toExportedRow,
} from '../../src/audit/export.ts';
import { createGrantSummarizer } from '../../src/audit/summary.ts';
import { runAuditCommand } from '../../src/cli/server/audit.ts';
import { auditEvents } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { testPolicy } from '../helpers/policy.ts';

type TestDatabase = Awaited<ReturnType<typeof openTestDatabase>>;

/** A writable that keeps what it is given. */
function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { stream, text: () => text };
}

/** RFC 4180 parser for the round trip (quoted fields, doubled quotes, CRLF rows). */
function parseCsv(text: string): (string | null)[][] {
  const rows: (string | null)[][] = [];
  let row: (string | null)[] = [];
  let i = 0;
  while (i < text.length) {
    let field: string | null;
    if (text[i] === '"') {
      let value = '';
      i += 1;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') {
          value += '"';
          i += 2;
        } else if (text[i] === '"') {
          i += 1;
          break;
        } else {
          value += text[i];
          i += 1;
        }
      }
      field = value;
    } else {
      let end = i;
      while (end < text.length && text[end] !== ',' && text[end] !== '\r') end += 1;
      field = end === i ? null : text.slice(i, end);
      i = end;
    }
    row.push(field);
    if (text[i] === ',') i += 1;
    else if (text[i] === '\r' && text[i + 1] === '\n') {
      rows.push(row);
      row = [];
      i += 2;
    }
  }
  return rows;
}

const T0 = new Date('2026-01-05T10:00:00Z');

describe('export, summary and the audit CLI', () => {
  let database: TestDatabase;
  let grantId: string;
  let otherGrantId: string;
  let all: ExportedRow[];

  beforeAll(async () => {
    database = await openTestDatabase('audit');
    const clock = manualClock(T0);
    const access = createAccessService({
      db: database.db,
      policy: staticPolicyStore(testPolicy()),
      clock,
      directory: staticDirectory({}),
      grantChannel: database.channel('grants'),
    });
    const make = async (user: string) => {
      const made = await access.createRequest({
        actor: slackUser(user),
        resource: 'billing-api',
        scope: 'read',
        durationSeconds: 1800,
        reason: 'investigate invoice',
      });
      if (!made.ok || !made.value.grant) throw new Error('expected an auto-approved grant');
      return made.value.grant.id;
    };
    grantId = await make('UALICE');
    otherGrantId = await make('UBOB');
    const call = (i: number, over: Partial<CallRecord>): CallRecord => ({
      at: new Date(T0.getTime() + 60_000 + i * 1000),
      requestId: `req-${i}`,
      resource: 'billing-api',
      grantId,
      userId: 'UALICE',
      scope: 'read',
      method: 'GET',
      path: '/invoices/1',
      clientIp: '10.0.0.1',
      decision: 'allowed',
      status: 200,
      responseBytes: 100,
      latencyMs: 5,
      ...over,
    });
    const appender = createAuditAppender({ db: database.db });
    const alice = [
      call(0, {}),
      call(1, {}),
      call(2, { path: '/invoices/2', clientIp: '10.0.0.2', responseBytes: 300 }),
      call(3, {
        method: 'POST',
        path: '/invoices',
        decision: 'out_of_scope',
        status: 403,
        responseBytes: 50,
      }),
      call(4, { path: '/customers/"quoted", with comma\nand newline', status: 404, responseBytes: 0 }),
    ];
    for (const r of alice) appender.offer(r);
    appender.offer(call(5, { grantId: otherGrantId, userId: 'UBOB', clientIp: '192.0.2.1' }));
    await appender.close();
    // A row with an empty string and unicode in it, for the CSV round trip.
    await database.db.transaction((tx) =>
      appendAuditEvents(tx, [
        {
          kind: 'note',
          actor: { type: 'cli' },
          at: new Date(T0.getTime() + 3_600_000),
          resource: '',
          data: { text: 'ünïcode ✓ "q"' },
        },
        // Values a spreadsheet would run as formulas, and one already starting with the escape.
        ...['=HYPERLINK("http://evil.test","x")', '+1', '-2', '@SUM(A1)', '\tx', "'quoted"].map(
          (resource) => ({
            kind: 'note',
            actor: { type: 'cli' as const },
            at: new Date(T0.getTime() + 3_600_000),
            resource,
            data: {},
          }),
        ),
      ]),
    );
    all = (await database.db.select().from(auditEvents).orderBy(auditEvents.seq)).map(toExportedRow);
  });
  afterAll(async () => {
    await database.drop();
  });

  it('jsonl export round-trips: parsing each line gives back the stored rows', async () => {
    const out = capture();
    const count = await exportAuditEvents(database.db, out.stream, { format: 'jsonl', pageSize: 3 });
    expect(count).toBe(all.length);
    const parsed = out
      .text()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as ExportedRow);
    expect(parsed).toEqual(all);
  });

  it('csv export round-trips through an RFC 4180 parser', async () => {
    const out = capture();
    await exportAuditEvents(database.db, out.stream, { format: 'csv', pageSize: 4 });
    const [header, ...rows] = parseCsv(out.text());
    expect(header).toEqual([...CSV_COLUMNS]);
    const back = rows.map(
      ([seq, at, kind, actor, resource, requestId, grantId, data, prevHash, hash]): ExportedRow => ({
        seq: Number(seq),
        at: at as string,
        kind: kind as string,
        actor: csvText(actor as string),
        resource: resource == null ? null : csvText(resource),
        requestId: requestId ?? null,
        grantId: grantId ?? null,
        data: JSON.parse(data as string) as Record<string, unknown>,
        prevHash: prevHash as string,
        hash: hash as string,
      }),
    );
    expect(back).toEqual(all);
    // No cell a spreadsheet would evaluate.
    for (const row of rows) {
      for (const cell of row) expect(cell ?? '').not.toMatch(/^[=+\-@\t\r]/);
    }
  });

  it('filters by grant, user and time', async () => {
    const rowsFor = async (filter: Parameters<typeof exportAuditEvents>[2]) => {
      const out = capture();
      await exportAuditEvents(database.db, out.stream, filter);
      return out
        .text()
        .trimEnd()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ExportedRow);
    };
    const byGrant = await rowsFor({ format: 'jsonl', grantId: otherGrantId });
    expect(byGrant.every((r) => r.grantId === otherGrantId)).toBe(true);
    expect(byGrant.map((r) => r.kind)).toContain('proxy.call');
    expect(byGrant.map((r) => r.kind)).toContain('grant.created');
    const byUser = await rowsFor({ format: 'jsonl', userId: 'UBOB' });
    expect(byUser.length).toBeGreaterThan(0);
    expect(byUser.every((r) => r.actor === 'slack:UBOB' || r.data.userId === 'UBOB')).toBe(true);
    const window = await rowsFor({
      format: 'jsonl',
      since: new Date(T0.getTime() + 61_000),
      until: new Date(T0.getTime() + 63_000),
    });
    expect(window.map((r) => r.data.requestId)).toEqual(['req-1', 'req-2']);
  });

  it("summarises a grant's calls for /access audit", async () => {
    const summarize = createGrantSummarizer(database.db);
    const summary = await summarize(grantId);
    expect(summary).toEqual({
      grantId,
      resource: 'billing-api',
      userId: 'UALICE',
      totalCalls: 5,
      deniedCalls: 1,
      byStatus: [
        { status: 200, count: 3 },
        { status: 403, count: 1 },
        { status: 404, count: 1 },
      ],
      topPaths: [
        { method: 'GET', path: '/invoices/1', count: 2 },
        { method: 'GET', path: '/customers/"quoted", with comma\nand newline', count: 1 },
        { method: 'GET', path: '/invoices/2', count: 1 },
        { method: 'POST', path: '/invoices', count: 1 },
      ],
      firstSeen: new Date(T0.getTime() + 60_000),
      lastSeen: new Date(T0.getTime() + 64_000),
      clientIps: ['10.0.0.1', '10.0.0.2'],
      responseBytes: 550,
    });
    expect(await summarize('0b7d3f5e-8a41-4c1e-9d55-2c3b4a5e6f70')).toBeUndefined();
    expect(await summarize('not-a-uuid')).toBeUndefined();
  });

  it('`audit verify` prints ok and exits 0 on a good chain', async () => {
    const out = capture();
    const err = capture();
    const code = await runAuditCommand(['audit', 'verify'], {
      db: database.db,
      stdout: out.stream,
      stderr: err.stream,
    });
    expect(code).toBe(0);
    expect(out.text()).toMatch(
      new RegExp(`^audit chain ok: ${all.length} rows, head seq ${all.length} hash [0-9a-f]{64}\\n$`),
    );
  });

  it('`audit export` writes csv or jsonl with the filters; bad flags exit 2 with usage', async () => {
    const out = capture();
    const err = capture();
    const deps = { db: database.db, stdout: out.stream, stderr: err.stream };
    expect(
      await runAuditCommand(
        ['export', '--format', 'csv', '--grant', grantId, '--since', '2026-01-05T10:01:02Z'],
        deps,
      ),
    ).toBe(0);
    const lines = parseCsv(out.text());
    expect(lines[0]).toEqual([...CSV_COLUMNS]);
    expect(lines.slice(1).map((l) => JSON.parse(l[7] as string).requestId)).toEqual([
      'req-2',
      'req-3',
      'req-4',
    ]);
    expect(err.text()).toContain('exported 3 rows');
    for (const argv of [
      ['export', '--format', 'xml'],
      ['export', '--since', 'yesterday'],
      ['export', '--grant', 'nope'],
      ['export', '--since', '2026-01-06T00:00:00Z', '--until', '2026-01-05T00:00:00Z'],
      ['export', '--bogus'],
      ['verify', 'extra'],
      ['frobnicate'],
      [],
    ]) {
      const e = capture();
      expect(await runAuditCommand(argv, { ...deps, stderr: e.stream }), argv.join(' ')).toBe(2);
      expect(e.text()).toContain('usage:');
    }
  });
});
