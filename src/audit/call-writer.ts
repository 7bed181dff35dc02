import type { Logger } from 'pino';
import type postgres from 'postgres';
import type { Db, Tx } from '../db/client.ts';
import { auditHashAt, lockAuditChain } from '../db/queries/audit-events/append.ts';
import { appendBatchPipelined } from '../db/queries/audit-events/pipelined-append.ts';
import { recordGrantsLastUse } from '../db/queries/grants/proxy-use.ts';
import type { QuotaTracker } from '../proxy/quota.ts';
import type { CallRecord, CallSink } from '../shared/call-record.ts';
import { isUuid } from '../shared/ids.ts';
import { callAuditRow } from './call-row.ts';
import {
  type AppendedBatch,
  type AuditEventInput,
  appendChainedPrefixes,
  chainFrom,
  eventRowPrefix,
} from './chain-append.ts';

export interface AuditAppenderOptions {
  db: Db;
  /**
   * postgres.js's own client under `db` (postgresClientOf). Given, a first attempt at a batch
   * that carries no quota use goes pipelined on it (two round trips, see pipelined-append.ts);
   * retries, batches that settle quotas, and every batch without it (PGlite) take `db.transaction`.
   */
  client?: postgres.Sql;
  /** Records held in memory at most; past it `hasCapacity()` is false and the proxy answers 503. */
  maxQueue?: number;
  /**
   * Room kept for calls admitted by `hasCapacity()` but not yet offered (in flight
   * upstream): capacity reads false this many records before the hard bound, so an
   * admitted call still finds a place. Default a tenth of `maxQueue`.
   */
  headroom?: number;
  /** Records per transaction at most. */
  batchSize?: number;
  /** A partial batch waits at most this long before it is written. */
  flushIntervalMs?: number;
  /** First retry delay after a failed batch; doubles up to `maxRetryDelayMs`. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  logger?: Pick<Logger, 'warn' | 'error'>;
  /** Injected for tests; defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Settles each batch's calls against their grants' quotas in the batch's transaction: the
   * access action that owns grant state (src/access/quota.ts), passed in. Without it (tests of
   * the chain alone) calls count toward no quota.
   */
  settleQuota?: SettleQuotaUse;
  /** The proxy's quota tracker, told after each commit what this batch settled. */
  quota?: QuotaTracker;
}

interface AuditAppenderStats {
  queued: number;
  written: number;
  batches: number;
  failedAttempts: number;
}

export interface AuditAppender extends CallSink {
  /** Resolves once every record offered before the call is committed. */
  flush(): Promise<void>;
  /** Stops accepting records, writes everything still queued, then resolves. */
  close(): Promise<void>;
  stats(): AuditAppenderStats;
}

/** One grant's share of a batch of proxied calls. */
interface QuotaUse {
  grantId: string;
  requests: number;
  bytes: number;
  /** The latest call's time. */
  at: Date;
}

export interface QuotaSettlement {
  grantId: string;
  requests: number;
  bytes: number;
  usedRequests: number;
  usedBytes: number;
  /** This batch is the one that reached the quota. */
  exhausted: boolean;
  userId: string;
  resource: string;
}

/**
 * Adds a batch's quota use to its grants inside the batch's transaction, BEFORE the audit
 * chain's lock is taken, and says what it settled plus the audit rows to append with the
 * batch (the grant that reached its quota).
 */
export type SettleQuotaUse = (
  tx: Tx,
  uses: readonly QuotaUse[],
) => Promise<{ settlements: QuotaSettlement[]; audit: AuditEventInput[] }>;

/** Each grant's share of the records that count toward quotas. */
function quotaUseOf(records: readonly CallRecord[]): QuotaUse[] {
  const use = new Map<string, QuotaUse>();
  for (const record of records) {
    if (!record.quotaCounted || !isUuid(record.grantId)) continue;
    const u = use.get(record.grantId);
    if (u) {
      u.requests += 1;
      u.bytes += record.responseBytes;
      if (record.at > u.at) u.at = record.at;
    } else
      use.set(record.grantId, {
        grantId: record.grantId,
        requests: 1,
        bytes: record.responseBytes,
        at: record.at,
      });
  }
  return [...use.values()];
}

/** Thrown inside a retry's transaction to roll back its quota update when the batch had committed after all. */
class AlreadyCommitted extends Error {}

