import type { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { isGrantLive } from '../../src/access/index.ts';
import {
  type BullSchedulerDeps,
  createBullScheduler,
  jobIdOf,
  type SchedulerJob,
} from '../../src/scheduler/index.ts';
import { type Clock, manualClock, systemClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import {
  obliterateQueue,
  openSchedulerWorld,
  randomPrefix,
  recordingLogger,
  type SchedulerWorld,
  waitFor,
} from '../helpers/redis-fixtures.ts';
import { type OwnRedis, startOwnRedis, TEST_REDIS_URL } from '../helpers/redis-server.ts';

const QUEUE = 'jitgate-scheduler';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  // Reverse order: schedulers stop before their Redis and database go away.
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function world(
  yamlEdit?: (yaml: string) => string,
  clock: Clock = systemClock,
): Promise<SchedulerWorld> {
  const w = await openSchedulerWorld(yamlEdit, clock);
  cleanups.push(() => w.drop());
  return w;
}

async function ownRedis(): Promise<OwnRedis> {
  const redis = await startOwnRedis();
  cleanups.push(() => redis.stop());
  return redis;
}

type Options = Partial<Omit<BullSchedulerDeps, 'access' | 'store' | 'policy'>>;

/** A started BullMQ scheduler over `w`, on its own prefix; `listen` wires it as onCommitted. */
async function scheduler(w: SchedulerWorld, options: Options & { listen?: boolean } = {}) {
  const prefix = options.prefix ?? randomPrefix();
  const redisUrl = options.redisUrl ?? TEST_REDIS_URL;
  const logger = recordingLogger();
  const s = createBullScheduler({
    access: w.access,
    store: w.store,
    policy: w.policy,
    clock: systemClock,
    logger,
    sweepEveryMs: 1_000,
    redisTimeoutMs: 1_000,
    ...options,
    redisUrl,
    prefix,
  });
  cleanups.push(async () => {
    await s.stop();
    await obliterateQueue(redisUrl, prefix, QUEUE);
  });
  if (options.listen ?? true) w.setListener(s.onAccessEvents);
  await s.start();
  return { s, prefix, logger, queue: () => s.queue() as Queue };
}

const expiredKey = (grantId: string) => `grant_expired:${grantId}`;

async function waitExpired(w: SchedulerWorld, grantId: string, timeoutMs = 20_000) {
  return waitFor(
    async () => {
      const g = await w.access.getGrant(grantId);
      return g?.status === 'expired' ? g : undefined;
    },
    { timeoutMs, what: `grant ${grantId} expired` },
  );
}

async function jobState(queue: Queue, job: SchedulerJob): Promise<string | undefined> {
  const found = await queue.getJob(jobIdOf(job));
  return found ? await found.getState() : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('BullMQ scheduler (real Redis)', () => {
  it('expires a grant on time and notifies once; a repeated add is a no-op', async () => {
    const w = await world();
    const { s, queue } = await scheduler(w);
    const grant = await w.grant(2);
    await s.idle();
    await s.scheduleGrant(grant);
    await s.scheduleGrant(grant);
    const delayed = await queue().getJobs(['delayed', 'wait']);
    expect(delayed.filter((j) => j.name === 'expire-grant').map((j) => j.id)).toEqual([
      jobIdOf({ kind: 'expire-grant', grantId: grant.id, version: 1 }),
    ]);

    const expired = await waitExpired(w, grant.id);
    expect(expired.endedBy).toBe('scheduler');
    expect(expired.endedAt!.getTime()).toBeGreaterThanOrEqual(grant.expiresAt.getTime());
    await sleep(1_500); // a sweep or two in between must not add anything
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
    expect(await w.auditCount('grant.expired', grant.id)).toBe(1);
    expect(await jobState(queue(), { kind: 'expire-grant', grantId: grant.id, version: 1 })).toBe(
      'completed',
    );
  });

  it('sends the reminder once, however often it is scheduled or swept', async () => {
    const w = await world((y) => y.replace('remind_before: 10m', 'remind_before: 2s'));
    const { s } = await scheduler(w);
    const grant = await w.grant(4);
    const key = `grant_reminder:${grant.id}:1`;
    await waitFor(async () => (await w.outboxCount(key)) === 1, { what: 'reminder in outbox' });
    await s.scheduleGrant(grant);
    await s.sweep();
    await s.sweep();
    await waitExpired(w, grant.id);
    expect(await w.outboxCount(key)).toBe(1);
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
  });

  it('times out a pending request and emits request_expired', async () => {
    const w = await world((y) => y.replace('request_timeout: 1h', 'request_timeout: 1s'));
    await scheduler(w);
    const created = await w.access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 600,
      reason: 'needs a human',
    });
    if (!created.ok) throw new Error(created.code);
    const id = created.value.request.id;
    expect(created.value.request.status).toBe('pending');
    await waitFor(async () => (await w.access.getRequest(id))?.status === 'expired', {
      what: 'request expired',
    });
    expect(await w.outboxCount(`request_expired:${id}`)).toBe(1);
    expect(await w.auditCount('request.expired', undefined, id)).toBe(1);
  });

  it('reschedules on extension: the old job is a no-op, the new one fires', async () => {
    // Jobs are delayed in real time, but whether a grant is due is read from this clock: held
    // still until the old job has run, it cannot find the extended grant due however late the
    // job runs on a loaded machine.
    const clock = manualClock(new Date());
    const w = await world(undefined, clock);
    const { queue } = await scheduler(w, { clock });
    const grant = await w.grant(2);
    const extended = await w.access.requestExtension({
      grantId: grant.id,
      actor: slackUser('UCONTRACTOR'),
      durationSeconds: 3,
    });
    if (!extended.ok || !extended.value.grant) throw new Error('extension not auto-approved');
    const v2 = extended.value.grant;
    expect(v2.version).toBe(2);

    const oldJob: SchedulerJob = { kind: 'expire-grant', grantId: grant.id, version: 1 };
    await waitFor(async () => (await jobState(queue(), oldJob)) === 'completed', {
      what: 'old expiry job done',
    });
    expect((await queue().getJob(jobIdOf(oldJob)))?.returnvalue).toBe('stale');
    expect((await w.access.getGrant(grant.id))?.status).toBe('active');

    clock.set(v2.expiresAt);
    const expired = await waitExpired(w, grant.id);
    expect(expired.endedAt!.getTime()).toBeGreaterThanOrEqual(v2.expiresAt.getTime());
    // The v2 job runs on its own (real-time) schedule; the sweep may have expired it first.
    await waitFor(
      async () =>
        (await jobState(queue(), { kind: 'expire-grant', grantId: grant.id, version: 2 })) === 'completed',
      { what: 'v2 expiry job done' },
    );
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
    expect(await w.auditCount('grant.expired', grant.id)).toBe(1);
  });

  it('two workers on one queue: each grant expires once, one outbox event each', async () => {
    const w = await world();
    const prefix = randomPrefix();
    const a = await scheduler(w, { prefix, concurrency: 4 });
    await scheduler(w, { prefix, concurrency: 4, listen: false });
    const grants = await Promise.all(Array.from({ length: 12 }, () => w.grant(2)));
    await a.s.idle();
    for (const g of grants) await waitExpired(w, g.id);
    await sleep(1_000);
    for (const g of grants) {
      expect(await w.outboxCount(expiredKey(g.id))).toBe(1);
      expect(await w.auditCount('grant.expired', g.id)).toBe(1);
    }
  });

  it('a job that fails after its transition is retried without a second effect', async () => {
    const w = await world();
    let calls = 0;
    await scheduler(w, {
      afterTransition: async (job) => {
        if (job.kind !== 'expire-grant') return;
        calls++;
        if (calls === 1) throw new Error('worker died after committing');
      },
    });
    const grant = await w.grant(1);
    await waitExpired(w, grant.id);
    await waitFor(() => calls >= 2, { what: 'the job to run again' });
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
    expect(await w.auditCount('grant.expired', grant.id)).toBe(1);
  });

  it('a worker that dies mid-job: another worker takes the stalled job, effect once', {
    timeout: 60_000,
  }, async () => {
    const w = await world();
    const prefix = randomPrefix();
    let transitioned = false;
    const crashing = await scheduler(w, {
      prefix,
      // Every worker of a queue shares one stalled-check cadence (the check is throttled in Redis).
      lockDurationMs: 1_000,
      stalledIntervalMs: 300,
      closeTimeoutMs: 200,
      afterTransition: async (job) => {
        if (job.kind !== 'expire-grant') return;
        transitioned = true;
        await new Promise(() => {}); // hangs forever: the process "dies" holding the job
      },
    });
    const grant = await w.grant(1);
    await waitFor(() => transitioned, { what: 'the first worker to commit the transition' });
    await crashing.s.stop(); // close times out → forced: the job stays active, its lock lapses
    const job: SchedulerJob = { kind: 'expire-grant', grantId: grant.id, version: 1 };

    const survivor = await scheduler(w, {
      prefix,
      lockDurationMs: 1_000,
      stalledIntervalMs: 300,
      listen: false,
    });
    await waitFor(async () => (await jobState(survivor.queue(), job)) === 'completed', {
      what: 'the stalled job to be completed by the survivor',
    });
    expect((await survivor.queue().getJob(jobIdOf(job)))?.returnvalue).toBe('grant_not_active');
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
    expect(await w.auditCount('grant.expired', grant.id)).toBe(1);
  });

  it('FLUSHALL with grants pending: the sweep still expires them', async () => {
    const w = await world();
    const redis = await ownRedis();
    const { s } = await scheduler(w, { redisUrl: redis.url });
    const grants = await Promise.all([w.grant(2), w.grant(2), w.grant(3)]);
    await s.idle();
    await redis.flushAll();
    for (const g of grants) await waitExpired(w, g.id);
    for (const g of grants) {
      expect(await w.outboxCount(expiredKey(g.id))).toBe(1);
      expect(await w.auditCount('grant.expired', g.id)).toBe(1);
    }
  });

  it('Redis down at approval: the grant is made and enforced, and expires once Redis is back', async () => {
    const w = await world();
    const redis = await ownRedis();
    const { s, logger } = await scheduler(w, { redisUrl: redis.url });
    await redis.kill();

    const started = Date.now();
    const grant = await w.grant(2);
    expect(Date.now() - started).toBeLessThan(3_000); // approving never waits on Redis
    expect(isGrantLive(grant, new Date())).toBe(true);
    await s.idle();
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg?.includes('sweep will retry'))).toBe(true);

    // The proxy's rule needs no scheduler: past expiresAt the grant is dead, whatever its status.
    await waitFor(() => Date.now() > grant.expiresAt.getTime() + 10, { what: 'expiry time' });
    const row = await w.access.getGrant(grant.id);
    expect(isGrantLive(row!, new Date())).toBe(false);

    await redis.restart();
    await waitExpired(w, grant.id);
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
    expect(await w.auditCount('grant.expired', grant.id)).toBe(1);
  });

  it('Redis down: a grant expires (state and outbox message) about a check after its time, not at the next sweep', async () => {
    const w = await world();
    const redis = await ownRedis();
    const { s } = await scheduler(w, { redisUrl: redis.url, sweepEveryMs: 30_000 });
    const grant = await w.grant(3);
    await s.idle();
    await redis.kill();

    const expired = await waitExpired(w, grant.id, 10_000);
    const lateMs = Date.now() - grant.expiresAt.getTime();
    console.info(`with Redis down, the grant's state changed ${lateMs} ms after its expiry`);
    // The sweep would come 30 s after start; the check every 500 ms catches it first.
    expect(lateMs).toBeLessThan(5_000);
    expect(expired.status).toBe('expired');
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
    // Back, the queue's own job for it is a no-op: still one message.
    await redis.restart();
    await s.sweep();
    expect(await w.outboxCount(expiredKey(grant.id))).toBe(1);
  });
});
