import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countDeadLetters } from '../../src/db/queries/outbox.ts';
import { auditEvents, outbox } from '../../src/db/schema/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { callsSince, type OutboxWorld, openOutboxWorld } from '../helpers/outbox-world.ts';
import { blockText } from '../helpers/slack-harness.ts';

/**
 * What the outbox does when Slack says no. A refusal that cannot change by trying again
 * (`invalid_blocks`, `not_in_channel`, …) is given up at once: a short stand-in goes out where
 * one helps, someone is told where it matters, and the message becomes an audited dead letter.
 * Slack's own trouble (429 with Retry-After, 5xx) is retried with backoff, never sooner than
 * Slack asked, and given up after the last attempt. A message that failed never holds back
 * the next one.
 */

let w: OutboxWorld;
const REQUESTER = 'UREQUESTER';

beforeAll(async () => {
  w = await openOutboxWorld();
});
afterAll(async () => {
  await w?.close();
});
beforeEach(() => {
  w.api.reset();
  w.api.setChannel('CAPPROVALS', 'ok');
});

async function request(reason: string) {
  const created = await w.access.createRequest({
    actor: slackUser(REQUESTER),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 3600,
    reason,
  });
  if (!created.ok) throw new Error(created.code);
  return created.value.request;
}

const rowOf = async (dedupeKey: string) => {
  const [row] = await w.database.db.select().from(outbox).where(eq(outbox.dedupeKey, dedupeKey));
  if (!row) throw new Error(`no outbox row ${dedupeKey}`);
  return row;
};

const deadLetterAudits = async (requestId: string) =>
  (await w.database.db.select().from(auditEvents).where(eq(auditEvents.kind, 'outbox.dead_letter'))).filter(
    (e) => e.requestId === requestId,
  );

describe('refused for good', () => {
  it('an approval message refused for its blocks is posted short, with the buttons, once; the refusal is a dead letter', async () => {
    w.api.failNext('chat.postMessage', { error: 'invalid_blocks' });
    const asked = await request('refused blocks R-1');
    await w.dispatcher.drain();

    const posts = w.api.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CAPPROVALS');
    expect(posts).toHaveLength(1);
    expect(blockText(posts[0]!)).toContain('could not be shown');
    expect(blockText(posts[0]!)).toContain('approve_request');
    expect((await w.access.getRequest(asked.id))?.approvalMessageTs).toBe(posts[0]?.answer?.ts);
    const row = await rowOf(`request_created:${asked.id}`);
    expect(row).toMatchObject({ sentAt: expect.any(Date), deadAt: expect.any(Date), attempts: 1 });
    expect(row.lastError).toContain('invalid_blocks');
    const [audit] = await deadLetterAudits(asked.id);
    expect(audit).toMatchObject({
      actor: 'system:outbox',
      data: expect.objectContaining({ code: 'invalid_blocks' }),
    });

    // Not retried: later drains try nothing for it.
    const mark = w.api.calls.length + w.api.faultedCalls.length;
    w.clock.advance(3600_000);
    await w.dispatcher.drain();
    expect(w.api.calls.length + w.api.faultedCalls.length).toBe(mark);
  });

  it('an approval channel the bot is not in: the requester is told, and the time-out DM still goes out', async () => {
    w.api.setChannel('CAPPROVALS', 'not_in_channel');
    const asked = await request('nobody will see this R-2');
    await w.dispatcher.drain();
    const told = w.api.callsTo('chat.postMessage').filter((c) => c.args.channel === REQUESTER);
    expect(told).toHaveLength(1);
    expect(blockText(told[0]!)).toContain('could not be posted to the approvers');
    expect(blockText(told[0]!)).toContain('/invite @jitgate');
    // The claim was given back: nothing was posted, so a later attempt may post.
    expect((await w.access.getRequest(asked.id))?.approvalMessageTs).toBeNull();
    expect(await rowOf(`request_created:${asked.id}`)).toMatchObject({ deadAt: expect.any(Date) });

    // Nobody decides; the request times out. Its approval message still cannot be posted, and
    // that must not keep the requester from hearing about it.
    w.clock.advance(3600_000 + 1000);
    expect((await w.access.expireRequest(asked.id)).ok).toBe(true);
    const mark = w.api.calls.length;
    await w.dispatcher.drain();
    const dms = callsSince(w.api, mark, 'chat.postMessage').filter((c) => c.args.channel === REQUESTER);
    expect(dms.map((c) => blockText(c))).toEqual([expect.stringContaining('in time, so it has expired')]);
    expect(await rowOf(`request_expired:${asked.id}`)).toMatchObject({
      sentAt: expect.any(Date),
      deadAt: expect.any(Date),
    });
    expect(await deadLetterAudits(asked.id)).toHaveLength(2);
  });

  it('an approval message that can no longer be updated does not hold back the denial DM', async () => {
    const asked = await request('update me R-3');
    await w.dispatcher.drain();
    w.api.failNext('chat.update', { error: 'message_not_found' }, 2);
    expect(
      (await w.access.deny({ requestId: asked.id, actor: slackUser('UAPPROVER1'), note: 'no' })).ok,
    ).toBe(true);
    await w.dispatcher.drain();
    const dm = w.api.callsTo('chat.postMessage').filter((c) => c.args.channel === REQUESTER);
    expect(dm.map((c) => blockText(c))).toEqual([expect.stringContaining('was denied')]);
    expect(await rowOf(`request_denied:${asked.id}`)).toMatchObject({
      sentAt: expect.any(Date),
      deadAt: expect.any(Date),
    });
  });

  it('a DM refused for its content goes out as its notification line alone', async () => {
    const asked = await request('deny me R-4');
    await w.dispatcher.drain();
    w.api.failNext('chat.postMessage', { error: 'msg_too_long' });
    await w.access.deny({ requestId: asked.id, actor: slackUser('UAPPROVER1'), note: 'because' });
    await w.dispatcher.drain();
    const [dm] = w.api.callsTo('chat.postMessage').filter((c) => c.args.channel === REQUESTER);
    expect(dm?.args.blocks).toBeUndefined();
    expect(String(dm?.args.text)).toContain('was denied');
    expect(String(dm?.args.text)).toContain('could not show this message in full');
  });
});

