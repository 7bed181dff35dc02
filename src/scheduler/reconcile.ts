import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { reminderKey } from '../outbox/index.ts';
import type { PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import { remindBeforeOf } from './jobs.ts';
import { createPlanner, type JobBackend, type Planner } from './planner.ts';
import type { SchedulerStore } from './store.ts';
import { reminderAt } from './timing.ts';
import type { SchedulerAccess, SchedulerLogger, SweepResult } from './types.ts';

export interface ReconcilerDeps {
  access: SchedulerAccess;
  store: SchedulerStore;
  policy: PolicyStore;
  clock: Clock;
  logger: SchedulerLogger;
  /** Ensure the jobs of these grants' current versions exist (throws when the queue is unreachable). */
  ensureGrants(grants: readonly Grant[]): Promise<void>;
  ensureRequests(requests: readonly AccessRequest[]): Promise<void>;
  weeklyReport?: { runDue(): Promise<number> } | undefined;
  pageSize?: number;
}

/** Overdue work runs this many transitions at a time: quick catch-up without hogging the pool. */
const CATCH_UP_CONCURRENCY = 8;
/** Bounds one sweep's catch-up; anything left is picked up by the next sweep. */
const MAX_CATCH_UP_ROUNDS = 20;

async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(lanes);
}

/**
 * The reconcile sweep. Postgres is the truth: whatever is past due there is completed now
 * (Redis flushed, a job lost, workers down), due reminders that never went out are sent,
 * and every future deadline gets its job back. Each step is idempotent, so overlapping
 * sweeps (several workers, a restart) are harmless.
 */
interface Reconciler {
  sweep(): Promise<SweepResult>;
  /** The past-due part of a sweep only (expiries, request time-outs): Postgres alone, no queue. */
  catchUp(): Promise<SweepResult>;
}

const emptyResult = (): SweepResult => ({
  expiredGrants: 0,
  expiredRequests: 0,
  reminded: 0,
  idleRevoked: 0,
  weeklyReports: 0,
  scheduledGrants: 0,
  scheduledRequests: 0,
  failures: 0,
});

function createReconciler(deps: ReconcilerDeps): Reconciler {
  const { access, store, clock, logger } = deps;
  const pageSize = deps.pageSize ?? 500;

  async function catchUp(result: SweepResult): Promise<void> {
    for (let round = 0; round < MAX_CATCH_UP_ROUNDS; round++) {
      const overdue = await access.findOverdue(pageSize);
      let progressed = 0;
      if (overdue.grants.length > 0) {
        try {
          const expired = await access.expireDueGrants(pageSize);
          result.expiredGrants += expired.length;
          progressed += expired.length;
        } catch (error) {
          result.failures++;
          logger.error({ err: error }, 'sweep could not expire due grants');
        }
      }
      await forEachLimited(overdue.requests, CATCH_UP_CONCURRENCY, async (request) => {
        try {
          const r = await access.expireRequest(request.id);
          if (r.ok) result.expiredRequests++;
          progressed++;
        } catch (error) {
          result.failures++;
          logger.error({ err: error, requestId: request.id }, 'sweep could not time out request');
        }
      });
      const full = overdue.grants.length >= pageSize || overdue.requests.length >= pageSize;
      if (!full || progressed === 0) return;
    }
  }

  async function remindDue(page: readonly Grant[], result: SweepResult): Promise<void> {
    const now = clock.now();
    const due = page.filter((g) => {
      const at = reminderAt(g, remindBeforeOf(deps.policy, g.resource));
      return at !== undefined && at <= now;
    });
    if (due.length === 0) return;
    const sent = await store.remindedVersions(due.map((g) => ({ grantId: g.id, version: g.version })));
    for (const grant of due) {
      if (sent.has(reminderKey(grant.id, grant.version))) continue;
      const r = await access.remindGrant(grant.id, grant.version);
      if (r.ok) result.reminded++;
    }
  }

  async function rescheduleGrants(result: SweepResult): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await store.liveGrants(clock.now(), after, pageSize);
      if (page.length === 0) return;
      after = page[page.length - 1]?.id;
      try {
        await remindDue(page, result);
      } catch (error) {
        result.failures++;
        logger.error({ err: error }, 'sweep could not send due reminders');
      }
      try {
        await deps.ensureGrants(page);
        result.scheduledGrants += page.length;
      } catch (error) {
        result.failures++;
        logger.warn({ err: error, grants: page.length }, 'sweep could not re-add grant jobs');
      }
      if (page.length < pageSize) return;
    }
  }

  async function rescheduleRequests(result: SweepResult): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await store.waitingRequests(clock.now(), after, pageSize);
      if (page.length === 0) return;
      after = page[page.length - 1]?.id;
      try {
        await deps.ensureRequests(page);
        result.scheduledRequests += page.length;
      } catch (error) {
        result.failures++;
        logger.warn({ err: error, requests: page.length }, 'sweep could not re-add request jobs');
      }
      if (page.length < pageSize) return;
    }
  }

  return {
    async catchUp() {
      const result = emptyResult();
      await catchUp(result);
      if (result.expiredGrants + result.expiredRequests > 0 || result.failures > 0) {
        logger.info({ ...result }, 'caught up without the queue');
      }
      return result;
    },
    async sweep() {
      const result = emptyResult();
      // Past-due work first: it needs only Postgres, so it happens even while Redis is down.
      await catchUp(result);
      // Idleness has no job of its own: a grant's last use moves with every call batch, so a
      // delayed job would be rescheduled constantly. The sweep's period bounds how late it is.
      try {
        result.idleRevoked = (await access.revokeIdleGrants(pageSize)).length;
      } catch (error) {
        result.failures++;
        logger.error({ err: error }, 'sweep could not revoke idle grants');
      }
      if (deps.weeklyReport) {
        try {
          result.weeklyReports = await deps.weeklyReport.runDue();
        } catch (error) {
          result.failures++;
          logger.error({ err: error }, 'sweep could not queue the weekly reports');
        }
      }
      await rescheduleGrants(result);
      await rescheduleRequests(result);
      const acted =
        result.expiredGrants +
        result.expiredRequests +
        result.reminded +
        result.idleRevoked +
        result.weeklyReports;
      if (acted > 0 || result.failures > 0) {
        logger.info({ ...result }, 'reconcile sweep caught up');
      }
      return result;
    },
  };
}

/**
 * Both schedulers are these two over their own backend: the planner adds and removes jobs as
 * access events commit, and the sweep re-adds through the same planner what a backend lost.
 */
export function createPlanning(
  deps: Omit<ReconcilerDeps, 'ensureGrants' | 'ensureRequests'> & { backend: JobBackend },
): { planner: Planner; reconciler: Reconciler } {
  const planner = createPlanner({
    backend: deps.backend,
    access: deps.access,
    policy: deps.policy,
    logger: deps.logger,
  });
  const reconciler = createReconciler({
    ...deps,
    ensureGrants: planner.scheduleGrants,
    ensureRequests: planner.scheduleRequests,
  });
  return { planner, reconciler };
}
