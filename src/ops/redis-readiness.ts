import { Redis } from 'ioredis';
import type { ReadinessCheck } from './admin-server.ts';

/** `/readyz`'s `redis` check, with the connection it pings; `close()` ends that connection. */
export interface RedisReadiness extends ReadinessCheck {
  close(): Promise<void>;
}

/**
 * A PING over a small connection of its own rather than the scheduler's: the scheduler does not
 * expose its connection, and BullMQ's `queue.client` promise settles once, at the first
 * connect; when Redis was down at start it never yields a usable client (seen with bullmq
 * 6.7), so a check built on it would keep failing after Redis is back.
 *
 * A probe never waits long: it waits at most `timeoutMs` for a connection being made (at start,
 * or a reconnect under way) and as long again for the PONG. There is no offline queue, so PINGs
 * never pile up while Redis is away, and reconnects are tried at least every second, so
 * readiness returns about a second after Redis does.
 */
export function createRedisReadiness(url: string, options: { timeoutMs?: number } = {}): RedisReadiness {
  const timeoutMs = options.timeoutMs ?? 1_000;
  const client = new Redis(url, {
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(100 * times, 1_000),
  });
  // Reported by the check (and logged by the scheduler, which uses the same Redis); without a
  // listener ioredis would print every failed reconnect to stderr.
  client.on('error', () => {});

  function connected(): Promise<boolean> {
    if (client.status === 'ready') return Promise.resolve(true);
    if (client.status === 'end') return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        client.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      client.on('ready', onReady);
    });
  }

  return {
    name: 'redis',
    async check() {
      if (!(await connected())) return false;
      return (await client.ping()) === 'PONG';
    },
    async close() {
      // Nothing to flush on a PING-only connection: no QUIT round trip to wait for.
      client.disconnect();
    },
  };
}
