import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { outbox } from '../../src/db/schema/index.ts';
import { type FakeSlackApi, startFakeSlackApi } from '../../src/dev/slack-stand-in/web-api.ts';
import { enqueue } from '../../src/outbox/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { createNotifier } from '../../src/slack/notifier.ts';
import { createOutboxDispatcher, type OutboxDispatcher } from '../../src/slack/outbox-dispatcher.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { testPolicy } from '../helpers/policy.ts';
import { blockText } from '../helpers/slack-harness.ts';

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let api: FakeSlackApi;
let access: AccessService;
let dispatcher: OutboxDispatcher;
const clock = manualClock(new Date());

beforeAll(async () => {
  database = await openTestDatabase('slackout');
  api = await startFakeSlackApi();
  const logger = pino({ level: 'silent' });
  const policy = staticPolicyStore(testPolicy());
  access = createAccessService({
    db: database.db,
    policy,
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
  });
  const notifier = createNotifier({
    botToken: 'xoxb-t',
    apiUrl: api.url,
    logger,
    baseDelayMs: 1,
    maxAttempts: 2,
  });
  dispatcher = createOutboxDispatcher({
    db: database.db,
    access,
    policy,
    notifier,
    clock,
    logger,
    proxyUrl: 'http://p',
  });
});
afterAll(async () => {
  await dispatcher?.stop();
  await api?.close();
  await database?.drop();
});

const rows = () => database.db.select().from(outbox).orderBy(outbox.id);

describe('outbox dispatcher', () => {
  it('keeps messages through a Slack outage and delivers each exactly once when Slack is back', async () => {
    api.failNext('chat.postMessage', { status: 500 }, 100);
    const created = await access.createRequest({
      actor: slackUser('UREQ'),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 3600,
      reason: 'outage O-1',
    });
    expect(created.ok).toBe(true);
    expect(await dispatcher.drain()).toBe(0);
    const [failed] = await rows();
    expect(failed).toMatchObject({
      attempts: 1,
      sentAt: null,
      lastError: expect.stringContaining('HTTP 500'),
    });
    expect(failed!.nextAttemptAt.getTime()).toBeGreaterThan(clock.now().getTime());

    // Not due yet: nothing is tried.
    const faultsBefore = api.faultedCalls.length;
    await dispatcher.drain();
    expect(api.faultedCalls.length).toBe(faultsBefore);

    api.reset();
    clock.advance(60_000);
    expect(await dispatcher.drain()).toBe(1);
    expect(api.callsTo('chat.postMessage').filter((c) => blockText(c).includes('O-1'))).toHaveLength(1);
    expect((await rows())[0]).toMatchObject({ lastError: null, sentAt: expect.any(Date) });
    expect(await dispatcher.drain()).toBe(0);
  });

  it('a replayed event adds no row, and a re-delivery updates the message instead of posting again', async () => {
    const [row] = await rows();
    const requestId = String(row!.payload.requestId);
    await database.db.transaction((tx) =>
      enqueue(tx, [{ kind: 'request_created', requestId, autoApproved: false }], clock.now()),
    );
    expect(await rows()).toHaveLength(1);

    // As if the process died after Slack accepted the post but before the step was recorded.
    await database.db
      .update(outbox)
      .set({ sentAt: null, doneSteps: [], nextAttemptAt: clock.now() })
      .where(eq(outbox.id, row!.id));
    api.reset();
    expect(await dispatcher.drain()).toBe(1);
    expect(api.callsTo('chat.postMessage')).toHaveLength(0);
    expect(api.callsTo('chat.update')).toHaveLength(1);
  });

  it('renders from current state: a grant revoked before its approval DM went out gets only the revoked DM', async () => {
    api.reset();
    const created = await access.createRequest({
      actor: slackUser('UREQ2'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'auto R-1',
    });
    if (!created.ok || !created.value.grant) throw new Error('expected an auto-approved grant');
    await access.revokeGrant({ grantId: created.value.grant.id, actor: { type: 'cli' }, reason: 'test' });
    await dispatcher.drain();
    const dms = api.callsTo('chat.postMessage').filter((c) => c.args.channel === 'UREQ2');
    expect(dms.map((c) => String(c.args.text))).toEqual(['Your access to billing-api was revoked']);
  });

  it('reminders and expiry: DM with Extend, then an expiry DM; a stale reminder is dropped', async () => {
    api.reset();
    const created = await access.createRequest({
      actor: slackUser('UREQ3'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 900,
      reason: 'remind R-2',
    });
    if (!created.ok || !created.value.grant) throw new Error('expected an auto-approved grant');
    const grantId = created.value.grant.id;
    clock.advance(300_000);
    expect((await access.remindGrant(grantId, created.value.grant.version)).ok).toBe(true);
    await dispatcher.drain();
    const reminder = await api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'UREQ3' && String(c.args.text).includes('ends soon'),
    );
    expect(blockText(reminder)).toContain('extend_grant');
    clock.advance(601_000);
    expect((await access.expireGrant(grantId)).ok).toBe(true);
    await dispatcher.drain();
    await api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'UREQ3' && String(c.args.text).includes('has expired'),
    );
  });
});
