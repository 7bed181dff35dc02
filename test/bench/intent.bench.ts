/**
 * Issue 20: what recording a call durably before forwarding it costs. Two groups, each in
 * interleaved rounds against its own baseline in the same run: the candidates (a local journal
 * line, a PostgreSQL INSERT, a Redis RPUSH, each awaited before the forward) on the bare
 * @fastify/http-proxy, and jitgate with the real audit appender with the intent journal off
 * and on (what `JITGATE_INTENT_DIR` chooses).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import {
  benchApiPolicy,
  type Child,
  insertGrants,
  jitgateChildEnv,
  latency,
  median,
  openBenchWorld,
  ROUNDS,
  SLICE_SECONDS,
  spawnChild,
  type Target,
  throughputRounds,
  tokenFor,
} from './proxy.bench.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

const AUDIT_LIMITS = JSON.stringify({ maxQueue: 50_000, headroom: 5_000, batchSize: 2_000 });

async function measure(targets: Target[]) {
  const latencies: { p50us: number; p99us: number }[] = [];
  for (const t of targets) latencies.push(await latency(t.port, t.path, t.headers));
  const throughputs = await throughputRounds(targets);
  return targets.map((t, i) => ({ ...t, ...latencies[i]!, ...throughputs[i]! }));
}

function table(title: string, results: Awaited<ReturnType<typeof measure>>, notes: string[]): BenchTable {
  const base = results[0]!;
  return {
    title,
    columns: [
      'target',
      'req/s',
      `× ${base.name}`,
      'median round ×',
      '1-conn p50 µs',
      'added p50 µs',
      'CPU µs/req',
    ],
    rows: results.map((r) => [
      r.name,
      Math.round(r.rps),
      (r.rps / base.rps).toFixed(2),
      median(r.roundRps.map((x, i) => x / base.roundRps[i]!)).toFixed(2),
      Math.round(r.p50us),
      Math.round(r.p50us - base.p50us),
      Math.round(r.cpuUsPerReq),
    ]),
    notes,
  };
}

async function run(ctx: BenchContext): Promise<BenchTable[]> {
  const { schema, database, signingKey, keyStore } = await openBenchWorld(ctx, 'intent');
  const children: Child[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'jitgate-intent-bench-'));
  try {
    const upstream = await spawnChild(ctx, 'upstream', 0, {});
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
    const bare = async (intent?: string) => {
      const child = await spawnChild(ctx, 'bare', 0, {
        BENCH_UPSTREAM: upstreamUrl,
        ...(intent ? { BENCH_BARE_INTENT: intent } : {}),
      });
      children.push(child);
      return child;
    };
    ctx.log('candidates on the bare proxy: none, journal line, PostgreSQL INSERT, Redis RPUSH');
    const candidates: Target[] = [];
    for (const [name, intent] of [
      ['bare', undefined],
      ['bare + journal write(2)', 'journal'],
      ['bare + PostgreSQL INSERT', 'postgres'],
      ['bare + Redis RPUSH', 'redis'],
    ] as const) {
      const child = await bare(intent);
      candidates.push({ name, child, port: child.port, path: '/items/1', headers: {} });
    }
    const candidateResults = await measure(candidates);

    ctx.log('jitgate with the audit appender: intent journal off and on');
    const env = {
      ...jitgateChildEnv({ schema, signingKey }, benchApiPolicy(upstream.port)),
      BENCH_SINK: 'audit',
      BENCH_AUDIT_LIMITS: AUDIT_LIMITS,
    };
    const [grantId] = await insertGrants(database, 1, true);
    const auth = { authorization: `Bearer ${await tokenFor(keyStore, grantId!)}` };
    const bareAgain = await bare();
    const off = await spawnChild(ctx, 'jitgate', 0, env);
    children.push(off);
    const on = await spawnChild(ctx, 'jitgate', 0, { ...env, BENCH_INTENT_DIR: join(dir, 'on') });
    children.push(on);
    const jitResults = await measure([
      { name: 'bare', child: bareAgain, port: bareAgain.port, path: '/items/1', headers: {} },
      {
        name: 'jitgate, audit, journal off',
        child: off,
        port: off.port,
        path: '/bench-api/items/1',
        headers: auth,
      },
      {
        name: 'jitgate, audit, journal on',
        child: on,
        port: on.port,
        path: '/bench-api/items/1',
        headers: auth,
      },
    ]);
    const [, jOff, jOn] = jitResults;
    return [
      table(
        `Durable intent candidates before the forward (bare proxy; ${ROUNDS} interleaved rounds × ${SLICE_SECONDS} s)`,
        candidateResults,
        [
          "Each candidate is awaited before the forward. The journal line lands in the page cache (survives kill -9; fdatasync in batches bounds a machine crash); the PostgreSQL INSERT commits with synchronous_commit (survives both); the Redis RPUSH is as durable as the server's appendfsync.",
        ],
      ),
      table(
        `jitgate with the audit appender, intent journal off vs on (${ROUNDS} interleaved rounds × ${SLICE_SECONDS} s)`,
        jitResults,
        [
          `journal on / off throughput: ${(jOn!.rps / jOff!.rps).toFixed(2)} ×; added 1-conn p50 ${Math.round(jOn!.p50us - jOff!.p50us)} µs.`,
        ],
      ),
    ];
  } finally {
    for (const c of children) c.stop();
    rmSync(dir, { recursive: true, force: true });
    await database.db.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).catch(() => undefined);
    await database.close();
  }
}

export const intentBench: BenchModule = { name: 'intent', run };
