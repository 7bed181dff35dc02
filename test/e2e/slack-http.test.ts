import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedCall } from '../fakes/slack-api.ts';
import { nowSeconds, plainTextState, staticSelectState } from '../fakes/slack-signing.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';
import {
  blockText,
  fakeToken,
  PROXY_URL,
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

  it('request by modal: /access opens it, bad input stays in it, a good submission creates the request', async () => {
    const { triggerId } = await h.command(REQUESTER, '');
    const opened = await h.api.waitFor('views.open', (c) => c.args.trigger_id === triggerId);
    expect(blockText(opened)).toContain('billing-api|write');

    const tooLong = await h.submit(REQUESTER, 'request_access', {
      target: { target: staticSelectState('billing-api|write') },
      duration: { duration: staticSelectState(String(86_400)) },
      reason: { reason: plainTextState('modal reason M-1') },
    });
    expect(await tooLong.json()).toMatchObject({
      response_action: 'errors',
      errors: { duration: expect.any(String) },
    });

    const ok = await h.submit(REQUESTER, 'request_access', {
      target: { target: staticSelectState('billing-api|write') },
      duration: { duration: staticSelectState('3600') },
      reason: { reason: plainTextState('modal reason M-2') },
    });
    expect(ok.status).toBe(200);
    await approvalPost('M-2');
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('waiting for'),
    );
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
    expect(grant!.expiresAt.getTime() - grant!.startsAt.getTime()).toBe(1800 * 1000);
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
    const event = (await import('../fakes/slack-signing.ts')).eventCallbackBody({
      type: 'app_home_opened',
      user: APPROVER1,
      tab: 'home',
      channel: 'DAPPROVER1',
    });
    const { postSigned } = await import('../fakes/slack-signing.ts');
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
      expect(blockText(form)).toContain('billing-api|write');
      expect(listed.api.callsTo('views.open').some((c) => c.args.trigger_id === refused.triggerId)).toBe(
        false,
      );

      await listed.click(STRANGER, 'open_request_modal', '', { viewId: 'VHOME' });
      const notice = await listed.api.waitFor('views.open', (c) =>
        blockText(c).includes('not among the people this workspace lets request access'),
      );
      expect(blockText(notice)).not.toContain('billing-api|write');
    } finally {
      await listed.close();
    }
  });
});
