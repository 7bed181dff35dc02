import { webApi } from '@slack/bolt';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { issueTriggerId } from '../../src/dev/slack-stand-in/signed-requests.ts';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';

// Retries must be quick in tests; Retry-After still governs the 429 wait, as in production.
const fastRetries = { retries: 3, minTimeout: 10, maxTimeout: 20 };

function platformError(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && error.code === webApi.ErrorCode.PlatformError) {
    const data: unknown = 'data' in error ? error.data : undefined;
    if (typeof data === 'object' && data !== null && 'error' in data && typeof data.error === 'string') {
      return data.error;
    }
  }
  return undefined;
}

describe('fake Slack Web API', () => {
  let fake: FakeSlackApi;
  let client: webApi.WebClient;

  beforeAll(async () => {
    fake = await startFakeSlackApi({ userGroups: { S_APPROVERS: ['U1', 'U2'] }, deactivated: ['UGONE'] });
    client = new webApi.WebClient('xoxb-test-token', {
      slackApiUrl: fake.url,
      retryConfig: fastRetries,
      logLevel: webApi.LogLevel.ERROR,
    });
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => fake.reset());

  it('records a WebClient post with the bearer token and blocks parsed back into objects', async () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/$/);
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*Access request* for `billing`' } }];

    const res = await client.chat.postMessage({ channel: 'C123', text: 'Access request', blocks });

    expect(res.ok).toBe(true);
    expect(res.channel).toBe('C123');
    expect(res.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(res.message?.blocks).toEqual(blocks);
    const [call] = fake.callsTo('chat.postMessage');
    expect(call?.token).toBe('xoxb-test-token');
    expect(call?.args).toMatchObject({ channel: 'C123', text: 'Access request', blocks });
    expect(call?.at).toBeInstanceOf(Date);
  });

  it('hands out unique, increasing message timestamps', async () => {
    const first = await client.chat.postMessage({ channel: 'C1', text: 'a' });
    const second = await client.chat.postMessage({ channel: 'C1', text: 'b' });
    expect(Number(second.ts)).toBeGreaterThan(Number(first.ts));
  });

  it('answers a DM addressed to a user id from the D-channel, as Slack does', async () => {
    const res = await client.chat.postMessage({ channel: 'U42', text: 'your grant expires soon' });
    expect(res.channel).toBe('DU42');
  });

  it('answers the other methods the bot uses with realistic shapes', async () => {
    const auth = await client.auth.test();
    expect(auth).toMatchObject({ ok: true, user_id: 'UBOT', bot_id: 'BBOT', team_id: 'T1' });

    const posted = await client.chat.postMessage({ channel: 'C1', text: 'pending' });
    const updated = await client.chat.update({ channel: 'C1', ts: posted.ts ?? '', text: 'approved' });
    expect(updated).toMatchObject({ ok: true, channel: 'C1', ts: posted.ts, text: 'approved' });

    const ephemeral = await client.chat.postEphemeral({ channel: 'C1', user: 'U1', text: 'only you' });
    expect(ephemeral.message_ts).toMatch(/^\d{10}\.\d{6}$/);

    const view = {
      type: 'modal' as const,
      callback_id: 'request',
      title: { type: 'plain_text' as const, text: 'Hi' },
      blocks: [],
    };
    const opened = await client.views.open({ trigger_id: issueTriggerId(), view });
    expect(opened.view?.id).toMatch(/^V/);
    expect(opened.view?.callback_id).toBe('request');
    const again = await client.views.update({ view_id: opened.view?.id ?? '', view });
    expect(again.view?.id).toBe(opened.view?.id);
    const home = await client.views.publish({ user_id: 'U1', view: { type: 'home', blocks: [] } });
    expect(home.view?.type).toBe('home');

    const dm = await client.conversations.open({ users: 'U7' });
    expect(dm.channel?.id).toBe('DU7');

    const group = await client.usergroups.users.list({ usergroup: 'S_APPROVERS' });
    expect(group.users).toEqual(['U1', 'U2']);
    fake.userGroups.S_LATE = ['U9'];
    expect((await client.usergroups.users.list({ usergroup: 'S_LATE' })).users).toEqual(['U9']);

    const active = await client.users.info({ user: 'U1' });
    expect(active.user).toMatchObject({ id: 'U1', deleted: false, tz: 'Europe/Berlin' });
    const gone = await client.users.info({ user: 'UGONE' });
    expect(gone.user?.deleted).toBe(true);
  });

  it('keeps each channel history with its metadata, newest first, paged, read by conversation id only', async () => {
    const metadata = { event_type: 'jitgate_delivery', event_payload: { key: 'k-1' } };
    const first = await client.chat.postMessage({ channel: 'CHIST', text: 'one', metadata });
    await client.chat.postMessage({ channel: 'CHIST', text: 'two' });
    const page = await client.conversations.history({ channel: 'CHIST', limit: 1 });
    expect(page.messages?.map((m) => m.text)).toEqual(['two']);
    expect(page.has_more).toBe(true);
    const rest = await client.conversations.history({
      channel: 'CHIST',
      limit: 1,
      cursor: page.response_metadata?.next_cursor ?? '',
    });
    expect(rest.messages?.[0]).toMatchObject({ text: 'one', ts: first.ts });
    // Metadata only when asked for, as Slack does.
    expect(rest.messages?.[0]?.metadata).toBeUndefined();
    const full = await client.conversations.history({ channel: 'CHIST', include_all_metadata: true });
    expect(full.messages?.find((m) => m.ts === first.ts)?.metadata).toEqual(metadata);
    const later = await client.conversations.history({ channel: 'CHIST', oldest: first.ts ?? '' });
    expect(later.messages?.map((m) => m.text)).toEqual(['two']);
    await expect(client.conversations.history({ channel: 'U123' })).rejects.toSatisfy(
      (e) => platformError(e) === 'channel_not_found',
    );
    await expect(
      client.chat.postMessage({
        channel: 'CHIST',
        text: 'x',
        metadata: { event_type: 'bad type!', event_payload: {} },
      }),
    ).rejects.toSatisfy((e) => platformError(e) === 'invalid_metadata_format');
  });

  it('holds an outage until told it is over; a call that acts but never answers is done all the same', async () => {
    fake.startOutage({ status: 500 });
    const noRetry = new webApi.WebClient('xoxb-test-token', {
      slackApiUrl: fake.url,
      retryConfig: { retries: 0 },
      timeout: 200,
      logLevel: webApi.LogLevel.ERROR,
    });
    for (let i = 0; i < 3; i += 1) await expect(noRetry.auth.test()).rejects.toThrow();
    fake.endOutage();
    await expect(noRetry.auth.test()).resolves.toMatchObject({ ok: true });
    fake.failNext('chat.postMessage', { actsButNeverAnswers: true });
    await expect(noRetry.chat.postMessage({ channel: 'CHUNG', text: 'hung' })).rejects.toThrow();
    const seen = await noRetry.conversations.history({ channel: 'CHUNG' });
    expect(seen.messages?.map((m) => m.text)).toEqual(['hung']);
    expect(fake.faultedCalls.map((c) => c.method)).toEqual([
      'auth.test',
      'auth.test',
      'auth.test',
      'chat.postMessage',
    ]);
  });

  it('returns unknown_method for methods it does not know', async () => {
    const error = await client.apiCall('nonexistent.method').catch((e: unknown) => e);
    expect(platformError(error)).toBe('unknown_method');
  });

  it('lets a test override one method', async () => {
    fake.respondTo('users.info', ({ args }) => ({
      ok: true,
      user: { id: args.user, tz: 'America/New_York' },
    }));
    const res = await client.users.info({ user: 'U1' });
    expect(res.user?.tz).toBe('America/New_York');
  });

  it('parses JSON bodies too', async () => {
    const res = await fetch(`${fake.url}chat.postMessage`, {
      method: 'POST',
      headers: { authorization: 'Bearer xoxb-json', 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ channel: 'C9', blocks: [{ type: 'divider' }] }),
    });
    expect(await res.json()).toMatchObject({ ok: true, channel: 'C9' });
    expect(fake.calls[0]).toMatchObject({ token: 'xoxb-json', args: { blocks: [{ type: 'divider' }] } });
  });

  it('keeps free text as text even when it looks like JSON', async () => {
    await client.chat.postMessage({ channel: 'C1', text: '[1,2]' });
    expect(fake.calls[0]?.args.text).toBe('[1,2]');
  });

  describe('fault injection', () => {
    it('retries a 429 after Retry-After and delivers exactly once', async () => {
      fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
      const rateLimited: number[] = [];
      const listener = (seconds: number): void => {
        rateLimited.push(seconds);
      };
      client.on(webApi.WebClientEvent.RATE_LIMITED, listener);

      const res = await client.chat.postMessage({ channel: 'C1', text: 'approve?' });
      client.off(webApi.WebClientEvent.RATE_LIMITED, listener);

      expect(res.ok).toBe(true);
      expect(rateLimited).toEqual([1]);
      expect(fake.faultedCalls).toHaveLength(1);
      expect(fake.faultedCalls[0]?.fault).toEqual({ status: 429, retryAfter: 1 });
      expect(fake.callsTo('chat.postMessage')).toHaveLength(1);
    });

    it('sends Retry-After so a client that rejects rate-limited calls sees it', async () => {
      const strict = new webApi.WebClient('xoxb-test-token', {
        slackApiUrl: fake.url,
        rejectRateLimitedCalls: true,
        logLevel: webApi.LogLevel.ERROR,
      });
      fake.failNext('chat.postMessage', { status: 429, retryAfter: 30 });
      const error = await strict.chat.postMessage({ channel: 'C1', text: 'x' }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: webApi.ErrorCode.RateLimitedError, retryAfter: 30 });
      expect(fake.calls).toHaveLength(0);
    });

    it('retries 500s and dropped connections, then delivers once', async () => {
      const posted = await client.chat.postMessage({ channel: 'C1', text: 'pending' });
      fake.failNext('chat.update', { status: 500 }, 2);
      fake.failNext('chat.update', { dropConnection: true });
      const res = await client.chat.update({ channel: 'C1', ts: posted.ts ?? '', text: 'expired' });
      expect(res.ok).toBe(true);
      expect(fake.faultedCalls.map((c) => c.fault)).toEqual([
        { status: 500 },
        { status: 500 },
        { dropConnection: true },
      ]);
      expect(fake.callsTo('chat.update')).toHaveLength(1);
    });

    it('answers ok:false for an injected platform error, only for the next call', async () => {
      fake.failNext('chat.postMessage', { error: 'channel_not_found' });
      const error = await client.chat.postMessage({ channel: 'CGONE', text: 'x' }).catch((e: unknown) => e);
      expect(platformError(error)).toBe('channel_not_found');
      expect(fake.calls).toHaveLength(0);
      await expect(client.chat.postMessage({ channel: 'C1', text: 'x' })).resolves.toMatchObject({
        ok: true,
      });
    });
  });

  describe('waitFor', () => {
    it('resolves with a call recorded earlier', async () => {
      await client.chat.postMessage({ channel: 'C1', text: 'first' });
      const call = await fake.waitFor('chat.postMessage', (c) => c.args.text === 'first');
      expect(call.args.channel).toBe('C1');
    });

    it('resolves with a later call matching the predicate', async () => {
      const waiting = fake.waitFor('chat.postMessage', (c) => c.args.text === 'second');
      await client.chat.postMessage({ channel: 'C1', text: 'first' });
      await client.chat.postMessage({ channel: 'C2', text: 'second' });
      expect((await waiting).args.channel).toBe('C2');
    });

    it('rejects on timeout, naming what was recorded', async () => {
      await client.auth.test();
      await expect(fake.waitFor('chat.postMessage', undefined, 50)).rejects.toThrow(
        /no matching call to chat\.postMessage within 50 ms; recorded: auth\.test/,
      );
    });
  });

  it('records posts to a response_url', async () => {
    const url = fake.responseUrl('cmd-1');
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'Request sent', response_type: 'ephemeral' }),
    });
    expect(res.status).toBe(200);
    const call = await fake.waitFor('response_url');
    expect(call).toMatchObject({ path: '/response/cmd-1', args: { text: 'Request sent' } });
  });

  it('reset forgets calls and pending faults but keeps the directory', async () => {
    await client.auth.test();
    fake.failNext('auth.test', { status: 500 }, 5);
    fake.reset();
    expect(fake.calls).toHaveLength(0);
    await expect(client.auth.test()).resolves.toMatchObject({ ok: true });
    expect(fake.faultedCalls).toHaveLength(0);
    expect(fake.userGroups.S_APPROVERS).toEqual(['U1', 'U2']);
  });
});

