import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, type JitgateChild, startJitgate } from '../helpers/jitgate-process.ts';
import { eventually } from '../helpers/proxy-fixtures.ts';
import { type OwnRedis, startOwnRedis } from '../helpers/redis-server.ts';

/**
 * `/readyz` with REDIS_URL set: Redis is one of the checks, and an outage shows and clears; it
 * takes a process out of rotation only if one of its roles needs Redis (issue 20).
 */

let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
let redis: OwnRedis;

beforeAll(async () => {
  scratch = await createScratchDatabase('jitgate_readyz');
  // A private redis-server: this test kills it, and the shared one serves other tests.
  redis = await startOwnRedis();
});

afterAll(async () => {
  await redis?.stop();
  await scratch?.drop();
});

/** Connections to the private Redis other than the one asking (the child's clients). */
async function clientsOfRedis(): Promise<number> {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    const list = String(await client.client('LIST'));
    return list.split('\n').filter((line) => line.trim() !== '').length - 1;
  } catch {
    return 0;
  } finally {
    client.disconnect();
  }
}

interface Readiness {
  status: number;
  body: { status: string; checks: Record<string, boolean> };
}

const readyz = async (child: JitgateChild): Promise<Readiness> => {
  const response = await fetch(`http://127.0.0.1:${child.adminPort}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness['body'] };
};

describe('/readyz with REDIS_URL, per role', () => {
  it('a worker names redis while it is down and is ready again once it is back; a proxy, which serves without Redis, stays in rotation', async () => {
    const proxy = await startJitgate('proxy', { DATABASE_URL: scratch.url, REDIS_URL: redis.url });
    const worker = await startJitgate('worker', { DATABASE_URL: scratch.url, REDIS_URL: redis.url });
    const last = new Map<JitgateChild, Readiness>();
    const until = (child: JitgateChild, want: (r: Readiness) => boolean, timeoutMs = 10_000) =>
      eventually(async () => {
        const r = await readyz(child);
        last.set(child, r);
        return want(r);
      }, timeoutMs);
    try {
      await until(proxy, (r) => r.status === 200);
      await until(worker, (r) => r.status === 200);
      const connections = await clientsOfRedis();
      expect(last.get(proxy)?.body).toEqual({
        status: 'ready',
        checks: { database: true, policy: true, redis: true, grant_feed: true, audit: true },
      });

      await redis.kill();
      await until(worker, (r) => r.status === 503);
      expect(last.get(worker)?.body).toEqual({
        status: 'not ready',
        checks: { database: true, policy: true, redis: false },
      });
      // The proxy can confirm grants and write its audit: ready, with Redis reported down.
      await until(proxy, (r) => r.body.checks.redis === false);
      expect(last.get(proxy)).toEqual({
        status: 200,
        body: {
          status: 'ready',
          checks: { database: true, policy: true, redis: false, grant_feed: true, audit: true },
        },
      });
      // The probe gives up on a dead Redis (1 s to connect, 1 s for the PONG) instead of holding
      // /readyz until the client's own timeouts; the bound is loose on purpose (a loaded machine).
      const probeStarted = Date.now();
      expect((await readyz(worker)).status).toBe(503);
      expect(Date.now() - probeStarted).toBeLessThan(8_000);

      await redis.restart();
      await until(worker, (r) => r.status === 200);
      expect(last.get(worker)?.body.checks.redis).toBe(true);
      await until(proxy, (r) => r.body.checks.redis === true);
      // Before stopping, let the scheduler's queues reconnect too (their backoff is slower than the
      // probe's): closing a BullMQ queue mid-reconnect waits out the 10 s shutdown step bound.
      await eventually(async () => (await clientsOfRedis()) >= connections, 15_000);
    } finally {
      // A worker's BullMQ Worker.close() can hang after Redis comes back (reported apart).
      await worker.stop('SIGKILL');
      const code = await proxy.stop('SIGTERM');
      expect(code, proxy.log()).toBe(0);
    }
    expect(proxy.log()).not.toContain('shutdown step failed');
  });
});
