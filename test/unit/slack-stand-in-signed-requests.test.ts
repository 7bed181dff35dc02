import type { AddressInfo } from 'node:net';
import { App, LogLevel, verifySlackRequest } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockActionsBody,
  eventCallbackBody,
  nowSeconds,
  plainTextState,
  postSigned,
  signSlackRequest,
  slashCommandBody,
  staticSelectState,
  viewSubmissionBody,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';

const SECRET = 'test-signing-secret';

describe('signSlackRequest', () => {
  it("reproduces the example from Slack's request-verification docs", () => {
    const body =
      'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V' +
      '&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=' +
      '&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN' +
      '&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
    const headers = signSlackRequest('8f742231b10e8888abcd99yyyzzz85a5', body, 1531420618);
    expect(headers).toEqual({
      'x-slack-signature': 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
      'x-slack-request-timestamp': '1531420618',
      'content-type': 'application/x-www-form-urlencoded',
    });
  });

  it("passes Bolt's own verifier", () => {
    const body = slashCommandBody({ text: 'request billing-api 2h', userId: 'U1' });
    const headers = signSlackRequest(SECRET, body);
    expect(() =>
      verifySlackRequest({
        signingSecret: SECRET,
        body,
        headers: {
          'x-slack-signature': headers['x-slack-signature'],
          'x-slack-request-timestamp': Number(headers['x-slack-request-timestamp']),
        },
      }),
    ).not.toThrow();
  });

  it('builds slash command bodies with the fields Slack sends, in its order', () => {
    const body = slashCommandBody({ text: 'request billing 2h', userId: 'U1', triggerId: 't1' });
    const fields = new URLSearchParams(body);
    expect([...fields.keys()]).toEqual([
      'token',
      'team_id',
      'team_domain',
      'channel_id',
      'channel_name',
      'user_id',
      'user_name',
      'command',
      'text',
      'api_app_id',
      'is_enterprise_install',
      'response_url',
      'trigger_id',
    ]);
    expect(body).toContain('command=%2Faccess&text=request+billing+2h');
  });

  it('form-encodes interactive payloads as payload=<json>', () => {
    const body = blockActionsBody({ userId: 'U2', actionId: 'approve', value: 'req_1' });
    const payload: unknown = JSON.parse(new URLSearchParams(body).get('payload') ?? 'null');
    expect(payload).toMatchObject({
      type: 'block_actions',
      user: { id: 'U2' },
      container: { type: 'message' },
      actions: [{ type: 'button', action_id: 'approve', value: 'req_1' }],
    });
  });
});

describe("Bolt's HTTP receiver accepts the signed requests", () => {
  let api: FakeSlackApi;
  let app: App;
  let baseUrl: string;
  const seen: { kind: string; body: unknown }[] = [];

  beforeAll(async () => {
    api = await startFakeSlackApi();
    app = new App({
      token: 'xoxb-test',
      signingSecret: SECRET,
      clientOptions: { slackApiUrl: api.url },
      logLevel: LogLevel.ERROR,
    });
    app.command('/access', async ({ ack, command }) => {
      seen.push({ kind: 'command', body: command });
      await ack('ok');
    });
    app.action('approve', async ({ ack, body, client }) => {
      await ack();
      seen.push({ kind: 'action', body });
      if (body.type === 'block_actions' && body.container.type === 'message') {
        await client.chat.update({
          channel: String(body.container.channel_id),
          ts: String(body.container.message_ts),
          text: 'Approved',
        });
      }
    });
    app.view('request_access', async ({ ack, view }) => {
      const reason = view.state.values.reason?.reason_input?.value;
      const resource = view.state.values.resource?.resource_select?.selected_option?.value;
      await ack({ response_action: 'errors', errors: { reason: `${resource}: ${reason} is too short` } });
    });
    app.event('app_home_opened', async ({ event, client }) => {
      await client.views.publish({ user_id: event.user, view: { type: 'home', blocks: [] } });
    });
    // HTTPReceiver.start resolves with the node:http Server; port 0 picks a free port.
    const server = await app.start(0);
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app.stop();
    await api.close();
  });

  it('answers a signed slash command on /slack/events with the ack text', async () => {
    const res = await postSigned(
      baseUrl,
      undefined,
      slashCommandBody({ text: 'request billing 2h', userId: 'U1' }),
      SECRET,
    );
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(seen.find((s) => s.kind === 'command')?.body).toMatchObject({
      command: '/access',
      text: 'request billing 2h',
      user_id: 'U1',
    });
  });

  it('rejects a request signed six minutes ago with 401', async () => {
    const body = slashCommandBody({ text: 'request billing 2h', userId: 'U1' });
    const res = await postSigned(baseUrl, '/slack/events', body, SECRET, {
      timestamp: nowSeconds() - 6 * 60,
    });
    expect(res.status).toBe(401);
  });

  it('rejects a forged signature with 401', async () => {
    const body = slashCommandBody({ text: 'request billing 2h', userId: 'U1' });
    const forged = signSlackRequest('not-the-secret', body)['x-slack-signature'];
    const res = await postSigned(baseUrl, '/slack/events', body, SECRET, { signature: forged });
    expect(res.status).toBe(401);
  });

  it('rejects a body signed with the wrong secret with 401', async () => {
    const body = slashCommandBody({ text: 'x', userId: 'U1' });
    const res = await postSigned(baseUrl, '/slack/events', body, 'wrong-secret');
    expect(res.status).toBe(401);
  });

  it('routes a block_actions click to app.action, whose client calls the fake API', async () => {
    const posted = await app.client.chat.postMessage({ channel: 'C7', text: 'Access request' });
    const body = blockActionsBody({
      userId: 'U2',
      actionId: 'approve',
      value: 'req_1',
      channelId: 'C7',
      messageTs: String(posted.ts),
    });
    const res = await postSigned(baseUrl, undefined, body, SECRET);
    expect(res.status).toBe(200);
    const update = await api.waitFor('chat.update');
    expect(update).toMatchObject({ token: 'xoxb-test', args: { channel: 'C7', ts: posted.ts } });
  });

  it('routes a view_submission to app.view with state.values intact', async () => {
    const body = viewSubmissionBody({
      userId: 'U1',
      callbackId: 'request_access',
      values: {
        reason: { reason_input: plainTextState('debug') },
        resource: { resource_select: staticSelectState('billing-api') },
      },
    });
    const res = await postSigned(baseUrl, undefined, body, SECRET);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      response_action: 'errors',
      errors: { reason: 'billing-api: debug is too short' },
    });
  });

  it('routes a JSON event_callback to app.event', async () => {
    const body = eventCallbackBody({ type: 'app_home_opened', user: 'U3', channel: 'DU3', tab: 'home' });
    const res = await postSigned(baseUrl, undefined, body, SECRET);
    expect(res.status).toBe(200);
    const publish = await api.waitFor('views.publish');
    expect(publish.args).toMatchObject({ user_id: 'U3', view: { type: 'home' } });
  });
});
