import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { countUndelivered } from '../../src/db/queries/outbox.ts';
import type { Grant } from '../../src/db/schema/index.ts';
import {
  type FakeSlackApi,
  type RecordedCall,
  startFakeSlackApi,
} from '../../src/dev/slack-stand-in/web-api.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase, TEST_DATABASE_URL } from '../helpers/db.ts';
import { type SlackProcess, slackProcess } from '../helpers/outbox-world.ts';
import { testPolicy } from '../helpers/policy.ts';
import { blockText } from '../helpers/slack-harness.ts';

/**
 * Two bot processes (each its own pool, access service, notifier and dispatcher) deliver
 * one outbox at the same time. Each row is claimed by one of them, and the approval
 * message of a request is posted by one of them only, whichever events they each hold.
 * Which process made a call shows in its bot token.
 */

const GRANTS = 20;

let primary: Awaited<ReturnType<typeof openTestDatabase>>;
let secondary: Database;
let api: FakeSlackApi;
let a: SlackProcess;
let b: SlackProcess;
const clock = manualClock(new Date());

beforeAll(async () => {
  primary = await openTestDatabase('outboxrace');
  secondary = await openDatabase({
    databaseUrl: TEST_DATABASE_URL,
    dataDir: '.jitgate-test',
    schemaName: primary.schemaName,
  });
  api = await startFakeSlackApi();
  const policy = staticPolicyStore(testPolicy());
  const common = { clock, policy, api, grantChannel: primary.channel('grants'), batchSize: 1 };
  a = slackProcess({ ...common, db: primary.db, botToken: 'xoxb-process-a' });
  b = slackProcess({ ...common, db: secondary.db, botToken: 'xoxb-process-b' });
});
afterAll(async () => {
  await a?.dispatcher.stop();
  await b?.dispatcher.stop();
  await secondary?.close();
  await api?.close();
  await primary?.drop();
});

/** Both dispatchers drain at once, again and again (moving past retry back-offs) until nothing is left. */
async function drainBoth(): Promise<void> {
  for (let round = 0; round < 30; round++) {
    await Promise.all([a.dispatcher.drain(), b.dispatcher.drain()]);
    if ((await countUndelivered(primary.db)) === 0) return;
    clock.advance(5 * 60_000);
  }
  throw new Error(`outbox not empty after 30 rounds: ${await countUndelivered(primary.db)} left`);
}

const userOf = (i: number) => `UCONTRACTOR${String(i).padStart(2, '0')}`;
const reasonOf = (i: number) => `parallel P-${String(i).padStart(2, '0')}`;
const dms = (text: string) => api.callsTo('chat.postMessage').filter((c) => c.args.text === text);
const byToken = (calls: RecordedCall[], token: string) => calls.filter((c) => c.token === token);

describe('two outbox dispatchers on one database', () => {
  let grants: Grant[] = [];

  it('post each approval message once, by one of them, and each approval DM once', async () => {
    // Half come in through each process, all committed before either delivers anything.
    const created = await Promise.all(
      Array.from({ length: GRANTS }, (_, i) =>
        (i % 2 === 0 ? a : b).access.createRequest({
          actor: slackUser(userOf(i)),
          resource: 'billing-api',
          scope: 'read',
          durationSeconds: 1800,
          reason: reasonOf(i),
        }),
      ),
    );
    grants = created.map((r) => {
      if (!r.ok || !r.value.grant) throw new Error('expected auto-approved grants');
      return r.value.grant;
    });
    // request_created, request_approved and grant_created for each: three rows per request
    // whose delivery touches the same approval message, spread over both dispatchers.
    await drainBoth();

    const approvalPosts = api.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CAPPROVALS');
    for (let i = 0; i < GRANTS; i++) {
      const posts = approvalPosts.filter((c) => blockText(c).includes(reasonOf(i)));
      expect(posts, `approval messages for ${reasonOf(i)}`).toHaveLength(1);
      const request = await a.access.getRequest(grants[i]!.requestId);
      expect(request?.approvalMessageTs).toMatch(/^\d+\.\d+$/);
    }
    expect(approvalPosts).toHaveLength(GRANTS);
    // Each post came from exactly one process (its token), and the ts it stored is updated, not reposted.
    for (const post of approvalPosts) expect([a.botToken, b.botToken]).toContain(post.token);

    const approved = dms('Your access to billing-api is approved');
    expect(approved.map((c) => c.args.channel).sort()).toEqual(
      Array.from({ length: GRANTS }, (_, i) => userOf(i)).sort(),
    );
    // Both processes really took part.
    const all = api.calls.filter((c) => c.method === 'chat.postMessage' || c.method === 'chat.update');
    expect(byToken(all, a.botToken).length).toBeGreaterThan(0);
    expect(byToken(all, b.botToken).length).toBeGreaterThan(0);
  });

  it(`${GRANTS} grants expiring at once: exactly one expiry DM per grant, whoever sends it`, async () => {
    expect(grants).toHaveLength(GRANTS);
    const mark = api.calls.length;
    clock.advance(3_600_000);
    // The scheduler's batch path: every due grant expired in one transaction, 20 rows at once.
    expect((await a.access.expireDueGrants()).sort()).toEqual(grants.map((g) => g.id).sort());
    await drainBoth();

    const expiredDms = api.calls
      .slice(mark)
      .filter(
        (c) => c.method === 'chat.postMessage' && c.args.text === 'Your access to billing-api has expired',
      );
    expect(expiredDms.map((c) => c.args.channel).sort()).toEqual(
      Array.from({ length: GRANTS }, (_, i) => userOf(i)).sort(),
    );
    expect(byToken(expiredDms, a.botToken).length).toBeGreaterThan(0);
    expect(byToken(expiredDms, b.botToken).length).toBeGreaterThan(0);

    // Every approval message was updated to say its grant expired; none was posted again.
    const after = api.calls.slice(mark);
    expect(after.filter((c) => c.method === 'chat.postMessage' && c.args.channel === 'CAPPROVALS')).toEqual(
      [],
    );
    for (const grant of grants) {
      const request = await a.access.getRequest(grant.requestId);
      const updates = after.filter(
        (c) => c.method === 'chat.update' && c.args.ts === request?.approvalMessageTs,
      );
      expect(updates.length, `updates of ${grant.id}'s approval message`).toBeGreaterThan(0);
      expect(blockText(updates.at(-1)!)).toContain(`Grant \`${grant.id}\` expired`);
    }
    expect(await countUndelivered(primary.db)).toBe(0);
  });
});
