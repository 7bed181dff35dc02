/**
 * Issue 19's measurement, in one run: jitgate with the real audit appender writing the hash
 * chain to PostgreSQL, the same with the intent journal on (each call's intent written before
 * it is forwarded, src/audit/intent-journal.ts, as JITGATE_INTENT_DIR turns it on), jitgate
 * with its call records discarded, a bare @fastify/http-proxy and the upstream itself, side by
 * side. Both audited processes append to one chain, as two proxies would. Every server is a child process pinned to core 0 and
 * the load generator (this process) to core 1 when `taskset` exists; PostgreSQL is the
 * machine's own and not pinned (its CPU is part of what the audit costs here).
 *
 * Throughput is measured in interleaved rounds (see proxy.bench.ts, ROUNDS); after each slice
 * of the audited process the bench waits until its backlog is committed, so the next target's
 * slice does not pay for those writes. Then, not timed: the audit kept pace (every recorded call
 * is a committed row, no call answered 503, no record refused) and the chain verifies — a
 * failure is printed and fails the bench.
 *
 * Last, the audited process is profiled under the same load (node:inspector's sampling
 * profiler, cpu-profile.ts) and its CPU per call is printed by stage.
 *
 * Targets (issue 19): audited ≥ 1.0 × bare throughput; discarded ≥ 1.3 ×; ≤ 0.25 ms added p50
 * at one connection over direct. Standalone: `npm run bench -- proxy-audit`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { sql } from 'drizzle-orm';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { STAGE_NAMES } from './cpu-profile.ts';
import {
  benchApiPolicy,
  type Child,
  CONNECTIONS,
  insertGrants,
  jitgateChildEnv,
  LATENCY_REQUESTS,
  latency,
  median,
  openBenchWorld,
  ROUNDS,
  rowsOf,
  SLICE_SECONDS,
  spawnChild,
  type Target,
  throughputRounds,
  tokenFor,
} from './proxy.bench.ts';
import type { AuditCounters } from './proxy-bench-child.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

/** The appender's defaults (createAuditAppender), stated so the bench can report them. */
const AUDIT_LIMITS = { maxQueue: 50_000, headroom: 5_000, batchSize: 2_000 };
const PROFILE_SECONDS = 4;

const fmt = (n: number) => Math.round(n).toLocaleString('en');

