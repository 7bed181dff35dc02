import { and, eq } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnomalyMonitor } from '../../src/anomaly/monitor.ts';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { appendAuditEvents } from '../../src/audit/chain-append.ts';
import { auditEvents, outbox } from '../../src/db/schema/index.ts';
import {
  interactiveBody,
  nowSeconds,
  plainTextState,
  postSigned,
  staticSelectActionPayload,
  staticSelectState,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import type { RecordedCall } from '../../src/dev/slack-stand-in/web-api.ts';
import { enqueue } from '../../src/outbox/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';
import {
  blockText,
  fakeToken,
  openedViewId,
  PROXY_URL,
  SIGNING_SECRET,
  type SlackHarness,
  startSlackHarness,
} from '../helpers/slack-harness.ts';

const REQUESTER = 'UREQUESTER';
const APPROVER1 = 'UAPPROVER1';
const APPROVER2 = 'UAPPROVER2';
const GROUPIE = 'UGROUPIE';
const STRANGER = 'USTRANGER';

let h: SlackHarness;

beforeAll(async () => {
  h = await startSlackHarness({ userGroups: { SAPPROVERS: [GROUPIE] } });
});
afterAll(async () => {
  await h?.close();
});

/** The first approval message posted whose blocks contain `marker` (each test uses its own reason). */
function approvalPost(marker: string): Promise<RecordedCall> {
  return h.api.waitFor(
    'chat.postMessage',
    (c) => c.args.channel !== REQUESTER && blockText(c).includes(marker),
  );
}

/** The approval message and its ts; draining the dispatcher waits for the ts it stored. */
async function postedTs(marker: string): Promise<{ ts: string; requestId: string }> {
  const post = await approvalPost(marker);
  const requestId = findRequestId(post);
  await h.dispatcher.drain();
  const request = await h.access.getRequest(requestId);
  if (!request?.approvalMessageTs) throw new Error(`no approval ts for ${requestId}`);
  return { ts: request.approvalMessageTs, requestId };
}

function findRequestId(call: RecordedCall): string {
  const match = /"value":"([0-9a-f-]{36})"/.exec(blockText(call));
  if (!match?.[1]) throw new Error(`no request id in ${blockText(call)}`);
  return match[1];
}

async function request(userId: string, text: string): Promise<string> {
  const { response, responseKey } = await h.command(userId, text);
  expect(response.status).toBe(200);
  const answer = await h.answer(responseKey);
  return blockText(answer);
}

describe('/access over signed HTTP', () => {
  it('help and bad commands are answered in the ack, ephemerally, with usage', async () => {
    const help = await h.command(REQUESTER, 'help');
    expect(await help.response.json()).toMatchObject({
      response_type: 'ephemeral',
      text: 'How to use /access',
    });
    const bad = await h.command(REQUESTER, 'request billing-api write soon fix');
    const body = (await bad.response.json()) as { response_type: string; text: string; blocks: unknown[] };
    expect(body.response_type).toBe('ephemeral');
    expect(body.text).toMatch(/"soon" is not a duration/);
    expect(JSON.stringify(body.blocks)).toContain('/access request');
  });

  it('request by text → approval message → approve → message updated and requester DM with Show token', async () => {
    const answer = await request(REQUESTER, 'request billing-api write 2h fix invoice INC-1');
    expect(answer).toContain('waiting for 1 approval');
    const post = await approvalPost('INC-1');
    expect(post.args.channel).toBe('CAPPROVALS');
    expect(blockText(post)).toContain('<@UREQUESTER>');
    const { ts: messageTs, requestId } = await postedTs('INC-1');

    const click = await h.click(APPROVER1, 'approve_request', requestId, { messageTs });
    expect(click.response.status).toBe(200);
    const update = await h.api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('Approved by'),
    );
    expect(blockText(update)).toContain('<@UAPPROVER1>');
    const dm = await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('is approved'),
    );
    const text = blockText(dm);
    expect(text).toContain(`${PROXY_URL}/billing-api/`);
    expect(text).toContain('$JITGATE_TOKEN');
    expect(text).toContain('show_token');
    expect(text).not.toContain('tok.');

    // Show token: only in a modal, fresh, with the grant's expiry; never for someone else.
    const grant = (await h.access.listForUser(REQUESTER)).active[0]!;
    await h.click(REQUESTER, 'show_token', grant.id, { channelId: 'DUREQUESTER' });
    const modal = await h.api.waitFor('views.open', (c) => blockText(c).includes(grant.id));
    expect(blockText(modal)).toContain(fakeToken(grant));
    const other = await h.click(STRANGER, 'show_token', grant.id);
    expect(blockText(await h.answer(other.responseKey))).toContain("Only the grant's owner");
    const posted = h.api.callsTo('chat.postMessage').concat(h.api.callsTo('chat.update'));
    expect(posted.some((c) => blockText(c).includes(fakeToken(grant)))).toBe(false);
  });

  it('choosing a resource in the modal narrows its durations in place (views.update on that view)', async () => {
    const { triggerId } = await h.command(REQUESTER, '');
    const viewId = openedViewId(await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId));
    const hash = h.api.viewHash(viewId);
    await h.select(REQUESTER, 'resource', { text: 'billing-api', value: 'billing-api' }, { viewId });
    const updated = await h.api.waitFor('views.update', (c) => c.args.view_id === viewId);
    // Sent with the hash the view had when the choice was made, so a stale update is refused, not applied.
    expect(updated.args.hash).toBe(hash);
    const view = updated.args.view as { blocks: { block_id?: string; element?: Record<string, unknown> }[] };
    const resource = view.blocks.find((b) => b.block_id === 'resource');
    expect(resource?.element?.initial_option).toMatchObject({ value: 'billing-api' });
    const scopes = view.blocks.find((b) => b.block_id === 'scope')?.element?.options as { value: string }[];
    expect(scopes.map((o) => o.value)).toEqual(['read', 'write']);
    const durations = view.blocks.find((b) => b.block_id === 'duration')?.element?.options as {
      value: string;
    }[];
    // billing-api allows up to 8h.
    expect(Math.max(...durations.map((o) => Number(o.value)))).toBe(8 * 3600);
  });

  it('request by modal: /access opens it, bad input stays in it, a good submission creates the request', async () => {
    const { triggerId } = await h.command(REQUESTER, '');
    const opened = await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId);
    expect(blockText(opened)).toContain('"value":"billing-api"');

    const tooLong = await h.submit(REQUESTER, 'request_access', {
      resource: { resource: staticSelectState('billing-api') },
      scope: { scope: staticSelectState('write') },
      duration: { duration: staticSelectState(String(86_400)) },
      reason: { reason: plainTextState('modal reason M-1') },
    });
    expect(await tooLong.json()).toMatchObject({
      response_action: 'errors',
      errors: { duration: expect.any(String) },
    });

    // A resource chosen, but the form never showed its scopes (the update lost a race): shown again.
    const noScope = await h.submit(REQUESTER, 'request_access', {
      resource: { resource: staticSelectState('admin-api') },
      duration: { duration: staticSelectState('3600') },
      reason: { reason: plainTextState('modal reason M-0') },
    });
    const again = (await noScope.json()) as {
      response_action: string;
      view: { blocks: { block_id?: string }[] };
    };
    expect(again.response_action).toBe('update');
    expect(again.view.blocks.map((b) => b.block_id)).toContain('scope');

    const ok = await h.submit(REQUESTER, 'request_access', {
      resource: { resource: staticSelectState('billing-api') },
      scope: { scope: staticSelectState('write') },
      duration: { duration: staticSelectState('3600') },
      reason: { reason: plainTextState('modal reason M-2') },
    });
    expect(ok.status).toBe(200);
    await approvalPost('M-2');
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('waiting for'),
    );

    // A form opened before resource and scope were asked apart still submits.
    const legacy = await h.submit(REQUESTER, 'request_access', {
      target: { target: staticSelectState('billing-api|write') },
      duration: { duration: staticSelectState('3600') },
      reason: { reason: plainTextState('modal reason M-3') },
    });
    expect(legacy.status).toBe(200);
    await approvalPost('M-3');
  });

  it('deny opens a modal; the reason reaches the requester and the message', async () => {
    await request(REQUESTER, 'request billing-api write 1h deny me D-1');
    const { ts: messageTs, requestId } = await postedTs('D-1');
    const click = await h.click(APPROVER2, 'deny_request', requestId, { messageTs });
    expect(click.response.status).toBe(200);
    const modal = await h.api.waitFor('views.open', (c) => blockText(c).includes('deny_reason'));
    expect(modal.args.view).toMatchObject({ private_metadata: requestId });
    const submitted = await h.submit(
      APPROVER2,
      'deny_reason',
      { deny_reason: { deny_reason: plainTextState('not on call <!here>') } },
      requestId,
    );
    expect(submitted.status).toBe(200);
    const dm = await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('was denied'),
    );
    expect(blockText(dm)).toContain('not on call &lt;!here&gt;');
    await h.api.waitFor('chat.update', (c) => c.args.ts === messageTs && blockText(c).includes('Denied by'));
  });

  it('refuses self-approval and non-approvers with an ephemeral why, and changes nothing', async () => {
    await request(APPROVER1, 'request billing-api write 1h self S-1');
    const { ts: messageTs, requestId } = await postedTs('S-1');
    const before = await h.counts();
    const self = await h.click(APPROVER1, 'approve_request', requestId, { messageTs });
    expect(blockText(await h.answer(self.responseKey))).toContain('own request');
    const stranger = await h.click(STRANGER, 'approve_request', requestId, { messageTs });
    expect(blockText(await h.answer(stranger.responseKey))).toContain('Only approvers of billing-api');
    const denyStranger = await h.click(STRANGER, 'deny_request', requestId, { messageTs });
    expect(blockText(await h.answer(denyStranger.responseKey))).toContain('Only approvers');
    expect(await h.counts()).toEqual(before);
    expect((await h.access.getRequest(requestId))?.status).toBe('pending');
  });

  it('an approver through a Slack user group may approve', async () => {
    await request(REQUESTER, 'request billing-api write 1h group G-1');
    const { ts: messageTs, requestId } = await postedTs('G-1');
    await h.click(GROUPIE, 'approve_request', requestId, { messageTs });
    await h.api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('<@UGROUPIE>'),
    );
    expect((await h.access.getRequest(requestId))?.status).toBe('approved');
    expect(h.api.callsTo('usergroups.users.list').some((c) => c.args.usergroup === 'SAPPROVERS')).toBe(true);
  });

  it('2-of-N: progress shown after the first approval, grant after the second', async () => {
    await request(REQUESTER, 'request admin-api 1h two people T-1');
    const { ts: messageTs, requestId } = await postedTs('T-1');
    expect(blockText(await approvalPost('T-1'))).toContain('0 of 2 approvals');
    await h.click(APPROVER1, 'approve_request', requestId, { messageTs });
    await h.api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('1 of 2 approvals'),
    );
    const again = await h.click(APPROVER1, 'approve_request', requestId, { messageTs });
    expect(blockText(await h.answer(again.responseKey))).toContain('already approved');
    await h.click(APPROVER2, 'approve_request', requestId, { messageTs });
    await h.api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('Approved by'),
    );
    expect((await h.access.getRequest(requestId))?.status).toBe('approved');
  });

  it('approve for a shorter duration', async () => {
    await request(REQUESTER, 'request billing-api write 2h shorter SH-1');
    const { ts: messageTs, requestId } = await postedTs('SH-1');
    await h.click(APPROVER1, 'approve_shorter', `${requestId}|1800`, { messageTs });
    await h.api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('Approved by'),
    );
    const [grant] = (await h.access.listForUser(REQUESTER)).active.filter((g) => g.requestId === requestId);
    expect(grant).toBeDefined();
    // The end is on a whole second (the token's exp), rounded down: never past what was approved.
    const lasts = grant!.expiresAt.getTime() - grant!.startsAt.getTime();
    expect(grant!.expiresAt.getTime() % 1000).toBe(0);
    expect(lasts).toBeLessThanOrEqual(1800 * 1000);
    expect(lasts).toBeGreaterThan(1799 * 1000);
  });

  it('auto-approves per policy: read for 30m', async () => {
    const answer = await request(REQUESTER, 'request billing-api read 30m auto A-1');
    expect(answer).toContain('approved by policy');
    const post = await approvalPost('A-1');
    expect(blockText(post)).toContain('auto-approved');
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('is approved by policy'),
    );
  });

  it('a double click (two concurrent, then a replay) makes one grant and posts one message', async () => {
    await request(REQUESTER, 'request billing-api write 1h double DC-1');
    const { ts: messageTs, requestId } = await postedTs('DC-1');
    await Promise.all([
      h.click(APPROVER1, 'approve_request', requestId, { messageTs }),
      h.click(APPROVER1, 'approve_request', requestId, { messageTs }),
    ]);
    await h.click(APPROVER2, 'approve_request', requestId, { messageTs });
    await h.api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('Approved by'),
    );
    await h.dispatcher.drain();
    const grants = (await h.access.listForUser(REQUESTER)).active.filter((g) => g.requestId === requestId);
    expect(grants).toHaveLength(1);
    const dms = h.api
      .callsTo('chat.postMessage')
      .filter(
        (c) =>
          c.args.channel === REQUESTER &&
          blockText(c).includes(grants[0]!.id) &&
          blockText(c).includes('is approved'),
      );
    expect(dms).toHaveLength(1);
    expect(h.api.callsTo('chat.postMessage').filter((c) => blockText(c).includes('DC-1'))).toHaveLength(1);
  });

  it('refuses a forged or a 6-minute-old signature and writes nothing', async () => {
    const before = await h.counts();
    const forged = await h.command(REQUESTER, 'request billing-api write 1h forged F-1', {
      signature: 'v0=0000000000000000000000000000000000000000000000000000000000000000',
    });
    expect(forged.response.status).toBe(401);
    const stale = await h.command(REQUESTER, 'request billing-api write 1h stale F-2', {
      timestamp: nowSeconds() - 6 * 60,
    });
    expect(stale.response.status).toBe(401);
    await h.dispatcher.drain();
    expect(await h.counts()).toEqual(before);
    expect(h.api.calls.some((c) => blockText(c).includes('F-1') || blockText(c).includes('F-2'))).toBe(false);
  });

  it('escapes mention and link injection in the reason', async () => {
    await request(
      REQUESTER,
      'request billing-api write 1h <!channel> <@UAPPROVER2> <https://evil.example|click> & co INJ-1',
    );
    const post = await approvalPost('INJ-1');
    const text = blockText(post);
    expect(text).toContain('&lt;!channel&gt;');
    expect(text).toContain('&lt;@UAPPROVER2&gt;');
    expect(text).toContain('&lt;https://evil.example|click&gt; &amp; co');
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<https://evil');
  });

  it('list, extend, revoke and give up', async () => {
    await request('ULISTER', 'request billing-api write 1h lister L-1');
    const { ts: messageTs, requestId } = await postedTs('L-1');
    await h.click(APPROVER1, 'approve_request', requestId, { messageTs });
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'ULISTER' && blockText(c).includes('is approved'),
    );
    const grant = (await h.access.listForUser('ULISTER')).active[0]!;

    expect(await request('ULISTER', 'list')).toContain(grant.id);

    // extend → an extension request that approvers decide like any other
    expect(await request('ULISTER', `extend ${grant.id} 30m`)).toContain('sent to the approvers');
    const ext = await approvalPost('Extension request');
    const extId = findRequestId(ext);
    const extTs = (await postedTs('Extension request')).ts;
    await h.click(APPROVER2, 'approve_request', extId, { messageTs: extTs });
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'ULISTER' && blockText(c).includes('now lasts until'),
    );
    expect((await h.access.getGrant(grant.id))?.extensions).toBe(1);

    // revoke by a non-approver is refused; by an approver it ends the grant and tells the owner
    expect(await request(STRANGER, `revoke ${grant.id}`)).toContain('Only the grant');
    expect(await request(APPROVER1, `revoke ${grant.id} suspicious`)).toContain('is revoked');
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'ULISTER' && blockText(c).includes('was revoked by'),
    );
    await h.api.waitFor('chat.update', (c) => c.args.ts === messageTs && blockText(c).includes('revoked by'));

    // give up from the DM button
    await request('ULISTER', 'request billing-api read 15m again L-2');
    const second = (await h.access.listForUser('ULISTER')).active[0]!;
    const notOwner = await h.click(STRANGER, 'give_up_grant', second.id);
    expect(blockText(await h.answer(notOwner.responseKey))).toContain('Only the grant owner');
    await h.click('ULISTER', 'give_up_grant', second.id, { channelId: 'DULISTER' });
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'ULISTER' && blockText(c).includes('You gave up'),
    );
    expect((await h.access.getGrant(second.id))?.status).toBe('revoked');
  });

  it('active (approvers only) and App Home', async () => {
    expect(await request(STRANGER, 'active')).toContain('for approvers');
    expect(await request(APPROVER1, 'active')).toContain('Active grants');
    const event = (await import('../../src/dev/slack-stand-in/signed-requests.ts')).eventCallbackBody({
      type: 'app_home_opened',
      user: APPROVER1,
      tab: 'home',
      channel: 'DAPPROVER1',
    });
    const { postSigned } = await import('../../src/dev/slack-stand-in/signed-requests.ts');
    const res = await postSigned(h.baseUrl, '/slack/events', event, 'test-signing-secret');
    expect(res.status).toBe(200);
    const home = await h.api.waitFor('views.publish', (c) => c.args.user_id === APPROVER1);
    expect(blockText(home)).toContain('To decide');
  });

  it('Slack answering 429 then 200 delivers the message exactly once', async () => {
    h.api.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    await request(REQUESTER, 'request billing-api write 1h ratelimited RL-1');
    await approvalPost('RL-1');
    await h.dispatcher.drain();
    expect(h.api.callsTo('chat.postMessage').filter((c) => blockText(c).includes('RL-1'))).toHaveLength(1);
    expect(h.api.faultedCalls.filter((c) => c.method === 'chat.postMessage')).toHaveLength(1);
  });
});

