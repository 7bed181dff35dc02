import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import {
  type AuditSearchFilter,
  auditSearchHistogram,
  auditSearchPage,
  explainAuditSearch,
} from '../../src/db/queries/audit-events/reads.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { openTestDatabase } from '../helpers/db.ts';
import type { BenchModule, BenchTable } from './run.ts';

const PEOPLE = 50;
const DAYS = 20;
const START = Date.UTC(2026, 0, 1);
const RARE = 'URARE01';

/** Row i of the log: 50 people, each with their own grant, calls spread evenly over 20 days. */
function record(i: number, rows: number, grants: readonly string[]): CallRecord {
  // One row in 50,000 is a rarely seen person's: searching for them is what the person indexes are for.
  const rare = i % 50_000 === 25_000;
  const person = i % PEOPLE;
  return {
    at: new Date(START + Math.floor((i / rows) * DAYS * 86_400_000)),
    requestId: `req-${i}`,
    resource: person % 5 === 0 ? 'admin-api' : 'billing-api',
    grantId: grants[person]!,
    userId: rare ? RARE : `U${person.toString().padStart(6, '0')}`,
    scope: 'read',
    method: i % 7 === 0 ? 'POST' : 'GET',
    path: `/invoices/${i % 977}`,
    clientIp: `10.0.${person}.${i & 255}`,
    decision: i % 40 === 0 ? 'out_of_scope' : 'allowed',
    status: i % 40 === 0 ? 403 : 200,
    responseBytes: 512 + (i % 4096),
    latencyMs: 3 + (i % 17),
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/**
 * The console's audit search at 1,000,000 rows: one person, one day (the target is
 * < 200 ms), with the chart's histogram of the same filter, and the plan Postgres chose.
 */
export async function runConsoleAuditBench(options: { rows?: number; runs?: number } = {}) {
  const rows = options.rows ?? 1_000_000;
  const runs = options.runs ?? 15;
  const database = await openTestDatabase('bench_console');
  const grants = Array.from({ length: PEOPLE }, () => randomUUID());
  try {
    const fillStart = performance.now();
    for (let done = 0; done < rows; done += 20_000) {
      const n = Math.min(20_000, rows - done);
      const events = Array.from({ length: n }, (_, k) => callAuditEvent(record(done + k, rows, grants)));
      await database.db.transaction((tx) => appendAuditEvents(tx, events));
    }
    const fillSeconds = (performance.now() - fillStart) / 1000;
    await database.db.execute(sql`analyze audit_events`);
    const filter: AuditSearchFilter = {
      userId: 'U000007',
      since: new Date(START + 9 * 86_400_000),
      until: new Date(START + 10 * 86_400_000),
    };
    const measure = async (work: () => Promise<unknown>) => {
      await work();
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        await work();
        times.push(performance.now() - t);
      }
      return { median: median(times), max: Math.max(...times) };
    };
    const page = await measure(() => auditSearchPage(database.db, filter, { limit: 101 }));
    const histogram = await measure(() => auditSearchHistogram(database.db, filter, 3600));
    const narrowed = await measure(() =>
      auditSearchPage(
        database.db,
        { ...filter, decision: 'denied', pathText: '/invoices/1' },
        { limit: 101 },
      ),
    );
    // The whole log for one person: where the person indexes, not the time index, do the work.
    const everything: AuditSearchFilter = { userId: 'U000007' };
    const wide = await measure(() => auditSearchPage(database.db, everything, { limit: 101 }));
    const rare: AuditSearchFilter = { userId: RARE };
    const rareDay: AuditSearchFilter = { ...filter, userId: RARE };
    const rareAll = await measure(() => auditSearchPage(database.db, rare, { limit: 101 }));
    const rareOneDay = await measure(() => auditSearchPage(database.db, rareDay, { limit: 101 }));
    const rarePlan = await explainAuditSearch(database.db, rare, 101);
    const matching = (await auditSearchPage(database.db, filter, { limit: 100_000 })).length;
    const plan = await explainAuditSearch(database.db, filter, 101);
    const widePlan = await explainAuditSearch(database.db, everything, 101);
    // The same searches without the two person indexes, to show what they are for.
    await database.db.execute(sql`drop index audit_events_actor_at_idx`);
    await database.db.execute(sql`drop index audit_events_subject_at_idx`);
    const rareAllWithout = await measure(() => auditSearchPage(database.db, rare, { limit: 101 }));
    const pageWithout = await measure(() => auditSearchPage(database.db, filter, { limit: 101 }));
    return {
      rows,
      fillSeconds,
      matching,
      page,
      histogram,
      narrowed,
      wide,
      rareAll,
      rareOneDay,
      rareAllWithout,
      pageWithout,
      plan,
      widePlan,
      rarePlan,
    };
  } finally {
    await database.drop();
  }
}

export const consoleAuditBench: BenchModule = {
  name: 'console-audit',
  async run(ctx) {
    ctx.log('console audit search: filling 1,000,000 audit rows');
    const r = await runConsoleAuditBench();
    const ms = (n: number) => n.toFixed(1);
    const table: BenchTable = {
      title: `Console audit search at ${r.rows.toLocaleString('en-US')} rows (one person, one day: ${r.matching} rows match)`,
      columns: ['query', 'median ms', 'max ms', 'target'],
      rows: [
        ['first page (100 rows, newest first)', ms(r.page.median), ms(r.page.max), '< 200 ms'],
        ['histogram of the same filter (per hour)', ms(r.histogram.median), ms(r.histogram.max), '< 200 ms'],
        ['+ decision denied + path text', ms(r.narrowed.median), ms(r.narrowed.max), '—'],
        ['one person, all 20 days (first page)', ms(r.wide.median), ms(r.wide.max), '—'],
        ['a rare person (20 rows), all 20 days', ms(r.rareAll.median), ms(r.rareAll.max), '< 200 ms'],
        ['a rare person, one day', ms(r.rareOneDay.median), ms(r.rareOneDay.max), '< 200 ms'],
        [
          'without the person indexes: one person, one day',
          ms(r.pageWithout.median),
          ms(r.pageWithout.max),
          '—',
        ],
        [
          'without the person indexes: rare person, all days',
          ms(r.rareAllWithout.median),
          ms(r.rareAllWithout.max),
          '—',
        ],
      ],
      notes: [
        `Filled in ${r.fillSeconds.toFixed(1)} s. Plan of the first page (EXPLAIN ANALYZE):`,
        '```',
        r.plan.trim(),
        '```',
        'Plan for the rare person over the whole log:',
        '```',
        r.rarePlan.trim(),
        '```',
        'Plan for one person over the whole log:',
        '```',
        r.widePlan.trim(),
        '```',
      ],
    };
    return [table];
  },
};
