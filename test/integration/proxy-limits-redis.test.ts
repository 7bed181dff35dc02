import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { eq, sql } from 'drizzle-orm';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quotaSettler } from '../../src/access/quota.ts';
import { type AuditAppender, createAuditAppender } from '../../src/audit/call-writer.ts';
import { grantQuotaUse } from '../../src/db/queries/grants/proxy-use.ts';
import { grants } from '../../src/db/schema/index.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import { staticPolicyStore } from '../../src/policy/store.ts';
import {
  type ActiveGrant,
  createActiveGrantView,
  type ManagedActiveGrantView,
} from '../../src/proxy/active-grants.ts';
import { createRedisLimits, type RedisLimits } from '../../src/proxy/limits/redis-limits.ts';
import { ADD, ADMIT } from '../../src/proxy/limits/scripts.ts';
import { createQuotaTracker } from '../../src/proxy/quota.ts';
import { createRateLimiter } from '../../src/proxy/rate-limit.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import { manualClock, systemClock } from '../../src/shared/clock.ts';
import { connectReplayRedis } from '../../src/tokens/dpop-replay.ts';
import { createMemoryKeyStore, createVerifier, type KeyStore } from '../../src/tokens/index.ts';
import {
  eventually,
  heldByViews,
  insertGrantWithToken,
  openTestDatabase,
  rawRequest,
  startCountingUpstream,
} from '../helpers/proxy-fixtures.ts';
import { type OwnRedis, startOwnRedis } from '../helpers/redis-server.ts';

/**
 * Issue 18: with Redis, a grant's rate limit and quota hold across every proxy. Three proxies in
 * this process, each with its own grant view, audit appender, quota tracker and Redis connection,
 * over one PostgreSQL schema and a private redis-server (these tests flush and kill it).
 */

const ISSUER = 'https://jitgate.test';
const clock = systemClock;

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let redis: OwnRedis;
let upstream: { url: string; close(): Promise<void>; hits: Map<string, number> };
let keys: KeyStore;
let prefix: string;
const proxies: Proxy[] = [];

interface Proxy {
  port: number;
  limits: RedisLimits;
  appender: AuditAppender;
  view: ManagedActiveGrantView;
  server: FastifyInstance;
}

const policyText = (upstreamUrl: string) => `
resources:
  rate-api:
    upstream: ${upstreamUrl}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }
    rate_limit: { requests: 100, per: 1m }
  quota-api:
    upstream: ${upstreamUrl}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /**"] }
    rate_limit: { requests: 1000000, per: 1m }
`;

async function startProxy(whenRedisDown: 'fail_closed' | 'local' = 'fail_closed'): Promise<Proxy> {
  const logger = pino({ level: 'silent' });
  const view = createActiveGrantView({ database, logger });
  await view.start();
  const limits = createRedisLimits({
    redis: connectReplayRedis(redis.url, 300),
    quota: createQuotaTracker(),
    clock,
    whenRedisDown,
    readGrantUse: (id) => grantQuotaUse(database.db, id),
    logger,
    prefix,
    heartbeatMs: 200,
  });
  await limits.start();
  const appender = createAuditAppender({
    db: database.db,
    flushIntervalMs: 5,
    quota: limits,
    settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
  });
  const server = createProxyServer({
    policy: staticPolicyStore(parsePolicy(policyText(upstream.url), { file: 'limits.yml', env: {} })),
    grants: view,
    verifier: createVerifier(keys, { issuer: ISSUER, clock }),
    keyStore: keys,
    issuer: ISSUER,
    clock,
    sink: appender,
    limits,
    logger,
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  const proxy = { port: (server.server.address() as AddressInfo).port, limits, appender, view, server };
  proxies.push(proxy);
  return proxy;
}

async function stopProxy(proxy: Proxy): Promise<void> {
  await proxy.server.close();
  await proxy.appender.close();
  await proxy.limits.close();
  await proxy.view.close();
}

/** A grant and its token; each call names the grant to the upstream so it can count them. */
async function grantOn(resource: string, quota: { requests?: number; bytes?: number } = {}) {
  const { grant, auth } = await insertGrantWithToken(
    { database, keys, issuer: ISSUER, seen: heldByViews(...proxies.map((p) => p.view)) },
    {
      resource,
      scope: 'read',
      ...(quota.requests !== undefined ? { quotaRequests: quota.requests } : {}),
      ...(quota.bytes !== undefined ? { quotaResponseBytes: quota.bytes } : {}),
    },
  );
  return { grant, headers: { ...auth, 'x-test-grant': grant.id } };
}

/** Sends `count` calls spread over the proxies, all at once; resolves with each call's status and error. */
async function burst(ports: number[], count: number, path: string, headers: Record<string, string>) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const res = await rawRequest(ports[i % ports.length]!, 'GET', path, headers);
      return { status: res.status, error: res.status === 200 ? undefined : String(res.json().error) };
    }),
  );
}

