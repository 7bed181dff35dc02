/**
 * Shared limits bench (issue 18): what the rate limit and quota cost when every proxy shares them
 * through Redis (one Lua round trip per call) against this process's own, measured side by side
 * in the same interleaved rounds. Two jitgate processes, identical but for `BENCH_LIMITS_REDIS_URL`,
 * on core 0 with the upstream; the load generator on core 1. Redis is the machine's own service
 * (not pinned): its CPU per call is read from INFO before and after and reported apart.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from '../helpers/redis-server.ts';
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
  SLICE_SECONDS,
  spawnChild,
  type Target,
  throughputRounds,
  tokenFor,
} from './proxy.bench.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

async function redisCpuMicros(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6;
}

async function run(ctx: BenchContext): Promise<BenchTable[]> {
  const { schema, database, signingKey, keyStore } = await openBenchWorld(ctx, 'limits');
  const prefix = `jgbench:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(TEST_REDIS_URL);
  const children: Child[] = [];
  try {
    const upstream = await spawnChild(ctx, 'upstream', 0, {});
    children.push(upstream);
    const env = jitgateChildEnv({ schema, signingKey }, benchApiPolicy(upstream.port));
    ctx.log('starting jitgate with per-process limits and jitgate with shared (Redis) limits');
    const local = await spawnChild(ctx, 'jitgate', 0, env);
    children.push(local);
    const shared = await spawnChild(ctx, 'jitgate', 0, {
      ...env,
      BENCH_LIMITS_REDIS_URL: TEST_REDIS_URL,
      BENCH_LIMITS_PREFIX: prefix,
    });
    children.push(shared);
    const [rateGrant, quotaGrant] = await insertGrants(database, 2, false);
    // The second grant carries a quota no bench reaches: every call is reserved against it.
    await database.db.transaction(async (tx) => {
      await tx.execute(sql`update grants set quota_requests = 1000000000 where id = ${quotaGrant!}`);
      for (const id of [rateGrant!, quotaGrant!])
        await tx.execute(sql`select pg_notify(${database.channel('grants')}, ${id})`);
    });
    const rateAuth = { authorization: `Bearer ${await tokenFor(keyStore, rateGrant!)}` };
    const quotaAuth = { authorization: `Bearer ${await tokenFor(keyStore, quotaGrant!)}` };
    // The shared limits' first recovery window (3 s) refuses quota calls: wait it out.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    const path = '/bench-api/items/1';
    const targets: Target[] = [
      { name: 'rate limit, per process', child: local, port: local.port, path, headers: rateAuth },
      { name: 'rate limit, Redis', child: shared, port: shared.port, path, headers: rateAuth },
      { name: 'rate limit + quota, per process', child: local, port: local.port, path, headers: quotaAuth },
      { name: 'rate limit + quota, Redis', child: shared, port: shared.port, path, headers: quotaAuth },
    ];
    const latencies: { p50us: number; p99us: number }[] = [];
    for (const t of targets) {
      ctx.log(`one-connection latency: ${t.name}`);
      latencies.push(await latency(t.port, t.path, t.headers));
    }
    ctx.log(`throughput: ${ROUNDS} interleaved rounds of ${SLICE_SECONDS} s per target`);
    const cpuBefore = await redisCpuMicros(redis);
    const throughputs = await throughputRounds(targets);
    const redisCpu = (await redisCpuMicros(redis)) - cpuBefore;
    const rows = targets.map((t, i) => ({ ...t, ...latencies[i]!, ...throughputs[i]! }));
    const pairs = [
      ['rate limit', rows[0]!, rows[1]!],
      ['rate limit + quota', rows[2]!, rows[3]!],
    ] as const;
    const redisCalls = rows[1]!.rps * ROUNDS * SLICE_SECONDS + rows[3]!.rps * ROUNDS * SLICE_SECONDS;
    return [
      {
        title: `Shared limits (Redis) vs per-process, same run (${CONNECTIONS} connections, ${ROUNDS} interleaved rounds × ${SLICE_SECONDS} s per target; one-connection latency over ${LATENCY_REQUESTS} sequential calls)`,
        columns: [
          'target',
          'req/s',
          'p50 ms',
          'p99 ms',
          '1-conn p50 µs',
          '1-conn p99 µs',
          'proxy CPU µs/req',
        ],
        rows: rows.map((r) => [
          r.name,
          Math.round(r.rps),
          r.p50ms,
          r.p99ms,
          Math.round(r.p50us),
          Math.round(r.p99us),
          Math.round(r.cpuUsPerReq),
        ]),
        notes: [
          ...pairs.map(([what, mine, redisRow]) => {
            const perRound = redisRow.roundRps.map((x, i) => x / mine.roundRps[i]!);
            return `${what}: Redis / per-process throughput ${(redisRow.rps / mine.rps).toFixed(2)} × (median per-round ${median(perRound).toFixed(2)} ×; rounds ${perRound.map((x) => x.toFixed(2)).join(', ')}); proxy CPU per request ${(redisRow.cpuUsPerReq / mine.cpuUsPerReq).toFixed(2)} ×; added 1-conn p50 ${((redisRow.p50us - mine.p50us) / 1000).toFixed(3)} ms.`;
          }),
          `Redis itself: ${(redisCpu / redisCalls).toFixed(1)} µs CPU per call (INFO cpu over the throughput rounds, divided by the calls of the Redis targets; it also counts other clients of the shared Redis). Redis is not pinned: it takes CPU from the same two cores.`,
        ],
      },
    ];
  } finally {
    for (const c of children) c.stop();
    // Only this run's keys (the shared Redis serves others).
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 })) {
      if ((keys as string[]).length > 0) await redis.del(...(keys as string[])).catch(() => undefined);
    }
    redis.disconnect();
    await database.db.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).catch(() => undefined);
    await database.close();
  }
}

export const limitsBench: BenchModule = { name: 'limits', run };
