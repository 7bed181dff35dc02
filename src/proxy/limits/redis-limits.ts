import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { QuotaWhenRedisDown } from '../../config.ts';
import type { Clock } from '../../shared/clock.ts';
import type { ActiveGrant } from '../active-grants.ts';
import type { QuotaTracker } from '../quota.ts';
import { createRateLimiter, type RateLimit } from '../rate-limit.ts';
import {
  ALLOWED,
  type CallLimits,
  COUNTED,
  hasQuota,
  type LimitDecision,
  QUOTA_EXHAUSTED,
  QUOTA_UNCONFIRMED,
  rateLimited,
} from './call-limits.ts';
import { ADD, ADMIT, HEARTBEAT, SEED } from './scripts.ts';

export interface RedisLimitsOptions {
  /**
   * A connection for the request path: no offline queue and a short command timeout, so an
   * outage answers at once (`connectReplayRedis` in src/tokens/dpop-replay.ts shapes one).
   */
  redis: Redis;
  /** This process's pending counts, settled by the audit appender (pass this object to it). */
  quota: QuotaTracker;
  clock: Clock;
  whenRedisDown: QuotaWhenRedisDown;
  /** The grant's committed totals, read fresh from PostgreSQL (the seed of its shared count). */
  readGrantUse(grantId: string): Promise<{ requests: number; bytes: number } | undefined>;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** Default `jitgate:limits:`; tests use a random one. */
  prefix?: string;
  /** How often the proxy says it is alive (and learns the proxy count and epoch). Default 1000 ms. */
  heartbeatMs?: number;
  /**
   * How long counted bytes may wait to be sent to the shared count, so that the bytes of many
   * calls travel in one command. Default 0: at the end of the event-loop turn that sent them.
   */
  flushMs?: number;
}

interface RedisLimitsStats {
  /** Live proxy processes at the last heartbeat (at least 1: this one). */
  proxies: number;
  epoch: string | undefined;
  redisReady: boolean;
}

export interface RedisLimits extends CallLimits, QuotaTracker {
  /** First heartbeat; resolves whether or not Redis answered (the proxy starts either way). */
  start(): Promise<void>;
  /** Stops the heartbeat, adds what is still unsent, and leaves the proxy count. */
  close(): Promise<void>;
  stats(): RedisLimitsStats;
}

type Reply = [number, (number | string)?];
type ScriptCall = (numberOfKeys: number, ...args: (string | number)[]) => Promise<Reply>;

interface Pending {
  calls: number;
  bytes: number;
  /** The totals PostgreSQL committed, as the audit appender last learned them. */
  committedCalls: number;
  committedBytes: number;
}

const HOUR_MS = 3_600_000;
const MAX_ATTEMPTS = 4;

/**
 * The per-grant rate limit and quota shared by every proxy process through Redis: each call is
 * ONE round trip (one Lua script takes the rate token and reserves the quota call atomically).
 * PostgreSQL stays the count of record (the audit appender adds each batch's calls and bytes to
 * the grant's row); Redis holds the live count, which never falls below it (see scripts.ts for
 * seeding, epochs and recovery).
 *
 * Redis unreachable (or a reply not in time): the rate limit falls back to this process's own
 * buckets at the policy's rate divided by the last known number of live proxies; a quota grant's
 * call is refused with 503 `quota_unconfirmed` (`fail_closed`), or admitted against this
 * process's own view as without Redis (`local`; what it admitted is added to the shared count
 * when Redis is back). Either way every call is still checked, forwarded or refused, and audited
 * as usual.
 */
