import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { slackUser } from '../helpers/actors.ts';
import { type OutboxWorld, openOutboxWorld } from '../helpers/outbox-world.ts';

/**
 * Issue 20: a post Slack made but never answered (the client timed out) is not posted again.
 * Every post carries its outbox key in the message's metadata; a retry after an unknown
 * outcome looks for it in the channel's history first — within the notifier's own retries,
 * and across the outbox's later attempts (another process, after a crash).
 */

let w: OutboxWorld;

beforeAll(async () => {
  w = await openOutboxWorld({ slackTimeoutMs: 300 });
});
afterAll(async () => {
  await w?.close();
});
beforeEach(() => {
  w.api.reset();
});

async function request(reason: string, scope = 'write') {
  const created = await w.access.createRequest({
    actor: slackUser('UREQUESTER'),
    resource: 'billing-api',
    scope,
    durationSeconds: 1800,
    reason,
  });
  if (!created.ok) throw new Error(created.code);
  return created.value.request;
}

const postsWith = (channel: string, text: string) =>
  w.api
    .callsTo('chat.postMessage')
    .filter((c) => c.args.channel === channel && JSON.stringify(c.args).includes(text));

describe('a post Slack made but never answered', () => {
  it('the approval message is in the channel once, and its ts is the one Slack gave it', async () => {
    w.api.failNext('chat.postMessage', { actsButNeverAnswers: true });
    const asked = await request('never answered N-1');
    await w.dispatcher.drain();

    const posts = postsWith('CAPPROVALS', 'never answered N-1');
    expect(w.api.faultedCalls.map((c) => c.method)).toEqual(['chat.postMessage']);
    expect(posts).toHaveLength(1);
    expect(posts[0]?.answer?.ts).toEqual(expect.any(String));
    expect((await w.access.getRequest(asked.id))?.approvalMessageTs).toBe(posts[0]?.answer?.ts);
    expect(await w.undelivered()).toBe(0);
  });

  it('a DM whose every try timed out is found by the next attempt of its row, not sent again', async () => {
    // The notifier's two tries: the first posts and never answers, the second cannot read the
    // history (Slack is in trouble), so the row is tried again by a later attempt.
    w.api.failNext('chat.postMessage', { actsButNeverAnswers: true });
    w.api.failNext('conversations.history', { status: 500 });
    const asked = await request('never answered N-2', 'read');
    expect(asked.status).toBe('approved');
    await w.dispatcher.drain();
    const dms = () => postsWith('UREQUESTER', 'billing-api').filter((c) => c.args.text !== undefined);
    expect(dms()).toHaveLength(1);

    w.clock.advance(60_000);
    await w.dispatcher.drain();
    expect(await w.undelivered()).toBe(0);
    expect(dms()).toHaveLength(1);
    expect(w.api.callsTo('conversations.history').length).toBeGreaterThan(0);
    expect(w.api.faultedCalls.map((c) => c.method)).toEqual(['chat.postMessage', 'conversations.history']);
  });

  it('a post that never reached Slack (the connection dropped first) is still sent', async () => {
    w.api.failNext('chat.postMessage', { dropConnection: true });
    await request('dropped before N-3');
    await w.dispatcher.drain();
    expect(postsWith('CAPPROVALS', 'dropped before N-3')).toHaveLength(1);
  });
});
