import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantEndAt } from '../../src/access/transitions.ts';
import { auditEvents, grants } from '../../src/db/schema/index.ts';
import { slackUser } from '../helpers/actors.ts';
import {
  ADMIN,
  APPROVER,
  type ConsoleClient,
  type ConsoleWorld,
  OTHER_REQUESTER,
  REQUESTER,
  startConsoleWorld,
} from '../helpers/console-world.ts';
import { blockText } from '../helpers/slack-harness.ts';

/**
 * Decisions through the console are the access service's decisions: N-of-M, never one's own,
 * one winner for a double submit, every change audited in the console's name, and Slack and
 * the console each showing what was decided in the other.
 */
const SECOND_APPROVER = 'UAPPROVER2';

let world: ConsoleWorld;
let approver: ConsoleClient;
let second: ConsoleClient;
let admin: ConsoleClient;
beforeAll(async () => {
  world = await startConsoleWorld();
  approver = (await world.signIn(APPROVER)).client;
  second = (await world.signIn(SECOND_APPROVER)).client;
  admin = (await world.signIn(ADMIN)).client;
}, 60_000);
afterAll(async () => {
  await world?.close();
});

async function pendingRequest(resource: 'billing-api' | 'admin-api', requester = REQUESTER) {
  const created = await world.harness.access.createRequest({
    actor: slackUser(requester),
    resource,
    scope: resource === 'billing-api' ? 'write' : 'admin',
    durationSeconds: 3600,
    reason: `decisions fixture ${Math.random()}`,
  });
  if (!created.ok) throw new Error(created.code);
  return created.value.request.id;
}

/** The approval message of a request, once the outbox has posted it. */
async function approvalMessageTs(requestId: string): Promise<string> {
  await world.harness.api.waitFor(
    'chat.postMessage',
    (c) => blockText(c).includes(requestId) && String(c.args.channel).startsWith('C'),
    10_000,
  );
  await world.harness.dispatcher.drain();
  const ts = (await world.harness.access.getRequest(requestId))?.approvalMessageTs;
  if (!ts) throw new Error('no approval message');
  return ts;
}

const auditOf = (requestId: string) =>
  world.harness.database.db.select().from(auditEvents).where(eq(auditEvents.requestId, requestId));

describe('N-of-M through the console', () => {
  it('counts distinct approvers: the first approval waits, a repeat is refused, the second makes the grant', async () => {
    const requestId = await pendingRequest('admin-api');
    const ts = await approvalMessageTs(requestId);
    const first = await approver.post(`/api/v1/requests/${requestId}/approve`, {});
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ grant: null, approvals: 1, required: 2 });
    const repeat = await approver.post(`/api/v1/requests/${requestId}/approve`, {});
    expect(repeat.status).toBe(409);
    expect(((await repeat.json()) as { error: string }).error).toBe('already_approved');
    const completing = await second.post(`/api/v1/requests/${requestId}/approve`, {});
    expect(completing.status).toBe(200);
    const body = (await completing.json()) as { grant: { id: string } | null; approvals: number };
    expect(body.grant).not.toBeNull();
    expect(body.approvals).toBe(2);
    const rows = await auditOf(requestId);
    expect(rows.filter((r) => r.kind === 'request.approval_added').map((r) => r.actor)).toEqual([
      `console:${APPROVER}`,
      `console:${SECOND_APPROVER}`,
    ]);
    expect(rows.filter((r) => r.kind === 'request.approved').map((r) => r.actor)).toEqual([
      `console:${SECOND_APPROVER}`,
    ]);
    // The Slack message is updated in place with the outcome, naming both approvers.
    const update = await world.harness.api.waitFor(
      'chat.update',
      (c) => c.args.ts === ts && blockText(c).includes('Approved by'),
      10_000,
    );
    expect(blockText(update)).toContain(`<@${APPROVER}>`);
    expect(blockText(update)).toContain(`<@${SECOND_APPROVER}>`);
  });
});

