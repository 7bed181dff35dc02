import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import autocannon, { type AutocannonResult } from 'autocannon';
import { sql } from 'drizzle-orm';
import {
  type DeviceKey,
  generateDeviceKey,
  importDeviceKey,
  makeProof,
} from '../../src/cli/contractor/device-key.ts';
import { issueGrantToken } from '../../src/tokens/index.ts';
import { STAGE_NAMES } from './cpu-profile.ts';
import {
  benchApiPolicy,
  type Child,
  CONNECTIONS,
  ISSUER,
  insertGrants,
  jitgateChildEnv,
  median,
  openBenchWorld,
  ROUNDS,
  SLICE_SECONDS,
  spawnChild,
  tokenFor,
} from './proxy.bench.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

/**
 * Bound tokens vs bearer through the real proxy, in the same run (`npm run bench -- proxy-dpop`):
 * one jitgate process with the in-process replay cache and one with Redis's, each called with a
 * bearer token (the baseline) and with a token bound to a device key plus a fresh ES256 DPoP proof
 * per call. Proofs are made before each slice (a client's cost, not the proxy's) and handed out
 * one per request by autocannon's `setupRequest`. Interleaved rounds, as in the proxy bench.
 *
 * The load generator (this process, core 1) is timed too: its CPU share during each slice is
 * printed, so a run where the client, not the proxy, set the pace shows as such. Last, each case
 * runs once more under the proxy's sampling profiler, for where a bound call's extra CPU goes.
 */
const PATH = '/bench-api/items/1';
const LATENCY_CALLS = 1500;
const PROFILE_SECONDS = 2;
/** The verifier's window (createDpopVerifier's default): a pooled proof must be used well within it. */
const PROOF_MAX_AGE_MS = 60_000;

interface Case {
  name: string;
  child: Child;
  bound: boolean;
}

/** `count` fresh proofs (each its own jti), and when the first was made. */
async function proofs(
  key: DeviceKey,
  port: number,
  token: string,
  count: number,
): Promise<{ pool: string[]; madeAt: number }> {
  const url = `http://127.0.0.1:${port}${PATH}`;
  const madeAt = Date.now();
  const pool: string[] = [];
  for (let i = 0; i < count; i++) pool.push(await makeProof(key, { method: 'GET', url, accessToken: token }));
  return { pool, madeAt };
}

