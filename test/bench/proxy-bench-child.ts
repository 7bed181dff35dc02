/**
 * One server process of the proxy bench: `upstream`, `bare` (@fastify/http-proxy with
 * default options) or `jitgate` (createProxyServer with every check on). It reports its
 * port and, when asked over IPC, its own CPU time, so the bench charges each server
 * exactly the CPU it used.
 *
 * With `BENCH_LIMITS_REDIS_URL` (and `BENCH_LIMITS_PREFIX`) `jitgate` takes rate limits and
 * quotas from Redis (src/proxy/limits/redis-limits.ts) instead of this process's own.
 *
 * `jitgate` hands its call records to a discarding stand-in (`BENCH_SINK=discard`, the
 * default) or to the real audit appender writing the hash chain to PostgreSQL
 * (`BENCH_SINK=audit`, as src/composition/roles.ts wires it: batches pipelined on postgres.js;
 * `BENCH_AUDIT_DRIZZLE=1` sends every batch through drizzle's transaction instead, the path
 * retries, quota batches and PGlite take, to compare the two). IPC commands, each answered with a
 * message of the same `type`: `cpu`; and for the appender `audit` (counters), `audit-reset`
 * (counters, then starts a new maximum-backlog window) and `flush` (waits until every record
 * offered so far is committed, then answers with the counters); `profile-start` and `profile-stop`
 * (a CPU profile of the process, answered with the CPU per stage, see cpu-profile.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fastifyHttpProxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import pino from 'pino';
import { quotaSettler } from '../../src/access/quota.ts';
import { type AuditAppender, createAuditAppender } from '../../src/audit/call-writer.ts';
import { createIntentJournal } from '../../src/audit/intent-journal.ts';
import { openDatabase, postgresClientOf } from '../../src/db/client.ts';
import { grantQuotaUse } from '../../src/db/queries/grants/proxy-use.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import { staticPolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createRedisLimits } from '../../src/proxy/limits/redis-limits.ts';
import { createQuotaTracker } from '../../src/proxy/quota.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import type { CallRecord, CallSink } from '../../src/shared/call-record.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createDpopVerifier } from '../../src/tokens/dpop.ts';
import {
  connectReplayRedis,
  createMemoryReplayCache,
  createRedisReplayCache,
} from '../../src/tokens/dpop-replay.ts';
import { createMemoryKeyStore, createVerifier } from '../../src/tokens/index.ts';
import { createProfiler } from './cpu-profile.ts';
import { intentCandidate } from './intent-candidates.ts';

const role = process.argv[2];
const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`bench child: ${name} is not set`);
  return value;
};

/**
 * The discarding stand-in for the audit hand-off: a bounded queue emptied every 10 ms, its
 * records thrown away. The baseline the real appender (`BENCH_SINK=audit`) is compared with.
 */
function queueSink(capacity: number): CallSink {
  let queue: CallRecord[] = [];
  const timer = setInterval(() => {
    queue = [];
  }, 10);
  timer.unref();
  return {
    offer(record) {
      if (queue.length >= capacity) return false;
      queue.push(record);
      return true;
    },
    hasCapacity: () => queue.length < capacity,
  };
}

export interface AuditCounters {
  /** Records offered and accepted since start. */
  offered: number;
  /** Of those, committed to audit_events. */
  written: number;
  /** Offered but not yet committed. */
  queued: number;
  batches: number;
  failedAttempts: number;
  /** Offers the appender refused (a call that would go unrecorded; must stay 0). */
  refusedOffers: number;
  /** Calls answered 503 audit_unavailable (their own records say so). */
  auditUnavailable: number;
  /** Largest backlog seen at an offer since the last `audit-reset` (the backlog only grows there). */
  maxQueued: number;
}

/** The real appender behind counters the bench reads over IPC. */
function countedAppender(
  appender: AuditAppender,
): CallSink & { counters(): AuditCounters; resetMax(): void } {
  let refusedOffers = 0;
  let auditUnavailable = 0;
  let maxQueued = 0;
  return {
    offer(record) {
      if (record.decision === 'audit_unavailable') auditUnavailable += 1;
      const accepted = appender.offer(record);
      if (!accepted) refusedOffers += 1;
      const { queued } = appender.stats();
      if (queued > maxQueued) maxQueued = queued;
      return accepted;
    },
    hasCapacity: () => appender.hasCapacity(),
    counters() {
      const s = appender.stats();
      return { offered: s.written + s.queued, ...s, refusedOffers, auditUnavailable, maxQueued };
    },
    resetMax() {
      maxQueued = appender.stats().queued;
    },
  };
}

const profiler = createProfiler();
const commands: Record<string, () => unknown> = {
  cpu: () => {
    const { user, system } = process.cpuUsage();
    return { micros: user + system };
  },
  // A CPU profile of this process (see cpu-profile.ts); `profile-stop` answers with µs per stage.
  'profile-start': () => profiler.start(),
  'profile-stop': () => profiler.stop(),
};

