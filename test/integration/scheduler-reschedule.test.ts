import type { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import type { AccessRequest, Grant } from '../../src/db/schema/index.ts';
import { createBullScheduler, jobIdOf, type SchedulerJob } from '../../src/scheduler/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import {
  obliterateQueue,
  openSchedulerWorld,
  randomPrefix,
  type SchedulerWorld,
  waitFor,
} from '../helpers/redis-fixtures.ts';
import { startOwnRedis, TEST_REDIS_URL } from '../helpers/redis-server.ts';

/**
 * Postgres is the truth: when Redis loses a FUTURE job (a job deleted, the queue flushed),
 * the reconcile sweep puts it back, due when the row says, with its delay computed from the
 * scheduler's clock at the time of the sweep. Time is a frozen manual clock, so every delay is
 * exact; nothing here waits for a job to fire.
 */

const QUEUE = 'jitgate-scheduler';
const REMIND_BEFORE_MS = 10 * 60_000; // the test policy's remind_before

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function setup(redisUrl = TEST_REDIS_URL) {
  const clock = manualClock(new Date());
  const w: SchedulerWorld = await openSchedulerWorld(undefined, clock);
  cleanups.push(() => w.drop());
  const prefix = randomPrefix();
  const s = createBullScheduler({
    access: w.access,
    store: w.store,
    policy: w.policy,
    clock,
    redisUrl,
    prefix,
    // The periodic sweep must not run on its own: the one the test calls does the work.
    sweepEveryMs: 3_600_000,
  });
  cleanups.push(async () => {
    await s.stop();
    await obliterateQueue(redisUrl, prefix, QUEUE);
  });
  w.setListener(s.onAccessEvents);
  await s.start();
  const queue = () => s.queue() as Queue;
  // The reconcile job scheduler runs once at start; let that sweep finish before the test.
  await waitFor(
    async () => (await queue().getJobs(['wait', 'active', 'prioritized'])).length === 0 || undefined,
    { what: 'the start-up reconcile job to finish' },
  );
  return { w, s, clock, queue };
}

/** A 1 h auto-approved grant (reminder due 50 min in) and a pending request timing out in 1 h. */
async function futureWork(w: SchedulerWorld): Promise<{ grant: Grant; request: AccessRequest }> {
  const grant = await w.grant(3600);
  const created = await w.access.createRequest({
    actor: slackUser('UCONTRACTOR'),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 600,
    reason: 'waits for a human',
  });
  if (!created.ok || created.value.request.status !== 'pending')
    throw new Error('expected a pending request');
  return { grant, request: created.value.request };
}

interface Due {
  job: SchedulerJob;
  at: Date;
}

/** The jobs a grant's current version needs: its expiry, and its reminder `remind_before` earlier. */
const grantJobsOf = (grant: Grant): Due[] => [
  { job: { kind: 'expire-grant', grantId: grant.id, version: grant.version }, at: grant.expiresAt },
  {
    job: { kind: 'remind-grant', grantId: grant.id, version: grant.version },
    at: new Date(grant.expiresAt.getTime() - REMIND_BEFORE_MS),
  },
];

const jobsOf = (grant: Grant, request: AccessRequest): Due[] => [
  ...grantJobsOf(grant),
  { job: { kind: 'timeout-request', requestId: request.id }, at: request.timeoutAt },
];

/**
 * The job is delayed in Redis, carries the job data, waits `at - now` (now: the manual clock),
 * and BullMQ's own due time (its timestamp, taken from the real clock, plus the delay) falls
 * where that delay says, given when the add happened (`addedBetween`).
 */