/**
 * The grants a batch locks before the chain's lock, with the time to move each one's
 * `last_used_at` to: the latest allowed call's, or null (lock only) for a grant that only
 * counts quota use here. Why the batch takes them all first, in ONE statement in id order
 * (recordGrantsLastUse), inside its transaction and BEFORE the chain's lock:
 *
 * - every writer of grant rows takes them before the chain's lock, never after: the access
 *   actions (`access/commit.ts`: the conditional UPDATE in `work`, then the audit rows), the
 *   intent replay (quota, then the chain), and this appender. The chain lock's holder
 *   therefore never waits for a grant row, so no cycle can run through the chain lock;
 * - among grant rows, every writer of more than one takes them in id order (this statement,
 *   addGrantQuotaUse, endGrantsOf) or skips the locked ones (the expiry and idle sweeps), and
 *   the rest take one row each; two transactions can then never each hold a row the other waits for;
 * - the quota statement that follows (settleQuota) touches a subset of these rows, already
 *   held: it takes no lock of its own, so where it runs in the transaction changes nothing.
 *
 * Inside the transaction, "flushed" means "last use recorded" too, and a batch rolled back
 * moves no last use.
 */
function grantLocksOf(
  records: readonly CallRecord[],
  quotaUse: readonly QuotaUse[],
): { id: string; at: Date | null }[] {
  const latest = new Map<string, number | null>();
  for (const record of records) {
    if (record.decision !== 'allowed' || !isUuid(record.grantId)) continue;
    const at = record.at.getTime();
    const seen = latest.get(record.grantId);
    if (seen === undefined || seen === null || at > seen) latest.set(record.grantId, at);
  }
  for (const use of quotaUse) if (!latest.has(use.grantId)) latest.set(use.grantId, null);
  return [...latest].map(([id, at]) => ({ id, at: at === null ? null : new Date(at) }));
}

const defaultSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

/**
 * One appender per process: the proxy offers each call here (never waiting on the
 * database) and batches go to the chain in one transaction each.
 *
 * Why the chain stays one line across processes: every batch, on either path below, takes a
 * transaction-level advisory lock for the schema, reads the tail (seq, hash) and inserts the
 * batch chained from it; the lock is released only by COMMIT or ROLLBACK. A second process's
 * batch therefore waits for the first to commit and then reads the tail that batch wrote — it
 * can never chain from a tail that is later rolled back, and two batches can never both claim
 * seq N+1 (seq is also the primary key, a second guard).
 *
 * Two paths, the same statements in the same order (grant rows, quota, chain lock, tail,
 * INSERT): with `client`, a first attempt at a batch without quota use is sent pipelined in
 * two round trips (pipelined-append.ts); a retry, a batch that settles quotas (the access
 * action runs in a drizzle transaction) and every batch on PGlite go through `db.transaction`.
 * A batch is a fixed cost (a round trip or two and a commit's WAL flush, ~1 ms) whatever its
 * size, so a partial batch waits for `flushIntervalMs` instead of following the last one at
 * once: under load a batch carries an interval's calls, not the few that came in meanwhile.
 *
 * Failures: a failed transaction rolled back, so its batch stays at the head of the queue
 * and is retried with backoff — nothing is lost, and the queue keeps filling until the
 * bound makes the proxy fail closed. The one ambiguous case is a COMMIT whose reply is
 * lost (the connection dropped mid-commit): before retrying such a batch the appender
 * looks at the seq it was given and compares the hash, which is unique to that batch's
 * first row chained from that tail; if it is there the batch committed and is dropped, so
 * nothing is written twice.
 */
