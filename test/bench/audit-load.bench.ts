/**
 * Audit under load (issue 7 item 5): does the real audit appender, writing the hash chain
 * to PostgreSQL, keep pace with the proxy's own throughput?
 *
 * Two jitgate processes serve the same grant through the same upstream: one hands its call
 * records to a discarding stand-in, the other to the real appender (src/audit/call-writer.ts,
 * wired as src/composition/roles.ts wires it) writing to a schema of its own, dropped afterwards. As in
 * the proxy bench, servers are pinned to core 0 and the load generator (this process) to
 * core 1 when `taskset` exists, and throughput is measured in short slices, one per target
 * per round, in an order that alternates between rounds, so both see the same drift of a
 * shared machine. PostgreSQL is not pinned: it shares the two cores with everything else,
 * which is part of what auditing costs here.
 *
 * Around each audited slice the bench reads the appender's counters (its stats() plus the
 * records offered, the largest backlog and the calls answered 503 audit_unavailable); after
 * the slice it asks the process to flush and times that, so every slice starts with an empty
 * backlog and the other target's slice does not pay for this one's writes.
 *
 * Standalone: `npm run bench -- audit-load`.
 */
import autocannon, { type AutocannonResult } from 'autocannon';
import { sql } from 'drizzle-orm';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import {
  benchApiPolicy,
  type Child,
  insertGrants,
  jitgateChildEnv,
  median,
  openBenchWorld,
  rowsOf,
  spawnChild,
  tokenFor,
} from './proxy.bench.ts';
import type { AuditCounters } from './proxy-bench-child.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

const ROUNDS = 5;
const SLICE_SECONDS = 3;
const CONNECTIONS = 50;
/**
 * The appender's limits in the audited process: the defaults src/composition/roles.ts runs with
 * (createAuditAppender: maxQueue 50,000, headroom maxQueue / 10, batchSize 2,000), passed
 * explicitly so they can be reported. Calls are refused with 503 audit_unavailable once the
 * backlog reaches `maxQueue - headroom`.
 */
const AUDIT_LIMITS = { maxQueue: 50_000, headroom: 5_000, batchSize: 2_000 };

/** What the audited process did under load, summed over its slices. */
export interface LoadedAuditRun {
  /** Wall time under load (between the counter reads around each slice), summed. */
  seconds: number;
  slices: number;
  /** Call records the proxy handed to the appender under load (allowed and denied calls alike). */
  calls: number;
  /** Rows committed to audit_events under load. */
  rows: number;
  /** Backlog when each slice's load stopped (each slice starts at 0 after a flush). */
  endBacklogs: number[];
  /** From the end of each slice's load until all its calls were committed, ms. */
  flushMs: number[];
  /** Largest backlog seen during any slice. */
  maxQueued: number;
  /** Backlog from which calls are refused with 503 audit_unavailable (maxQueue - headroom). */
  refuseAt: number;
  /** The appender's hard bound (maxQueue). */
  maxQueue: number;
  /** Rows per transaction at most. */
  batchSize: number;
  /** Calls answered 503 audit_unavailable under load. */
  auditUnavailable: number;
  /** Records the appender refused (a call left unrecorded); must be 0. */
  refusedOffers: number;
  /** Afterwards, from the database: every call the process recorded (warm-up included) … */
  recordedCalls: number;
  /** … against the rows audit_events holds, and whether `audit verify` accepts the chain. */
  loggedRows: number;
  chainOk: boolean;
}

export interface PaceVerdict {
  keepsPace: boolean;
  callsPerSecond: number;
  rowsPerSecond: number;
  /** Rows per second that one batch in flight at the end of each slice accounts for. */
  inFlightAllowancePerSecond: number;
  /** Why not, when it does not keep pace. */
  failures: string[];
}

/**
 * Whether the appender kept pace with the proxy over a loaded run.
 *
 * Over one window, rows committed = calls recorded − the backlog at the end (each slice
 * starts empty), so rows/s is below calls/s by exactly the records still in flight when
 * the load stops, however fast the appender is. An appender that keeps pace writes partial
 * batches — it empties its queue faster than calls arrive — so that remainder stays under
 * one batch; one that falls behind writes full batches and its backlog grows by the deficit
 * every second, towards the 503 threshold. Hence: it keeps pace when
 *   rows/s ≥ calls/s − one batch per slice (the end backlog is within one batch on average),
 *   no call was refused with 503 audit_unavailable and no record was refused, and
 *   the largest backlog stayed below the 503 threshold;
 * and, read back from the database afterwards, every recorded call is a row and the chain verifies.
 */
