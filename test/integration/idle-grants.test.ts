import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { buildWeeklyReports, createWeeklyReporter, reportPeriodEnd } from '../../src/audit/weekly-report.ts';
import { postgresClientOf } from '../../src/db/client.ts';
import { type Grant, grants, outbox } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { createLocalScheduler, createSchedulerStore } from '../../src/scheduler/index.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';

// billing-api revokes after 30 minutes without a call; admin-api has no idle_timeout.
const policy = staticPolicyStore(
  testPolicy(
    TEST_POLICY_YAML.replace('    remind_before: 10m\n', '    remind_before: 10m\n    idle_timeout: 30m\n'),
  ),
);
const START = new Date('2026-01-05T10:00:00Z');
const MIN = 60_000;

let database: Awaited<ReturnType<typeof openTestDatabase>>;
const clock = manualClock(START);
let access: AccessService;

beforeAll(async () => {
  database = await openTestDatabase('idle');
  access = createAccessService({
    db: database.db,
    policy,
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
  });
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(() => clock.set(START));

function sweeper() {
  // Never started: sweep() alone runs the reconcile pass (its job adds are no-ops when stopped).
  return createLocalScheduler({ store: createSchedulerStore(database.db), access, policy, clock });
}

async function grantOn(resource: 'billing-api' | 'admin-api', userId = 'UDEV'): Promise<Grant> {
  const created = await access.createRequest({
    actor: slackUser(userId),
    resource,
    scope: resource === 'billing-api' ? 'read' : 'admin',
    // billing-api read up to 1h is auto-approved; admin-api needs two approvers.
    durationSeconds: resource === 'billing-api' ? 3600 : 8 * 3600,
    reason: 'work',
  });
  if (!created.ok) throw new Error(created.code);
  if (created.value.grant) return created.value.grant;
  await access.approve({ requestId: created.value.request.id, actor: slackUser('UAPPROVER1') });
  const done = await access.approve({ requestId: created.value.request.id, actor: slackUser('UAPPROVER2') });
  if (!done.ok || !done.value.grant) throw new Error('no grant');
  return done.value.grant;
}

function call(grant: Grant, at: Date, decision = 'allowed'): CallRecord {
  return {
    at,
    requestId: randomUUID(),
    resource: grant.resource,
    grantId: grant.id,
    userId: grant.userId,
    scope: grant.scope,
    method: 'GET',
    path: '/invoices/1',
    clientIp: '10.0.0.1',
    decision,
    status: decision === 'allowed' ? 200 : 403,
    responseBytes: 10,
    latencyMs: 3,
  };
}

const statusOf = async (id: string) => (await access.getGrant(id))?.status;

describe('idle grants', () => {
  it('revokes a never-used grant once idle_timeout has passed since its start, not a second before', async () => {
    const grant = await grantOn('billing-api');
    const scheduler = sweeper();
    clock.set(new Date(START.getTime() + 30 * MIN - 1000));
    expect((await scheduler.sweep()).idleRevoked).toBe(0);
    expect(await statusOf(grant.id)).toBe('active');

    clock.set(new Date(START.getTime() + 30 * MIN + 1000));
    const result = await scheduler.sweep();
    expect(result.idleRevoked).toBeGreaterThanOrEqual(1);
    const revoked = await access.getGrant(grant.id);
    expect(revoked).toMatchObject({ status: 'revoked', endReason: 'idle for 30m', endedBy: 'scheduler' });
    // The owner is told: a grant_revoked event in the outbox (the dispatcher DMs it).
    const [event] = await database.db
      .select()
      .from(outbox)
      .where(eq(outbox.dedupeKey, `grant_revoked:${grant.id}`));
    expect(event?.payload).toMatchObject({ reason: 'idle for 30m' });
  });

  it('a recent call (last_used_at, written by the appender) keeps a grant alive', async () => {
    const grant = await grantOn('billing-api');
    const appender = createAuditAppender({ db: database.db, flushIntervalMs: 1 });
    appender.offer(call(grant, new Date(START.getTime() + 20 * MIN)));
    // A denied call is not use.
    appender.offer(call(grant, new Date(START.getTime() + 25 * MIN), 'out_of_scope'));
    await appender.close();
    expect((await access.getGrant(grant.id))?.lastUsedAt?.toISOString()).toBe(
      new Date(START.getTime() + 20 * MIN).toISOString(),
    );

    const scheduler = sweeper();
    clock.set(new Date(START.getTime() + 50 * MIN - 1000));
    await scheduler.sweep();
    expect(await statusOf(grant.id)).toBe('active');
    clock.set(new Date(START.getTime() + 50 * MIN + 1000));
    await scheduler.sweep();
    expect(await statusOf(grant.id)).toBe('revoked');
  });

  it('leaves grants of resources without idle_timeout alone', async () => {
    const grant = await grantOn('admin-api');
    clock.set(new Date(START.getTime() + 7 * 3600_000));
    await sweeper().sweep();
    expect(await statusOf(grant.id)).toBe('active');
  });

  // Both write paths: a batch through drizzle's transaction, and the pipelined one on postgres.js.
  for (const pipelined of [false, true]) {
    it(`a batch keeps each grant's latest call and never moves it back (${pipelined ? 'pipelined' : 'drizzle'} path)`, async () => {
      const grant = await grantOn('admin-api', 'UOTHER');
      const late = new Date(START.getTime() + 10 * MIN);
      const early = new Date(START.getTime() + 5 * MIN);
      const client = pipelined ? postgresClientOf(database.db) : undefined;
      if (pipelined) expect(client).toBeDefined();
      const appender = createAuditAppender({
        db: database.db,
        ...(client ? { client } : {}),
        flushIntervalMs: 1,
      });
      for (const at of [early, late, early]) appender.offer(call(grant, at));
      await appender.flush();
      appender.offer(call(grant, early));
      await appender.close();
      const [row] = await database.db.select().from(grants).where(eq(grants.id, grant.id));
      expect(row?.lastUsedAt?.toISOString()).toBe(late.toISOString());
    });
  }
});

describe('weekly report', () => {
  it('closes the week on Monday 08:00 UTC', () => {
    expect(reportPeriodEnd(new Date('2026-01-12T08:00:00Z')).toISOString()).toBe('2026-01-12T08:00:00.000Z');
    expect(reportPeriodEnd(new Date('2026-01-12T07:59:59Z')).toISOString()).toBe('2026-01-05T08:00:00.000Z');
    expect(reportPeriodEnd(new Date('2026-01-15T12:00:00Z')).toISOString()).toBe('2026-01-12T08:00:00.000Z');
  });

  it('counts grants made, used, unused, calls, denied calls and alerts from the audit log', async () => {
    const reportDb = await openTestDatabase('report');
    try {
      const weekClock = manualClock(new Date('2026-01-06T09:00:00Z'));
      const svc = createAccessService({
        db: reportDb.db,
        policy,
        clock: weekClock,
        directory: staticDirectory({}),
        grantChannel: reportDb.channel('grants'),
      });
      const made = async (userId: string) => {
        const r = await svc.createRequest({
          actor: slackUser(userId),
          resource: 'billing-api',
          scope: 'read',
          durationSeconds: 3600,
          reason: 'x',
        });
        if (!r.ok || !r.value.grant) throw new Error('no grant');
        return r.value.grant;
      };
      const used = await made('UA');
      await made('UB'); // never used
      const appender = createAuditAppender({ db: reportDb.db, flushIntervalMs: 1 });
      const at = new Date('2026-01-06T09:05:00Z');
      appender.offer(call(used, at));
      appender.offer(call(used, at));
      appender.offer(call(used, at, 'out_of_scope'));
      await appender.close();

      const reports = await buildWeeklyReports(reportDb.db, {
        resources: ['billing-api', 'admin-api'],
        periodStart: new Date('2026-01-05T08:00:00Z'),
        periodEnd: new Date('2026-01-12T08:00:00Z'),
      });
      expect(reports[0]).toMatchObject({
        resource: 'billing-api',
        grantsMade: 2,
        grantsUsed: 1,
        grantsUnused: 1,
        calls: 2,
        deniedCalls: 1,
        alerts: 0,
      });
      expect(reports[1]).toMatchObject({ resource: 'admin-api', grantsMade: 0, calls: 0 });

      // Queued once per (resource, week); the quiet admin-api week gets no message.
      weekClock.set(new Date('2026-01-12T08:00:30Z'));
      const reporter = createWeeklyReporter({ db: reportDb.db, policy, clock: weekClock });
      expect(await reporter.runDue()).toBe(1);
      expect(await reporter.runDue()).toBe(0);
      const rows = await reportDb.db.select().from(outbox).where(eq(outbox.kind, 'weekly_report'));
      const loud = rows.filter((r) => r.sentAt === null);
      expect(loud).toHaveLength(1);
      expect(loud[0]?.payload).toMatchObject({ resource: 'billing-api', grantsMade: 2, deniedCalls: 1 });
    } finally {
      await reportDb.drop();
    }
  });
});