export function createAuditAppender(options: AuditAppenderOptions): AuditAppender {
  const maxQueue = options.maxQueue ?? 50_000;
  const headroom = Math.min(options.headroom ?? Math.floor(maxQueue / 10), maxQueue - 1);
  const batchSize = Math.min(options.batchSize ?? 2_000, maxQueue);
  const flushIntervalMs = options.flushIntervalMs ?? 25;
  const retryDelayMs = options.retryDelayMs ?? 50;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 2_000;
  const sleep = options.sleep ?? defaultSleep;
  const { db, logger } = options;

  // Records, not rows: turning a record into a row is cheap but still not the hot path's work.
  let queue: CallRecord[] = [];
  let head = 0; // index of the first unwritten record; compacted as batches commit
  let closed = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let offeredTotal = 0;
  let writtenTotal = 0;
  const waiters: { upTo: number; resolve: () => void }[] = [];
  const stats = { written: 0, batches: 0, failedAttempts: 0 };

  const pending = () => queue.length - head;

  function settleWaiters(): void {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (writtenTotal >= w.upTo) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  // Where the batch at the head of the queue was placed by its last attempt; kept across a
  // failed attempt so the retry can tell a lost COMMIT reply from a rollback.
  let attempt: AppendedBatch | undefined;

  // The last attempt failed: the next one (a retry) takes the drizzle path.
  let failedLast = false;

  async function writeBatch(records: readonly CallRecord[]): Promise<void> {
    const previous = attempt;
    const quotaUse = options.settleQuota ? quotaUseOf(records) : [];
    const locks = grantLocksOf(records, quotaUse);
    // Built before any lock: nothing in a call's row depends on where it lands in the chain.
    const prefixes = records.map(callAuditRow);
    if (options.client && !previous && !failedLast && quotaUse.length === 0) {
      await appendBatchPipelined(options.client, locks, (tail) => {
        const chained = chainFrom(tail, prefixes);
        // Set before COMMIT is sent: a reply lost on the way back is then told from a rollback.
        attempt = chained.batch;
        return chained.rows;
      });
      attempt = undefined;
      return;
    }
    let settlements: QuotaSettlement[] = [];
    try {
      await db.transaction(async (tx) => {
        // Grant rows first, the chain's lock second (see grantLocksOf).
        if (locks.length > 0) await recordGrantsLastUse(tx, locks);
        const quota =
          options.settleQuota && quotaUse.length > 0
            ? await options.settleQuota(tx, quotaUse)
            : { settlements: [], audit: [] };
        if (previous) {
          // Holding the lock means the earlier attempt's transaction has ended one way or
          // the other (it held the same lock), so the tail is settled.
          await lockAuditChain(tx);
          if ((await auditHashAt(tx, previous.firstSeq)) === previous.firstHash) throw new AlreadyCommitted();
        }
        const appended = await appendChainedPrefixes(tx, [...prefixes, ...quota.audit.map(eventRowPrefix)]);
        // `count` is how many RECORDS a retry rewrites, whatever extra rows the batch carried.
        attempt = { ...appended, count: records.length };
        settlements = quota.settlements;
      });
    } catch (error) {
      // The earlier attempt committed (its quota use with it): this one rolled back, nothing to redo.
      if (!(error instanceof AlreadyCommitted)) throw error;
    }
    attempt = undefined;
    if (options.quota) {
      for (const s of settlements) {
        options.quota.settled(s.grantId, s.requests, s.bytes, {
          requests: s.usedRequests,
          bytes: s.usedBytes,
        });
      }
    }
  }

  async function drain(): Promise<void> {
    let delay = retryDelayMs;
    // A partial batch is written when its timer fired (this drain's start), when a flush or
    // close waits for it, or as a retry; otherwise it waits for the timer, so that under load
    // batches do not run back to back, each a fixed cost for a few calls.
    let partialDue = true;
    while (pending() > 0) {
      const partialOk = partialDue || attempt !== undefined || failedLast || closed || waiters.length > 0;
      if (pending() < batchSize && !partialOk) break;
      // A retry rewrites exactly what the last attempt tried, so that "it committed after
      // all" drops those records and no others.
      const records = queue.slice(head, head + (attempt?.count ?? batchSize));
      try {
        await writeBatch(records);
        failedLast = false;
        partialDue = false;
        head += records.length;
        writtenTotal += records.length;
        stats.written += records.length;
        stats.batches += 1;
        delay = retryDelayMs;
        if (head > 4_096 && head * 2 > queue.length) {
          queue = queue.slice(head);
          head = 0;
        }
        settleWaiters();
      } catch (error) {
        failedLast = true;
        stats.failedAttempts += 1;
        logger?.warn(
          { err: error, batch: records.length, queued: pending() },
          'audit batch failed; retrying',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, maxRetryDelayMs);
      }
    }
  }

  function kick(): void {
    if (running) return;
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    running = drain().finally(() => {
      running = undefined;
      // Records may have arrived while the last batch was in flight.
      if (pending() >= batchSize || (pending() > 0 && (closed || waiters.length > 0))) kick();
      else if (pending() > 0) schedule();
    });
  }

  function schedule(): void {
    if (timer || running) return;
    timer = setTimeout(() => {
      timer = undefined;
      kick();
    }, flushIntervalMs);
    // A pending flush must not keep a process alive that is otherwise done; close() drains.
    timer.unref();
  }

  function flush(): Promise<void> {
    if (writtenTotal >= offeredTotal) return Promise.resolve();
    const done = new Promise<void>((resolve) => {
      waiters.push({ upTo: offeredTotal, resolve });
    });
    kick();
    return done;
  }

  return {
    offer(record) {
      if (closed || pending() >= maxQueue) return false;
      queue.push(record);
      offeredTotal += 1;
      if (pending() >= batchSize) kick();
      else schedule();
      return true;
    },
    hasCapacity: () => !closed && pending() < maxQueue - headroom,
    flush,
    async close() {
      closed = true;
      await flush();
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (running) await running;
    },
    stats: () => ({ queued: pending(), ...stats }),
  };
}
