import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openProcessWorld, type ProcessWorld } from '../helpers/process-world.ts';
import { insertGrant } from '../helpers/proxy-fixtures.ts';

/**
 * Issue 20: a bot process started while Slack's Web API answers 500 still acknowledges every
 * slash command within Slack's 3 s, and the work it queued reaches Slack once Slack is back.
 */

const policy = (upstream: string) => `
resources:
  billing-api:
    upstream: ${upstream}
    approvers: { users: [UAPPROVER1] }
    approval_channel: CAPPROVALS
    min_duration: 1m
    max_duration: 8h
    scopes:
      read: { allow: ["GET /**"] }
`;

let world: ProcessWorld;

beforeAll(async () => {
  world = await openProcessWorld({ name: 'jitgate_slack_outage', policy });
}, 60_000);

afterAll(async () => {
  await world?.close();
}, 30_000);

/** Posts a signed `/access` command and measures how long the bot took to answer it. */
async function timedCommand(port: number, text: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const bot = world.running.bot.find((b) => b.port === port);
  if (!bot) throw new Error('no such bot');
  const status = await world.slashCommand(bot, 'UREQUESTER1', text);
  return { status, ms: performance.now() - started };
}

const approvalPostsWith = (reason: string) =>
  world.slack
    .callsTo('chat.postMessage')
    .filter((c) => c.args.channel === 'CAPPROVALS' && JSON.stringify(c.args).includes(reason));

describe('a bot started during a Slack Web API outage', () => {
  it('acks slash commands from its first second and delivers their messages once Slack is back', async () => {
    world.slack.startOutage({ status: 500 });
    const bot = await world.start('bot');
    const answers = [];
    for (let i = 0; i < 3; i += 1) {
      answers.push(await timedCommand(bot.port, `request billing-api read 30m outage reason ${i}`));
    }
    // Slack shows "not acknowledged" after 3 s: every command must have been answered before.
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.ms).toBeLessThan(3000);
    }
    // Nothing reached Slack during the outage, though it was tried.
    expect(approvalPostsWith('outage reason')).toHaveLength(0);
    expect(world.slack.faultedCalls.length).toBeGreaterThan(0);

    // Long enough for backoff to have grown, as in a real outage.
    await new Promise((resolve) => setTimeout(resolve, 8000));
    world.slack.endOutage();
    const recovered = performance.now();
    for (let i = 0; i < 3; i += 1) {
      await world.slack.waitFor(
        'chat.postMessage',
        (c) => c.args.channel === 'CAPPROVALS' && JSON.stringify(c.args).includes(`outage reason ${i}`),
        30_000,
      );
    }
    const caughtUpMs = performance.now() - recovered;
    console.info(
      `approval messages of 3 requests made during the outage: ${Math.round(caughtUpMs)} ms after recovery`,
    );
    for (let i = 0; i < 3; i += 1) expect(approvalPostsWith(`outage reason ${i}`)).toHaveLength(1);
  }, 90_000);
});

describe('with Redis down', () => {
  it('a grant still expires on time and its owner is told within seconds (worker and bot processes)', async () => {
    if (world.running.bot.length === 0) await world.start('bot');
    await world.start('worker');
    await world.redis.kill();
    const now = Date.now();
    const grant = await insertGrant(world.database, {
      resource: 'billing-api',
      scope: 'read',
      userId: 'UOWNER1',
      startsAt: new Date(now - 60_000),
      expiresAt: new Date(now + 3000),
    });
    const dm = await world.slack.waitFor('chat.postMessage', (c) => c.args.channel === grant.userId, 20_000);
    const lateMs = dm.at.getTime() - grant.expiresAt.getTime();
    console.info(`with Redis down, the expiry DM was posted ${lateMs} ms after the grant's expiry`);
    expect(JSON.stringify(dm.args)).toContain('expired');
    // The 30 s sweep would have been 22–32 s late.
    expect(lateMs).toBeLessThan(5000);
  }, 60_000);
});