describe('fake Slack Web API: as strict as Slack', () => {
  let fake: FakeSlackApi;
  let clock = Date.now();
  let client: webApi.WebClient;
  const modal = {
    type: 'modal' as const,
    title: { type: 'plain_text' as const, text: 'Request access' },
    blocks: [{ type: 'section' as const, text: { type: 'mrkdwn' as const, text: 'hello' } }],
  };
  const refusal = (error: unknown) =>
    error instanceof Error && 'data' in error ? (error.data as Record<string, unknown>) : undefined;

  beforeAll(async () => {
    fake = await startFakeSlackApi({ now: () => clock });
    client = new webApi.WebClient('xoxb-test-token', {
      slackApiUrl: fake.url,
      retryConfig: { retries: 0 },
      logLevel: webApi.LogLevel.ERROR,
    });
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => {
    clock = Date.now();
    fake.reset();
  });

  it('refuses blocks Slack would refuse, as Slack answers: invalid_blocks with json-pointer lines', async () => {
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: 'x'.repeat(3001) } }];
    const error = await client.chat
      .postMessage({ channel: 'C1', text: 'x', blocks })
      .catch((e: unknown) => e);
    expect(refusal(error)).toMatchObject({ ok: false, error: 'invalid_blocks' });
    const lines = refusal(error)?.errors;
    expect(Array.isArray(lines) ? String(lines[0]) : '').toMatch(
      /at most 3000 characters.*\[json-pointer:\/blocks\/0\/text\/text\]$/,
    );
    expect(fake.calls).toHaveLength(0);
    expect(fake.payloadRefusals()).toHaveLength(1);
    const tooLong = await client.chat
      .postMessage({ channel: 'C1', text: 'x'.repeat(40_001) })
      .catch((e) => e);
    expect(refusal(tooLong)?.error).toBe('msg_too_long');
    const view = { ...modal, title: { type: 'plain_text' as const, text: 'x'.repeat(25) } };
    const badView = await client.views.publish({
      user_id: 'U1',
      view: { type: 'home', blocks: view.blocks },
    });
    expect(badView.ok).toBe(true);
    const open = await client.views.open({ trigger_id: issueTriggerId(), view }).catch((e: unknown) => e);
    expect(refusal(open)?.error).toBe('invalid_arguments');
    fake.acknowledge();
  });

  it('checks what is posted to a response_url the same way, answering 400', async () => {
    const res = await fetch(fake.responseUrl('r'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        text: 'x',
        blocks: [{ type: 'header', text: { type: 'plain_text', text: 'x'.repeat(151) } }],
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ ok: false, error: 'invalid_blocks' });
    expect(fake.callsTo('response_url')).toHaveLength(0);
    fake.acknowledge();
  });

  it('a trigger_id works once, within 3 s of being issued, and only in the shape Slack mints', async () => {
    const fresh = issueTriggerId(clock - 2900);
    await expect(client.views.open({ trigger_id: fresh, view: modal })).resolves.toMatchObject({ ok: true });
    const again = await client.views.open({ trigger_id: fresh, view: modal }).catch((e: unknown) => e);
    expect(refusal(again)?.error).toBe('exchanged_trigger_id');
    const stale = await client.views
      .open({ trigger_id: issueTriggerId(clock - 3001), view: modal })
      .catch((e) => e);
    expect(refusal(stale)?.error).toBe('expired_trigger_id');
    const made = await client.views.open({ trigger_id: 'trigger-1', view: modal }).catch((e: unknown) => e);
    expect(refusal(made)?.error).toBe('invalid_trigger_id');
  });

  it('views.update needs a known view and, when given, its current hash; every change hands out a new hash', async () => {
    const opened = await client.views.open({ trigger_id: issueTriggerId(), view: modal });
    const id = opened.view?.id ?? '';
    const first = opened.view?.hash ?? '';
    expect(fake.viewHash(id)).toBe(first);
    const updated = await client.views.update({ view_id: id, hash: first, view: modal });
    expect(updated.view?.hash).not.toBe(first);
    const stale = await client.views
      .update({ view_id: id, hash: first, view: modal })
      .catch((e: unknown) => e);
    expect(refusal(stale)?.error).toBe('hash_conflict');
    await expect(client.views.update({ view_id: id, view: modal })).resolves.toMatchObject({ ok: true });
    const missing = await client.views.update({ view_id: 'VNOPE', view: modal }).catch((e: unknown) => e);
    expect(refusal(missing)?.error).toBe('not_found');
  });

  it('answers for channels the bot cannot post to, and for messages that were never posted', async () => {
    fake.setChannel('CPRIVATE', 'not_in_channel');
    fake.setChannel('COLD', 'is_archived');
    for (const [channel, error] of [
      ['CPRIVATE', 'not_in_channel'],
      ['COLD', 'is_archived'],
      ['#general', 'channel_not_found'],
    ] as const) {
      const refused = await client.chat.postMessage({ channel, text: 'hi' }).catch((e: unknown) => e);
      expect(refusal(refused)?.error).toBe(error);
    }
    fake.setChannel('CPRIVATE', 'ok');
    await expect(client.chat.postMessage({ channel: 'CPRIVATE', text: 'hi' })).resolves.toMatchObject({
      ok: true,
    });
    const update = await client.chat
      .update({ channel: 'C1', ts: '1.000001', text: 'x' })
      .catch((e: unknown) => e);
    expect(refusal(update)?.error).toBe('message_not_found');
    expect(fake.payloadRefusals()).toHaveLength(0);
  });

  it("notes an update that keeps a changed block's block_id, and close() fails until a test acknowledges it", async () => {
    const block = (text: string) => ({ type: 'section', block_id: 'decide', text: { type: 'mrkdwn', text } });
    const posted = await client.chat.postMessage({ channel: 'C1', text: 'x', blocks: [block('pending')] });
    await client.chat.update({ channel: 'C1', ts: posted.ts ?? '', text: 'x', blocks: [block('pending')] });
    expect(fake.warnings).toHaveLength(0);
    await client.chat.update({ channel: 'C1', ts: posted.ts ?? '', text: 'x', blocks: [block('approved')] });
    expect(fake.warnings).toEqual([expect.stringContaining('block_id decide kept for a changed block')]);

    const other = await startFakeSlackApi();
    const otherClient = new webApi.WebClient('xoxb-t', {
      slackApiUrl: other.url,
      logLevel: webApi.LogLevel.ERROR,
    });
    await otherClient.chat
      .postMessage({ channel: 'C1', text: 'x', blocks: [{ type: 'divider', block_id: 'x'.repeat(256) }] })
      .catch(() => undefined);
    await expect(other.close()).rejects.toThrow(/would have refused or warned about 1 payload/);
    fake.acknowledge();
  });

  it("'*' fails every method: a Slack outage", async () => {
    fake.failNext('*', { status: 500 }, 2);
    await expect(client.auth.test()).rejects.toThrow();
    await expect(client.chat.postMessage({ channel: 'C1', text: 'x' })).rejects.toThrow();
    await expect(client.chat.postMessage({ channel: 'C1', text: 'x' })).resolves.toMatchObject({ ok: true });
    expect(fake.faultedCalls.map((c) => c.method)).toEqual(['auth.test', 'chat.postMessage']);
  });
});
