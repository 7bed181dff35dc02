import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { approvals, auditEvents } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { approvalMessage, grantQuotaExhaustedDm, myAccessPage } from '../../src/slack/blocks/index.ts';
import { refusalText } from '../../src/slack/blocks/refusals.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { testPolicy } from '../helpers/policy.ts';

/** Quotas through the access service: fixed on the grant at approval, lowered by approvers, shown in Slack. */

const POLICY = `
resources:
  billing-api:
    upstream: http://127.0.0.1:9000
    approvers: { users: [UAPPROVER1, UAPPROVER2] }
    approval_channel: CAPPROVALS
    approvals_required: 2
    quota: { response_bytes: 10MB }
    scopes:
      read: { allow: ["GET /**"], quota: { requests: 1000 } }
      write: { allow: ["GET /**", "POST /invoices"] }
`;

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let access: AccessService;
const clock = manualClock(new Date('2026-03-02T09:00:00Z'));
const policy = testPolicy(POLICY, {});

beforeAll(async () => {
  database = await openTestDatabase('t_quota');
  access = createAccessService({
    db: database.db,
    policy: staticPolicyStore(policy),
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
  });
});

afterAll(async () => {
  await database?.drop();
});

async function request(scope: string) {
  const created = await access.createRequest({
    actor: slackUser('UCONTRACTOR'),
    resource: 'billing-api',
    scope,
    durationSeconds: 7200,
    reason: 'INC-1',
  });
  if (!created.ok) throw new Error(created.code);
  return created.value.request;
}

describe('grant quotas', () => {
  it('shows the quota on the approval message ("read, 2h, 1,000 calls") with a way to approve fewer', async () => {
    const pending = await request('read');
    const message = approvalMessage({
      request: pending,
      approvals: [],
      grant: undefined,
      resource: policy.resources['billing-api'],
      now: clock.now(),
    });
    expect(message.text).toContain('read, 2h, 1,000 calls, 10 MB');
    const json = JSON.stringify(message.blocks);
    expect(json).toContain("*Quota:* 1,000 calls, 10 MB over the grant's life");
    expect(json).toContain('approve_lower_quota');
    expect(json).toContain('Approve for 250 calls');
  });

  it('takes the lowest quota the approvers chose, and refuses one above the policy', async () => {
    const pending = await request('read');
    const above = await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER1'),
      quota: { requests: 1001 },
    });
    expect(above).toMatchObject({ ok: false, code: 'quota_above_policy' });
    const first = await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER1'),
      quota: { requests: 250 },
    });
    expect(first.ok).toBe(true);
    const rows = await database.db.select().from(approvals).where(eq(approvals.requestId, pending.id));
    expect(rows.map((r) => r.quotaRequests)).toEqual([250]);
    // The message shows the lowered figure while the request waits for the second approver.
    const waiting = approvalMessage({
      request: pending,
      approvals: await access.approvalsOf(pending.id),
      grant: undefined,
      resource: policy.resources['billing-api'],
      now: clock.now(),
    });
    expect(waiting.text).toContain('read, 2h, 250 calls');
    const second = await access.approve({ requestId: pending.id, actor: slackUser('UAPPROVER2') });
    if (!second.ok) throw new Error(second.code);
    const grant = second.value.grant!;
    expect(grant).toMatchObject({
      quotaRequests: 250,
      quotaResponseBytes: 10 * 1024 * 1024,
      usedRequests: 0,
    });
    // /access list and App Home show the use.
    const list = JSON.stringify(
      myAccessPage({ pending: [], active: [{ ...grant, usedRequests: 42 }] }, clock.now()),
    );
    expect(list).toContain('42 of 250 calls, 0 bytes of 10 MB used');
    expect(JSON.stringify(grantQuotaExhaustedDm(grant))).toContain(
      'has used up its quota (250 calls, 10 MB)',
    );
  });

  it('an approver may lower response bytes too, never above the policy, and a refusal writes nothing', async () => {
    const MB = 1024 * 1024;
    const pending = await request('write');
    const approvalRows = () =>
      database.db.select().from(approvals).where(eq(approvals.requestId, pending.id));
    for (const quota of [
      { responseBytes: 10 * MB + 1 },
      { responseBytes: 0 },
      { responseBytes: 1.5 },
      { requests: 10, responseBytes: 11 * MB },
      {},
    ]) {
      const refused = await access.approve({ requestId: pending.id, actor: slackUser('UAPPROVER1'), quota });
      expect(refused, JSON.stringify(quota)).toMatchObject({ ok: false, code: 'quota_above_policy' });
    }
    const above = await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER1'),
      quota: { responseBytes: 10 * MB + 1 },
    });
    expect(above).toMatchObject({ ok: false, problem: 'above_policy', unit: 'response bytes', cap: 10 * MB });
    expect(above.ok ? '' : refusalText(above)).toContain('10,485,760 response bytes, not raise it');
    expect(await approvalRows()).toEqual([]);

    const first = await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER1'),
      quota: { responseBytes: MB },
    });
    expect(first.ok).toBe(true);
    expect((await approvalRows()).map((r) => [r.quotaRequests, r.quotaResponseBytes])).toEqual([[null, MB]]);
    // The policy sets no call cap on `write`; an approver may still add one.
    const second = await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER2'),
      quota: { requests: 50 },
    });
    if (!second.ok) throw new Error(second.code);
    expect(second.value.grant).toMatchObject({ quotaRequests: 50, quotaResponseBytes: MB });

    const audit = await database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.requestId, pending.id))
      .orderBy(auditEvents.seq);
    expect(audit.filter((r) => r.kind === 'request.approval_added').map((r) => r.data)).toMatchObject([
      { quotaResponseBytes: MB },
      { quotaRequests: 50 },
    ]);
    expect(audit.find((r) => r.kind === 'grant.created')?.data).toMatchObject({
      quotaRequests: 50,
      quotaResponseBytes: MB,
    });
    const approved = approvalMessage({
      request: second.value.request,
      approvals: await access.approvalsOf(pending.id),
      grant: second.value.grant,
      resource: policy.resources['billing-api'],
      now: clock.now(),
    });
    expect(JSON.stringify(approved.blocks)).toContain(
      "*Quota:* 50 calls, 1 MB over the grant's life (lowered from the policy's 10 MB)",
    );
  });

  it('each cap is the lowest any approver chose', async () => {
    const MB = 1024 * 1024;
    const pending = await request('read');
    await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER1'),
      quota: { requests: 500, responseBytes: MB },
    });
    const done = await access.approve({
      requestId: pending.id,
      actor: slackUser('UAPPROVER2'),
      quota: { requests: 100, responseBytes: 5 * MB },
    });
    if (!done.ok) throw new Error(done.code);
    expect(done.value.grant).toMatchObject({ quotaRequests: 100, quotaResponseBytes: MB });
  });

  it("a scope without its own quota takes the resource's", async () => {
    const pending = await request('write');
    await access.approve({ requestId: pending.id, actor: slackUser('UAPPROVER1') });
    const done = await access.approve({ requestId: pending.id, actor: slackUser('UAPPROVER2') });
    if (!done.ok) throw new Error(done.code);
    expect(done.value.grant).toMatchObject({ quotaRequests: null, quotaResponseBytes: 10 * 1024 * 1024 });
  });
});
