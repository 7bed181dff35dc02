import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Database } from '../db/client.ts';
import { revokedThumbprints } from '../db/queries/devices.ts';
import { type GrantViewRow, grantsForReload, grantsForView } from '../db/queries/grants/proxy-use.ts';
import { publishOnGrantFeed, revokedDeviceOf } from '../outbox/grant-feed.ts';
import { type Clock, systemClock } from '../shared/clock.ts';
import { isUuid } from '../shared/ids.ts';

/**
 * The proxy's in-memory view of active grants, kept live by the grant change feed.
 *
 * Feed contract (the access service): every transaction that creates, extends, revokes or
 * expires a grant runs `select pg_notify(<channel('grants')>, <grant id>)`, so a message
 * arrives after that commit. The view:
 * - on (re)connect reloads every active grant, and the recently ended ones whose tokens may
 *   still verify, and only then reports itself live;
 * - on a message re-reads that grant (bursts coalesce into one `where id in (…)` query);
 * - on a lost connection stops being live at once: callers answer 503 (fail closed).
 *
 * All reads run one at a time in arrival order. That is what makes the view correct
 * without version checks: a change committed after a reload's snapshot notifies after
 * the reload began, so its re-read is queued behind the reload and applied after it.
 *
 * Revoked device keys ride the same feed (`device:<thumbprint>`, src/devices/): a reload
 * loads every revoked key with the grants, a message adds one. A revocation is for ever, so
 * the set only grows and a message can be applied at once, out of the read queue: nothing it
 * races can make the view forget it. Being one feed, one liveness check covers both, and a
 * device-bound token is confirmed only while grants are.
 *
 * Liveness: a connection can die without a FIN (a NAT drops it, a host freezes), and then
 * nothing tells postgres.js for minutes. So every `livenessIntervalMs` the view sends a
 * NOTIFY to its own channel through the ordinary pool and expects to hear it back on the
 * listening connection within `livenessTimeoutMs`. A round trip proves both the database
 * and the subscription work; a missed one marks the view not live and re-subscribes (which
 * reloads). Other instances hear the ping too and ignore it (payload `ping:…` is not a
 * grant id). Worst case a dead feed is noticed after interval + timeout (default 3 s); the
 * cost is one tiny NOTIFY per second per proxy.
 */

export interface ActiveGrant {
  id: string;
  userId: string;
  resource: string;
  scope: string;
  /** Epoch ms. */
  startsAt: number;
  /** Epoch ms; the proxy compares it with its clock on every call. */
  expiresAt: number;
  /**
   * Quota over the grant's life and what the database had counted when this row was read
   * (all proxies' committed calls). Undefined quota: unlimited, and the proxy skips the check.
   */
  quotaRequests: number | undefined;
  quotaResponseBytes: number | undefined;
  usedRequests: number;
  usedResponseBytes: number;
}

type GrantLookup =
  | { kind: 'active'; grant: ActiveGrant }
  /** The feed is down or not yet loaded: nothing can be confirmed. */
  | { kind: 'unconfirmed' }
  /** Seen ending while this process watched, or ended with its tokens unexpired at the last reload. */
  | { kind: 'ended'; status: 'revoked' | 'expired' }
  | { kind: 'unknown' };

export type DeviceKeyState = 'usable' | 'revoked' | 'unconfirmed';

/** What the proxy needs from the view on its hot path. */
export interface ActiveGrantView {
  lookup(grantId: string): GrantLookup;
  /** Whether tokens bound to the device key `thumbprint` may be used; `unconfirmed` while not live. */
  deviceKeyState(thumbprint: string): DeviceKeyState;
  isLive(): boolean;
}

interface ActiveGrantViewStats {
  live: boolean;
  active: number;
  ended: number;
  revokedDevices: number;
  reloads: number;
  refetches: number;
}

export interface ManagedActiveGrantView extends ActiveGrantView {
  /** Subscribes and loads; resolves once the view is live for the first time. */
  start(): Promise<void>;
  /** Resolves when the view is next live (immediately if it is). */
  whenLive(): Promise<void>;
  close(): Promise<void>;
  stats(): ActiveGrantViewStats;
}