export function createRedisLimits(options: RedisLimitsOptions): RedisLimits {
  const { redis, quota, clock, logger } = options;
  const prefix = options.prefix ?? 'jitgate:limits:';
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const heartbeatTtlMs = heartbeatMs * 3;
  // Every live proxy heartbeats at least twice in this window, so it has re-registered its
  // reservations before anyone admits a quota call against the new epoch.
  const recoveryMs = heartbeatTtlMs;
  const flushMs = options.flushMs ?? 0;
  const proxyId = `p${randomBytes(6).toString('hex')}`;
  const epochKey = `${prefix}epoch`;
  const proxiesKey = `${prefix}proxies`;
  const grantKey = (id: string) => `${prefix}g:${id}`;

  redis.defineCommand('jitgateLimitsAdmit', { lua: ADMIT });
  redis.defineCommand('jitgateLimitsSeed', { lua: SEED });
  redis.defineCommand('jitgateLimitsAdd', { lua: ADD });
  redis.defineCommand('jitgateLimitsHeartbeat', { lua: HEARTBEAT });
  const script = (name: string): ScriptCall => {
    const command = (redis as unknown as Record<string, ScriptCall>)[name];
    if (!command) throw new Error(`ioredis did not define ${name}`);
    return command.bind(redis);
  };
  const admitScript = script('jitgateLimitsAdmit');
  const seedScript = script('jitgateLimitsSeed');
  const addScript = script('jitgateLimitsAdd');
  const heartbeatScript = script('jitgateLimitsHeartbeat');

  /** Fallback buckets, used only while Redis cannot be reached. */
  const localRate = createRateLimiter({ clock });
  let knownEpoch: string | undefined;
  let proxies = 1;
  let reachable = true;
  /** Re-registering this process's reservations under a new epoch; calls wait for it. */
  let adopting: Promise<void> | undefined;
  const unsent = new Map<string, Pending>();
  let flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  let flushing: Promise<void> | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let closed = false;

  function noteReachable(up: boolean, error?: unknown): void {
    if (up === reachable) return;
    reachable = up;
    if (up) logger.info({ proxies }, 'shared limits: Redis reachable again');
    else
      logger.warn(
        { err: error, proxies, quotaWhenRedisDown: options.whenRedisDown },
        'shared limits: Redis unreachable; rate limits per process (divided by the proxy count), quotas ' +
          (options.whenRedisDown === 'local' ? 'per process' : 'refused (quota_unconfirmed)'),
      );
  }

  function pendingOf(grantId: string): Pending {
    let p = unsent.get(grantId);
    if (!p) {
      p = { calls: 0, bytes: 0, committedCalls: 0, committedBytes: 0 };
      unsent.set(grantId, p);
    }
    return p;
  }

  function scheduleFlush(): void {
    if (flushTimer || closed) return;
    const run = () => {
      flushTimer = undefined;
      void flush();
    };
    flushTimer = flushMs === 0 ? setImmediate(run) : setTimeout(run, flushMs);
    flushTimer.unref();
  }

  /** Adds what was counted here to the shared counts; kept for the next try if Redis fails. */
  function flush(): Promise<void> {
    if (flushing) return flushing.then(() => (unsent.size > 0 ? flush() : undefined));
    if (unsent.size === 0 || redis.status !== 'ready') return Promise.resolve();
    flushing = (async () => {
      if (adopting) await adopting;
      const epoch = knownEpoch;
      if (epoch === undefined || unsent.size === 0) return;
      const batch = [...unsent];
      unsent.clear();
      const keys = [epochKey, ...batch.map(([id]) => grantKey(id))];
      const args: (string | number)[] = [epoch, 2 * 24 * HOUR_MS];
      for (const [, p] of batch) args.push(p.calls, p.bytes, p.committedCalls, p.committedBytes);
      try {
        const [code, current] = await addScript(keys.length, ...keys, ...args);
        noteReachable(true);
        // Counted under an epoch that is gone: the new epoch gets this process's reservations
        // from `quota.unsettled()` instead, and what was committed is in PostgreSQL's seed.
        if (code === 5) adopt(String(current ?? ''));
      } catch (error) {
        noteReachable(false, error);
        for (const [id, p] of batch) {
          const back = pendingOf(id);
          back.calls += p.calls;
          back.bytes += p.bytes;
          back.committedCalls = Math.max(back.committedCalls, p.committedCalls);
          back.committedBytes = Math.max(back.committedBytes, p.committedBytes);
        }
      }
    })().finally(() => {
      flushing = undefined;
    });
    return flushing;
  }

  /**
   * Redis's epoch is not the one this process counted under: it lost its data, or this process
   * has just started. Whatever this process admitted that PostgreSQL has not committed is added
   * to the new epoch before any call of this process is admitted against it.
   */
  function adopt(epoch: string): Promise<void> {
    if (adopting) return adopting;
    unsent.clear();
    if (epoch === '') {
      knownEpoch = undefined;
      return Promise.resolve();
    }
    knownEpoch = epoch;
    const reservations = [...quota.unsettled()];
    if (reservations.length === 0) return Promise.resolve();
    const keys = [epochKey, ...reservations.map(([id]) => grantKey(id))];
    const args: (string | number)[] = [epoch, 2 * 24 * HOUR_MS];
    for (const [, r] of reservations) args.push(r.requests, r.bytes, 0, 0);
    adopting = addScript(keys.length, ...keys, ...args)
      .then(([code, current]) => {
        noteReachable(true);
        logger.info({ epoch, grants: reservations.length }, 'shared limits: re-registered reservations');
        if (code === 5) {
          adopting = undefined;
          return adopt(String(current ?? ''));
        }
        return undefined;
      })
      .catch((error: unknown) => {
        noteReachable(false, error);
        // Not known to have landed: register again under whatever epoch is found next. Twice
        // counts a call twice (fewer calls allowed), never zero times.
        knownEpoch = undefined;
      })
      .finally(() => {
        adopting = undefined;
      });
    return adopting;
  }

  async function heartbeat(): Promise<void> {
    if (redis.status !== 'ready') {
      noteReachable(false);
      return;
    }
    try {
      const [count, epoch] = await heartbeatScript(
        2,
        proxiesKey,
        epochKey,
        proxyId,
        heartbeatTtlMs,
        recoveryMs,
      );
      noteReachable(true);
      proxies = Math.max(1, Number(count));
      if (String(epoch) !== knownEpoch) await adopt(String(epoch));
      if (unsent.size > 0) await flush();
    } catch (error) {
      noteReachable(false, error);
    }
  }

  /** Redis cannot answer for this call. */
  function fallback(grant: ActiveGrant, rate: RateLimit, now: number): LimitDecision {
    const share = { requests: Math.max(1, Math.floor(rate.requests / proxies)), perSeconds: rate.perSeconds };
    const taken = localRate.take(grant.id, share, now);
    if (!taken.ok) return rateLimited(taken.retryAfterSeconds);
    if (!hasQuota(grant)) return ALLOWED;
    return localQuota(grant);
  }

  /** `local` mode, or refused: the shared count cannot confirm this quota call. */
  function localQuota(grant: ActiveGrant): LimitDecision {
    if (options.whenRedisDown !== 'local') return QUOTA_UNCONFIRMED;
    if (!quota.admit(grant)) return QUOTA_EXHAUSTED;
    // The shared count has not seen this call: it is added when Redis answers again.
    pendingOf(grant.id).calls += 1;
    scheduleFlush();
    return COUNTED;
  }

  async function seed(grant: ActiveGrant, ttlMs: number): Promise<void> {
    const epoch = knownEpoch;
    const committed = await options.readGrantUse(grant.id);
    if (!committed) return; // the row is gone; the next lookup will say so
    const [code, current] = await seedScript(
      2,
      grantKey(grant.id),
      epochKey,
      epoch ?? '',
      committed.requests,
      committed.bytes,
      ttlMs,
    );
    if (code === 5) await adopt(String(current ?? ''));
  }

  async function takeShared(
    grant: ActiveGrant,
    rate: RateLimit,
    now: number,
    withQuota: boolean,
    ttlMs: number,
  ): Promise<LimitDecision> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (adopting) await adopting;
      if (redis.status !== 'ready') break;
      const [code, detail] = await admitScript(
        2,
        grantKey(grant.id),
        epochKey,
        now,
        rate.requests,
        rate.perSeconds * 1000,
        withQuota ? (grant.quotaRequests ?? -1) : -1,
        withQuota ? (grant.quotaResponseBytes ?? -1) : -1,
        knownEpoch ?? '',
        ttlMs,
        proxyId,
        recoveryMs,
      );
      noteReachable(true);
      switch (code) {
        case 0:
          if (!withQuota) return ALLOWED;
          quota.reserve(grant.id);
          return COUNTED;
        case 1:
          return rateLimited(Math.max(1, Math.ceil(Number(detail) / 1000)));
        case 2:
          return QUOTA_EXHAUSTED;
        case 3:
          return localQuota(grant);
        case 4:
          await seed(grant, ttlMs);
          break;
        case 5:
          await adopt(String(detail ?? ''));
          break;
        default:
          throw new Error(`shared limits: unexpected reply ${String(code)}`);
      }
    }
    // Still unsettled after a few rounds (epochs changing under us, or Redis went away).
    return withQuota ? localQuota(grant) : fallback(grant, rate, now);
  }

  return {
    take(grant, rate, now) {
      // A failed or timed-out round trip (a frozen Redis keeps its socket open) sends every call to
      // the fallback until the next heartbeat gets an answer, instead of each waiting the timeout.
      if (redis.status !== 'ready' || !reachable) {
        noteReachable(false);
        return fallback(grant, rate, now);
      }
      const withQuota = hasQuota(grant);
      // A rate bucket refills within its period; a quota count lives as long as its grant.
      const ttlMs = withQuota
        ? Math.max(0, grant.expiresAt - now) + HOUR_MS
        : Math.ceil(rate.perSeconds * 1000) + 1000;
      return takeShared(grant, rate, now, withQuota, ttlMs).catch((error: unknown) => {
        noteReachable(false, error);
        return fallback(grant, rate, now);
      });
    },
    addBytes(grantId, bytes) {
      quota.addBytes(grantId, bytes);
      if (bytes <= 0) return;
      pendingOf(grantId).bytes += bytes;
      scheduleFlush();
    },
    admit: (grant) => quota.admit(grant),
    reserve: (grantId) => quota.reserve(grantId),
    unsettled: () => quota.unsettled(),
    settled(grantId, requests, bytes, used) {
      quota.settled(grantId, requests, bytes, used);
      const p = pendingOf(grantId);
      p.committedCalls = Math.max(p.committedCalls, used.requests);
      p.committedBytes = Math.max(p.committedBytes, used.bytes);
      scheduleFlush();
    },
    async start() {
      // The connection opens on its own; give it a moment so the first heartbeat counts this proxy.
      if (redis.status === 'connecting' || redis.status === 'connect' || redis.status === 'wait') {
        await once(redis, 'ready', { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
      }
      await heartbeat();
      heartbeatTimer = setInterval(() => void heartbeat(), heartbeatMs);
      heartbeatTimer.unref();
    },
    async close() {
      closed = true;
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      if (flushTimer) {
        clearTimeout(flushTimer as NodeJS.Timeout);
        clearImmediate(flushTimer as NodeJS.Immediate);
      }
      flushTimer = undefined;
      if (redis.status === 'ready') {
        await flush().catch(() => undefined);
        await redis.zrem(proxiesKey, proxyId).catch(() => undefined);
      }
      redis.disconnect();
    },
    stats: () => ({ proxies, epoch: knownEpoch, redisReady: redis.status === 'ready' }),
  };
}
