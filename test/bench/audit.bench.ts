import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import { type VerifyStats, verifyAuditChain } from '../../src/audit/verify.ts';
import { postgresClientOf } from '../../src/db/client.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { openTestDatabase } from '../helpers/db.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

export interface AuditBenchOptions {
  /** Calls pushed through the appender as fast as it admits them. */
  appenderRows?: number;
  /** Size of the log verify walks. */
  verifyRows?: number;
  /** Times verify walks the whole log; rows/s is the median. */
  verifyRuns?: number;
  log?: (line: string) => void;
}

interface AppenderRun {
  /** Which batch path: the proxy's (pipelined on postgres.js) or drizzle's (retries, quota batches, PGlite). */
  path: 'pipelined' | 'drizzle';
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  batches: number;
  refusedOffers: number;
}

export interface AuditBenchResult {
  /** The proxy's path first, then drizzle's, over fresh rows each. */
  appender: AppenderRun[];
  verify: {
    rows: number;
    /** Median over the runs. */
    seconds: number;
    rowsPerSecond: number;
    /** Every run's rows/s, in order. */
    runsRowsPerSecond: number[];
    /** Largest RSS growth above the level before a run, over all runs. */
    peakRssDeltaMb: number;
    /** RSS when verify started and at its peak, MB. */
    rssBeforeMb: number;
    rssPeakMb: number;
    ok: boolean;
    /** Which reader checked the rows, from the last run. */
    stats: VerifyStats;
  };
  fill: { rows: number; seconds: number; rowsPerSecond: number };
}

