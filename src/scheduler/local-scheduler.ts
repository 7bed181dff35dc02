import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { runJob } from './jobs.ts';
import type { JobBackend } from './planner.ts';
import { createPlanning } from './reconcile.ts';
import type { SchedulerStore } from './store.ts';
import { delayUntil, type PlannedJob, redelayMs, timerStep } from './timing.ts';
import { type Scheduler, type SchedulerBaseDeps, type SweepResult, silentLogger } from './types.ts';

export interface LocalSchedulerDeps extends SchedulerBaseDeps {
  store: SchedulerStore;
  /** A job that throws is retried after this long. Default 5 s. */
  retryAfterMs?: number;
}

/**
 * Embedded mode (no REDIS_URL): the same jobs as in-process timers, plus the same sweep.
 * SINGLE INSTANCE ONLY: timers live in this process's memory, so two processes would each
 * run every job (still once in effect — transitions are conditional — but twice the work),
 * and a restart forgets them until the start-up sweep re-adds them from Postgres.
 */
export function createLocalScheduler(deps: LocalSchedulerDeps): Scheduler & {
  /** Ids of the timers now armed, for tests. */
  pendingJobIds(): string[];
} {
  const logger = deps.logger ?? silentLogger;
  const { access, policy, clock } = deps;
  const sweepEveryMs = deps.sweepEveryMs ?? 30_000;
  const retryAfterMs = deps.retryAfterMs ?? 5_000;
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<SweepResult> | undefined;
  let started = false;

  function arm(planned: PlannedJob, delayMs: number): void {
    // setTimeout caps at 2^31-1 ms (~24.8 days); a longer wait runs in steps, each re-checking.
    const timer = setTimeout(() => {
      timers.delete(planned.id);
      const work = fire(planned);
      running.add(work);
      void work.finally(() => running.delete(work));
    }, timerStep(delayMs));
    timer.unref();
    timers.set(planned.id, timer);
  }

  async function fire(planned: PlannedJob): Promise<void> {
    if (!started) return;
    try {
      const outcome = await runJob(planned.job, { access, policy, clock });
      if (!started) return;
      if (outcome.kind === 'later') {
        if (!timers.has(planned.id)) arm({ ...planned, at: outcome.at }, redelayMs(outcome.at, clock.now()));
      } else if (outcome.kind === 'stale') {
        await planner.scheduleGrant(outcome.grant);
      }
    } catch (error) {
      logger.warn({ err: error, jobId: planned.id }, 'scheduler job failed; retrying');
      if (started && !timers.has(planned.id)) arm(planned, retryAfterMs);
    }
  }

  const backend: JobBackend = {
    async add(jobs) {
      if (!started) return;
      const now = clock.now();
      for (const planned of jobs) {
        if (!timers.has(planned.id)) arm(planned, delayUntil(planned.at, now));
      }
    },
    async remove(jobIds) {
      for (const id of jobIds) {
        const timer = timers.get(id);
        if (timer) clearTimeout(timer);
        timers.delete(id);
      }
    },
  };

  const { planner, reconciler } = createPlanning({ ...deps, backend, logger });

  function sweep(): Promise<SweepResult> {
    sweeping ??= reconciler.sweep().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  }

  return {
    kind: 'local',
    pendingJobIds: () => [...timers.keys()],
    async start() {
      if (started) return;
      started = true;
      await sweep().catch((error: unknown) => logger.error({ err: error }, 'start-up sweep failed'));
      sweepTimer = setInterval(() => {
        void sweep().catch((error: unknown) => logger.error({ err: error }, 'sweep failed'));
      }, sweepEveryMs);
      sweepTimer.unref();
    },
    async stop() {
      started = false;
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = undefined;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await planner.idle();
      if (sweeping) await sweeping.catch(() => {});
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    onAccessEvents: (events) => {
      if (started) planner.onAccessEvents(events);
    },
    scheduleGrant: (grant: Grant) => planner.scheduleGrant(grant),
    scheduleRequest: (request: AccessRequest) => planner.scheduleRequest(request),
    sweep,
    idle: () => planner.idle(),
  };
}