async function committedUse(grantId: string) {
  for (const p of proxies) await p.appender.flush();
  return grantQuotaUse(database.db, grantId);
}

async function auditRows(grantId: string): Promise<{ kind: string; decision: string }[]> {
  const result = await database.db.execute(
    sql`select kind, data->>'decision' as decision from audit_events where grant_id = ${grantId} order by seq`,
  );
  return [...(result as unknown as { kind: string; decision: string }[])];
}

/** Waits until the epoch in Redis is past its recovery window (a fresh or flushed Redis). */
async function epochReady(): Promise<void> {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    await eventually(async () => {
      const epoch = await client.get(`${prefix}epoch`);
      const [seconds, micros] = await client.time();
      const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      return epoch !== null && Number(epoch.slice(epoch.indexOf(':') + 1)) <= now;
    }, 10_000);
  } finally {
    client.disconnect();
  }
}

const ports = () => proxies.map((p) => p.port);

beforeAll(async () => {
  database = await openTestDatabase();
  redis = await startOwnRedis();
  upstream = await startCountingUpstream();
  prefix = `jgtest:${randomBytes(4).toString('hex')}:`;
  keys = createMemoryKeyStore({ clock });
  await keys.load();
  for (let i = 0; i < 3; i++) await startProxy();
  await epochReady();
});

afterAll(async () => {
  for (const p of proxies.splice(0)) await stopProxy(p).catch(() => undefined);
  await upstream?.close();
  await redis?.stop();
  await database?.drop();
});

