import { DelayedError, type Job, Queue, Worker } from 'bullmq';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { type JobOutcome, runJob } from './jobs.ts';
import type { JobBackend } from './planner.ts';
import { createPlanning } from './reconcile.ts';
import type { SchedulerStore } from './store.ts';
import { delayUntil, parseJob, redelayMs, type SchedulerJob } from './timing.ts';
import { type Scheduler, type SchedulerBaseDeps, type SweepResult, silentLogger } from './types.ts';
import { withTimeout } from './with-timeout.ts';

export interface BullSchedulerDeps extends SchedulerBaseDeps {
  redisUrl: string;
  store: SchedulerStore;
  /** Queue name; default `jitgate-scheduler`. */
  queueName?: string;
  /** BullMQ key prefix; default `jitgate`. Tests use a random one. */
  prefix?: string;
  /**
   * Whether this instance runs a worker (and the sweep). `false` for roles that only
   * schedule (bot, proxy): they add jobs, `jitgate worker` processes them.
   */
  processJobs?: boolean;
  concurrency?: number;
  /** How long a job's lock lives without renewal: how soon a crashed worker's job is retried. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Upper bound on any one Redis call made for a caller (schedule, remove). Default 2 s. */
  redisTimeoutMs?: number;
  /**
   * Workers: how often Redis is pinged, and, while it does not answer, how often what came due
   * is completed from Postgres alone (expiries and time-outs on time while delayed jobs
   * cannot fire). Default 500 ms.
   */
  queueDownCheckMs?: number;
  /** How long `stop()` waits for running jobs before force-closing. Default 15 s. */
  closeTimeoutMs?: number;
  /** Fault injection for tests: runs after the transition, before the job is marked done. */
  afterTransition?: (job: SchedulerJob, outcome: JobOutcome) => Promise<void>;
}

const RECONCILE = 'reconcile';

/** Reconnect quickly at first, then every 5 s at most: short outages end in seconds. */
const retryStrategy = (times: number): number => Math.min(250 * times, 5_000);

/**
 * Delayed BullMQ jobs for expiry, reminders and request timeouts, plus a reconcile job
 * scheduler. Several workers may run against one queue: BullMQ's locks hand each job to
 * one worker at a time, and the access service's conditional transitions turn a retried
 * or duplicated job into a no-op, so each transition (and its outbox event) happens once.
 */