export interface ActiveGrantViewOptions {
  database: Database;
  logger: Logger;
  /** Round-trip ping period; 0 disables (embedded mode, where the feed is in-process). Default 100. */
  livenessIntervalMs?: number;
  /**
   * A ping whose NOTIFY committed but did not come back within this long means a dead feed: the
   * view fails closed at once and re-subscribes. Default 400, so a frozen feed (connection alive,
   * backend silent) is noticed within ~0.6 s, inside README's "within a second". A ping slow to
   * commit (a slow database, not a dead feed) gets four times as long.
   */
  livenessTimeoutMs?: number;
  /**
   * Ended grants remembered to tell "revoked" from "unknown"; a reload loads the most recently
   * ended first. Default 10,000. Safe as a bound: a forgotten ended grant is still refused, only
   * as `grant_not_found` (raising no `revoked_token_use` alert) instead of `grant_revoked`.
   */
  maxEnded?: number;
  /** The clock of the proxy's token verifier (no tolerance): a reload skips grants whose tokens it no longer verifies. */
  clock?: Clock;
  /** Delay before retrying a failed reload. Default 500. */
  retryDelayMs?: number;
}

const UNCONFIRMED: GrantLookup = Object.freeze({ kind: 'unconfirmed' });
const UNKNOWN: GrantLookup = Object.freeze({ kind: 'unknown' });
const REVOKED: GrantLookup = Object.freeze({ kind: 'ended', status: 'revoked' });
const EXPIRED: GrantLookup = Object.freeze({ kind: 'ended', status: 'expired' });
/** Ids per refetch query; a burst larger than this takes several queries. */
const REFETCH_BATCH = 500;

/**
 * The map's value is the lookup result itself, built once per grant: a lookup allocates
 * nothing and goes map → answer in one hop. (A wrapper object per grant used to sit in
 * between; dropping it saved ~30 bytes per grant.) A grant costs ~250 bytes of heap in all
 * (bench, 100,000 grants). Lookup cost stays flat for the grants actually calling; uniformly
 * scattered lookups over 100,000 grants cost more only because the view no longer fits the
 * CPU caches (see the bench's notes).
 */
type ActiveLookup = { kind: 'active'; grant: ActiveGrant };

const toLookup = (r: GrantViewRow): ActiveLookup =>
  Object.freeze({
    kind: 'active',
    grant: Object.freeze({
      id: r.id,
      userId: r.userId,
      resource: r.resource,
      scope: r.scope,
      startsAt: r.startsAt.getTime(),
      expiresAt: r.expiresAt.getTime(),
      quotaRequests: r.quotaRequests ?? undefined,
      quotaResponseBytes: r.quotaResponseBytes ?? undefined,
      usedRequests: r.usedRequests,
      usedResponseBytes: r.usedResponseBytes,
    }),
  });

interface Ping {
  payload: string;
  sentAt: number;
  committedAt: number | undefined;
}

