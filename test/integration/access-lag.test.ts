import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { outbox } from '../../src/db/schema/index.ts';
import { type Backlog, createBacklog } from '../../src/ops/backlog.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { testPolicy } from '../helpers/policy.ts';

/** The queue-lag gauges: how far expiry, time-outs and Slack delivery are behind. */

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let access: AccessService;
let backlog: Backlog;
const clock = manualClock(new Date('2026-03-02T09:00:00Z'));

beforeAll(async () => {
  database = await openTestDatabase('t_lag');
  access = createAccessService({
    db: database.db,
    policy: staticPolicyStore(testPolicy()),
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
  });
  backlog = createBacklog({ db: database.db, clock });
});

afterAll(async () => {
  await database?.drop();
});

it('is zero with nothing overdue, then the age of the oldest overdue expiry, time-out and message', async () => {
  expect(await backlog.schedulerLagSeconds()).toBe(0);
  expect(await backlog.outboxLagSeconds()).toBe(0);

  // A grant for 10 minutes, and a request that times out in an hour (request_timeout: 1h).
  const granted = await access.createRequest({
    actor: slackUser('UCONTRACTOR'),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 600,
    reason: 'lag test',
  });
  if (!granted.ok) throw new Error(granted.code);
  const approved = await access.approve({
    requestId: granted.value.request.id,
    actor: slackUser('UAPPROVER1'),
  });
  if (!approved.ok || !approved.value.grant) throw new Error('expected a grant');
  const waiting = await access.createRequest({
    actor: slackUser('UCONTRACTOR'),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 600,
    reason: 'never decided',
  });
  if (!waiting.ok) throw new Error(waiting.code);

  // Nothing is due yet, but the messages those transitions queued are waiting for a bot.
  expect(await backlog.schedulerLagSeconds()).toBe(0);
  clock.advance(30_000);
  expect(await backlog.outboxLagSeconds()).toBe(30);

  // 10 min + 45 s on: the grant is 45 s overdue, the request is not yet.
  clock.advance(600_000 + 15_000);
  expect(await backlog.schedulerLagSeconds()).toBe(45);

  // 1 h + 2 min after it was made, the request is 2 min overdue and the grant longer.
  clock.advance(3_600_000 + 120_000 - 645_000);
  expect(await backlog.schedulerLagSeconds()).toBe(3_600 + 120 - 600);

  // Processing the overdue work brings it back to zero; so does delivering the messages.
  await access.expireDueGrants();
  expect(await backlog.schedulerLagSeconds()).toBe(120);
  expect((await access.expireRequest(waiting.value.request.id)).ok).toBe(true);
  expect(await backlog.schedulerLagSeconds()).toBe(0);
  await database.db.update(outbox).set({ sentAt: clock.now() });
  expect(await backlog.outboxLagSeconds()).toBe(0);
});