export function createBullScheduler(deps: BullSchedulerDeps): Scheduler & {
  /** The BullMQ queue, for tests and admin tooling. Undefined before `start()`. */
  queue(): Queue | undefined;
} {
  const logger = deps.logger ?? silentLogger;
  const { clock, access, policy } = deps;
  const queueName = deps.queueName ?? 'jitgate-scheduler';
  const prefix = deps.prefix ?? 'jitgate';
  const processJobs = deps.processJobs ?? true;
  const sweepEveryMs = deps.sweepEveryMs ?? 30_000;
  const redisTimeoutMs = deps.redisTimeoutMs ?? 2_000;
  const closeTimeoutMs = deps.closeTimeoutMs ?? 15_000;
  const queueDownCheckMs = deps.queueDownCheckMs ?? 500;
  // A frozen Redis answers nothing: the check gives up well within its period's few multiples.
  const pingTimeoutMs = Math.min(redisTimeoutMs, 500);

  let queue: Queue | undefined;
  let worker: Worker | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  let queueDownCheck: NodeJS.Timeout | undefined;
  let queueDown = false;
  let checkingQueue = false;
  let localSweep: Promise<SweepResult> | undefined;
  let stopping = false;

  const requireQueue = (): Queue => {
    if (!queue) throw new Error('scheduler not started');
    return queue;
  };

  const backend: JobBackend = {
    async add(jobs) {
      const q = requireQueue();
      const now = clock.now();
      await withTimeout(
        q.addBulk(
          jobs.map((p) => ({
            name: p.job.kind,
            data: p.job,
            // The id makes a repeat a no-op; the delay is computed from our clock, not Redis's.
            opts: { jobId: p.id, delay: delayUntil(p.at, now) },
          })),
        ),
        redisTimeoutMs,
        'adding scheduler jobs',
      );
    },
    async remove(jobIds) {
      const q = requireQueue();
      await withTimeout(
        Promise.all(jobIds.map((id) => q.remove(id).catch(() => 0))),
        redisTimeoutMs,
        'removing scheduler jobs',
      );
    },
  };

  const { planner, reconciler } = createPlanning({ ...deps, backend, logger });

  /** Running processors, so `stop()` can wait for them with a bound. */
  const active = new Set<Promise<string>>();

  function process(job: Job, token: string | undefined): Promise<string> {
    const run = processJob(job, token);
    active.add(run);
    void run.catch(() => {}).finally(() => active.delete(run));
    return run;
  }

  async function processJob(job: Job, token: string | undefined): Promise<string> {
    if (job.name === RECONCILE) {
      const result = await reconciler.sweep();
      return JSON.stringify(result);
    }
    const parsed = parseJob(job.name, job.data);
    if (!parsed) {
      logger.error({ jobId: job.id, name: job.name }, 'dropping scheduler job with unreadable data');
      return 'invalid';
    }
    const outcome = await runJob(parsed, { access, policy, clock });
    await deps.afterTransition?.(parsed, outcome);
    switch (outcome.kind) {
      case 'done':
        return outcome.result;
      case 'stale':
        // An older version's job: make sure the current version's jobs exist, then finish.
        await planner.scheduleGrant(outcome.grant).catch((error: unknown) => {
          logger.warn({ err: error, grantId: outcome.grant.id }, 'could not reschedule grant');
        });
        return 'stale';
      case 'later':
        // Fired before its deadline (clock skew between hosts): wait the rest, keep the same id.
        await job.moveToDelayed(Date.now() + redelayMs(outcome.at, clock.now()), token);
        throw new DelayedError();
    }
  }

  async function upsertReconcile(q: Queue): Promise<void> {
    await withTimeout(
      q.upsertJobScheduler(
        RECONCILE,
        { every: sweepEveryMs },
        { name: RECONCILE, data: {}, opts: { attempts: 1, removeOnComplete: true, removeOnFail: 50 } },
      ),
      redisTimeoutMs,
      'upserting the reconcile schedule',
    );
  }

  function sweepHere(): Promise<SweepResult> {
    localSweep ??= reconciler.sweep().finally(() => {
      localSweep = undefined;
    });
    return localSweep;
  }

  /**
   * The reconcile schedule lives in Redis, so a FLUSHALL or a restart without persistence
   * loses it. Each worker checks it every period and restores it; while Redis cannot be
   * reached at all, the worker sweeps by itself, since catching up needs only Postgres.
   */
  async function checkReconcile(): Promise<void> {
    const q = requireQueue();
    try {
      const existing = await withTimeout(
        q.getJobScheduler(RECONCILE),
        redisTimeoutMs,
        'reading the reconcile schedule',
      );
      if (existing) return;
      await upsertReconcile(q);
      logger.warn(
        { queue: queueName },
        'reconcile schedule was missing (Redis flushed or restarted); restored it',
      );
    } catch (error) {
      if (stopping) return;
      logger.warn({ err: error }, 'Redis unreachable; sweeping from this worker');
      await sweepHere().catch((sweepError: unknown) => {
        logger.error({ err: sweepError }, 'local sweep failed');
      });
    }
  }

  /**
   * While Redis does not answer, delayed jobs cannot fire: each check completes from Postgres
   * what came due, so an expiry is late by about one check, not by a sweep period.
   */
  async function checkQueueUp(): Promise<void> {
    if (checkingQueue || stopping) return;
    checkingQueue = true;
    try {
      const q = requireQueue();
      await withTimeout(q.getJobScheduler(RECONCILE), pingTimeoutMs, 'reading the reconcile schedule');
      if (queueDown) logger.info({ queue: queueName }, 'Redis answers again; jobs fire from the queue');
      queueDown = false;
    } catch (error) {
      if (stopping) return;
      if (!queueDown) logger.warn({ err: error }, 'Redis unreachable; completing due work from Postgres');
      queueDown = true;
      await reconciler.catchUp().catch((catchUpError: unknown) => {
        logger.error({ err: catchUpError }, 'catching up without the queue failed');
      });
    } finally {
      checkingQueue = false;
    }
  }

  return {
    kind: 'bullmq',
    queue: () => queue,

    async start() {
      if (queue) return;
      stopping = false;
      queue = new Queue(queueName, {
        prefix,
        // Fail fast while Redis is down, instead of queueing commands until it returns.
        connection: { url: deps.redisUrl, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy },
        defaultJobOptions: {
          attempts: 8,
          backoff: { type: 'exponential', delay: 1_000 },
          // Completed jobs stay a day, so a repeated add of the same id stays a no-op.
          removeOnComplete: { age: 86_400, count: 50_000 },
          removeOnFail: { age: 7 * 86_400 },
        },
      });
      queue.on('error', (error) => logger.warn({ err: error }, 'scheduler queue connection error'));
      if (!processJobs) return;

      worker = new Worker(queueName, process, {
        prefix,
        // Workers block on Redis; BullMQ forces maxRetriesPerRequest: null on this connection.
        connection: { url: deps.redisUrl, retryStrategy },
        concurrency: deps.concurrency ?? 16,
        ...(deps.lockDurationMs !== undefined ? { lockDuration: deps.lockDurationMs } : {}),
        ...(deps.stalledIntervalMs !== undefined ? { stalledInterval: deps.stalledIntervalMs } : {}),
      });
      worker.on('error', (error) => logger.warn({ err: error }, 'scheduler worker error'));
      worker.on('failed', (job, error) => {
        logger.warn({ err: error, jobId: job?.id, attempts: job?.attemptsMade }, 'scheduler job failed');
      });

      await upsertReconcile(queue).catch((error: unknown) => {
        logger.warn({ err: error }, 'could not set up the reconcile schedule; will retry');
      });
      // Once at start: catch up on whatever came due while no worker ran.
      await sweepHere().catch((error: unknown) => logger.error({ err: error }, 'start-up sweep failed'));
      watchdog = setInterval(() => void checkReconcile(), sweepEveryMs);
      watchdog.unref();
      queueDownCheck = setInterval(() => void checkQueueUp(), queueDownCheckMs);
      queueDownCheck.unref();
    },

    async stop() {
      stopping = true;
      if (watchdog) clearInterval(watchdog);
      watchdog = undefined;
      if (queueDownCheck) clearInterval(queueDownCheck);
      queueDownCheck = undefined;
      await withTimeout(planner.idle(), closeTimeoutMs, 'pending scheduling').catch(() => {});
      if (worker) {
        const w = worker;
        // Stop taking jobs, give the running ones `closeTimeoutMs` to finish, then close —
        // forced only if they did not finish. (A plain close() cannot be forced later: BullMQ
        // returns the first, still-waiting close promise to any second call.)
        await withTimeout(w.pause(true), closeTimeoutMs, 'pausing the worker').catch(() => {});
        const finished = await withTimeout(
          Promise.allSettled([...active]),
          closeTimeoutMs,
          'finishing running jobs',
        ).then(
          () => true,
          () => false,
        );
        if (!finished)
          logger.warn({ running: active.size }, 'jobs did not finish in time; closing the worker anyway');
        await withTimeout(w.close(!finished), closeTimeoutMs, 'closing the worker').catch(
          (error: unknown) => {
            logger.warn({ err: error }, 'worker did not close in time');
          },
        );
      }
      if (localSweep) await localSweep.catch(() => {});
      if (queue) {
        const q = queue;
        await withTimeout(q.close(), closeTimeoutMs, 'closing the queue').catch(async () => {
          await q.disconnect().catch(() => {});
        });
      }
      worker = undefined;
      queue = undefined;
    },

    onAccessEvents: (events) => {
      if (!queue || stopping) {
        // Not running: nothing is lost, the next sweep (this or another process) schedules it.
        return;
      }
      planner.onAccessEvents(events);
    },
    scheduleGrant: (grant: Grant) => planner.scheduleGrant(grant),
    scheduleRequest: (request: AccessRequest) => planner.scheduleRequest(request),
    sweep: () => reconciler.sweep(),
    idle: () => planner.idle(),
  };
}
