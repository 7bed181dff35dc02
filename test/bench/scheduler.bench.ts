/**
 * Scheduler bench: 500 grants expiring within the same second, processed by one BullMQ
 * scheduler (one worker process, default concurrency) against the real Postgres and Redis.
 * Lateness is measured from each grant's `expiresAt` to the commit of its expiry — the
 * state change and its `grant_expired` outbox row are one transaction, so "expired" and
 * "outbox row written" are the same instant. The Slack DM itself is the outbox dispatcher's
 * and is not part of this number.
 *
 * Standalone: `tsx test/bench/scheduler.bench.ts` (SCHEDULER_BENCH_GRANTS=n to resize).
 */
import { pathToFileURL } from 'node:url';
import { inArray } from 'drizzle-orm';
import { createAccessService, staticDirectory } from '../../src/access/index.ts';
import { grants, outbox } from '../../src/db/schema/index.ts';
import type { OutboxMessage } from '../../src/outbox/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { createBullScheduler, createSchedulerStore } from '../../src/scheduler/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { testPolicy } from '../helpers/policy.ts';
import { insertGrantsExpiringIn } from '../helpers/proxy-fixtures.ts';
import { obliterateQueue, randomPrefix } from '../helpers/redis-fixtures.ts';
import { TEST_REDIS_URL } from '../helpers/redis-server.ts';
import type { BenchContext, BenchModule, BenchTable } from './run.ts';

export interface SchedulerBenchOptions {
  grants?: number;
  /** How far ahead the shared expiry second lies (time to insert and schedule). */
  leadMs?: number;
  concurrency?: number;
  log?: (message: string) => void;
}

export interface LatenessStats {
  p50: number;
  p99: number;
  max: number;
}

export interface SchedulerBenchResult {
  grants: number;
  /** expiresAt → commit of the expiry (state expired + outbox row), observed after commit. */
  committed: LatenessStats;
  /** expiresAt → `endedAt` / outbox `created_at` (the transaction's clock reading). */
  recorded: LatenessStats;
  allExpiredMs: number;
  outboxRows: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

const stats = (values: number[]): LatenessStats => {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
};

export async function runSchedulerBench(options: SchedulerBenchOptions = {}): Promise<SchedulerBenchResult> {
  const count = options.grants ?? 500;
  const leadMs = options.leadMs ?? 6_000;
  const log = options.log ?? ((m: string) => process.stderr.write(`[scheduler-bench] ${m}\n`));
  const database = await openTestDatabase('schedbench');
  const prefix = randomPrefix();
  const committedAt = new Map<string, number>();
  let onEvents: (events: readonly OutboxMessage[]) => void = () => {};
  const policy = staticPolicyStore(testPolicy());
  const access = createAccessService({
    db: database.db,
    policy,
    clock: systemClock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
    onCommitted: (events) => {
      const now = Date.now();
      for (const e of events) if (e.kind === 'grant_expired') committedAt.set(e.grantId, now);
      onEvents(events);
    },
  });
  const scheduler = createBullScheduler({
    redisUrl: TEST_REDIS_URL,
    prefix,
    access,
    store: createSchedulerStore(database.db),
    policy,
    clock: systemClock,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
  });
  onEvents = scheduler.onAccessEvents;
  try {
    await scheduler.start();
    // The grants are written directly (as approvals would have made them) so that all of them
    // share one expiry second regardless of how long creating them takes.
    const second = Math.ceil((Date.now() + leadMs) / 1000) * 1000;
    const rows = await insertGrantsExpiringIn(database.db, {
      second,
      users: Array.from({ length: count }, () => 'UCONTRACTOR'),
    });
    await Promise.all(rows.map((g) => scheduler.scheduleGrant(g)));
    log(`${count} grants scheduled; they expire in [${new Date(second).toISOString()}, +1 s)`);
    const deadline = second + 1_000 + 60_000;
    while (committedAt.size < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const allExpiredMs = Date.now() - (second + 1_000);
    const grantIds = rows.map((g) => g.id);
    const ended = await database.db
      .select({ id: grants.id, expiresAt: grants.expiresAt, endedAt: grants.endedAt, status: grants.status })
      .from(grants)
      .where(inArray(grants.id, grantIds));
    const outboxRows = await database.db
      .select({ key: outbox.dedupeKey, createdAt: outbox.createdAt })
      .from(outbox)
      .where(
        inArray(
          outbox.dedupeKey,
          grantIds.map((id) => `grant_expired:${id}`),
        ),
      );
    const expired = ended.filter((g) => g.status === 'expired' && g.endedAt);
    if (expired.length < count) log(`warning: only ${expired.length}/${count} expired within a minute`);
    const committed = expired.map((g) => (committedAt.get(g.id) ?? Number.NaN) - g.expiresAt.getTime());
    const recorded = expired.map((g) => g.endedAt!.getTime() - g.expiresAt.getTime());
    const result: SchedulerBenchResult = {
      grants: count,
      committed: stats(committed),
      recorded: stats(recorded),
      allExpiredMs: Math.max(0, allExpiredMs),
      outboxRows: outboxRows.length,
    };
    log(
      `expiry lateness (to commit: state expired + outbox row): p50 ${result.committed.p50} ms, p99 ${result.committed.p99} ms, max ${result.committed.max} ms; outbox rows ${result.outboxRows}/${count}`,
    );
    return result;
  } finally {
    await scheduler.stop();
    await obliterateQueue(TEST_REDIS_URL, prefix, 'jitgate-scheduler');
    await database.drop();
  }
}

export const schedulerBench: BenchModule = {
  name: 'scheduler',
  async run(ctx: BenchContext): Promise<BenchTable[]> {
    const r = await runSchedulerBench({ log: ctx.log });
    return [
      {
        title: `Scheduler: ${r.grants} grants expiring in the same second (BullMQ, one worker)`,
        columns: ['lateness from expires_at', 'p50 ms', 'p99 ms', 'max ms', 'target'],
        rows: [
          [
            'to state expired + outbox row (commit)',
            r.committed.p50,
            r.committed.p99,
            r.committed.max,
            'p99 ≤ 2000',
          ],
          [
            'transaction clock (ended_at = outbox created_at)',
            r.recorded.p50,
            r.recorded.p99,
            r.recorded.max,
            '',
          ],
        ],
        notes: [
          `Outbox rows: ${r.outboxRows}/${r.grants} (one each). The DM is sent by the outbox dispatcher after this and is not measured here.`,
        ],
      },
    ];
  },
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = process.env.SCHEDULER_BENCH_GRANTS;
  runSchedulerBench(n ? { grants: Number(n) } : {}).then(
    (r) => {
      console.log(JSON.stringify(r, null, 2));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