describe("Slack's own trouble", () => {
  it('429 with a long Retry-After: the next attempt waits as long as Slack asked', async () => {
    w.api.failNext('chat.postMessage', { status: 429, retryAfter: 120 });
    const asked = await request('rate limited R-5');
    await w.dispatcher.drain();
    const row = await rowOf(`request_created:${asked.id}`);
    expect(row.nextAttemptAt.getTime() - w.clock.now().getTime()).toBeGreaterThanOrEqual(120_000);
    expect(row.sentAt).toBeNull();
    expect(row.deadAt).toBeNull();
    // The claim was given back (Slack posted nothing), so the retry posts at once.
    expect((await w.access.getRequest(asked.id))?.approvalMessageTs).toBeNull();
    w.clock.advance(120_000);
    await w.dispatcher.drain();
    expect(w.api.callsTo('chat.postMessage').filter((c) => blockText(c).includes('R-5'))).toHaveLength(1);
    expect(await rowOf(`request_created:${asked.id}`)).toMatchObject({
      sentAt: expect.any(Date),
      deadAt: null,
    });
  });

  it('5xx that never ends: retried with growing waits, then given up after the last attempt', async () => {
    w.api.failNext('chat.postMessage', { status: 500 }, 10_000);
    const asked = await request('outage R-6');
    const waits: number[] = [];
    for (let i = 0; i < 20; i += 1) {
      await w.dispatcher.drain();
      const row = await rowOf(`request_created:${asked.id}`);
      if (row.sentAt) break;
      waits.push(row.nextAttemptAt.getTime() - w.clock.now().getTime());
      w.clock.advance(row.nextAttemptAt.getTime() - w.clock.now().getTime());
    }
    const row = await rowOf(`request_created:${asked.id}`);
    expect(row).toMatchObject({ sentAt: expect.any(Date), deadAt: expect.any(Date), attempts: 12 });
    expect(row.lastError).toContain('still failing after 12 attempts');
    expect(waits).toHaveLength(11);
    for (let i = 1; i < waits.length; i += 1) expect(waits[i]).toBeGreaterThanOrEqual(waits[i - 1]!);
    expect(waits[0]).toBeLessThan(5000);
    expect(await deadLetterAudits(asked.id)).toHaveLength(1);
    expect(await countDeadLetters(w.database.db)).toBeGreaterThanOrEqual(1);
    w.api.reset();
  });
});
