import { Redis } from 'ioredis';
import type { Clock } from '../shared/clock.ts';

/**
 * Whether a DPoP proof's `jti` is seen for the first time. `unavailable` is the fail-closed
 * answer when the cache cannot say (Redis unreachable, or the in-process cache full of live
 * entries): the proof is then refused, never accepted unchecked.
 */
export type ReplayVerdict = 'fresh' | 'replayed' | 'unavailable';

/**
 * Remembers proof ids for as long as their proofs are acceptable. `claim` records `key` for
 * `ttlMs` and says whether it was already recorded; of two concurrent claims of one key,
 * exactly one is `fresh`. No implementation touches PostgreSQL.
 */
export interface ReplayCache {
  claim(key: string, ttlMs: number): Promise<ReplayVerdict>;
}

export interface MemoryReplayCacheOptions {
  clock: Clock;
  /**
   * Live entries kept at most; default 200,000 (about 25 MB). Past it, new proofs are refused
   * (`unavailable`) rather than an unexpired id being forgotten, which would reopen a replay.
   */
  maxEntries?: number;
}

/**
 * One process's replay cache: a Map in insertion order, so expired entries are dropped from its
 * head. Every entry lives at most the proof window (a minute or so), so the head is nearly in
 * expiry order; a full cache also sweeps the rest before refusing.
 */
export function createMemoryReplayCache(options: MemoryReplayCacheOptions): ReplayCache & {
  readonly size: number;
} {
  const maxEntries = options.maxEntries ?? 200_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Error('createMemoryReplayCache: maxEntries must be a positive integer');
  }
  const expiries = new Map<string, number>();

  function dropExpiredHead(now: number): void {
    for (const [key, expiresAt] of expiries) {
      if (expiresAt > now) return;
      expiries.delete(key);
    }
  }

  function sweep(now: number): void {
    for (const [key, expiresAt] of expiries) if (expiresAt <= now) expiries.delete(key);
  }

  return {
    get size() {
      return expiries.size;
    },
    async claim(key, ttlMs) {
      const now = options.clock.now().getTime();
      const known = expiries.get(key);
      if (known !== undefined && known > now) return 'replayed';
      expiries.delete(key);
      dropExpiredHead(now);
      if (expiries.size >= maxEntries) {
        sweep(now);
        if (expiries.size >= maxEntries) return 'unavailable';
      }
      expiries.set(key, now + Math.max(1, Math.ceil(ttlMs)));
      return 'fresh';
    },
  };
}

export interface RedisReplayCacheOptions {
  /**
   * A client for the request path: `enableOfflineQueue: false` and a short `commandTimeout`, so an
   * outage refuses proofs at once instead of queueing calls (see `connectReplayRedis`).
   */
  redis: Redis;
  /** Prepended to every key; tests use a random one. Default `jitgate:dpop:`. */
  prefix?: string;
  /** Told about each failed round trip (the verdict is then `unavailable`). */
  onError?: (error: unknown) => void;
}

/**
 * The replay cache every proxy shares: one `SET key 1 NX PX ttl` round trip per proof, which
 * Redis answers atomically (`OK` for the first writer, nil for everyone after), and which
 * expires on its own when the proof could no longer be accepted anyway.
 */
export function createRedisReplayCache(options: RedisReplayCacheOptions): ReplayCache {
  const prefix = options.prefix ?? 'jitgate:dpop:';
  return {
    async claim(key, ttlMs) {
      try {
        const set = await options.redis.set(
          `${prefix}${key}`,
          '1',
          'PX',
          Math.max(1, Math.ceil(ttlMs)),
          'NX',
        );
        return set === 'OK' ? 'fresh' : 'replayed';
      } catch (error) {
        options.onError?.(error);
        return 'unavailable';
      }
    },
  };
}

/** A Redis connection shaped for the replay check: no offline queue, bounded waits, quick reconnects. */
export function connectReplayRedis(url: string, timeoutMs = 500): Redis {
  const client = new Redis(url, {
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Every proof is one SET: those issued in one event-loop turn go out in one write and come
    // back in one read, instead of a system call each way per proof.
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(100 * times, 1_000),
  });
  // Failures are reported through the cache's onError; without a listener ioredis prints each one.
  client.on('error', () => {});
  return client;
}