describe('shared limits across three proxies', () => {
  it('rate_limit 100/1m lets 100 ± 1 calls through, whichever proxies they reach', async () => {
    const { headers } = await grantOn('rate-api');
    const started = performance.now();
    const results = await burst(ports(), 300, '/rate-api/x', headers);
    const elapsedMs = performance.now() - started;
    const passed = results.filter((r) => r.status === 200).length;
    // A token bucket refills continuously: 100 per minute is one more every 600 ms of the burst.
    const expected = 100 + Math.floor((elapsedMs * 100) / 60_000);
    expect(Math.abs(passed - expected), `${passed} passed in ${elapsedMs.toFixed(0)} ms`).toBeLessThanOrEqual(
      1,
    );
    expect(results.filter((r) => r.status !== 200).every((r) => r.error === 'rate_limited')).toBe(true);
    const refused = await rawRequest(proxies[2]!.port, 'GET', '/rate-api/x', headers);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('a 50-call quota is never exceeded under concurrent load on every proxy, and PostgreSQL ends at 50', async () => {
    const { grant, headers } = await grantOn('quota-api', { requests: 50 });
    const results = await burst(ports(), 240, '/quota-api/x', headers);
    expect(results.filter((r) => r.status === 200)).toHaveLength(50);
    expect(new Set(results.filter((r) => r.status !== 200).map((r) => r.error))).toEqual(
      new Set(['quota_exhausted']),
    );
    expect(upstream.hits.get(grant.id)).toBe(50);
    expect(await committedUse(grant.id)).toMatchObject({ requests: 50 });
    // One audit row per call, forwarded or not.
    const rows = await auditRows(grant.id);
    expect(rows.filter((r) => r.kind === 'proxy.call')).toHaveLength(50);
    expect(rows.filter((r) => r.kind === 'proxy.denied')).toHaveLength(190);
  });

  it('a byte quota: the call that crosses the cap completes, and every call after it is refused on every proxy', async () => {
    const { grant, headers } = await grantOn('quota-api', { bytes: 1000 });
    let sent = 0;
    let i = 0;
    // One after another, each through the next proxy: each sees the bytes the previous one sent.
    for (;;) {
      const res = await rawRequest(ports()[i++ % 3]!, 'GET', '/quota-api/bytes?n=300', headers);
      if (res.status !== 200) {
        expect(res.json().error).toBe('quota_exhausted');
        break;
      }
      expect(res.body).toHaveLength(300);
      sent += 300;
    }
    // 300, 600, 900 are under the cap; the fourth crosses it and completes; the fifth is refused.
    expect(sent).toBe(1200);
    for (const port of ports()) {
      const after = await rawRequest(port, 'GET', '/quota-api/bytes?n=1', headers);
      expect(after.json().error).toBe('quota_exhausted');
    }
    expect(await committedUse(grant.id)).toEqual({ requests: 4, bytes: 1200 });
  });

  it('each call is one Redis round trip: one admission script per call, bytes added apart', async () => {
    const { grant, headers } = await grantOn('quota-api', { requests: 1000 });
    // The grant's first call seeds its count from PostgreSQL (and a proxy's first script call on a
    // fresh Redis loads the script): one call through each proxy first, then the calls measured.
    for (const port of ports())
      expect((await rawRequest(port, 'GET', '/quota-api/x', headers)).status).toBe(200);
    const sha = (lua: string) => createHash('sha1').update(lua).digest('hex');
    const admitSha = sha(ADMIT);
    const client = new Redis(redis.url);
    const monitor = await client.monitor();
    /** What the proxies sent naming this grant (not the commands their scripts ran inside Redis). */
    const sent: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (!source.startsWith('lua') && args.some((a) => a.includes(grant.id))) sent.push(args);
    });
    const admissions = () => sent.filter((a) => a[0]?.toLowerCase() === 'evalsha' && a[1] === admitSha);
    try {
      for (let n = 0; n < 30; n++) {
        expect((await rawRequest(ports()[n % 3]!, 'GET', '/quota-api/x', headers)).status).toBe(200);
      }
      await eventually(() => admissions().length >= 30);
    } finally {
      monitor.disconnect();
      client.disconnect();
    }
    expect(admissions()).toHaveLength(30);
    // Everything else naming the grant is the asynchronous, batched byte count.
    const others = sent.filter((a) => a[1] !== admitSha).map((a) => `${a[0]?.toLowerCase()} ${a[1]}`);
    expect(new Set(others)).toEqual(new Set([`evalsha ${sha(ADD)}`]));
  });
});

describe('the shared bucket decides exactly as the per-process one', () => {
  it('for any sequence of calls and clock moves (property, real Redis)', async () => {
    const client = connectReplayRedis(redis.url, 1000);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.record({
            requests: fc.integer({ min: 1, max: 20 }),
            perSeconds: fc.integer({ min: 1, max: 120 }),
          }),
          fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 30_000 })), {
            minLength: 1,
            maxLength: 60,
          }),
          async (limit, steps) => {
            const time = manualClock(new Date('2026-03-02T09:00:00Z'));
            const local = createRateLimiter({ clock: time });
            const shared = createRedisLimits({
              redis: client,
              quota: createQuotaTracker(),
              clock: time,
              whenRedisDown: 'fail_closed',
              readGrantUse: async () => ({ requests: 0, bytes: 0 }),
              logger: pino({ level: 'silent' }),
              prefix: `jgprop:${randomBytes(4).toString('hex')}:`,
            });
            const grant: ActiveGrant = {
              id: 'g',
              userId: 'U',
              resource: 'r',
              scope: 's',
              startsAt: 0,
              expiresAt: Number.MAX_SAFE_INTEGER,
              quotaRequests: undefined,
              quotaResponseBytes: undefined,
              usedRequests: 0,
              usedResponseBytes: 0,
            };
            for (const step of steps) {
              // -1: a clock that stepped back a second; otherwise advance, then take a call.
              if (step === -1) time.set(new Date(time.now().getTime() - 1000));
              else time.advance(step);
              const now = time.now().getTime();
              const want = local.take('g', limit, now);
              const got = await shared.take(grant, limit, now);
              expect(got.ok).toBe(want.ok);
              if (!got.ok && !want.ok) expect(got.denial.retryAfterSeconds).toBe(want.retryAfterSeconds);
            }
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      client.disconnect();
    }
  });
});