function benchRecord(i: number, grants: readonly string[]): CallRecord {
  const grantId = grants[i % grants.length]!;
  return {
    at: new Date(Date.UTC(2026, 0, 5, 10) + i),
    requestId: `req-${i}`,
    resource: 'billing-api',
    grantId,
    userId: `U${(i % grants.length).toString().padStart(6, '0')}`,
    scope: 'read',
    method: 'GET',
    path: `/invoices/${i % 977}`,
    clientIp: `10.0.${(i >> 8) & 255}.${i & 255}`,
    decision: i % 50 === 0 ? 'out_of_scope' : 'allowed',
    status: i % 50 === 0 ? 403 : 200,
    responseBytes: 512 + (i % 4096),
    latencyMs: 3 + (i % 17),
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

/**
 * Audit throughput with the chain: the appender alone, fed as fast as it admits records
 * (offer until refused, then yield) — its ceiling, with no proxy competing for the CPU —
 * and `audit verify` over a log of `verifyRows` rows. Whether it keeps pace with a proxy
 * under load is measured with the proxy running, in audit-load.bench.ts.
 */
export async function runAuditBench(options: AuditBenchOptions = {}): Promise<AuditBenchResult> {
  const appenderRows = options.appenderRows ?? 200_000;
  const verifyRows = Math.max(options.verifyRows ?? 1_000_000, 2 * appenderRows);
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const database = await openTestDatabase('bench_audit');
  const grants = Array.from({ length: 64 }, () => randomUUID());
  try {
    // 1. Appender, sustained: how many chained rows per second one process commits, on the
    // proxy's path and on drizzle's, each over rows of its own.
    const appenderRuns: AppenderRun[] = [];
    const client = postgresClientOf(database.db);
    for (const path of ['pipelined', 'drizzle'] as const) {
      const appender = createAuditAppender({
        db: database.db,
        ...(path === 'pipelined' && client ? { client } : {}),
      });
      const first = appenderRuns.length * appenderRows;
      let refusedOffers = 0;
      const started = performance.now();
      for (let i = first; i < first + appenderRows; i++) {
        while (!appender.hasCapacity()) {
          refusedOffers += 1;
          await tick();
        }
        appender.offer(benchRecord(i, grants));
        if (i % 1_000 === 0) await tick();
      }
      await appender.close();
      const seconds = (performance.now() - started) / 1000;
      const stats = appender.stats();
      const run: AppenderRun = {
        path: path === 'pipelined' && !client ? 'drizzle' : path,
        rows: appenderRows,
        seconds,
        rowsPerSecond: Math.round(appenderRows / seconds),
        batches: stats.batches,
        refusedOffers,
      };
      appenderRuns.push(run);
      log(
        `audit appender (${run.path}): ${run.rowsPerSecond} rows/s sustained (${appenderRows} rows, ${stats.batches} batches, ${seconds.toFixed(2)} s)`,
      );
    }
    const appended = appenderRuns.length * appenderRows;

    // 2. Fill the log to verifyRows with correctly chained rows (the trigger stays on: it
    // only refuses UPDATE/DELETE), in large transactions.
    const fillStart = performance.now();
    const toFill = verifyRows - appended;
    const batch = 20_000;
    for (let done = 0; done < toFill; done += batch) {
      const n = Math.min(batch, toFill - done);
      const events = Array.from({ length: n }, (_, k) =>
        callAuditEvent(benchRecord(appended + done + k, grants)),
      );
      await database.db.transaction((tx) => appendAuditEvents(tx, events));
    }
    const fillSeconds = (performance.now() - fillStart) / 1000;
    const fill = {
      rows: toFill,
      seconds: fillSeconds,
      rowsPerSecond: Math.round(toFill / Math.max(fillSeconds, 1e-9)),
    };
    log(
      `audit fill: ${toFill} rows in ${fillSeconds.toFixed(2)} s (${fill.rowsPerSecond} rows/s, 20k per transaction)`,
    );

    // 3. Verify the whole chain, several times (the machine is shared: the median is the
    // figure); sample RSS to show memory stays flat whatever the log's size.
    const runs = Math.max(1, options.verifyRuns ?? 3);
    const seconds: number[] = [];
    let peakDelta = 0;
    let rssBefore = 0;
    let rssPeak = 0;
    let ok = true;
    let rows = 0;
    let verifyStats: VerifyStats = { byteRows: 0, textRows: 0, rowReaderRows: 0 };
    for (let run = 0; run < runs; run++) {
      global.gc?.();
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 20);
      verifyStats = { byteRows: 0, textRows: 0, rowReaderRows: 0 };
      const started = performance.now();
      const result = await verifyAuditChain(database.db, { stats: verifyStats });
      const s = (performance.now() - started) / 1000;
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      seconds.push(s);
      if (peak - before >= peakDelta) {
        peakDelta = peak - before;
        rssBefore = before;
        rssPeak = peak;
      }
      ok &&= result.ok;
      rows = result.rows;
      log(
        `audit verify run ${run + 1}/${runs}: ${Math.round(result.rows / s)} rows/s (${s.toFixed(2)} s, ok=${result.ok}, RSS ${mb(before)} → peak ${mb(peak)} MB)`,
      );
    }
    const median = [...seconds].sort((a, b) => a - b)[Math.floor(seconds.length / 2)]!;
    const verify = {
      rows,
      seconds: median,
      rowsPerSecond: Math.round(rows / median),
      runsRowsPerSecond: seconds.map((s) => Math.round(rows / s)),
      peakRssDeltaMb: mb(peakDelta),
      rssBeforeMb: mb(rssBefore),
      rssPeakMb: mb(rssPeak),
      ok,
      stats: verifyStats,
    };
    log(
      `audit verify: ${verify.rowsPerSecond} rows/s median of ${runs} over ${verify.rows} rows (${median.toFixed(2)} s, ok=${verify.ok}, peak RSS +${verify.peakRssDeltaMb} MB; target ≥ 200000 rows/s)`,
    );
    return { appender: appenderRuns, verify, fill };
  } finally {
    await database.drop();
  }
}

/** For `npm run bench` (test/bench/run.ts): the same measurement as two tables. */
export const auditBench: BenchModule = {
  name: 'audit',
  async run(ctx: BenchContext): Promise<BenchTable[]> {
    const rows = process.env.AUDIT_BENCH_VERIFY_ROWS;
    const result = await runAuditBench({ log: ctx.log, ...(rows ? { verifyRows: Number(rows) } : {}) });
    const { appender, fill, verify } = result;
    return [
      {
        title: 'Audit appender: chained rows written by one process',
        columns: ['batch path', 'rows', 'rows/s', 'batches', 'refused offers', 'seconds'],
        rows: appender.map((run) => [
          run.path === 'pipelined' ? "pipelined (the proxy's)" : 'drizzle (retries, quota batches, PGlite)',
          run.rows,
          run.rowsPerSecond,
          run.batches,
          run.refusedOffers,
          run.seconds.toFixed(2),
        ]),
        notes: [
          'Its ceiling alone (no proxy on the machine). Keeping pace with a proxy under load is the audit-load bench (auditKeepsPace).',
          ...(fill.rows > 0
            ? [`Bulk fill for the verify log: ${fill.rowsPerSecond} rows/s in 20k-row transactions.`]
            : []),
        ],
      },
      {
        title: `Audit verify over ${verify.rows.toLocaleString('en')} rows (target ≥ 200,000 rows/s, constant memory)`,
        columns: [
          'rows/s (median)',
          'runs rows/s',
          'seconds',
          'RSS before MB',
          'RSS peak MB',
          'peak Δ MB',
          'ok',
        ],
        rows: [
          [
            verify.rowsPerSecond,
            verify.runsRowsPerSecond.join(' / '),
            verify.seconds.toFixed(2),
            verify.rssBeforeMb,
            verify.rssPeakMb,
            verify.peakRssDeltaMb,
            String(verify.ok),
          ],
        ],
        notes: [
          `Rows checked on bytes ${verify.stats.byteRows}, as text ${verify.stats.textRows}, by the row reader ${verify.stats.rowReaderRows} (last run).`,
          `${ctx.cores} cores shared by Postgres and this process.`,
        ],
      },
    ];
  },
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = process.env.AUDIT_BENCH_VERIFY_ROWS;
  runAuditBench(rows ? { verifyRows: Number(rows) } : {}).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