/** Proofs are made ahead: fail loudly (not as a 401 among thousands) if any could have gone stale. */
function checkPoolAge(name: string, madeAt: number): void {
  const age = Date.now() - madeAt;
  if (age > PROOF_MAX_AGE_MS / 2) {
    throw new Error(
      `${name}: the oldest pooled proof is ${age} ms old by the slice's end; make fewer per slice`,
    );
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
function get(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: PATH, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function run(ctx: BenchContext): Promise<BenchTable[]> {
  const { schema, database, signingKey, keyStore } = await openBenchWorld(ctx, 'dpop');
  const children: Child[] = [];
  try {
    const upstream = await spawnChild(ctx, 'upstream', 0, {});
    children.push(upstream);
    const env = jitgateChildEnv({ schema, signingKey }, benchApiPolicy(upstream.port));
    const inProcess = await spawnChild(ctx, 'jitgate', 0, env);
    const withRedis = await spawnChild(ctx, 'jitgate', 0, {
      ...env,
      BENCH_DPOP_REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
      BENCH_DPOP_PREFIX: `jgbench-${randomBytes(4).toString('hex')}:`,
    });
    children.push(inProcess, withRedis);
    const [bearerGrant, boundGrant] = await insertGrants(database, 2, true);
    const bearerToken = await tokenFor(keyStore, bearerGrant!);
    const key = await importDeviceKey(await generateDeviceKey('ES256'));
    const boundToken = await issueGrantToken(keyStore, {
      grantId: boundGrant!,
      userId: 'U0BENCH',
      resource: 'bench-api',
      scope: 'read',
      expiresAt: new Date(Date.now() + 86_400_000),
      issuer: ISSUER,
      boundKey: key.thumbprint,
    });
    const cases: Case[] = [
      { name: 'bearer, in-process replay cache', child: inProcess, bound: false },
      { name: 'bound (DPoP ES256), in-process replay cache', child: inProcess, bound: true },
      { name: 'bearer, Redis replay cache', child: withRedis, bound: false },
      { name: 'bound (DPoP ES256), Redis replay cache', child: withRedis, bound: true },
    ];

    /** One load slice; `clientBusy` is the load generator's CPU over the slice's wall time. */
    async function slice(c: Case, seconds: number, expectRps: number) {
      const base = {
        url: `http://127.0.0.1:${c.child.port}${PATH}`,
        connections: CONNECTIONS,
        duration: seconds,
      };
      const timed = async (load: () => Promise<AutocannonResult>) => {
        const cpuBefore = process.cpuUsage();
        const started = performance.now();
        const result = await load();
        const cpu = process.cpuUsage(cpuBefore);
        return { result, clientBusy: (cpu.user + cpu.system) / ((performance.now() - started) * 1000) };
      };
      if (!c.bound) {
        return timed(() => autocannon({ ...base, headers: { authorization: `Bearer ${bearerToken}` } }));
      }
      const { pool, madeAt } = await proofs(
        key,
        c.child.port,
        boundToken,
        Math.ceil(Math.max(4000, expectRps) * seconds * 2),
      );
      const out = await timed(() =>
        autocannon({
          ...base,
          requests: [
            {
              method: 'GET',
              path: PATH,
              setupRequest: (req) => ({
                ...req,
                headers: { ...req.headers, authorization: `DPoP ${boundToken}`, dpop: pool.pop() ?? 'spent' },
              }),
            },
          ],
        }),
      );
      checkPoolAge(c.name, madeAt);
      return out;
    }

    ctx.log('proxy-dpop: one-connection latency');
    const latencies: { p50: number; p99: number }[] = [];
    for (const c of cases) {
      const { pool, madeAt } = c.bound
        ? await proofs(key, c.child.port, boundToken, LATENCY_CALLS + 200)
        : { pool: [], madeAt: Date.now() };
      const headers = (): Record<string, string> =>
        c.bound
          ? { authorization: `DPoP ${boundToken}`, dpop: pool.pop()! }
          : { authorization: `Bearer ${bearerToken}` };
      for (let i = 0; i < 200; i++) await get(c.child.port, headers());
      const samples: number[] = [];
      for (let i = 0; i < LATENCY_CALLS; i++) {
        const started = performance.now();
        const status = await get(c.child.port, headers());
        samples.push((performance.now() - started) * 1000);
        if (status !== 200) throw new Error(`${c.name}: latency call answered ${status}`);
      }
      if (c.bound) checkPoolAge(c.name, madeAt);
      samples.sort((a, b) => a - b);
      latencies.push({
        p50: samples[Math.floor(samples.length / 2)]!,
        p99: samples[Math.floor(samples.length * 0.99)]!,
      });
    }

    ctx.log(`proxy-dpop: ${ROUNDS} interleaved rounds of ${SLICE_SECONDS} s per case`);
    for (const c of cases) await slice(c, 1, 4000);
    const acc = cases.map(() => ({
      requests: 0,
      cpu: 0,
      rounds: [] as number[],
      clientBusy: [] as number[],
    }));
    for (let round = 0; round < ROUNDS; round++) {
      const order = cases.map((_, i) => i);
      if (round % 2 === 1) order.reverse();
      for (const i of order) {
        const c = cases[i]!;
        const a = acc[i]!;
        const last = a.rounds.at(-1) ?? 4000;
        const cpuBefore = await c.child.cpuMicros();
        const { result: r, clientBusy } = await slice(c, SLICE_SECONDS, last);
        a.cpu += (await c.child.cpuMicros()) - cpuBefore;
        a.clientBusy.push(clientBusy);
        if (r.non2xx > 0 || r.errors > 0)
          throw new Error(`${c.name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
        a.requests += r.requests.total;
        a.rounds.push(r.requests.average);
      }
    }
    const rows = cases.map((c, i) => {
      const a = acc[i]!;
      return [
        c.name,
        Math.round(a.requests / (ROUNDS * SLICE_SECONDS)),
        (a.cpu / a.requests).toFixed(1),
        (latencies[i]!.p50 / 1000).toFixed(3),
        (latencies[i]!.p99 / 1000).toFixed(3),
        `${Math.round(100 * median(a.clientBusy))} % (max ${Math.round(100 * Math.max(...a.clientBusy))} %)`,
      ];
    });
    const busiestClient = Math.max(...acc.flatMap((a) => a.clientBusy));

    // Where the CPU goes: each case once more, under the proxy process's sampling profiler.
    ctx.log(`proxy-dpop: one profiled ${PROFILE_SECONDS} s slice per case`);
    const profiles: Map<string, number>[] = [];
    for (const [i, c] of cases.entries()) {
      const cpuBefore = await c.child.cpuMicros();
      await c.child.ask('profile-start');
      const { result: r } = await slice(c, PROFILE_SECONDS, acc[i]!.rounds.at(-1) ?? 4000);
      const profile = await c.child.ask<{ stages: [string, number][] }>('profile-stop');
      const cpuPerCall = ((await c.child.cpuMicros()) - cpuBefore) / r.requests.total;
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`profiled ${c.name}: ${r.non2xx} non-2xx`);
      const stages = new Map(profile.stages);
      const sampled = [...stages.values()].reduce((sum, x) => sum + x, 0);
      // Each stage's share of the samples, scaled to the process's measured CPU per call.
      profiles.push(
        new Map(STAGE_NAMES.map((name) => [name, ((stages.get(name) ?? 0) / sampled) * cpuPerCall])),
      );
      profiles[i]!.set('total', cpuPerCall);
    }
    const stageRow = (name: string, label = name) => {
      const at = (i: number) => profiles[i]!.get(name) ?? 0;
      return [
        label,
        ...[0, 1, 2, 3].map((i) => at(i).toFixed(1)),
        (at(1) - at(0)).toFixed(1),
        (at(3) - at(2)).toFixed(1),
      ];
    };
    const profileTable: BenchTable = {
      title: `Proxy CPU µs per call by stage (one profiled ${PROFILE_SECONDS} s slice per case, ${CONNECTIONS} connections)`,
      columns: [
        'stage',
        'bearer, in-process',
        'bound, in-process',
        'bearer, Redis',
        'bound, Redis',
        'bound − bearer, in-process',
        'bound − bearer, Redis',
      ],
      rows: [
        ...STAGE_NAMES.map((name) => stageRow(name)),
        stageRow('total', 'process CPU per call (getrusage, profiler on)'),
      ],
      notes: [
        "Each sample is charged to the first frame from the sampled one towards the root that is ours or a library we call (test/bench/cpu-profile.ts), so node:crypto's native verify is charged to the DPoP stage that called it; stage shares are scaled to the process's measured CPU per call.",
      ],
    };
    const ratio = (bound: number, bearer: number) => {
      const b = acc[bound]!;
      const p = acc[bearer]!;
      const perRound = b.rounds.map((r, k) => r / p.rounds[k]!);
      return `${(b.requests / p.requests).toFixed(2)}× throughput (median per round ${median(perRound).toFixed(2)}×), CPU per call ${(b.cpu / b.requests / (p.cpu / p.requests)).toFixed(2)}×, +${((latencies[bound]!.p50 - latencies[bearer]!.p50) / 1000).toFixed(3)} ms 1-conn p50`;
    };
    return [
      {
        title: `Bound tokens vs bearer through the proxy (${CONNECTIONS} connections, ${ROUNDS} interleaved rounds × ${SLICE_SECONDS} s; 1-conn latency over ${LATENCY_CALLS} calls)`,
        columns: [
          'case',
          'calls/s',
          'proxy CPU µs per call',
          '1-conn p50 ms',
          '1-conn p99 ms',
          'load generator CPU, median of rounds',
        ],
        rows,
        notes: [
          `bound vs bearer, in-process replay cache: ${ratio(1, 0)}.`,
          `bound vs bearer, Redis replay cache: ${ratio(3, 2)}.`,
          busiestClient > 0.9
            ? `The load generator (one process, its own core) was up to ${Math.round(100 * busiestClient)} % busy: calls/s may be the client's limit; the CPU per call is the proxy's either way.`
            : `The load generator (one process, its own core) was at most ${Math.round(100 * busiestClient)} % busy: calls/s is the proxy's limit, not the client's.`,
        ],
      },
      profileTable,
    ];
  } finally {
    for (const child of children) child.stop();
    await database.db.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).catch(() => undefined);
    await database.close();
  }
}

export const proxyDpopBench: BenchModule = { name: 'proxy-dpop', run };