async function start(): Promise<number> {
  if (role === 'upstream') {
    const body = JSON.stringify({ ok: true, items: [1, 2, 3] });
    // The masked-JSON case: ~100 KB of customer-like records (`/items/big`).
    const big = Buffer.from(
      JSON.stringify({
        items: Array.from({ length: 800 }, (_, i) => ({
          id: i,
          name: `Customer ${i}`,
          email: `customer${i}@example.com`,
          address: { street: `${i} Long Street`, city: 'Berlin', ssn: `${100 + (i % 900)}-00-0000` },
          tags: ['a', 'b', 'c'],
        })),
      }),
    );
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const payload = req.url?.startsWith('/items/big') ? big : body;
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        });
        res.end(payload);
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }
  if (role === 'bare') {
    const app = Fastify();
    // `BENCH_BARE_INTENT`: a candidate way of recording a call before the upstream sees it (issue 20).
    const intent = process.env.BENCH_BARE_INTENT
      ? await intentCandidate(process.env.BENCH_BARE_INTENT)
      : undefined;
    await app.register(fastifyHttpProxy, {
      upstream: env('BENCH_UPSTREAM'),
      ...(intent ? { preHandler: intent } : {}),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return (app.server.address() as AddressInfo).port;
  }
  if (role === 'jitgate') {
    const clock = systemClock;
    const database = await openDatabase({
      databaseUrl: env('BENCH_DATABASE_URL'),
      dataDir: '.jitgate-bench',
      schemaName: env('BENCH_SCHEMA'),
      maxConnections: 4,
    });
    const keyStore = createMemoryKeyStore({ clock, configuredKey: env('BENCH_SIGNING_KEY') });
    await keyStore.load();
    const logger = pino({ level: 'warn' });
    const grants = createActiveGrantView({ database, logger });
    await grants.start();
    // One quota tracker shared by proxy and appender, as in src/composition/roles.ts.
    const quota = createQuotaTracker();
    let sink: CallSink;
    if ((process.env.BENCH_SINK ?? 'discard') === 'audit') {
      const client = postgresClientOf(database.db);
      const appender = createAuditAppender({
        db: database.db,
        // As proxy-role.ts wires it: pipelined batches on postgres.js (BENCH_AUDIT_DRIZZLE=1: not).
        ...(client && !process.env.BENCH_AUDIT_DRIZZLE ? { client } : {}),
        logger,
        quota,
        settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
        // maxQueue, headroom, batchSize: set by the bench so it can report them.
        ...(JSON.parse(env('BENCH_AUDIT_LIMITS')) as {
          maxQueue: number;
          headroom: number;
          batchSize: number;
        }),
      });
      const counted = countedAppender(appender);
      commands.audit = () => counted.counters();
      commands['audit-reset'] = () => {
        const before = counted.counters();
        counted.resetMax();
        return before;
      };
      commands.flush = async () => {
        await appender.flush();
        return counted.counters();
      };
      sink = counted;
    } else sink = queueSink(10_000);
    // `BENCH_LIMITS_REDIS_URL` set: the rate limit and quota shared through Redis, as roles.ts wires them
    // with REDIS_URL; otherwise this process's own.
    const limits = process.env.BENCH_LIMITS_REDIS_URL
      ? createRedisLimits({
          redis: connectReplayRedis(process.env.BENCH_LIMITS_REDIS_URL),
          quota,
          clock,
          whenRedisDown: 'fail_closed',
          readGrantUse: (id) => grantQuotaUse(database.db, id),
          logger,
          prefix: env('BENCH_LIMITS_PREFIX'),
        })
      : undefined;
    await limits?.start();
    // `BENCH_INTENT_DIR`: the intent journal on, as roles.ts wires it with JITGATE_INTENT_DIR.
    const appenderFlush = commands.flush;
    const journal = process.env.BENCH_INTENT_DIR
      ? createIntentJournal({
          dir: process.env.BENCH_INTENT_DIR,
          log: 'bench',
          flushCommitted: async () => {
            await appenderFlush?.();
          },
          logger,
        })
      : undefined;
    // Device-bound tokens as roles.ts wires them: revoked devices from the grant view, and the
    // replay cache in Redis with `BENCH_DPOP_REDIS_URL`, in this process otherwise.
    const replay = process.env.BENCH_DPOP_REDIS_URL
      ? createRedisReplayCache({
          redis: connectReplayRedis(process.env.BENCH_DPOP_REDIS_URL),
          prefix: env('BENCH_DPOP_PREFIX'),
        })
      : createMemoryReplayCache({ clock });
    let publicUrl = '';
    const app = createProxyServer({
      ...(journal ? { journal } : {}),
      dpop: {
        verifier: createDpopVerifier({ clock, replay }),
        publicUrl: () => publicUrl,
        deviceState: (thumbprint) => grants.deviceKeyState(thumbprint),
      },
      policy: staticPolicyStore(
        parsePolicy(env('BENCH_POLICY'), { file: 'bench.yml', env: { BENCH_SECRET: 'bench-secret' } }),
      ),
      grants,
      verifier: createVerifier(keyStore, { issuer: env('BENCH_ISSUER'), clock }),
      keyStore,
      clock,
      sink,
      logger,
      quota,
      ...(limits ? { limits } : {}),
    });
    await app.listen({ port: Number(process.env.BENCH_PORT ?? 0), host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    publicUrl = `http://127.0.0.1:${port}`;
    return port;
  }
  throw new Error(`bench child: unknown role ${role}`);
}

process.on('message', (message: unknown) => {
  const command = typeof message === 'string' ? commands[message] : undefined;
  if (!command) return;
  Promise.resolve(command()).then(
    (reply) => process.send?.({ type: message, ...(reply as object) }),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
process.on('disconnect', () => process.exit(0));

start().then(
  (port) => process.send?.({ type: 'ready', port }),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
