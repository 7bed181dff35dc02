import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockActionsPayload,
  interactiveBody,
  postSigned,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import type { RecordedCall } from '../../src/dev/slack-stand-in/web-api.ts';
import { systemClock } from '../../src/shared/clock.ts';
import {
  createMemoryKeyStore,
  issueTokenForGrant,
  type KeyStore,
  verifyGrantToken,
} from '../../src/tokens/index.ts';
import { waitFor } from '../helpers/redis-fixtures.ts';
import { blockText, SIGNING_SECRET, type SlackHarness, startSlackHarness } from '../helpers/slack-harness.ts';

/**
 * The reminder DM's Extend menu, clicked through Bolt with a signed request: an extension
 * request reaches the approvers, an approver approves it, the grant's expiry moves, and
 * Show token hands out a REAL token (Ed25519, verified here) for the new expiry.
 */

const REQUESTER = 'UEXTENDER';
const APPROVER = 'UAPPROVER1';
const ISSUER = 'https://jitgate.test';

let h: SlackHarness;
let keys: KeyStore;

beforeAll(async () => {
  keys = createMemoryKeyStore({ clock: systemClock });
  await keys.load();
  h = await startSlackHarness({
    issueToken: (grant) => issueTokenForGrant(keys, grant, ISSUER),
  });
});
afterAll(async () => {
  await h?.close();
});

/** The first call to `method` recorded after index `since` that matches. */
function nextCall(method: string, since: number, match: (c: RecordedCall) => boolean): Promise<RecordedCall> {
  return waitFor(() => h.api.calls.slice(since).find((c) => c.method === method && match(c)), {
    timeoutMs: 10_000,
    what: `a ${method} call`,
  });
}

/** The approval message whose blocks contain `marker`, and the ts the dispatcher stored for it. */
async function approvalMessage(marker: string, since: number): Promise<{ requestId: string; ts: string }> {
  const post = await nextCall(
    'chat.postMessage',
    since,
    (c) => c.args.channel === 'CAPPROVALS' && blockText(c).includes(marker),
  );
  const requestId = /"action_id":"approve_request"[^}]*"value":"([0-9a-f-]{36})"/.exec(blockText(post))?.[1];
  if (!requestId) throw new Error(`no Approve button in ${blockText(post)}`);
  const ts = await waitFor(
    async () => {
      const ts = (await h.access.getRequest(requestId))?.approvalMessageTs;
      return ts && !ts.startsWith('posting:') ? ts : undefined;
    },
    { what: 'the approval message ts' },
  );
  return { requestId, ts };
}

/** Clicks Show token and returns the token from the modal, verified by the key store. */
async function showToken(grantId: string) {
  const since = h.api.calls.length;
  const { response } = await h.click(REQUESTER, 'show_token', grantId, { channelId: `D${REQUESTER}` });
  expect(response.status).toBe(200);
  const modal = await nextCall('views.open', since, (c) => blockText(c).includes('Your access token'));
  const token = /export JITGATE_TOKEN='([^']+)'/.exec(blockText(modal))?.[1];
  if (!token) throw new Error(`no token in ${blockText(modal)}`);
  const verified = await verifyGrantToken(keys, token, { issuer: ISSUER, clock: systemClock });
  if (!verified.ok) throw new Error(`token does not verify: ${verified.code}`);
  return { token, claims: verified.claims, modal: blockText(modal) };
}

/** `<!date^unix^…>` as blocks render a time. */
const slackSeconds = (at: Date) => `<!date^${Math.floor(at.getTime() / 1000)}^`;