export function createActiveGrantView(options: ActiveGrantViewOptions): ManagedActiveGrantView {
  const { database, logger } = options;
  const db = database.db;
  const channel = database.channel('grants');
  const intervalMs = options.livenessIntervalMs ?? 100;
  const timeoutMs = options.livenessTimeoutMs ?? 400;
  const maxEnded = options.maxEnded ?? 10_000;
  const clock = options.clock ?? systemClock;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const pingPrefix = `ping:${randomBytes(6).toString('hex')}:`;

  let active = new Map<string, ActiveLookup>();
  const ended = new Map<string, GrantLookup>();
  const revokedDevices = new Set<string>();
  let live = false;
  let connected = false;
  /** Bumped on every connect and disconnect: a reload only makes the view live for its own epoch. */
  let epoch = 0;
  let closed = false;
  let unlisten: (() => Promise<void>) | undefined;
  let resubscribing = false;

  let wantReload = false;
  const pending = new Set<string>();
  let running = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let reloads = 0;
  let refetches = 0;
  let liveWaiters: (() => void)[] = [];

  let pingTimer: NodeJS.Timeout | undefined;
  let pingSeq = 0;
  /**
   * Our ping in flight: `committedAt` is when its NOTIFY committed. Only from then on does its
   * silence say the feed is dead; a NOTIFY slow to commit says the database is slow.
   */
  let outstanding: Ping | undefined;
  let lastTick = performance.now();

  function setLive(next: boolean): void {
    if (live === next) return;
    live = next;
    logger.info({ live }, next ? 'grant view is live' : 'grant view is not live; failing closed');
    if (next) {
      const waiters = liveWaiters;
      liveWaiters = [];
      for (const w of waiters) w();
    }
  }

  function remember(id: string, status: string): void {
    ended.delete(id);
    ended.set(id, status === 'revoked' ? REVOKED : EXPIRED);
    const oldest = ended.keys().next().value;
    if (ended.size > maxEnded && oldest !== undefined) ended.delete(oldest);
  }

  /** One snapshot. Ended grants go in oldest ending first, so the cap evicts the most recent last. */
  async function reloadAll(): Promise<void> {
    for (const thumbprint of await revokedThumbprints(db)) revokedDevices.add(thumbprint);
    const rows = await grantsForReload(db, clock.now(), maxEnded);
    const next = new Map<string, ActiveLookup>();
    const endedRows: typeof rows = [];
    for (const row of rows) {
      if (row.status !== 'active') {
        endedRows.push(row);
        continue;
      }
      next.set(row.id, toLookup(row));
      ended.delete(row.id);
    }
    endedRows.sort((a, b) => (a.endedAt?.getTime() ?? 0) - (b.endedAt?.getTime() ?? 0));
    for (const row of endedRows) remember(row.id, row.status);
    active = next;
    reloads++;
  }

  async function refetch(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += REFETCH_BATCH) {
      const batch = ids.slice(i, i + REFETCH_BATCH);
      const rows = await grantsForView(db, batch);
      const seen = new Set<string>();
      for (const row of rows) {
        seen.add(row.id);
        if (row.status === 'active') {
          active.set(row.id, toLookup(row));
          ended.delete(row.id);
        } else {
          active.delete(row.id);
          remember(row.id, row.status);
        }
      }
      // A deleted row (tests, manual cleanup) is simply gone.
      for (const id of batch) if (!seen.has(id)) active.delete(id);
      refetches++;
    }
  }

  function kick(): void {
    if (running || closed) return;
    running = true;
    void drain().finally(() => {
      running = false;
      if ((wantReload || pending.size > 0) && !closed && retryTimer === undefined) kick();
    });
  }

  async function drain(): Promise<void> {
    try {
      while (!closed && (wantReload || pending.size > 0)) {
        if (wantReload) {
          wantReload = false;
          // Ids notified before this reload's snapshot are covered by it.
          pending.clear();
          const myEpoch = epoch;
          await reloadAll();
          if (myEpoch === epoch && connected) setLive(true);
        } else {
          const ids = [...pending];
          pending.clear();
          await refetch(ids);
        }
      }
    } catch (error) {
      // A failed read may have lost notifications: stop confirming until a full reload works.
      logger.error({ err: error }, 'grant view read failed; failing closed and reloading');
      setLive(false);
      wantReload = true;
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        kick();
      }, retryDelayMs);
      retryTimer.unref();
    }
  }

  const handlers = {
    onMessage(payload: string) {
      if (outstanding && payload === outstanding.payload) {
        outstanding = undefined;
        return;
      }
      if (payload.startsWith('ping:')) return;
      const revokedDevice = revokedDeviceOf(payload);
      if (revokedDevice !== undefined) {
        revokedDevices.add(revokedDevice);
        return;
      }
      if (!isUuid(payload)) {
        logger.warn(
          { payload: payload.slice(0, 64) },
          'ignoring a grant notification that is not a grant id',
        );
        return;
      }
      pending.add(payload.toLowerCase());
      kick();
    },
    onConnect() {
      // Every (re)connect may follow lost notifications: fail closed until the reload is done.
      // A connect while still "connected" is treated the same way, defensively.
      if (connected) logger.warn('grant feed reconnected; reloading');
      connected = true;
      epoch++;
      setLive(false);
      outstanding = undefined;
      wantReload = true;
      kick();
    },
    onDisconnect() {
      connected = false;
      epoch++;
      setLive(false);
    },
  };

  async function subscribe(): Promise<void> {
    unlisten = await database.listen(channel, handlers);
  }

  async function resubscribe(): Promise<void> {
    if (resubscribing || closed) return;
    resubscribing = true;
    connected = false;
    epoch++;
    setLive(false);
    try {
      const old = unlisten;
      unlisten = undefined;
      // Not awaited: a frozen backend never answers, and ending its connection takes its timeout.
      void old?.().catch(() => undefined);
      await subscribe();
    } catch (error) {
      logger.error({ err: error }, 'grant feed re-subscribe failed; will retry');
    } finally {
      resubscribing = false;
    }
  }

  function tick(): void {
    if (closed || resubscribing) return;
    const now = performance.now();
    // A tick long overdue means this process stalled (a loaded machine, a long GC): the feed's
    // messages may be waiting unread on the socket, so silence is judged from the next tick on.
    const stalled = now - lastTick > intervalMs * 3;
    lastTick = now;
    if (stalled) {
      if (outstanding) {
        outstanding.sentAt = now;
        if (outstanding.committedAt !== undefined) outstanding.committedAt = now;
      }
      return;
    }
    if (outstanding) {
      const { committedAt, sentAt } = outstanding;
      if (committedAt !== undefined && now - committedAt > timeoutMs) {
        // Alive but silent (a frozen backend, a half-open connection): nothing it says can be trusted.
        logger.warn({ timeoutMs }, 'grant feed silent; failing closed and re-subscribing');
        outstanding = undefined;
        void resubscribe();
      } else if (committedAt === undefined && now - sentAt > timeoutMs * 4) {
        logger.warn({ timeoutMs: timeoutMs * 4 }, 'grant feed ping not heard back; re-subscribing');
        outstanding = undefined;
        void resubscribe();
      }
      return;
    }
    if (!unlisten) {
      void resubscribe();
      return;
    }
    if (!connected) return;
    const payload = `${pingPrefix}${++pingSeq}`;
    const ping: Ping = { payload, sentAt: now, committedAt: undefined };
    outstanding = ping;
    publishOnGrantFeed(db, channel, [payload]).then(
      () => {
        ping.committedAt = performance.now();
      },
      (error: unknown) => {
        // The database itself is unreachable: nothing can be confirmed.
        logger.warn({ err: error }, 'grant feed ping failed');
        setLive(false);
      },
    );
  }

  return {
    lookup(grantId) {
      if (!live) return UNCONFIRMED;
      const found = active.get(grantId);
      if (found) return found;
      return ended.get(grantId) ?? UNKNOWN;
    },
    deviceKeyState(thumbprint) {
      if (!live) return 'unconfirmed';
      return revokedDevices.has(thumbprint) ? 'revoked' : 'usable';
    },
    isLive: () => live,
    async start() {
      await subscribe();
      if (intervalMs > 0) {
        pingTimer = setInterval(tick, intervalMs);
        pingTimer.unref();
      }
      await this.whenLive();
    },
    whenLive() {
      if (live) return Promise.resolve();
      return new Promise<void>((resolve) => liveWaiters.push(resolve));
    },
    async close() {
      closed = true;
      setLive(false);
      if (pingTimer) clearInterval(pingTimer);
      if (retryTimer) clearTimeout(retryTimer);
      const old = unlisten;
      unlisten = undefined;
      await old?.();
    },
    stats: () => ({
      live,
      active: active.size,
      ended: ended.size,
      revokedDevices: revokedDevices.size,
      reloads,
      refetches,
    }),
  };
}
