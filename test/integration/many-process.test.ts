import { inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessService, staticDirectory } from '../../src/access/index.ts';
import { grants } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { createBullScheduler, createSchedulerStore } from '../../src/scheduler/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { testPolicy } from '../helpers/policy.ts';
import { openProcessWorld, type ProcessWorld } from '../helpers/process-world.ts';
import { eventually, insertGrant, insertGrantsExpiringIn, rawRequest } from '../helpers/proxy-fixtures.ts';

/**
 * Issue 18: a deployment in miniature — 3 proxies, 2 workers and 2 bots, each a `bin/jitgate.js`
 * process, on one PostgreSQL database and one (private) Redis — keeps the promises that only
 * hold across processes.
 */

const DAY = 86_400_000;
const EXPIRING = 500;

const policy = (upstream: string) => {
  const common = `    upstream: ${upstream}
    approvers: { users: [UAPPROVER1, UAPPROVER2] }
    approval_channel: CAPPROVALS
    min_duration: 1s
    max_duration: 8h`;
  return `
resources:
  billing-api:
${common}
    credential: { header: Authorization, value: "Bearer \${BILLING_API_TOKEN}" }
    scopes:
      read: { allow: ["GET /**"], auto_approve: { max_duration: 1h } }
      write: { allow: ["GET /**", "POST /invoices"] }
    rate_limit: { requests: 1000000, per: 1m }
  rate-api:
${common}
    scopes:
      read: { allow: ["GET /**"] }
    rate_limit: { requests: 100, per: 1m }
  quota-api:
${common}
    scopes:
      read: { allow: ["GET /**"], quota: { requests: 50 } }
    rate_limit: { requests: 1000000, per: 1m }
`;
};

let world: ProcessWorld;

beforeAll(async () => {
  world = await openProcessWorld({ name: 'jitgate_many', policy });
  await world.startAll({ proxy: 3, worker: 2, bot: 2 });
  // Quota calls wait out the shared count's first recovery window (scripts.ts): until every
  // proxy admits a quota call, measuring would measure that window.
  const { grant } = await liveGrant('quota-api', 1_000);
  const headers = await world.callHeaders(grant);
  for (const port of proxyPorts())
    await eventually(
      async () => (await rawRequest(port, 'GET', '/quota-api/ready', headers)).status === 200,
      15_000,
    );
}, 90_000);

afterAll(async () => {
  await world?.close();
}, 30_000);

/** Messages in the approval channel naming `text` (a reason, a requester). */
const approvalMessagesWith = (text: string) =>
  world.slack
    .callsTo('chat.postMessage')
    .filter((c) => c.args.channel === 'CAPPROVALS' && JSON.stringify(c.args).includes(text));

const proxyPorts = () => world.running.proxy.map((p) => p.proxyPort!);

async function liveGrant(resource: string, quotaRequests?: number) {
  const now = Date.now();
  const grant = await insertGrant(world.database, {
    resource,
    scope: 'read',
    startsAt: new Date(now - 60_000),
    expiresAt: new Date(now + DAY),
    ...(quotaRequests !== undefined ? { quotaRequests } : {}),
  });
  const headers = await world.callHeaders(grant);
  await world.grantSeenByProxies(resource, headers);
  return { grant, headers };
}

/** `count` calls at once, spread evenly over every proxy. */
function burst(count: number, path: string, headers: Record<string, string>) {
  const ports = proxyPorts();
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const res = await rawRequest(ports[i % ports.length]!, 'GET', path, headers);
      return { status: res.status, error: res.status === 200 ? undefined : String(res.json().error) };
    }),
  );
}

describe('limits across three proxy processes', () => {
  it('a grant with rate_limit 100/1m gets 100 calls (plus what refills during the burst) through across the three', async () => {
    const { grant, headers } = await liveGrant('rate-api');
    const started = performance.now();
    const results = await burst(300, '/rate-api/items', headers);
    const elapsedMs = performance.now() - started;
    const passed = results.filter((r) => r.status === 200).length;
    // The bucket refills continuously (one call per 600 ms at 100/1m) while the burst lasts; a
    // refill comes too late to be used once the burst's last call has reached its proxy, so the
    // refills bound from above only: never more than the bucket and its refills, never under 100.
    const refilled = Math.floor((elapsedMs * 100) / 60_000);
    const said = `${passed} passed in ${elapsedMs.toFixed(0)} ms`;
    expect(passed, said).toBeLessThanOrEqual(100 + refilled + 1);
    expect(passed, said).toBeGreaterThanOrEqual(99);
    expect(results.filter((r) => r.status !== 200).every((r) => r.error === 'rate_limited')).toBe(true);
    expect(world.upstream.hits.get(grant.id)).toBe(passed);
  });

  it('a 50-call quota is never exceeded under concurrent load on all proxies', async () => {
    const { grant, headers } = await liveGrant('quota-api', 50);
    const results = await burst(300, '/quota-api/items', headers);
    expect(results.filter((r) => r.status === 200)).toHaveLength(50);
    expect(results.filter((r) => r.status !== 200).every((r) => r.error === 'quota_exhausted')).toBe(true);
    expect(world.upstream.hits.get(grant.id)).toBe(50);
    // PostgreSQL, the count of record, agrees once the audit batches are in.
    await eventually(async () => {
      const [row] = await world.database.db
        .select({ used: grants.usedRequests })
        .from(grants)
        .where(inArray(grants.id, [grant.id]));
      return row?.used === 50;
    }, 10_000);
  });

  it('a revocation in Slack is enforced by all three within 1 s', async () => {
    const { grant, headers } = await liveGrant('billing-api');
    for (const port of proxyPorts())
      expect((await rawRequest(port, 'GET', '/billing-api/invoices', headers)).status).toBe(200);
    const sent = performance.now();
    expect(
      await world.slashCommand(world.running.bot[0]!, 'UAPPROVER1', `revoke ${grant.id} offboarded`),
    ).toBe(200);
    const deniedAfter: number[] = [];
    for (const port of proxyPorts()) {
      await eventually(async () => {
        const res = await rawRequest(port, 'GET', '/billing-api/invoices', headers);
        return res.status === 403 && res.json().error === 'grant_revoked';
      }, 5_000);
      deniedAfter.push(performance.now() - sent);
    }
    expect(
      Math.max(...deniedAfter),
      `denied after ${deniedAfter.map((ms) => ms.toFixed(0)).join(', ')} ms`,
    ).toBeLessThan(1_000);
  });
});