async function run(ctx: BenchContext): Promise<BenchTable[]> {
  const { schema, database, signingKey, keyStore } = await openBenchWorld(ctx, 'proxy_audit');
  const children: Child[] = [];
  const intentDir = mkdtempSync(join(tmpdir(), 'jitgate-proxy-audit-intent-'));
  try {
    ctx.log(
      'proxy-audit: starting upstream, bare proxy, jitgate (discarding), jitgate (audit), jitgate (audit + intent journal)',
    );
    const upstream = await spawnChild(ctx, 'upstream', 0, {});
    children.push(upstream);
    const env = {
      ...jitgateChildEnv({ schema, signingKey }, benchApiPolicy(upstream.port)),
      BENCH_AUDIT_LIMITS: JSON.stringify(AUDIT_LIMITS),
    };
    const [grantId] = await insertGrants(database, 1, true);
    const auth = { authorization: `Bearer ${await tokenFor(keyStore, grantId!)}` };
    const bare = await spawnChild(ctx, 'bare', 0, { BENCH_UPSTREAM: `http://127.0.0.1:${upstream.port}` });
    children.push(bare);
    const discard = await spawnChild(ctx, 'jitgate', 0, { ...env, BENCH_SINK: 'discard' });
    children.push(discard);
    const audited = await spawnChild(ctx, 'jitgate', 0, { ...env, BENCH_SINK: 'audit' });
    children.push(audited);
    const journaled = await spawnChild(ctx, 'jitgate', 0, {
      ...env,
      BENCH_SINK: 'audit',
      BENCH_INTENT_DIR: intentDir,
    });
    children.push(journaled);
    const path = '/bench-api/items/1';
    const targets: Target[] = [
      { name: 'direct upstream', child: upstream, port: upstream.port, path: '/items/1', headers: {} },
      { name: 'bare @fastify/http-proxy', child: bare, port: bare.port, path: '/items/1', headers: {} },
      { name: 'jitgate, records discarded', child: discard, port: discard.port, path, headers: auth },
      {
        name: 'jitgate, real audit (PostgreSQL)',
        child: audited,
        port: audited.port,
        path,
        headers: auth,
        afterSlice: () => audited.ask('flush'),
      },
      {
        name: 'jitgate, real audit + intent journal',
        child: journaled,
        port: journaled.port,
        path,
        headers: auth,
        afterSlice: () => journaled.ask('flush'),
      },
    ];
    const latencies: { p50us: number; p99us: number }[] = [];
    for (const t of targets) {
      ctx.log(`proxy-audit: one-connection latency, ${t.name}`);
      latencies.push(await latency(t.port, t.path, t.headers));
      await t.afterSlice?.();
    }
    ctx.log(`proxy-audit: ${ROUNDS} interleaved rounds of ${SLICE_SECONDS} s per target`);
    const throughputs = await throughputRounds(targets);
    const results = targets.map((t, i) => ({ name: t.name, ...latencies[i]!, ...throughputs[i]! }));
    type Result = (typeof results)[0];
    const [direct, bareR, disc, aud, jour] = results as [Result, Result, Result, Result, Result];
    const perRound = (r: typeof aud) => r.roundRps.map((x, i) => x / bareR.roundRps[i]!);
    const added = (r: typeof aud) => (r.p50us - direct.p50us) / 1000;

    ctx.log('proxy-audit: checking the audit kept pace and the chain verifies');
    const [mine, theirs] = await Promise.all([
      audited.ask<AuditCounters>('flush'),
      journaled.ask<AuditCounters>('flush'),
    ]);
    // The two audited processes' counters added up: their rows share one chain.
    const counters: AuditCounters = {
      offered: mine.offered + theirs.offered,
      written: mine.written + theirs.written,
      queued: mine.queued + theirs.queued,
      batches: mine.batches + theirs.batches,
      failedAttempts: mine.failedAttempts + theirs.failedAttempts,
      refusedOffers: mine.refusedOffers + theirs.refusedOffers,
      auditUnavailable: mine.auditUnavailable + theirs.auditUnavailable,
      maxQueued: Math.max(mine.maxQueued, theirs.maxQueued),
    };
    const counted = rowsOf<{ count: string }>(
      await database.db.execute(sql`select count(*)::text as count from audit_events`),
    );
    const rows = Number(counted[0]!.count);
    const verified = await verifyAuditChain(database.db);
    const failures: string[] = [];
    if (rows !== counters.offered)
      failures.push(`audit_events holds ${fmt(rows)} rows for ${fmt(counters.offered)} calls`);
    if (counters.written !== counters.offered)
      failures.push(`${fmt(counters.offered - counters.written)} records not committed`);
    if (counters.auditUnavailable > 0)
      failures.push(`${counters.auditUnavailable} calls answered 503 audit_unavailable`);
    if (counters.refusedOffers > 0) failures.push(`${counters.refusedOffers} records refused`);
    if (counters.maxQueued >= AUDIT_LIMITS.maxQueue - AUDIT_LIMITS.headroom)
      failures.push(`backlog reached ${fmt(counters.maxQueued)}`);
    if (!verified.ok) failures.push(`the chain does not verify: ${verified.message}`);
    const auditLine =
      failures.length === 0
        ? `audit kept pace: PASS — ${fmt(counters.offered)} calls recorded, ${fmt(rows)} rows committed (= calls), 0 answered 503 (autocannon saw no non-2xx: it would have stopped the bench), 0 records refused, largest backlog at an offer ${fmt(counters.maxQueued)} (503s start at ${fmt(AUDIT_LIMITS.maxQueue - AUDIT_LIMITS.headroom)}), chain verifies (${fmt(verified.ok ? verified.rows : 0)} rows).`
        : `audit kept pace: FAIL — ${failures.join('; ')}.`;

    const throughputTable: BenchTable = {
      title: `Issue 19: throughput with the audit on (${CONNECTIONS} connections, ${ROUNDS} interleaved rounds × ${SLICE_SECONDS} s per target; one-connection latency over ${LATENCY_REQUESTS} sequential calls)`,
      columns: [
        'target',
        'req/s',
        '× bare',
        'p50 ms',
        'p99 ms',
        '1-conn p50 µs',
        'added p50 ms',
        'CPU µs/req',
      ],
      rows: results.map((r) => [
        r.name,
        Math.round(r.rps),
        (r.rps / bareR.rps).toFixed(2),
        r.p50ms,
        r.p99ms,
        Math.round(r.p50us),
        added(r).toFixed(3),
        Math.round(r.cpuUsPerReq),
      ]),
      notes: [
        `real audit / bare: ${(aud.rps / bareR.rps).toFixed(2)} × (per round ${perRound(aud)
          .map((x) => x.toFixed(2))
          .join(
            ', ',
          )}; median ${median(perRound(aud)).toFixed(2)}; target ≥ 1.0). discarded / bare: ${(disc.rps / bareR.rps).toFixed(2)} × (per round ${perRound(
          disc,
        )
          .map((x) => x.toFixed(2))
          .join(
            ', ',
          )}; target ≥ 1.3). real audit + intent journal / bare: ${(jour.rps / bareR.rps).toFixed(2)} × (per round ${perRound(
          jour,
        )
          .map((x) => x.toFixed(2))
          .join(
            ', ',
          )}; median ${median(perRound(jour)).toFixed(2)}). real audit / discarded: ${(aud.rps / disc.rps).toFixed(2)} ×.`,
        `CPU per request vs bare's (steadier than req/s on a shared machine; the servers' capacity on their core): real audit ${(aud.cpuUsPerReq / bareR.cpuUsPerReq).toFixed(2)} ×, with the journal ${(jour.cpuUsPerReq / bareR.cpuUsPerReq).toFixed(2)} ×, discarded ${(disc.cpuUsPerReq / bareR.cpuUsPerReq).toFixed(2)} ×.`,
        `added 1-conn p50 over direct: real audit ${added(aud).toFixed(3)} ms, with the journal ${added(jour).toFixed(3)} ms, discarded ${added(disc).toFixed(3)} ms, bare ${added(bareR).toFixed(3)} ms (target ≤ 0.25 ms).`,
        auditLine,
        `Batches: ${fmt(counters.batches)} for ${fmt(counters.offered)} rows (${(counters.offered / Math.max(1, counters.batches)).toFixed(0)} rows per batch), ${counters.failedAttempts} failed attempts.`,
        `CPU µs/req is the server's own process (the audited ones include their flush after each slice). ${ctx.taskset ? 'Servers pinned to core 0, load generator to core 1;' : 'No taskset: nothing pinned;'} PostgreSQL is not pinned.`,
      ],
    };

    ctx.log(`proxy-audit: profiling the audited process under load for ${PROFILE_SECONDS} s`);
    const before = await audited.ask<AuditCounters>('flush');
    const cpuBefore = await audited.cpuMicros();
    await audited.ask('profile-start');
    const r = await autocannon({
      url: `http://127.0.0.1:${audited.port}${path}`,
      connections: CONNECTIONS,
      duration: PROFILE_SECONDS,
      headers: auth,
    });
    const after = await audited.ask<AuditCounters>('flush');
    const profile = await audited.ask<{ stages: [string, number][]; wallMicros: number }>('profile-stop');
    const cpuTotal = (await audited.cpuMicros()) - cpuBefore;
    if (r.non2xx > 0 || r.errors > 0)
      throw new Error(`profiled run: ${r.non2xx} non-2xx, ${r.errors} errors`);
    const calls = after.offered - before.offered;
    const stages = new Map(profile.stages);
    const sampled = [...stages.values()].reduce((s, x) => s + x, 0);
    const profileTable: BenchTable = {
      title: `CPU per call by stage: the audited jitgate process under load (${CONNECTIONS} connections, ${PROFILE_SECONDS} s, ${fmt(calls)} calls, sampled every 200 µs)`,
      columns: ['stage', 'share of samples', 'µs/call (share × process CPU/call)'],
      rows: [
        ...STAGE_NAMES.map((s) => [
          s,
          `${((100 * (stages.get(s) ?? 0)) / sampled).toFixed(1)} %`,
          (((stages.get(s) ?? 0) / sampled) * (cpuTotal / calls)).toFixed(1),
        ]),
        ['process CPU per call (getrusage, profiler on)', '100 %', (cpuTotal / calls).toFixed(1)],
      ],
      notes: [
        "How: node:inspector's sampling profiler runs in the process while autocannon loads it and until its backlog is committed; each sample is charged to the first frame, from the sampled one towards the root, that is ours or a library we call (test/bench/cpu-profile.ts), so Node's own work is charged to its caller (a hash to the chain, a socket write to the forward). Samples are wall-clock ticks of the main thread (on a shared core they also tick while it waits for the CPU), so the table gives each stage's share of the samples and scales it to the process's measured CPU per call (getrusage over the same window, with the profiler's own cost in it); kernel time for sockets lands in the stage that made the system call.",
      ],
    };
    if (failures.length > 0) {
      console.log(auditLine);
      throw new Error(auditLine);
    }
    ctx.log(auditLine);
    return [throughputTable, profileTable];
  } finally {
    for (const c of children) c.stop();
    rmSync(intentDir, { recursive: true, force: true });
    await database.db.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).catch(() => undefined);
    await database.close();
  }
}

export const proxyAuditBench: BenchModule = { name: 'proxy-audit', run };
