import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { createAnomalyMonitor } from '../../src/anomaly/monitor.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { auditEvents, grants, outbox } from '../../src/db/schema/index.ts';
import { type PolicyStore, staticPolicyStore } from '../../src/policy/index.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';

type TestDatabase = Awaited<ReturnType<typeof openTestDatabase>>;

const ANOMALY_POLICY = TEST_POLICY_YAML.replace(
  '    rate_limit: { requests: 600, per: 1m }\n',
  '    rate_limit: { requests: 600, per: 1m }\n' +
    '    anomalies: { denied_burst: 3/1m, new_ip: true, max_response_bytes: { limit: 1KB, action: revoke } }\n',
);
const T0 = new Date('2026-01-05T10:00:00Z');
const logger = pino({ level: 'silent' });

describe('anomaly monitor', () => {
  let database: TestDatabase;
  let policy: PolicyStore;
  let access: AccessService;
  let grantId: string;
  const clock = manualClock(T0);

  const call = (ms: number, over: Partial<CallRecord> = {}): CallRecord => ({
    at: new Date(T0.getTime() + ms),
    requestId: randomUUID(),
    resource: 'billing-api',
    grantId,
    userId: 'UALICE',
    scope: 'read',
    method: 'GET',
    path: '/invoices/1',
    clientIp: '10.0.0.1',
    decision: 'allowed',
    status: 200,
    responseBytes: 100,
    latencyMs: 3,
    ...over,
  });
  const denied = (ms: number) => call(ms, { decision: 'out_of_scope', status: 403, method: 'DELETE' });

  const alertRows = async () =>
    database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.kind, 'anomaly.alert'))
      .orderBy(auditEvents.seq);
  const alertEvents = async () =>
    (await database.db.select().from(outbox).where(eq(outbox.kind, 'anomaly_alert')).orderBy(outbox.id)).map(
      (r) => r.payload,
    );

  beforeEach(async () => {
    database = await openTestDatabase('anomaly');
    policy = staticPolicyStore(testPolicy(ANOMALY_POLICY));
    access = createAccessService({
      db: database.db,
      policy,
      clock,
      directory: staticDirectory({}),
      grantChannel: database.channel('grants'),
    });
    const made = await access.createRequest({
      actor: slackUser('UALICE'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 3600,
      reason: 'debug invoices',
    });
    if (!made.ok || !made.value.grant) throw new Error('expected an auto-approved grant');
    grantId = made.value.grant.id;
  });
  afterEach(async () => {
    await database.drop();
  });

  const monitorFor = (over: Partial<Parameters<typeof createAnomalyMonitor>[0]> = {}) =>
    createAnomalyMonitor({ db: database.db, policy, clock, access, logger, ...over });

  it('a denied burst alerts once per window: audit row and outbox event in the same transaction', async () => {
    const monitor = monitorFor();
    for (let i = 0; i < 8; i++) expect(monitor.offer(denied(i * 1000))).toBe(true);
    await monitor.flush();
    const rows = await alertRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: 'system:anomaly',
      grantId,
      resource: 'billing-api',
      data: { rule: 'denied_burst', action: 'alert', revoked: false, userId: 'UALICE' },
    });
    const events = await alertEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      kind: 'anomaly_alert',
      alertId: rows[0]?.data.alertId,
      grantId,
      resource: 'billing-api',
      userId: 'UALICE',
      rule: 'denied_burst',
      action: 'alert',
      revoked: false,
      evidence: { denied: 3, windowSeconds: 60, lastPath: 'DELETE /invoices/1' },
    });
    expect(monitor.stats()).toMatchObject({ alerts: 1, processed: 8 });

    // Still inside the minute after the first alert: quiet. After it: a new alert.
    monitor.offer(denied(30_000));
    monitor.offer(denied(31_000));
    monitor.offer(denied(32_000));
    await monitor.flush();
    expect(await alertRows()).toHaveLength(1);
    for (let i = 0; i < 3; i++) monitor.offer(denied(70_000 + i * 1000));
    await monitor.flush();
    expect(await alertRows()).toHaveLength(2);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
    await monitor.close();
  });

  it('the alert carries the call that set it off, for Slack to show what happened', async () => {
    const monitor = monitorFor();
    const last = { ...denied(2000), path: '/invoices/9', clientIp: '203.0.113.7' };
    monitor.offer(denied(0));
    monitor.offer(denied(1000));
    monitor.offer(last);
    await monitor.flush();
    // The new address sets off new_ip as well; both alerts carry the same call.
    const events = await alertEvents();
    expect(events.map((e) => e.rule)).toEqual(['denied_burst', 'new_ip']);
    expect(events[0]).toEqual(
      expect.objectContaining({
        call: {
          method: 'DELETE',
          path: '/invoices/9',
          clientIp: '203.0.113.7',
          at: last.at.toISOString(),
          decision: 'out_of_scope',
          status: 403,
          requestId: last.requestId,
        },
      }),
    );
    expect(events[1]?.call).toEqual(events[0]?.call);
    await monitor.close();
  });

  it('a new client IP alerts; the first IP is the baseline', async () => {
    const monitor = monitorFor();
    monitor.offer(call(0));
    monitor.offer(call(1000));
    await monitor.flush();
    expect(await alertRows()).toHaveLength(0);
    monitor.offer(call(2000, { clientIp: '203.0.113.9' }));
    await monitor.flush();
    const events = await alertEvents();
    expect(events).toMatchObject([
      { rule: 'new_ip', evidence: { clientIp: '203.0.113.9', knownIps: ['10.0.0.1'] } },
    ]);
    await monitor.close();
  });

  it('action: revoke revokes the grant at once and the alert says so', async () => {
    const monitor = monitorFor();
    monitor.offer(call(0, { responseBytes: 5000 }));
    await monitor.flush();
    const [grant] = await database.db.select().from(grants).where(eq(grants.id, grantId));
    expect(grant).toMatchObject({ status: 'revoked', endedBy: 'system' });
    expect(grant?.endReason).toContain('max_response_bytes');
    const revokedRows = await database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.kind, 'grant.revoked'));
    expect(revokedRows).toMatchObject([{ actor: 'system:anomaly', grantId }]);
    expect(await alertRows()).toMatchObject([
      { data: { rule: 'max_response_bytes', action: 'revoke', revoked: true } },
    ]);
    expect(await alertEvents()).toMatchObject([
      { rule: 'max_response_bytes', action: 'revoke', revoked: true, evidence: { bytes: 5000, limit: 1024 } },
    ]);
    const grantEvents = await database.db.select().from(outbox).where(eq(outbox.kind, 'grant_revoked'));
    expect(grantEvents).toHaveLength(1);
    // Once revoked, the token's next use is its own alert (revoked_token_use is on by default).
    monitor.offer(call(60_000, { decision: 'grant_revoked', status: 403 }));
    await monitor.flush();
    expect((await alertEvents()).map((e) => e.rule)).toEqual(['max_response_bytes', 'revoked_token_use']);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
    await monitor.close();
  });

  it('Revoke from an alert (service level): approvers may, others may not', async () => {
    const stranger = await access.revokeGrant({
      grantId,
      actor: { type: 'slack', userId: 'USTRANGER' },
      reason: 'alert',
    });
    expect(stranger).toMatchObject({ ok: false, code: 'not_allowed_to_revoke' });
    const [still] = await database.db.select().from(grants).where(eq(grants.id, grantId));
    expect(still?.status).toBe('active');
    const approver = await access.revokeGrant({
      grantId,
      actor: { type: 'slack', userId: 'UAPPROVER1' },
      reason: 'from anomaly alert',
    });
    expect(approver).toMatchObject({ ok: true, value: { status: 'revoked', endedBy: 'UAPPROVER1' } });
  });

  it('two monitors (two proxy processes) seeing the same burst write one alert', async () => {
    const a = monitorFor();
    const b = monitorFor();
    for (let i = 0; i < 3; i++) {
      a.offer(denied(i * 1000));
      b.offer(denied(i * 1000 + 1));
    }
    await Promise.all([a.flush(), b.flush()]);
    expect(await alertRows()).toHaveLength(1);
    expect(await alertEvents()).toHaveLength(1);
    expect(a.stats().alerts + b.stats().alerts).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });

  it('never blocks the proxy: offers past the queue bound are dropped and counted, capacity stays true', async () => {
    const monitor = monitorFor({ maxQueue: 5 });
    for (let i = 0; i < 50; i++) expect(monitor.offer(call(i))).toBe(true);
    expect(monitor.hasCapacity()).toBe(true);
    expect(monitor.stats().dropped).toBe(45);
    await monitor.close();
    expect(monitor.stats().processed).toBe(5);
  });

  it('keeps state for a bounded number of grants (LRU)', async () => {
    const monitor = monitorFor({ maxSubjects: 3 });
    for (let i = 0; i < 10; i++) monitor.offer(call(i, { grantId: randomUUID() }));
    await monitor.flush();
    expect(monitor.stats().subjects).toBe(3);
    monitor.forgetGrant(grantId);
    await monitor.close();
  });

  it('ignores calls to resources no longer in the policy', async () => {
    const monitor = monitorFor();
    for (let i = 0; i < 5; i++) monitor.offer({ ...denied(i), resource: 'gone-api' });
    await monitor.close();
    expect(await alertRows()).toHaveLength(0);
  });
});