describe('two bots, two workers', () => {
  it('requests made through both bots: each approval message is posted exactly once', async () => {
    const reasons = Array.from({ length: 20 }, (_, i) => `INC-${1000 + i}`);
    const [a, b] = world.running.bot as [(typeof world.running.bot)[0], (typeof world.running.bot)[0]];
    const statuses = await Promise.all(
      reasons.map((reason, i) =>
        world.slashCommand(i % 2 === 0 ? a : b, `UREQ${i}`, `request billing-api write 1h ${reason}`),
      ),
    );
    expect(statuses.every((s) => s === 200)).toBe(true);
    await eventually(() => reasons.every((reason) => approvalMessagesWith(reason).length > 0), 15_000);
    // Each bot polls the outbox every 2 s: wait out a poll of each before counting.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    for (const reason of reasons) expect(approvalMessagesWith(reason), reason).toHaveLength(1);
  });

  it(`${EXPIRING} grants expiring in the same second are each expired and told once, though a worker is killed mid-batch`, async () => {
    const { db } = world.database;
    // The test schedules the expiries as a bot would (its own BullMQ client, processing nothing).
    const store = staticPolicyStore(testPolicy(policy(world.upstream.url)));
    const access = createAccessService({
      db,
      policy: store,
      clock: systemClock,
      directory: staticDirectory({}),
      grantChannel: world.database.channel('grants'),
    });
    const scheduler = createBullScheduler({
      redisUrl: world.redis.url,
      store: createSchedulerStore(db),
      access,
      policy: store,
      clock: systemClock,
      processJobs: false,
    });
    await scheduler.start();
    try {
      const second = Math.ceil((Date.now() + 5_000) / 1000) * 1000;
      const users = Array.from({ length: EXPIRING }, (_, i) => `UEXP${String(i).padStart(4, '0')}`);
      const rows = await insertGrantsExpiringIn(db, { second, users });
      await Promise.all(rows.map((g) => scheduler.scheduleGrant(g)));
      const grantIds = rows.map((g) => g.id);
      const expiredCount = async () => {
        const result = await db.execute(
          sql`select count(*)::int as n from grants where status = 'expired' and id in (select jsonb_array_elements_text(${JSON.stringify(grantIds)}::jsonb)::uuid)`,
        );
        return Number((result as unknown as { n: number }[])[0]?.n ?? 0);
      };
      // Mid-batch: once the workers have expired some, one of them is killed outright.
      await eventually(async () => (await expiredCount()) >= 50, 20_000);
      const victim = world.running.worker[0]!;
      await world.signal(victim, 'SIGKILL');
      const atKill = await expiredCount();
      expect(atKill).toBeLessThan(EXPIRING);
      // Its replacement starts (as its Deployment would) and sweeps what is overdue; the other
      // worker goes on with the queue meanwhile.
      await world.start('worker');
      await eventually(async () => (await expiredCount()) === EXPIRING, 30_000);

      const dms = () =>
        world.slack.callsTo('chat.postMessage').filter((c) => String(c.args.channel).startsWith('UEXP'));
      await eventually(() => new Set(dms().map((c) => c.args.channel)).size === EXPIRING, 30_000);
      // Both bots poll every 2 s: a duplicate would show within one more round.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      // One DM to each owner, and each approval message (posted with the outcome) once.
      expect(dms()).toHaveLength(EXPIRING);
      for (const user of users) expect(approvalMessagesWith(user), user).toHaveLength(1);
      // Exactly one `grant_expired` event each.
      const events = await db.execute(
        sql`select count(*)::int as n, count(distinct dedupe_key)::int as d from outbox where dedupe_key like 'grant_expired:%'`,
      );
      expect((events as unknown as { n: number; d: number }[])[0]).toEqual({ n: EXPIRING, d: EXPIRING });
      // And no Slack message at all went out twice.
      const sent = world.slack
        .callsTo('chat.postMessage')
        .map((c) => `${c.args.channel} ${JSON.stringify(c.args.blocks)}`);
      expect(sent.length - new Set(sent).size).toBe(0);
    } finally {
      await scheduler.stop();
    }
  }, 90_000);
});