async function expectDelayed(
  queue: Queue,
  { job, at }: Due,
  now: Date,
  addedBetween: [number, number],
): Promise<void> {
  const found = await queue.getJob(jobIdOf(job));
  expect(found, `job ${jobIdOf(job)} in Redis`).toBeDefined();
  expect(await found!.getState()).toBe('delayed');
  expect(found!.name).toBe(job.kind);
  expect(found!.data).toEqual(job);
  const delay = at.getTime() - now.getTime();
  expect(delay).toBeGreaterThan(0);
  expect(found!.delay).toBe(delay);
  expect(found!.timestamp).toBeGreaterThanOrEqual(addedBetween[0]);
  expect(found!.timestamp).toBeLessThanOrEqual(addedBetween[1]);
}

async function expectGone(queue: Queue, jobs: Due[]): Promise<void> {
  for (const { job } of jobs) expect(await queue.getJob(jobIdOf(job)), jobIdOf(job)).toBeUndefined();
}

describe('reconcile sweep re-adds missing future jobs (BullMQ, real Redis)', () => {
  it('jobs deleted from the queue come back with the delay left until their deadline', async () => {
    const { w, s, clock, queue } = await setup();
    const plannedAt = clock.now();
    let before = Date.now();
    const { grant, request } = await futureWork(w);
    await s.idle();
    const jobs = jobsOf(grant, request);
    for (const job of jobs) await expectDelayed(queue(), job, plannedAt, [before, Date.now()]);

    // Lost: deleted from Redis behind the scheduler's back.
    for (const { job } of jobs) expect(await queue().remove(jobIdOf(job))).toBe(1);
    await expectGone(queue(), jobs);

    clock.advance(10 * 60_000);
    const sweptAt = clock.now();
    before = Date.now();
    const result = await s.sweep();
    const after = Date.now();
    expect(result).toMatchObject({ expiredGrants: 0, expiredRequests: 0, reminded: 0, failures: 0 });
    expect(result.scheduledGrants).toBe(1);
    expect(result.scheduledRequests).toBe(1);
    for (const job of jobs) await expectDelayed(queue(), job, sweptAt, [before, after]);
    // Nothing was done early: the rows are as they were.
    expect((await w.access.getGrant(grant.id))?.status).toBe('active');
    expect((await w.access.getRequest(request.id))?.status).toBe('pending');

    // A second sweep adds nothing: the ids are deterministic and already there.
    clock.advance(60_000);
    await s.sweep();
    for (const job of jobs) await expectDelayed(queue(), job, sweptAt, [before, after]);
  });

  it('FLUSHALL: the next sweep restores every future job', async () => {
    const redis = await startOwnRedis();
    cleanups.push(() => redis.stop());
    const { w, s, clock, queue } = await setup(redis.url);
    const { grant, request } = await futureWork(w);
    await s.idle();
    const jobs = jobsOf(grant, request);

    await redis.flushAll();
    await expectGone(queue(), jobs);

    clock.advance(5 * 60_000);
    const before = Date.now();
    const result = await s.sweep();
    expect(result.failures).toBe(0);
    for (const job of jobs) await expectDelayed(queue(), job, clock.now(), [before, Date.now()]);
  });

  it('an extension whose scheduling was lost: the sweep adds the NEW version’s jobs, due at the new expiry', async () => {
    const { w, s, clock, queue } = await setup();
    const grant = await w.grant(3600);
    await s.idle();
    // The extension commits while its scheduling is lost (Redis unreachable, process died).
    w.setListener(undefined);
    clock.advance(5 * 60_000);
    const extended = await w.access.requestExtension({
      grantId: grant.id,
      actor: slackUser('UCONTRACTOR'),
      durationSeconds: 1800,
    });
    if (!extended.ok || !extended.value.grant) throw new Error('expected an auto-approved extension');
    const v2 = extended.value.grant;
    expect(v2.version).toBe(2);
    const v2Jobs = grantJobsOf(v2);
    await expectGone(queue(), v2Jobs);

    clock.advance(60_000);
    const before = Date.now();
    await s.sweep();
    for (const job of v2Jobs) await expectDelayed(queue(), job, clock.now(), [before, Date.now()]);
    expect(v2Jobs[0]!.at.getTime()).toBe(grant.expiresAt.getTime() + 1_800_000);
  });
});
