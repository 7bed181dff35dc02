import type { Logger } from 'pino';
import type { Db, Tx } from '../db/client.ts';
import { auditHashAt, lockAuditChain } from '../db/queries/audit-events/append.ts';
import { recordGrantsLastUse } from '../db/queries/grants/proxy-use.ts';
import type { QuotaTracker } from '../proxy/quota.ts';
import type { CallRecord, CallSink } from '../shared/call-record.ts';
import { isUuid } from '../shared/ids.ts';
import { type AppendedBatch, type AuditEventInput, appendAuditBatch } from './chain-append.ts';

export interface AuditAppenderOptions {
  db: Db;
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

/**
 * The audit row for one proxied call: `proxy.call` when forwarded, `proxy.denied` otherwise
 * (refused, or left by its client before it was forwarded).
 */
export function callAuditEvent(record: CallRecord): AuditEventInput {
  // The grant id is a token's jti and normally a UUID; anything else (a forged token that
  // still parsed) stays in `data` so a bad value cannot make the whole batch fail to insert.
  // Lowercased as Postgres stores uuids, so the hash covers what is read back.
  const grantId = isUuid(record.grantId) ? record.grantId.toLowerCase() : null;
  return {
    kind: record.decision === 'allowed' ? 'proxy.call' : 'proxy.denied',
    actor: record.userId ? { type: 'slack', userId: record.userId } : { type: 'system', component: 'proxy' },
    at: record.at,
    resource: record.resource,
    grantId,
    data: {
      method: record.method,
      path: record.path,
      status: record.status,
      bytes: record.responseBytes,
      latencyMs: record.latencyMs,
      clientIp: record.clientIp,
      requestId: record.requestId,
      decision: record.decision,
      ...(record.scope !== undefined ? { scope: record.scope } : {}),
      ...(record.userId !== undefined ? { userId: record.userId } : {}),
      ...(record.grantId !== undefined && grantId === null ? { rawGrantId: record.grantId } : {}),
      ...(record.capture ? { capture: record.capture } : {}),
      ...(record.aborted ? { aborted: record.aborted } : {}),
      ...(record.aggregated
        ? {
            aggregated: {
              count: record.aggregated.count,
              firstAt: record.aggregated.firstAt.toISOString(),
              lastAt: record.aggregated.lastAt.toISOString(),
            },
          }
        : {}),
    },
  };
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
 * Move `grants.last_used_at` forward for every grant that carried an allowed call in this
 * batch: ONE statement per batch, never one per call. It runs after the batch's audit
 * transaction commits rather than inside it: that transaction holds the audit chain's lock,
 * and the access service takes grant row locks first and the chain lock second, so taking
 * them the other way round here could deadlock. Rows are locked in id order so two
 * proxies' batches cannot deadlock each other either. `greatest` ignores NULL and never
 * moves the time back, so batches landing out of order are harmless.
 */
export async function recordGrantUse(db: Db, records: readonly CallRecord[]): Promise<number> {
  const latest = new Map<string, number>();
  for (const record of records) {
    if (record.decision !== 'allowed' || !isUuid(record.grantId)) continue;
    const at = record.at.getTime();
    if (at > (latest.get(record.grantId) ?? Number.NEGATIVE_INFINITY)) latest.set(record.grantId, at);
  }
  if (latest.size === 0) return 0;
  await recordGrantsLastUse(
    db,
    [...latest].map(([id, at]) => ({ id, at: new Date(at) })),
  );
  return latest.size;
}

const defaultSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

/**
 * One appender per process: the proxy offers each call here (never waiting on the
 * database) and batches go to the chain in one transaction each.
 *
 * Why the chain stays one line across processes: every batch runs `appendAuditBatch`,
 * which takes a transaction-level advisory lock for the schema, reads the tail (seq, hash)
 * and inserts the batch chained from it; the lock is released only by COMMIT or ROLLBACK.
 * A second process's batch therefore waits for the first to commit and then reads the
 * tail that batch wrote — it can never chain from a tail that is later rolled back, and
 * two batches can never both claim seq N+1 (seq is also the primary key, a second guard).
 * Batching makes the lock cost per row small: one lock, one probe and a few INSERT
 * round trips per `batchSize` calls.
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

  async function writeBatch(records: readonly CallRecord[]): Promise<void> {
    const previous = attempt;
    let settlements: QuotaSettlement[] = [];
    try {
      await db.transaction(async (tx) => {
        // Quota totals first: grant rows before the chain lock, as the access actions do.
        const quota = options.settleQuota
          ? await options.settleQuota(tx, quotaUseOf(records))
          : { settlements: [], audit: [] };
        if (previous) {
          // Holding the lock means the earlier attempt's transaction has ended one way or
          // the other (it held the same lock), so the tail is settled.
          await lockAuditChain(tx);
          if ((await auditHashAt(tx, previous.firstSeq)) === previous.firstHash) throw new AlreadyCommitted();
        }
        const appended = await appendAuditBatch(tx, [...records.map(callAuditEvent), ...quota.audit]);
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
    while (pending() > 0) {
      // A retry rewrites exactly what the last attempt tried, so that "it committed after
      // all" drops those records and no others.
      const records = queue.slice(head, head + (attempt?.count ?? batchSize));
      try {
        await writeBatch(records);
        head += records.length;
        writtenTotal += records.length;
        stats.written += records.length;
        stats.batches += 1;
        delay = retryDelayMs;
        if (head > 4_096 && head * 2 > queue.length) {
          queue = queue.slice(head);
          head = 0;
        }
        // Before waking flush() waiters, so "flushed" also means "last use recorded". Not
        // retried with the batch: its audit rows are committed, and the grant's next batch
        // moves last_used_at anyway.
        await recordGrantUse(db, records).catch((error: unknown) => {
          logger?.warn({ err: error }, 'could not record grant use');
        });
        settleWaiters();
      } catch (error) {
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