describe('Redis loses its data, or goes away', () => {
  it('a flush: quotas wait out the recovery window, then resume from PostgreSQL plus what was in flight, never over', async () => {
    const { grant, headers } = await grantOn('quota-api', { requests: 50 });
    for (let n = 0; n < 20; n++)
      expect((await rawRequest(ports()[n % 3]!, 'GET', '/quota-api/x', headers)).status).toBe(200);
    // Ten calls in flight at the upstream when Redis loses everything.
    const inFlight = burst(ports(), 10, '/quota-api/slow?ms=1500', headers);
    await eventually(() => (upstream.hits.get(grant.id) ?? 0) === 30);
    await redis.flushAll();
    // Until every proxy has re-registered what it holds, the quota cannot be confirmed.
    const during = await rawRequest(proxies[1]!.port, 'GET', '/quota-api/x', headers);
    expect(during.status).toBe(503);
    expect(during.json()).toEqual({ error: 'quota_unconfirmed', message: expect.any(String) });
    await epochReady();
    const after = await burst(ports(), 60, '/quota-api/x', headers);
    expect((await inFlight).every((r) => r.status === 200)).toBe(true);
    const total = 30 + after.filter((r) => r.status === 200).length;
    // Never over; exactly at the cap unless an in-flight call committed between its proxy's
    // re-registration and the seed (then it is counted twice: fewer calls, never more).
    expect(total).toBeLessThanOrEqual(50);
    expect(total).toBeGreaterThanOrEqual(40);
    expect(upstream.hits.get(grant.id)).toBe(total);
    expect(await committedUse(grant.id)).toMatchObject({ requests: total });
    const rows = await auditRows(grant.id);
    expect(rows.find((r) => r.decision === 'quota_unconfirmed')).toBeDefined();
  });

  it('Redis down: rate limits divided by the proxy count, quotas refused with 503, every call audited; back: counts go on', async () => {
    const rate = await grantOn('rate-api');
    const { grant, headers } = await grantOn('quota-api', { requests: 50 });
    for (let n = 0; n < 10; n++)
      expect((await rawRequest(ports()[n % 3]!, 'GET', '/quota-api/x', headers)).status).toBe(200);
    await eventually(() => proxies.every((p) => p.limits.stats().proxies === 3));
    await redis.kill();
    const rateResults = await burst(ports(), 150, '/rate-api/x', rate.headers);
    // 100 / 3 proxies = 33 each (the fallback buckets start full).
    expect(rateResults.filter((r) => r.status === 200)).toHaveLength(99);
    const quotaResults = await burst(ports(), 9, '/quota-api/x', headers);
    expect(quotaResults.every((r) => r.status === 503 && r.error === 'quota_unconfirmed')).toBe(true);
    expect(upstream.hits.get(grant.id)).toBe(10);
    for (const p of proxies) await p.appender.flush();
    expect((await auditRows(rate.grant.id)).length).toBe(150);
    expect((await auditRows(grant.id)).filter((r) => r.decision === 'quota_unconfirmed')).toHaveLength(9);

    // Back, empty (no persistence): a new epoch, seeded from PostgreSQL's 10.
    await redis.restart();
    await epochReady();
    await eventually(
      async () => (await rawRequest(proxies[0]!.port, 'GET', '/quota-api/x', headers)).status === 200,
      10_000,
    );
    const rest = await burst(ports(), 60, '/quota-api/x', headers);
    expect(rest.filter((r) => r.status === 200)).toHaveLength(39);
    expect(upstream.hits.get(grant.id)).toBe(50);
    expect(await committedUse(grant.id)).toMatchObject({ requests: 50 });
  });

  it('JITGATE_QUOTA_WHEN_REDIS_DOWN=local: a proxy admits quota calls on its own count while Redis is down, and adds them when it is back', async () => {
    const local = await startProxy('local');
    try {
      const { grant, headers } = await grantOn('quota-api', { requests: 20 });
      await epochReady();
      for (let n = 0; n < 5; n++)
        expect((await rawRequest(local.port, 'GET', '/quota-api/x', headers)).status).toBe(200);
      await redis.kill();
      // Its own view (5 committed) plus what it admits: exact for one proxy.
      const down = await burst([local.port], 30, '/quota-api/x', headers);
      expect(down.filter((r) => r.status === 200)).toHaveLength(15);
      expect(down.filter((r) => r.status !== 200).every((r) => r.error === 'quota_exhausted')).toBe(true);
      // The fail-closed proxies refuse meanwhile.
      expect((await rawRequest(proxies[0]!.port, 'GET', '/quota-api/x', headers)).json().error).toBe(
        'quota_unconfirmed',
      );
      await redis.restart();
      await epochReady();
      // The shared count holds the 20 (from PostgreSQL, or re-registered): nobody admits more.
      const back = await burst(ports(), 30, '/quota-api/x', headers);
      expect(back.every((r) => r.status !== 200)).toBe(true);
      expect(upstream.hits.get(grant.id)).toBe(20);
      expect(await committedUse(grant.id)).toMatchObject({ requests: 20 });
    } finally {
      proxies.splice(proxies.indexOf(local), 1);
      await stopProxy(local);
    }
  });
});