describe('Extend from the reminder DM', () => {
  it('extend → approvers asked → approved → expiry moves, and Show token reveals a token for the new expiry', async () => {
    // A grant an approver gave (write needs a human), as in the main flow.
    let since = h.api.calls.length;
    const asked = await h.command(REQUESTER, 'request billing-api write 2h reconcile invoices X-7');
    expect(asked.response.status).toBe(200);
    const first = await approvalMessage('X-7', since);
    await h.click(APPROVER, 'approve_request', first.requestId, { messageTs: first.ts });
    const grant = await waitFor(async () => (await h.access.listForUser(REQUESTER)).active[0], {
      what: 'the grant',
    });
    expect(grant.version).toBe(1);
    const before = await showToken(grant.id);
    expect(before.claims.expiresAt.getTime()).toBe(Math.floor(grant.expiresAt.getTime() / 1000) * 1000);

    // The reminder DM (what the scheduler's remind job queues), delivered by the dispatcher.
    since = h.api.calls.length;
    expect((await h.access.remindGrant(grant.id, grant.version)).ok).toBe(true);
    const reminder = await nextCall(
      'chat.postMessage',
      since,
      (c) => c.args.channel === REQUESTER && String(c.args.text).includes('ends soon'),
    );
    const blocks = reminder.args.blocks as { elements?: Record<string, unknown>[] }[];
    const menu = blocks.flatMap((b) => b.elements ?? []).find((e) => e.action_id === 'extend_grant');
    if (!menu) throw new Error(`no Extend menu in ${blockText(reminder)}`);
    const options = menu.options as { text: { text: string }; value: string }[];
    const oneHour = options.find((o) => o.value === `${grant.id}|3600`);
    expect(oneHour, `Extend options: ${JSON.stringify(options)}`).toBeDefined();

    // The click, as Slack sends a static_select choice in a DM: signed, with a response_url.
    since = h.api.calls.length;
    const payload = blockActionsPayload({
      userId: REQUESTER,
      actionId: 'extend_grant',
      value: oneHour!.value,
      blockId: `remind:${grant.id}`,
      channelId: `D${REQUESTER}`,
      messageTs: '1700000001.000100',
      responseUrl: h.api.responseUrl('extend-click'),
    });
    payload.actions = [
      {
        type: 'static_select',
        action_id: 'extend_grant',
        block_id: `remind:${grant.id}`,
        selected_option: oneHour,
        placeholder: { type: 'plain_text', text: 'Extend…', emoji: true },
        action_ts: '1700000002.000200',
      },
    ];
    const click = await postSigned(h.baseUrl, '/slack/events', interactiveBody(payload), SIGNING_SECRET);
    expect(click.status).toBe(200);
    const told = await h.answer('extend-click');
    expect(String(told.args.text)).toContain('Extension sent to the approvers of billing-api');

    // The approvers see an extension request, for this grant, for one more hour.
    const extension = await approvalMessage(`Extension of grant ${grant.id}`, since);
    const request = await h.access.getRequest(extension.requestId);
    expect(request).toMatchObject({
      status: 'pending',
      extendsGrantId: grant.id,
      requesterId: REQUESTER,
      durationSeconds: 3600,
    });
    expect((await h.access.getGrant(grant.id))?.expiresAt).toEqual(grant.expiresAt);

    since = h.api.calls.length;
    await h.click(APPROVER, 'approve_request', extension.requestId, { messageTs: extension.ts });
    const extended = await waitFor(
      async () => {
        const g = await h.access.getGrant(grant.id);
        return g && g.version === 2 ? g : undefined;
      },
      { what: 'the grant to be extended' },
    );
    expect(extended.status).toBe('active');
    expect(extended.extensions).toBe(1);
    expect(extended.expiresAt.getTime()).toBe(grant.expiresAt.getTime() + 3_600_000);
    await nextCall(
      'chat.update',
      since,
      (c) => c.args.ts === extension.ts && blockText(c).includes('Approved by'),
    );
    const extendedDm = await nextCall(
      'chat.postMessage',
      since,
      (c) => c.args.channel === REQUESTER && String(c.args.text).includes('was extended'),
    );
    expect(blockText(extendedDm)).toContain(slackSeconds(extended.expiresAt));

    // Show token now gives a token for the NEW version's expiry, signed and verifiable.
    const after = await showToken(grant.id);
    expect(after.token).not.toBe(before.token);
    expect(after.claims).toMatchObject({ grantId: grant.id, userId: REQUESTER, resource: 'billing-api' });
    expect(after.claims.scope).toBe('write');
    expect(after.claims.expiresAt.getTime()).toBe(Math.floor(extended.expiresAt.getTime() / 1000) * 1000);
    expect(after.claims.expiresAt.getTime()).toBeGreaterThan(before.claims.expiresAt.getTime());
    expect(after.modal).toContain(slackSeconds(extended.expiresAt));
    // And never in message history.
    const history = h.api.calls.filter((c) => c.method === 'chat.postMessage' || c.method === 'chat.update');
    expect(history.some((c) => JSON.stringify(c.args).includes(after.token))).toBe(false);
  });
});
