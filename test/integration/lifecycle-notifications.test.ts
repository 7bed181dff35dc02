import type { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import type { AccessRequest, Grant } from '../../src/db/schema/index.ts';
import type { RecordedCall } from '../../src/dev/slack-stand-in/web-api.ts';
import {
  createBullScheduler,
  createLocalScheduler,
  jobIdOf,
  type Scheduler,
  type SchedulerJob,
} from '../../src/scheduler/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { callsSince, type OutboxWorld, openOutboxWorld } from '../helpers/outbox-world.ts';
import { obliterateQueue, randomPrefix, waitFor } from '../helpers/redis-fixtures.ts';
import { TEST_REDIS_URL } from '../helpers/redis-server.ts';
import { blockText } from '../helpers/slack-harness.ts';

/**
 * What people see when time runs out: a request nobody decided, a grant whose time is up.
 * The scheduler's job performs the transition; the outbox dispatcher then tells the
 * requester, updates the approval message in place and refreshes App Home. Time moves on a
 * manual clock; a job "fires" when BullMQ is told to run it now (promote), or, in embedded
 * mode, when it is planned with the clock already past its deadline.
 */

const REQUESTER = 'UREQUESTER';
const APPROVER = 'UAPPROVER1';
const QUEUE = 'jitgate-scheduler';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface Running {
  scheduler: Scheduler;
  /** Check the job planned when the row was committed is there, due at `at`. */
  expectPlanned(job: SchedulerJob, at: Date, plannedAt: Date): Promise<void>;
  /** Run the job now (the manual clock is already past its deadline). */
  fire(job: SchedulerJob, row: { grant?: Grant; request?: AccessRequest }): Promise<void>;
}

const backends: { name: string; start(w: OutboxWorld): Promise<Running> }[] = [
  {
    name: 'BullMQ',
    async start(w) {
      const prefix = randomPrefix();
      const s = createBullScheduler({
        access: w.access,
        store: w.store,
        policy: w.policy,
        clock: w.clock,
        redisUrl: TEST_REDIS_URL,
        prefix,
        // No periodic sweep during the test: the job itself must do the work.
        sweepEveryMs: 3_600_000,
      });
      cleanups.push(async () => {
        await s.stop();
        await obliterateQueue(TEST_REDIS_URL, prefix, QUEUE);
      });
      w.setListener(s.onAccessEvents);
      await s.start();
      const queue = () => s.queue() as Queue;
      return {
        scheduler: s,
        async expectPlanned(job, at, plannedAt) {
          await s.idle();
          const found = await queue().getJob(jobIdOf(job));
          expect(found, `job ${jobIdOf(job)}`).toBeDefined();
          expect(await found!.getState()).toBe('delayed');
          expect(found!.delay).toBe(at.getTime() - plannedAt.getTime());
        },
        async fire(job) {
          const found = await queue().getJob(jobIdOf(job));
          if (!found) throw new Error(`no job ${jobIdOf(job)}`);
          await found.promote();
        },
      };
    },
  },
  {
    name: 'embedded (local timers)',
    async start(w) {
      const s = createLocalScheduler({
        access: w.access,
        store: w.store,
        policy: w.policy,
        clock: w.clock,
        sweepEveryMs: 3_600_000,
      });
      cleanups.push(() => s.stop());
      // Not listening: a timer armed at commit would wait real time. Planning the job once the
      // clock is past its deadline arms a timer that fires at once and runs the same job code.
      await s.start();
      return {
        scheduler: s,
        async expectPlanned() {},
        async fire(_job, row) {
          if (row.grant) await s.scheduleGrant(row.grant);
          if (row.request) await s.scheduleRequest(row.request);
        },
      };
    },
  },
];

async function world(): Promise<OutboxWorld> {
  const w = await openOutboxWorld();
  cleanups.push(() => w.close());
  return w;
}

/** The approval message posted for the request whose reason contains `marker`, and its stored ts. */
async function approvalMessageOf(w: OutboxWorld, requestId: string, marker: string) {
  const posts = w.api
    .callsTo('chat.postMessage')
    .filter((c) => c.args.channel === 'CAPPROVALS' && blockText(c).includes(marker));
  expect(posts).toHaveLength(1);
  const request = await w.access.getRequest(requestId);
  const ts = request?.approvalMessageTs;
  if (!ts || ts.startsWith('posting:')) throw new Error(`no approval message ts for ${requestId}`);
  return { post: posts[0]!, ts };
}

const dmsTo = (calls: RecordedCall[], user: string) => calls.filter((c) => c.args.channel === user);

describe.each(backends)('lifecycle notifications ($name)', (backend) => {
  it('a request nobody decides times out: the requester is told and the approval message says so', async () => {
    const w = await world();
    const running = await backend.start(w);
    const created = await w.access.createRequest({
      actor: slackUser(REQUESTER),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 3600,
      reason: 'nobody answers T-1',
    });
    if (!created.ok) throw new Error(created.code);
    const request = created.value.request;
    expect(request.status).toBe('pending');
    const job: SchedulerJob = { kind: 'timeout-request', requestId: request.id };
    await running.expectPlanned(job, request.timeoutAt, request.createdAt);

    expect(await w.dispatcher.drain()).toBeGreaterThan(0);
    const { ts } = await approvalMessageOf(w, request.id, 'T-1');

    w.clock.set(new Date(request.timeoutAt.getTime() + 1_000));
    await running.fire(job, { request });
    await waitFor(async () => (await w.access.getRequest(request.id))?.status === 'expired', {
      what: 'the request to time out',
    });

    const mark = w.api.calls.length;
    expect(await w.dispatcher.drain()).toBe(1);
    const dms = dmsTo(callsSince(w.api, mark, 'chat.postMessage'), REQUESTER);
    expect(dms).toHaveLength(1);
    expect(dms[0]!.args.text).toBe('Your request for billing-api timed out');
    expect(blockText(dms[0]!)).toMatch(/Nobody decided your request for .*billing-api.* in time/);

    const updates = callsSince(w.api, mark, 'chat.update');
    expect(updates).toHaveLength(1);
    const update = updates[0]!;
    expect(update.args).toMatchObject({
      channel: 'CAPPROVALS',
      ts,
      text: `Timed out: billing-api for ${REQUESTER}`,
    });
    expect(blockText(update)).toContain('Timed out: nobody decided in time');
    // The decision buttons are gone: nobody can approve a request that timed out.
    expect(blockText(update)).not.toContain('approve_request');
    // No second approval message: the one posted at request time was updated in place.
    expect(
      callsSince(w.api, mark, 'chat.postMessage').filter((c) => c.args.channel === 'CAPPROVALS'),
    ).toEqual([]);

    // Delivered once: a repeated transition (a retried job) and a sweep add nothing to send.
    expect((await w.access.expireRequest(request.id)).ok).toBe(false);
    await running.scheduler.sweep();
    expect(await w.dispatcher.drain()).toBe(0);
    expect(dmsTo(callsSince(w.api, mark, 'chat.postMessage'), REQUESTER)).toHaveLength(1);
  });

  it('a grant that expires: the owner gets a DM, the approval message is updated, App Home is republished', async () => {
    const w = await world();
    const running = await backend.start(w);
    // Both people have opened App Home since start, so a change republishes theirs.
    w.homes.noteViewer(REQUESTER);
    w.homes.noteViewer(APPROVER);
    const created = await w.access.createRequest({
      actor: slackUser(REQUESTER),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 1800,
      reason: 'short look E-1',
    });
    if (!created.ok || !created.value.grant) throw new Error('expected an auto-approved grant');
    const grant = created.value.grant;
    const job: SchedulerJob = { kind: 'expire-grant', grantId: grant.id, version: grant.version };
    await running.expectPlanned(job, grant.expiresAt, grant.startsAt);

    await w.dispatcher.drain();
    const { ts } = await approvalMessageOf(w, created.value.request.id, 'E-1');
    // Before expiry, both homes show the grant (so its absence later means something).
    const homesBefore = w.api.callsTo('views.publish');
    for (const user of [REQUESTER, APPROVER]) {
      const last = homesBefore.filter((c) => c.args.user_id === user).at(-1);
      expect(last && blockText(last), `${user}'s home before expiry`).toContain(grant.id);
    }

    w.clock.set(new Date(grant.expiresAt.getTime() + 1_000));
    await running.fire(job, { grant });
    await waitFor(async () => (await w.access.getGrant(grant.id))?.status === 'expired', {
      what: 'the grant to expire',
    });

    const mark = w.api.calls.length;
    expect(await w.dispatcher.drain()).toBe(1);

    const dms = dmsTo(callsSince(w.api, mark, 'chat.postMessage'), REQUESTER);
    expect(dms).toHaveLength(1);
    expect(dms[0]!.args.text).toBe('Your access to billing-api has expired');
    expect(blockText(dms[0]!)).toMatch(/Your access to .*billing-api.* expired/);

    const updates = callsSince(w.api, mark, 'chat.update');
    expect(updates).toHaveLength(1);
    expect(updates[0]!.args).toMatchObject({ channel: 'CAPPROVALS', ts });
    expect(blockText(updates[0]!)).toContain(`Grant \`${grant.id}\` expired`);

    const homes = callsSince(w.api, mark, 'views.publish');
    expect(homes.map((c) => c.args.user_id).sort()).toEqual([APPROVER, REQUESTER].sort());
    for (const home of homes) {
      expect(home.args.view).toMatchObject({ type: 'home' });
      expect(blockText(home), `${String(home.args.user_id)}'s home after expiry`).not.toContain(grant.id);
    }
    const mine = homes.find((c) => c.args.user_id === REQUESTER)!;
    expect(blockText(mine)).toContain('no active grants');

    expect((await w.access.expireGrant(grant.id)).ok).toBe(false);
    await running.scheduler.sweep();
    expect(await w.dispatcher.drain()).toBe(0);
    expect(dmsTo(callsSince(w.api, mark, 'chat.postMessage'), REQUESTER)).toHaveLength(1);
  });
});
