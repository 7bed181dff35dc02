import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';
import { noticeMessage } from '../../src/slack/blocks/index.ts';
import { createNotifier, SlackCallError } from '../../src/slack/notifier.ts';

const TOKEN = 'xoxb-secret-bot-token-123';
let api: FakeSlackApi;
let logged = '';
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _encoding, done) {
      logged += String(chunk);
      done();
    },
  }),
);

beforeAll(async () => {
  api = await startFakeSlackApi({ userGroups: { SGROUP: ['U1', 'U2'] } });
});
afterAll(async () => {
  await api.close();
});
beforeEach(() => {
  api.reset();
});

const notifier = () => createNotifier({ botToken: TOKEN, apiUrl: api.url, logger, baseDelayMs: 5 });

describe('notifier', () => {
  it('retries 5xx and dropped connections, then delivers once', async () => {
    api.failNext('chat.postMessage', { status: 500 });
    api.failNext('chat.postMessage', { dropConnection: true });
    const posted = await notifier().postMessage('C1', noticeMessage('hello'));
    expect(posted.channel).toBe('C1');
    expect(api.callsTo('chat.postMessage')).toHaveLength(1);
    expect(api.faultedCalls).toHaveLength(2);
  });

  it('honours Retry-After on 429', async () => {
    const posted = await notifier().postMessage('C1', noticeMessage('first'));
    api.failNext('chat.update', { status: 429, retryAfter: 1 });
    const started = Date.now();
    await notifier().updateMessage(posted.channel, posted.ts, noticeMessage('x'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(api.callsTo('chat.update')).toHaveLength(1);
  });

  it('leaves a long rate-limit wait to the outbox instead of blocking', async () => {
    api.failNext('chat.postMessage', { status: 429, retryAfter: 120 });
    await expect(notifier().postMessage('C1', noticeMessage('x'))).rejects.toMatchObject({ retryable: true });
    expect(api.callsTo('chat.postMessage')).toHaveLength(0);
  });

  it('does not retry Slack refusals, and gives up after bounded attempts', async () => {
    api.failNext('chat.postMessage', { error: 'channel_not_found' });
    await expect(notifier().postMessage('C1', noticeMessage('x'))).rejects.toBeInstanceOf(SlackCallError);
    expect(api.faultedCalls).toHaveLength(1);
    api.failNext('chat.postMessage', { status: 500 }, 10);
    await expect(notifier().postMessage('C1', noticeMessage('x'))).rejects.toMatchObject({
      reason: 'HTTP 500',
    });
    expect(api.faultedCalls).toHaveLength(5);
  });

  it('answers response_url, lists group members, and never logs the token', async () => {
    await notifier().respond(api.responseUrl('r1'), noticeMessage('hi'));
    expect((await api.waitFor('response_url')).args).toMatchObject({
      response_type: 'ephemeral',
      text: 'hi',
    });
    expect(await notifier().listGroupMembers('SGROUP')).toEqual(['U1', 'U2']);
    expect(api.callsTo('usergroups.users.list')[0]?.token).toBe(TOKEN);
    expect(logged.length).toBeGreaterThan(0);
    expect(logged).not.toContain(TOKEN);
  });

  it('sorts what Slack answers: its refusals keep their code and detail lines, the network may have acted', async () => {
    const tooLong = { type: 'section' as const, text: { type: 'mrkdwn' as const, text: 'x'.repeat(3001) } };
    const refused = await notifier()
      .postMessage('C1', { text: 'x', blocks: [tooLong] })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'invalid_blocks', retryable: false, maybeDone: false });
    expect((refused as SlackCallError).details[0]).toMatch(/\[json-pointer:\/blocks\/0\/text\/text\]$/);
    const viaUrl = await notifier()
      .respond(api.responseUrl('r2'), { text: 'x', blocks: [tooLong] })
      .catch((e: unknown) => e);
    expect(viaUrl).toMatchObject({ method: 'response_url', code: 'invalid_blocks', retryable: false });
    api.acknowledge();

    api.failNext('chat.postMessage', { dropConnection: true }, 4);
    const dropped = await notifier()
      .postMessage('C1', noticeMessage('x'))
      .catch((e: unknown) => e);
    expect(dropped).toMatchObject({ code: 'network', retryable: true, maybeDone: true });
    api.failNext('chat.postMessage', { status: 429, retryAfter: 120 });
    const limited = await notifier()
      .postMessage('C1', noticeMessage('x'))
      .catch((e: unknown) => e);
    expect(limited).toMatchObject({ code: 'ratelimited', retryable: true, retryAfterMs: 120_000 });
    api.failNext('chat.update', { error: 'internal_error' }, 10);
    const posted = await notifier().postMessage('C1', noticeMessage('first'));
    await expect(
      notifier().updateMessage(posted.channel, posted.ts, noticeMessage('x')),
    ).rejects.toMatchObject({
      code: 'internal_error',
      retryable: true,
    });
  });

  it('paces posts to one channel to Slack’s per-channel rate: a burst, then one per interval, no 429', async () => {
    const rate = { perSecond: 10, burst: 3 };
    api.limitChannelPosts(rate);
    const unpaced = createNotifier({ botToken: TOKEN, apiUrl: api.url, logger, maxAttempts: 1 });
    const flood = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => unpaced.postMessage('CFLOOD', noticeMessage(`flood ${i}`))),
    );
    expect(flood.filter((r) => r.status === 'rejected').length).toBeGreaterThan(0);

    api.reset();
    api.limitChannelPosts(rate);
    const paced = createNotifier({
      botToken: TOKEN,
      apiUrl: api.url,
      logger,
      maxAttempts: 1,
      channelRate: rate,
    });
    const posts = await Promise.allSettled([
      ...Array.from({ length: 8 }, (_, i) => paced.postMessage('CPACED', noticeMessage(`paced ${i}`))),
      // Another channel has its own turns.
      paced.postMessage('COTHER', noticeMessage('other')),
    ]);
    expect(posts.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(api.faultedCalls).toHaveLength(0);
    expect(api.callsTo('chat.postMessage')).toHaveLength(9);
  });
});
