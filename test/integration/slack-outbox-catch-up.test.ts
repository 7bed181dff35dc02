import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { outbox } from '../../src/db/schema/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { type OutboxWorld, openOutboxWorld, slackProcess } from '../helpers/outbox-world.ts';

/**
 * Issue 20: catching up after a Slack outage. Backoff grows while Slack fails, but the first
 * answer Slack gives again (a probe, or any delivery) makes every row waiting out the outage due
 * at once; rows waiting out a Retry-After keep their wait. A call that hangs holds up only its
 * own lane, not every message behind it.
 */

let w: OutboxWorld;

beforeAll(async () => {
  w = await openOutboxWorld({ slackTimeoutMs: 8000 });
});
afterAll(async () => {
  await w?.close();
});
beforeEach(() => {
  w.api.reset();
});

async function request(reason: string) {
  const created = await w.access.createRequest({
    actor: slackUser('UREQUESTER'),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 1800,
    reason,
  });
  if (!created.ok) throw new Error(created.code);
  return created.value.request;
}

const postsWith = (text: string) =>
  w.api.callsTo('chat.postMessage').filter((c) => JSON.stringify(c.args).includes(text));

const rowOf = async (dedupeKey: string) => {
  const [row] = await w.database.db.select().from(outbox).where(eq(outbox.dedupeKey, dedupeKey));
  if (!row) throw new Error(`no outbox row ${dedupeKey}`);
  return row;
};

describe('after an outage', () => {
  it('backoff grown through the outage is cut short by the first answer; a Retry-After is kept', async () => {
    w.api.startOutage({ status: 500 });
    const long = await request('long outage C-1');
    // Seven failed attempts: the row's backoff has grown to a minute.
    for (let i = 0; i < 7; i += 1) {
      if (i > 0) w.clock.set((await rowOf(`request_created:${long.id}`)).nextAttemptAt);
      await w.dispatcher.drain();
    }
    w.api.endOutage();
    w.api.failNext('chat.postMessage', { status: 429, retryAfter: 300 });
    const limited = await request('rate limited C-2');
    await w.dispatcher.drain();
    const waiting = await rowOf(`request_created:${long.id}`);
    expect(waiting.attempts).toBe(7);
    expect(waiting.waitingOut).toBe('outage');
    const backoffLeft = waiting.nextAttemptAt.getTime() - w.clock.now().getTime();
    expect(backoffLeft).toBeGreaterThanOrEqual(30_000);
    expect(await rowOf(`request_created:${limited.id}`)).toMatchObject({ waitingOut: 'rate_limit' });

    // One probe interval later (not the minute of backoff), the long-waiting row goes out,
    // tried early as the probe, its attempt not counted.
    w.clock.advance(2000);
    await w.dispatcher.probe();
    expect(postsWith('long outage C-1')).toHaveLength(1);
    expect((await rowOf(`request_created:${long.id}`)).attempts).toBe(7);
    // Slack asked for 300 s: the rate-limited row still waits.
    expect(postsWith('rate limited C-2')).toHaveLength(0);
    expect((await rowOf(`request_created:${limited.id}`)).nextAttemptAt.getTime()).toBeGreaterThan(
      w.clock.now().getTime() + 200_000,
    );
    w.clock.advance(300_000);
    await w.dispatcher.drain();
    expect(postsWith('rate limited C-2')).toHaveLength(1);
  });

  it('a bot started after the outage began probes the rows another bot left waiting', async () => {
    w.api.startOutage({ status: 500 });
    const left = await request('left waiting C-3');
    await w.dispatcher.drain();
    await w.dispatcher.drain();
    w.clock.set((await rowOf(`request_created:${left.id}`)).nextAttemptAt);
    await w.dispatcher.drain();
    w.api.endOutage();
    // The first bot is gone; a new one has seen no failure of its own.
    const next = slackProcess({
      db: w.database.db,
      grantChannel: w.database.channel('grants'),
      clock: w.clock,
      policy: w.policy,
      api: w.api,
      botToken: 'xoxb-next',
    });
    await next.dispatcher.probe();
    expect(postsWith('left waiting C-3')).toHaveLength(1);
    await next.dispatcher.stop();
  });

  it('a call that hangs holds up its own message only', async () => {
    // Slack's clock is the real one: the history a retry reads is searched from then.
    w.clock.set(new Date());
    w.api.failNext('chat.postMessage', { actsButNeverAnswers: true });
    await request('hangs H-1');
    await request('flows F-1');
    let settled = false;
    const draining = w.dispatcher.drain().finally(() => {
      settled = true;
    });
    // The second request's message is posted while the first call still waits for its answer.
    await w.api.waitFor('chat.postMessage', (c) => JSON.stringify(c.args).includes('flows F-1'), 6000);
    expect(settled).toBe(false);
    await draining;
    expect(postsWith('hangs H-1')).toHaveLength(1);
    expect(postsWith('flows F-1')).toHaveLength(1);
  }, 30_000);
});