describe('Redis frozen', () => {
  it('SIGSTOP: no call waits on it past the command timeout; quota calls 503, others per process; shared again after SIGCONT', async () => {
    const rate = await grantOn('rate-api');
    const { grant, headers } = await grantOn('quota-api', { requests: 100 });
    await epochReady();
    for (const port of ports())
      expect((await rawRequest(port, 'GET', '/quota-api/x', headers)).status).toBe(200);
    redis.freeze();
    try {
      const started = performance.now();
      // One after another: after a proxy's first timed-out round trip (300 ms here) its calls go
      // straight to the fallback until a heartbeat is answered, rather than each waiting again.
      const quota: Awaited<ReturnType<typeof burst>> = [];
      for (let n = 0; n < 30; n++)
        quota.push(...(await burst([ports()[n % 3]!], 1, '/quota-api/x', headers)));
      const others = await burst(ports(), 30, '/rate-api/x', rate.headers);
      // Loose on purpose (a loaded machine): 30 × 300 ms would be 9 s.
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(quota.every((r) => r.status === 503 && r.error === 'quota_unconfirmed')).toBe(true);
      expect(others.every((r) => r.status === 200)).toBe(true);
    } finally {
      redis.thaw();
    }
    await eventually(
      async () => (await rawRequest(proxies[0]!.port, 'GET', '/quota-api/x', headers)).status === 200,
    );
    expect(upstream.hits.get(grant.id)).toBe(4);
  });
});

describe('the grant row stays the count of record', () => {
  it('what the proxies committed is in grants.used_requests and used_response_bytes', async () => {
    const { grant, headers } = await grantOn('quota-api', { requests: 10, bytes: 100_000 });
    await burst(ports(), 12, '/quota-api/bytes?n=100', headers);
    await committedUse(grant.id);
    const [row] = await database.db.select().from(grants).where(eq(grants.id, grant.id));
    expect(row).toMatchObject({ usedRequests: 10, usedResponseBytes: 1000 });
  });
});