describe('someone the policy does not list among its requesters', () => {
  it('is told so instead of being offered the request form, by command and from App Home', async () => {
    const listed = await startSlackHarness({
      policy: testPolicy(`requesters: { users: [${REQUESTER}] }\n${TEST_POLICY_YAML}`),
    });
    try {
      const refused = await listed.command(STRANGER, '');
      expect(blockText(await listed.answer(refused.responseKey))).toContain(
        'not among the people this workspace lets request access',
      );
      const allowed = await listed.command(REQUESTER, '');
      const form = await listed.api.waitFor('views.open', (c) => c.args.trigger_id === allowed.triggerId);
      expect(blockText(form)).toContain('"value":"billing-api"');
      expect(listed.api.callsTo('views.open').some((c) => c.args.trigger_id === refused.triggerId)).toBe(
        false,
      );

      await listed.click(STRANGER, 'open_request_modal', '', { viewId: 'VHOME' });
      const notice = await listed.api.waitFor('views.open', (c) =>
        blockText(c).includes('not among the people this workspace lets request access'),
      );
      expect(blockText(notice)).not.toContain('"value":"billing-api"');
    } finally {
      await listed.close();
    }
  });
});

/** Alerts, App Home, audit and quotas: a policy with anomaly rules and quotas on billing-api. */
describe('alerts, App Home, audit and quotas over signed HTTP', () => {
  const MB = 1024 * 1024;
  const POLICY_YAML = TEST_POLICY_YAML.replace(
    '    rate_limit: { requests: 600, per: 1m }\n',
    '    rate_limit: { requests: 600, per: 1m }\n    anomalies: { denied_burst: 3/1m }\n',
  )
    .replace(
      '        auto_approve: { max_duration: 1h }\n',
      '        auto_approve: { max_duration: 1h }\n        quota: { response_bytes: 10MB }\n',
    )
    .replace(
      '        allow: ["GET /**", "POST /invoices", "PATCH /invoices/*"]\n',
      '        allow: ["GET /**", "POST /invoices", "PATCH /invoices/*"]\n        quota: { requests: 1000, response_bytes: 10MB }\n',
    );
  const policy = testPolicy(POLICY_YAML);
  let q: SlackHarness;

  beforeAll(async () => {
    expect(policy.resources['billing-api']?.scopes.write?.quota).toEqual({
      requests: 1000,
      responseBytes: 10 * MB,
    });
    q = await startSlackHarness({ policy });
  });
  afterAll(async () => {
    await q?.close();
  });

  async function ask(userId: string, text: string): Promise<string> {
    const { response, responseKey } = await q.command(userId, text);
    expect(response.status).toBe(200);
    return blockText(await q.answer(responseKey));
  }

  /** The approval message for `marker`, its ts (stored by the dispatcher) and request id. */
  async function approval(marker: string): Promise<{ post: RecordedCall; ts: string; requestId: string }> {
    const post = await q.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'CAPPROVALS' && blockText(c).includes(marker),
    );
    const requestId = findRequestId(post);
    await q.dispatcher.drain();
    const ts = (await q.access.getRequest(requestId))?.approvalMessageTs;
    if (!ts) throw new Error(`no approval ts for ${requestId}`);
    return { post, ts, requestId };
  }

  /** A granted request of `userId` (approved by UAPPROVER1), as the grant row. */
  async function grantFor(userId: string, marker: string) {
    await ask(userId, `request billing-api write 1h ${marker}`);
    const { ts, requestId } = await approval(marker);
    await q.click(APPROVER1, 'approve_request', requestId, { messageTs: ts });
    await q.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === userId && blockText(c).includes('is approved'),
    );
    const grant = (await q.access.listForUser(userId)).active.find((g) => g.requestId === requestId);
    if (!grant) throw new Error(`no grant for ${marker}`);
    return grant;
  }

  /** Opens `userId`'s App Home as Slack does and returns what was published. */
  const openHome = (userId: string): Promise<RecordedCall> => q.openHome(userId);

  /** The next home published for `userId` after call number `mark` that satisfies `test`. */
  const republished = (userId: string, mark: number, test: (text: string) => boolean) =>
    q.api.waitFor(
      'views.publish',
      (c) => c.args.user_id === userId && q.api.calls.indexOf(c) >= mark && test(blockText(c)),
    );

  let selections = 0;
  /** Picks `value` in a static select, shaped as Slack sends it (`selected_option`, not `value`). */
  async function select(
    userId: string,
    actionId: string,
    option: { text: string; value: string },
    messageTs: string,
  ): Promise<{ response: Response; responseKey: string }> {
    selections += 1;
    const responseKey = `select-${selections}`;
    const payload = staticSelectActionPayload(
      {
        userId,
        actionId,
        value: option.value,
        channelId: 'CAPPROVALS',
        messageTs,
        responseUrl: q.api.responseUrl(responseKey),
      },
      option,
      'Approve with a smaller quota…',
    );
    const response = await postSigned(q.baseUrl, '/slack/events', interactiveBody(payload), SIGNING_SECRET);
    return { response, responseKey };
  }

  /** The options of the select `actionId` on a posted message. */
  function optionsOf(post: RecordedCall, actionId: string): { text: string; value: string }[] {
    const blocks = (post.args.blocks ?? []) as { type: string; elements?: Record<string, unknown>[] }[];
    for (const block of blocks) {
      for (const element of block.elements ?? []) {
        if (element.action_id !== actionId) continue;
        return (element.options as { text: { text: string }; value: string }[]).map((o) => ({
          text: o.text.text,
          value: o.value,
        }));
      }
    }
    return [];
  }

  it('App Home (requester): the pending request has Cancel; only its requester can cancel; the home is re-published', async () => {
    await ask('UHOMER', 'request billing-api write 2h from home H-1');
    const { ts, requestId } = await approval('H-1');
    const home = await openHome('UHOMER');
    expect(blockText(home)).toContain(`"action_id":"cancel_request","value":"${requestId}"`);

    const stranger = await q.click(STRANGER, 'cancel_request', requestId, { viewId: 'VHOME' });
    expect(stranger.response.status).toBe(200);
    await q.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === STRANGER && blockText(c).includes('Only the requester can cancel'),
    );
    expect((await q.access.getRequest(requestId))?.status).toBe('pending');

    const mark = q.api.calls.length;
    await q.click('UHOMER', 'cancel_request', requestId, { viewId: 'VHOME' });
    const after = await republished('UHOMER', mark, (text) => !text.includes(requestId));
    expect(blockText(after)).toContain('You have no pending requests and no active grants');
    expect(await q.access.getRequest(requestId)).toMatchObject({ status: 'cancelled', decidedBy: 'UHOMER' });
    await q.api.waitFor(
      'chat.update',
      (c) => c.args.ts === ts && blockText(c).includes('Cancelled by the requester'),
    );
  });

  it('App Home (requester): an active grant shows time left and Give up', async () => {
    const grant = await grantFor('UHOLDER', 'H-2');
    const home = blockText(await openHome('UHOLDER'));
    expect(home).toContain(grant.id);
    expect(home).toMatch(/\(59m \d+s left|\(1h left/);
    expect(home).toContain(`"action_id":"give_up_grant","value":"${grant.id}"`);
    expect(home).not.toContain('To decide');
  });

  it('App Home (approver): requests to decide, active grants with Revoke; Revoke ends the grant and re-publishes', async () => {
    await ask('UWAITER', 'request billing-api write 1h decide me H-3');
    const { requestId } = await approval('H-3');
    const grant = await grantFor('UREVOKED', 'H-4');
    const home = blockText(await openHome(APPROVER1));
    expect(home).toContain('To decide');
    expect(home).toContain(`"action_id":"approve_request","value":"${requestId}"`);
    expect(home).toContain(`"action_id":"deny_request","value":"${requestId}"`);
    expect(home).toContain(`"action_id":"revoke_grant","value":"${grant.id}"`);

    const mark = q.api.calls.length;
    const click = await q.click(APPROVER1, 'revoke_grant', grant.id, { viewId: 'VHOME' });
    expect(click.response.status).toBe(200);
    await republished(APPROVER1, mark, (text) => !text.includes(`"value":"${grant.id}"`));
    expect(await q.access.getGrant(grant.id)).toMatchObject({ status: 'revoked', endedBy: APPROVER1 });
    await q.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'UREVOKED' && blockText(c).includes('was revoked by <@UAPPROVER1>'),
    );
  });

  it('an alert from real traffic shows who and what (escaped); Revoke on it is for approvers only', async () => {
    const grant = await grantFor('UALERTED', 'AL-1');
    const store = staticPolicyStore(policy);
    const monitor = createAnomalyMonitor({
      db: q.database.db,
      policy: store,
      clock: systemClock,
      access: q.access,
      logger: pino({ level: 'silent' }),
    });
    const path = '/invoices/<!channel>/*x*';
    const requestIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const requestId = `req-alert-${i}`;
      requestIds.push(requestId);
      monitor.offer({
        at: new Date(),
        requestId,
        resource: 'billing-api',
        grantId: grant.id,
        userId: 'UALERTED',
        scope: 'write',
        method: 'DELETE',
        path,
        clientIp: '198.51.100.23',
        decision: 'out_of_scope',
        status: 403,
        responseBytes: 0,
        latencyMs: 2,
      });
    }
    await monitor.close();
    await q.dispatcher.drain();
    const alert = await q.api.waitFor('chat.postMessage', (c) => c.args.channel === 'CALERTS');
    const text = blockText(alert);
    expect(text).toContain('<@UALERTED>');
    expect(text).toContain(grant.id);
    expect(text).toContain('`DELETE /invoices/&lt;!channel&gt;/*x*` → 403 `out_of_scope`');
    expect(text).toContain('`198.51.100.23`');
    expect(text).toContain(requestIds[2]);
    expect(text).toContain('*denied:* 3');
    expect(text).not.toContain('<!channel>');
    expect(text).toContain(`"action_id":"revoke_grant","value":"${grant.id}"`);
    // The click comes from the alert's own message in the alert channel.
    const onAlert = { channelId: 'CALERTS', messageTs: '1700000000.000200' };

    // A stranger, and an approver of another resource, are refused; the grant stays active.
    for (const who of [STRANGER, 'UAPPROVER3']) {
      const refused = await q.click(who, 'revoke_grant', grant.id, onAlert);
      expect(blockText(await q.answer(refused.responseKey))).toContain(
        "Only the grant's owner or approvers of billing-api can revoke it",
      );
    }
    expect((await q.access.getGrant(grant.id))?.status).toBe('active');
    const revokedRows = await q.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.kind, 'grant.revoked'), eq(auditEvents.grantId, grant.id)));
    expect(revokedRows).toEqual([]);

    await q.click(APPROVER1, 'revoke_grant', grant.id, onAlert);
    await q.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'UALERTED' && blockText(c).includes('was revoked by <@UAPPROVER1>'),
    );
    expect(await q.access.getGrant(grant.id)).toMatchObject({ status: 'revoked', endedBy: APPROVER1 });
  });

  it('an alert naming a malformed grant id, queued without call or evidence, is still delivered', async () => {
    await q.database.db.transaction((tx) =>
      enqueue(
        tx,
        [
          {
            kind: 'anomaly_alert',
            alertId: 'odd-grant-alert',
            grantId: 'not-a-uuid',
            resource: 'billing-api',
            userId: 'UODD',
            rule: 'revoked_token_use',
            summary: 'call with the token of a revoked grant (grant_revoked)',
            evidence: {},
            action: 'alert',
            revoked: false,
          },
        ],
        new Date(),
      ),
    );
    await q.dispatcher.drain();
    const alert = await q.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'CALERTS' && blockText(c).includes('UODD'),
    );
    expect(blockText(alert)).toContain('*Who:* <@UODD> with grant `not-a-uuid`');
    expect(blockText(alert)).not.toContain('revoke_grant');
    const [row] = await q.database.db
      .select()
      .from(outbox)
      .where(eq(outbox.dedupeKey, 'anomaly_alert:odd-grant-alert'));
    expect(row?.lastError).toBeNull();
    expect(row?.sentAt).toBeInstanceOf(Date);
  });

  it('/access audit: approvers only, unknown grants and unused grants said plainly, then the summary', async () => {
    expect(await ask('UAUDITED', 'request billing-api read 30m audit me AU-1')).toContain(
      'approved by policy',
    );
    const grant = (await q.access.listForUser('UAUDITED')).active[0]!;

    expect(await ask(STRANGER, `audit ${grant.id}`)).toContain('`audit` is for approvers');
    expect(await ask('UAPPROVER3', `audit ${grant.id}`)).toContain(
      'Only approvers of billing-api can see what a grant was used for',
    );
    const unknown = '0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f';
    expect(await ask(APPROVER1, `audit ${unknown}`)).toContain(`There is no grant ${unknown}`);
    expect(await ask(APPROVER1, `audit ${grant.id}`)).toContain('has no calls recorded yet');

    const call = (path: string, decision: string, status: number, clientIp: string) =>
      callAuditEvent({
        at: new Date(),
        requestId: `req-${path}-${status}`,
        resource: 'billing-api',
        grantId: grant.id,
        userId: 'UAUDITED',
        scope: 'read',
        method: 'GET',
        path,
        clientIp,
        decision,
        status,
        responseBytes: 100,
        latencyMs: 1,
      });
    await q.database.db.transaction((tx) =>
      appendAuditEvents(tx, [
        call('/invoices/1', 'allowed', 200, '10.0.0.1'),
        call('/invoices/1', 'allowed', 200, '10.0.0.1'),
        call('/customers/<@UAPPROVER2>', 'out_of_scope', 403, '10.0.0.2'),
      ]),
    );
    const summary = await ask(APPROVER1, `audit ${grant.id}`);
    expect(summary).toContain('*Calls:* 3 (1 denied)');
    expect(summary).toContain('`GET /invoices/1` × 2');
    expect(summary).toContain('10.0.0.1, 10.0.0.2');
    expect(summary).toContain('&lt;@UAPPROVER2&gt;');
    expect(summary).not.toContain('<@UAPPROVER2>');
  });

  it('approve with a smaller quota: calls and bytes lowered from the message, a forged value refused', async () => {
    await ask('UQUOTA', 'request billing-api write 2h quota Q-1');
    const { post, ts, requestId } = await approval('Q-1');
    expect(blockText(post)).toContain("*Quota:* 1,000 calls, 10 MB over the grant's life");
    const options = optionsOf(post, 'approve_lower_quota');
    expect(options.map((o) => o.text)).toEqual([
      'Approve for 500 calls, 5 MB',
      'Approve for 250 calls, 2.5 MB',
      'Approve for 100 calls, 1 MB',
      'Approve for 10 calls, 102.4 KB',
    ]);

    // A value edited to raise the quota is refused and changes nothing.
    const before = await q.counts();
    const forged = await select(
      APPROVER1,
      'approve_lower_quota',
      { text: 'x', value: `${requestId}|5000|-` },
      ts,
    );
    expect(blockText(await q.answer(forged.responseKey))).toContain(
      "below the policy's 1,000 calls, not raise it",
    );
    expect(await q.counts()).toEqual(before);
    expect((await q.access.getRequest(requestId))?.status).toBe('pending');

    const chosen = options[1]!;
    const click = await select(APPROVER1, 'approve_lower_quota', chosen, ts);
    expect(click.response.status).toBe(200);
    const update = await q.api.waitFor(
      'chat.update',
      (c) => c.args.ts === ts && blockText(c).includes('Approved by'),
    );
    expect(blockText(update)).toContain(
      "*Quota:* 250 calls, 2.5 MB over the grant's life (lowered from the policy's 1,000 calls, 10 MB)",
    );
    const grant = (await q.access.listForUser('UQUOTA')).active.find((g) => g.requestId === requestId);
    expect(grant).toMatchObject({ quotaRequests: 250, quotaResponseBytes: 2.5 * MB });
  });

  it('approve with a smaller quota: a bytes-only quota offers less data', async () => {
    await ask('UQUOTA2', 'request billing-api read 2h bytes only Q-2');
    const { post, ts, requestId } = await approval('Q-2');
    const options = optionsOf(post, 'approve_lower_quota');
    expect(options.map((o) => o.text)).toEqual([
      'Approve for 5 MB',
      'Approve for 2.5 MB',
      'Approve for 1 MB',
      'Approve for 102.4 KB',
    ]);
    await select(APPROVER2, 'approve_lower_quota', options[2]!, ts);
    const update = await q.api.waitFor(
      'chat.update',
      (c) => c.args.ts === ts && blockText(c).includes('Approved by'),
    );
    expect(blockText(update)).toContain(
      "*Quota:* 1 MB over the grant's life (lowered from the policy's 10 MB)",
    );
    const grant = (await q.access.listForUser('UQUOTA2')).active.find((g) => g.requestId === requestId);
    expect(grant).toMatchObject({ quotaRequests: null, quotaResponseBytes: MB });
  });
});