describe("never one's own request", () => {
  it('an approver is refused their own request, and is offered no decision on it', async () => {
    const requestId = await pendingRequest('billing-api', APPROVER);
    const own = await approver.post(`/api/v1/requests/${requestId}/approve`, {});
    expect(own.status).toBe(403);
    expect(((await own.json()) as { error: string }).error).toBe('self_approval');
    const form = await approver.post(`/console/requests/${requestId}/approve`, {}, { form: true });
    expect(form.status).toBe(403);
    const listed = (await (await approver.get('/api/v1/requests')).json()) as {
      requests: { id: string; canDecide: boolean }[];
    };
    expect(listed.requests.find((r) => r.id === requestId)?.canDecide).toBe(false);
    expect((await world.harness.access.getRequest(requestId))?.status).toBe('pending');
    expect((await auditOf(requestId)).map((r) => r.kind)).toEqual(['request.created']);
  });
});

describe('a double submit has one winner', () => {
  it('parallel approvals of one request, by one approver and by two, make one grant', async () => {
    for (const clients of [
      [approver, approver, approver, approver],
      [approver, second, approver, second],
    ]) {
      const requestId = await pendingRequest('billing-api');
      const answers = await Promise.all(
        clients.map((c, i) =>
          i % 2 === 0
            ? c.post(`/api/v1/requests/${requestId}/approve`, {})
            : c.post(`/console/requests/${requestId}/approve`, {}, { form: true }),
        ),
      );
      const statuses = answers.map((a) => a.status);
      // One approval succeeds (200 for the API, 303 for the form); every other one is refused.
      expect(
        statuses.filter((s) => s === 200 || s === 303),
        String(statuses),
      ).toHaveLength(1);
      expect(statuses.filter((s) => s === 409)).toHaveLength(clients.length - 1);
      const made = await world.harness.database.db
        .select()
        .from(grants)
        .where(eq(grants.requestId, requestId));
      expect(made).toHaveLength(1);
      const approved = (await auditOf(requestId)).filter((r) => r.kind === 'request.approved');
      expect(approved).toHaveLength(1);
    }
  });
});

describe('every console action is audited with the console as its channel', () => {
  it('deny, revoke, extend, revoke-all and a chain check, from the pages and the API', async () => {
    const denied = await pendingRequest('billing-api');
    const deny = await approver.post(
      `/console/requests/${denied}/deny`,
      { reason: 'not this week' },
      { form: true },
    );
    expect(deny.status).toBe(303);

    const granted = await pendingRequest('billing-api', OTHER_REQUESTER);
    const approve = await approver.post(
      `/console/requests/${granted}/approve`,
      { duration: '30m' },
      { form: true },
    );
    expect(approve.status).toBe(303);
    const grant = await grantOf(granted);
    const extend = await approver.post(`/api/v1/grants/${grant}/extend`, { duration: '15m' });
    expect(extend.status).toBe(200);
    const revoke = await approver.post(`/console/grants/${grant}/revoke`, { reason: 'done' }, { form: true });
    expect(revoke.status).toBe(303);

    const held = await pendingRequest('billing-api', OTHER_REQUESTER);
    const all = await admin.post(`/api/v1/people/${OTHER_REQUESTER}/revoke-all`, { reason: 'offboarded' });
    expect(all.status).toBe(200);
    const verify = await admin.post('/console/chain/verify', {}, { form: true });
    expect(verify.status).toBe(303);

    const db = world.harness.database.db;
    const kindsBy = async (actor: string) =>
      (await db.select().from(auditEvents).where(eq(auditEvents.actor, actor))).map((r) => ({
        kind: r.kind,
        requestId: r.requestId,
        grantId: r.grantId,
      }));
    const byApprover = await kindsBy(`console:${APPROVER}`);
    expect(byApprover).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'request.denied', requestId: denied }),
        expect.objectContaining({ kind: 'request.approved', requestId: granted }),
        expect.objectContaining({ kind: 'grant.extended', grantId: grant }),
        expect.objectContaining({ kind: 'grant.revoked', grantId: grant }),
      ]),
    );
    const byAdmin = await kindsBy(`console:${ADMIN}`);
    expect(byAdmin).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'request.cancelled', requestId: held }),
        expect.objectContaining({ kind: 'user.offboarded' }),
        expect.objectContaining({ kind: 'audit.verified' }),
      ]),
    );
    // Nothing the console did is recorded as Slack's (the approver's only Slack row is the request
    // they made themselves in the test above).
    const slackRows = await db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.actor, `slack:${APPROVER}`));
    expect(slackRows.map((r) => r.kind)).toEqual(['request.created']);
  });
});