export function auditKeepsPace(run: LoadedAuditRun): PaceVerdict {
  const callsPerSecond = run.calls / run.seconds;
  const rowsPerSecond = run.rows / run.seconds;
  const inFlightAllowancePerSecond = (run.batchSize * run.slices) / run.seconds;
  const failures: string[] = [];
  if (rowsPerSecond < callsPerSecond - inFlightAllowancePerSecond)
    failures.push(
      `rows/s ${fmt(rowsPerSecond)} < calls/s ${fmt(callsPerSecond)} − one in-flight batch per slice (${fmt(inFlightAllowancePerSecond)}/s): the backlog grew`,
    );
  if (run.auditUnavailable > 0) failures.push(`${run.auditUnavailable} calls refused 503 audit_unavailable`);
  if (run.refusedOffers > 0) failures.push(`${run.refusedOffers} call records refused by the appender`);
  if (run.maxQueued >= run.refuseAt)
    failures.push(`backlog reached ${fmt(run.maxQueued)} (503s start at ${fmt(run.refuseAt)})`);
  if (run.loggedRows !== run.recordedCalls)
    failures.push(
      `audit_events holds ${fmt(run.loggedRows)} rows for ${fmt(run.recordedCalls)} recorded calls`,
    );
  if (!run.chainOk) failures.push('the chain does not verify');
  return {
    keepsPace: failures.length === 0,
    callsPerSecond,
    rowsPerSecond,
    inFlightAllowancePerSecond,
    failures,
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en');

interface Slice {
  seconds: number;
  calls: number;
  rows: number;
  batches: number;
  endBacklog: number;
  flushMs: number;
  maxQueued: number;
  auditUnavailable: number;
  refusedOffers: number;
  /** 503 responses autocannon counted (all of them, whatever the code in the body). */
  client503: number;
}

interface TargetResult {
  requests: number;
  roundRps: number[];
  p50: number[];
  p99: number[];
  cpuMicros: number;
}

/** Non-2xx other than 503 (or socket errors) mean the bench is broken, not that the audit lags. */
function checkResult(name: string, r: AutocannonResult, allow503: boolean): number {
  const by = r.statusCodeStats ?? {};
  const n503 = by['503']?.count ?? 0;
  const other = r.non2xx - (allow503 ? n503 : 0);
  if (other > 0 || r.errors > 0)
    throw new Error(`${name}: ${r.non2xx} non-2xx (${JSON.stringify(by)}), ${r.errors} errors`);
  return n503;
}

async function run(ctx: BenchContext): Promise<BenchTable[]> {
  const { schema, database, signingKey, keyStore } = await openBenchWorld(ctx, 'audit_load');
  const children: Child[] = [];
  try {
    ctx.log('audit under load: starting upstream, jitgate with a discarding sink, jitgate with the appender');
    const upstream = await spawnChild(ctx, 'upstream', 0, {});
    children.push(upstream);
    const env = {
      ...jitgateChildEnv({ schema, signingKey }, benchApiPolicy(upstream.port)),
      BENCH_AUDIT_LIMITS: JSON.stringify(AUDIT_LIMITS),
    };
    const [grantId] = await insertGrants(database, 1, true);
    const headers = { authorization: `Bearer ${await tokenFor(keyStore, grantId!)}` };
    const discard = await spawnChild(ctx, 'jitgate', 0, { ...env, BENCH_SINK: 'discard' });
    children.push(discard);
    const audited = await spawnChild(ctx, 'jitgate', 0, { ...env, BENCH_SINK: 'audit' });
    children.push(audited);
    const targets = [
      { name: 'jitgate, discarding sink', child: discard, audit: false },
      { name: 'jitgate, real audit appender (PostgreSQL)', child: audited, audit: true },
    ];
    const url = (c: Child) => `http://127.0.0.1:${c.port}/bench-api/items/1`;
    for (const t of targets) {
      const r = await autocannon({ url: url(t.child), connections: CONNECTIONS, duration: 1, headers });
      checkResult(`warm-up of ${t.name}`, r, t.audit);
    }
    await audited.ask('flush');

    ctx.log(
      `audit under load: ${ROUNDS} interleaved rounds of ${SLICE_SECONDS} s per target, ${CONNECTIONS} connections`,
    );
    const acc: TargetResult[] = targets.map(() => ({
      requests: 0,
      roundRps: [],
      p50: [],
      p99: [],
      cpuMicros: 0,
    }));
    const slices: Slice[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => i);
      if (round % 2 === 1) order.reverse();
      for (const i of order) {
        const t = targets[i]!;
        const a = acc[i]!;
        const cpuBefore = await t.child.cpuMicros();
        const before = t.audit ? await t.child.ask<AuditCounters>('audit-reset') : undefined;
        const started = performance.now();
        const r = await autocannon({
          url: url(t.child),
          connections: CONNECTIONS,
          duration: SLICE_SECONDS,
          headers,
        });
        const loadEnded = performance.now();
        const after = t.audit ? await t.child.ask<AuditCounters>('audit') : undefined;
        const seconds = (performance.now() - started) / 1000;
        // The final flush, timed from the end of the load until every call of the slice is
        // committed; its CPU is charged to the slice (it is the work of those calls).
        if (t.audit) await t.child.ask('flush');
        const flushMs = performance.now() - loadEnded;
        a.cpuMicros += (await t.child.cpuMicros()) - cpuBefore;
        const client503 = checkResult(`round ${round + 1}, ${t.name}`, r, t.audit);
        a.requests += r.requests.total;
        a.roundRps.push(r.requests.average);
        a.p50.push(r.latency.p50);
        a.p99.push(r.latency.p99);
        if (before && after) {
          if (before.queued !== 0) throw new Error(`slice started with a backlog of ${before.queued}`);
          slices.push({
            seconds,
            calls: after.offered - before.offered,
            rows: after.written - before.written,
            batches: after.batches - before.batches,
            endBacklog: after.queued,
            flushMs,
            maxQueued: after.maxQueued,
            auditUnavailable: after.auditUnavailable - before.auditUnavailable,
            refusedOffers: after.refusedOffers - before.refusedOffers,
            client503,
          });
        }
      }
    }
    const final = await audited.ask<AuditCounters>('audit');

    ctx.log('audit under load: counting and verifying the rows written');
    const counted = rowsOf<{ count: string }>(
      await database.db.execute(sql`select count(*)::text as count from audit_events`),
    );
    const auditRows = Number(counted[0]!.count);
    const verifyStart = performance.now();
    const verified = await verifyAuditChain(database.db);
    const verifySeconds = (performance.now() - verifyStart) / 1000;

    const loaded: LoadedAuditRun = {
      seconds: slices.reduce((s, x) => s + x.seconds, 0),
      slices: slices.length,
      calls: slices.reduce((s, x) => s + x.calls, 0),
      rows: slices.reduce((s, x) => s + x.rows, 0),
      endBacklogs: slices.map((x) => x.endBacklog),
      flushMs: slices.map((x) => x.flushMs),
      maxQueued: Math.max(...slices.map((x) => x.maxQueued)),
      refuseAt: AUDIT_LIMITS.maxQueue - AUDIT_LIMITS.headroom,
      maxQueue: AUDIT_LIMITS.maxQueue,
      batchSize: AUDIT_LIMITS.batchSize,
      auditUnavailable: slices.reduce((s, x) => s + x.auditUnavailable, 0),
      refusedOffers: slices.reduce((s, x) => s + x.refusedOffers, 0),
      recordedCalls: final.offered,
      loggedRows: auditRows,
      chainOk: verified.ok,
    };
    const verdict = auditKeepsPace(loaded);
    const client503 = slices.reduce((s, x) => s + x.client503, 0);

    const [plain, withAudit] = acc.map((a) => ({
      rps: a.requests / (ROUNDS * SLICE_SECONDS),
      p50: median(a.p50),
      p99: median(a.p99),
      cpuUsPerReq: a.cpuMicros / a.requests,
      roundRps: a.roundRps,
    })) as [
      { rps: number; p50: number; p99: number; cpuUsPerReq: number; roundRps: number[] },
      { rps: number; p50: number; p99: number; cpuUsPerReq: number; roundRps: number[] },
    ];
    const roundRatios = withAudit.roundRps.map((r, i) => r / plain.roundRps[i]!);
    const throughputTable: BenchTable = {
      title: `Proxy under load with the real audit appender vs a discarding sink (${CONNECTIONS} connections, ${ROUNDS} interleaved rounds × ${SLICE_SECONDS} s per target)`,
      columns: ['target', 'req/s', '× discarding', 'p50 ms', 'p99 ms', 'CPU µs/req', '503s'],
      rows: [
        [
          targets[0]!.name,
          Math.round(plain.rps),
          '1.00',
          plain.p50,
          plain.p99,
          Math.round(plain.cpuUsPerReq),
          0,
        ],
        [
          targets[1]!.name,
          Math.round(withAudit.rps),
          (withAudit.rps / plain.rps).toFixed(2),
          withAudit.p50,
          withAudit.p99,
          Math.round(withAudit.cpuUsPerReq),
          client503,
        ],
      ],
      notes: [
        `with the appender / discarding: ${(withAudit.rps / plain.rps).toFixed(2)} × throughput over all rounds, median per-round ratio ${median(roundRatios).toFixed(2)} × (rounds: ${roundRatios.map((x) => x.toFixed(2)).join(', ')}); CPU per request ${(withAudit.cpuUsPerReq / plain.cpuUsPerReq).toFixed(2)} × (the appender's batching, hashing and inserts run in the proxy process).`,
        `CPU µs/req is the proxy process's own. ${ctx.taskset ? 'Proxies and upstream pinned to core 0, load generator to core 1;' : 'No taskset: nothing pinned;'} PostgreSQL is not pinned and shares both cores. Only the sink differs between the two processes (no anomaly monitor in either).`,
      ],
    };

    const sliceRows = slices.map((x, i) => [
      i + 1,
      x.seconds.toFixed(2),
      x.calls,
      fmt(x.calls / x.seconds),
      fmt(x.rows / x.seconds),
      x.endBacklog,
      x.flushMs.toFixed(0),
      x.maxQueued,
      x.batches > 0 ? Math.round(x.rows / x.batches) : '-',
      x.auditUnavailable,
    ]);
    const totalBatches = slices.reduce((s, x) => s + x.batches, 0);
    const verdictLine = verdict.keepsPace
      ? `audit keeps pace: yes — ${fmt(verdict.rowsPerSecond)} rows/s committed vs ${fmt(verdict.callsPerSecond)} calls/s over ${loaded.seconds.toFixed(1)} s of load; the gap is what was in flight when the load stopped (end backlog ≤ ${fmt(Math.max(...loaded.endBacklogs))} rows, under one ${fmt(loaded.batchSize)}-row batch: rows/s ≥ calls/s − ${fmt(verdict.inFlightAllowancePerSecond)}), flushed in ≤ ${Math.max(...loaded.flushMs).toFixed(0)} ms; max backlog ${fmt(loaded.maxQueued)} vs ${fmt(loaded.refuseAt)} where 503s start (bound ${fmt(loaded.maxQueue)}); ${loaded.auditUnavailable} calls refused 503 audit_unavailable.`
      : `audit keeps pace: no — ${verdict.failures.join('; ')}.`;
    const auditTable: BenchTable = {
      title: `Audit rows written with the chain while the proxy is under load (the appender's process, per ${SLICE_SECONDS} s slice)`,
      columns: [
        'slice',
        'seconds',
        'calls',
        'calls/s',
        'rows/s committed',
        'end backlog',
        'final flush ms',
        'max backlog',
        'rows/batch',
        '503 audit_unavailable',
      ],
      rows: [
        ...sliceRows,
        [
          'run',
          loaded.seconds.toFixed(2),
          loaded.calls,
          fmt(verdict.callsPerSecond),
          fmt(verdict.rowsPerSecond),
          Math.max(...loaded.endBacklogs),
          Math.max(...loaded.flushMs).toFixed(0),
          loaded.maxQueued,
          totalBatches > 0 ? Math.round(loaded.rows / totalBatches) : '-',
          loaded.auditUnavailable,
        ],
      ],
      notes: [
        verdictLine,
        `Verdict (auditKeepsPace): yes when rows/s ≥ calls/s − one ${fmt(loaded.batchSize)}-row batch per slice (over a window rows = calls − the backlog at its end, so a keeping-pace appender trails by what is in flight; one falling behind writes full batches and its backlog grows), no 503 audit_unavailable, no record refused (${loaded.refusedOffers}), the backlog below the 503 threshold (maxQueue ${fmt(loaded.maxQueue)} − headroom ${fmt(AUDIT_LIMITS.headroom)}), and afterwards one row per recorded call and a chain that verifies. "run" row: rates over all slices, the largest end backlog, flush and backlog.`,
        `Each slice starts with an empty backlog (flushed after the previous one); "final flush" runs from the moment the slice's load stopped until its last call was committed (includes an IPC round trip, ~1 ms). Calls include denials (each is a row too); rows/batch near ${fmt(loaded.batchSize)} would mean the appender was saturated.`,
        `audit_events after the run: ${fmt(auditRows)} rows (the audited process recorded ${fmt(final.offered)} calls incl. warm-up, committed ${fmt(final.written)}); chain verifies: ${verified.ok ? `ok (${fmt(verified.rows)} rows in ${verifySeconds.toFixed(2)} s)` : `NO — ${verified.message}`}.`,
      ],
    };
    ctx.log(verdictLine);
    return [throughputTable, auditTable];
  } finally {
    for (const c of children) c.stop();
    await database.db.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).catch(() => undefined);
    await database.close();
  }
}

export const auditLoadBench: BenchModule = { name: 'audit-load', run };