async function grantOf(requestId: string): Promise<string> {
  const [row] = await world.harness.database.db.select().from(grants).where(eq(grants.requestId, requestId));
  if (!row) throw new Error('no grant');
  return row.id;
}

describe('Slack and the console show each other’s decisions', () => {
  it('an approval clicked in Slack shows in the console at once: request decided, grant live', async () => {
    const requestId = await pendingRequest('billing-api');
    const ts = await approvalMessageTs(requestId);
    const pending = (await (await approver.get('/api/v1/requests')).json()) as { requests: { id: string }[] };
    expect(pending.requests.map((r) => r.id)).toContain(requestId);

    await world.harness.click(SECOND_APPROVER, 'approve_request', requestId, { messageTs: ts });
    const decided = async () =>
      (
        (await (await approver.get('/api/v1/requests?status=approved')).json()) as {
          requests: { id: string; decidedBy: string | null }[];
        }
      ).requests.find((r) => r.id === requestId);
    const deadline = Date.now() + 5000;
    while (!(await decided()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect((await decided())?.decidedBy).toBe(SECOND_APPROVER);
    const after = (await (await approver.get('/api/v1/requests')).json()) as { requests: { id: string }[] };
    expect(after.requests.map((r) => r.id)).not.toContain(requestId);
    const page = await (await approver.get('/console/requests')).text();
    expect(page).not.toContain(requestId);
    const live = (await (await approver.get(`/api/v1/grants?user=${REQUESTER}&state=live`)).json()) as {
      grants: { requestId: string }[];
    };
    expect(live.grants.map((g) => g.requestId)).toContain(requestId);
    // And the approval is Slack's in the audit log.
    const approved = (await auditOf(requestId)).filter((r) => r.kind === 'request.approved');
    expect(approved.map((r) => r.actor)).toEqual([`slack:${SECOND_APPROVER}`]);
  });

  it('a denial in the console updates the Slack message in place and DMs the requester its reason', async () => {
    const requestId = await pendingRequest('billing-api');
    const ts = await approvalMessageTs(requestId);
    const deny = await approver.post(`/api/v1/requests/${requestId}/deny`, {
      reason: 'use the sandbox first',
    });
    expect(deny.status).toBe(200);
    const update = await world.harness.api.waitFor(
      'chat.update',
      (c) => c.args.ts === ts && blockText(c).includes('Denied'),
      10_000,
    );
    expect(blockText(update)).toContain(`<@${APPROVER}>`);
    const dm = await world.harness.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('use the sandbox first'),
      10_000,
    );
    expect(dm).toBeDefined();
  });
});

describe('approve for less from the requests page', () => {
  it('takes a shorter duration and a lower quota; a quota it cannot read changes nothing', async () => {
    const requestId = await pendingRequest('billing-api');
    const page = await (await approver.get('/console/requests')).text();
    expect(page).toContain('name="quota_requests"');
    expect(page).toContain('name="quota_bytes"');

    const bad = await approver.post(
      `/console/requests/${requestId}/approve`,
      { duration: '30m', quota_requests: 'many' },
      { form: true },
    );
    expect(bad.status).toBe(422);
    expect((await world.harness.access.getRequest(requestId))?.status).toBe('pending');

    const done = await approver.post(
      `/console/requests/${requestId}/approve`,
      { duration: '30m', quota_requests: '50', quota_bytes: '2MB' },
      { form: true },
    );
    expect(done.status).toBe(303);
    const [grant] = await world.harness.database.db
      .select()
      .from(grants)
      .where(eq(grants.requestId, requestId));
    expect(grant).toMatchObject({ quotaRequests: 50, quotaResponseBytes: 2 * 1024 * 1024 });
    // A grant ends on a whole second (grantEndAt): 30 minutes from its start, rounded down.
    expect(grant!.expiresAt).toEqual(grantEndAt(grant!.startsAt, 30 * 60));
  });
});
