import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { and, eq, inArray } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOffboardingRecheck } from '../../src/access/index.ts';
import { generateDeviceKey, importDeviceKey } from '../../src/cli/contractor/device-key.ts';
import {
  endConsoleSession,
  liveConsoleSession,
  startConsoleSession,
} from '../../src/db/queries/console-sessions.ts';
import {
  accessRequests,
  auditEvents,
  consoleSessions,
  devices,
  type Grant,
  grants,
  outbox,
} from '../../src/db/schema/index.ts';
import { eventCallbackBody, postSigned } from '../../src/dev/slack-stand-in/signed-requests.ts';
import { linkDeviceByCode, startPairing } from '../../src/devices/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { createActiveGrantView, type ManagedActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import { systemClock } from '../../src/shared/clock.ts';
import {
  createMemoryKeyStore,
  createVerifier,
  issueTokenForGrant,
  type KeyStore,
} from '../../src/tokens/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';
import { arraySink, eventually, rawRequest, startEchoUpstream } from '../helpers/proxy-fixtures.ts';
import { blockText, SIGNING_SECRET, type SlackHarness, startSlackHarness } from '../helpers/slack-harness.ts';

const ISSUER = 'https://jitgate.test';

let h: SlackHarness;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let keyStore: KeyStore;
let view: ManagedActiveGrantView;
let proxy: FastifyInstance;
let proxyPort: number;

beforeAll(async () => {
  upstream = await startEchoUpstream();
  // Only people in SREQ or SOTHER (or URESIDENT by id) may ask; billing-api points at the echo upstream.
  const policy = testPolicy(
    `${TEST_POLICY_YAML.replace('http://127.0.0.1:9000', upstream.url)}
requesters: { users: [URESIDENT], groups: [SREQ, SOTHER] }
`,
  );
  h = await startSlackHarness({
    policy,
    userGroups: {
      SREQ: [
        'UDEACT',
        'ULEAVER',
        'UBOTH',
        'USILENT',
        'UTARGET',
        'UKEEP',
        'UTIMER1',
        'UTIMER2',
        'UCONSOLE',
        'USCOPED',
        'UDEVQUIET',
        'UDEVLEFT',
        'UDEVGONE',
        'UDEVKEPT',
      ],
      SOTHER: ['UBOTH'],
      SAPPROVERS: [],
    },
  });
  keyStore = createMemoryKeyStore({ clock: systemClock });
  await keyStore.load();
  const logger = pino({ level: 'silent' });
  view = createActiveGrantView({ database: h.database, logger });
  await view.start();
  proxy = createProxyServer({
    policy: staticPolicyStore(policy),
    grants: view,
    verifier: createVerifier(keyStore, { issuer: ISSUER, clock: systemClock }),
    keyStore,
    clock: systemClock,
    sink: arraySink(),
    logger,
  });
  await proxy.listen({ port: 0, host: '127.0.0.1' });
  proxyPort = (proxy.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await proxy?.close();
  await view?.close();
  await h?.close();
  await upstream?.close();
});

/** An auto-approved read grant on billing-api (the policy approves read ≤ 1h by itself). */
async function readGrant(userId: string): Promise<Grant> {
  const result = await h.access.createRequest({
    actor: slackUser(userId),
    resource: 'billing-api',
    scope: 'read',
    durationSeconds: 1800,
    reason: 'INC-1',
  });
  if (!result.ok || !result.value.grant) throw new Error(`no grant: ${JSON.stringify(result)}`);
  return result.value.grant;
}

/** A request that waits for an approver (write scope, or admin-api). */
async function pendingRequest(userId: string, resource = 'billing-api', scope = 'write'): Promise<string> {
  const result = await h.access.createRequest({
    actor: slackUser(userId),
    resource,
    scope,
    durationSeconds: 3600,
    reason: 'INC-2',
  });
  if (!result.ok || result.value.grant) throw new Error(`not pending: ${JSON.stringify(result)}`);
  return result.value.request.id;
}

async function grantStatus(id: string): Promise<string | undefined> {
  return (await h.access.getGrant(id))?.status;
}

async function tokenFor(grant: Grant): Promise<string> {
  return issueTokenForGrant(keyStore, grant, ISSUER);
}

const HOUR = 3600_000;

/** A console session row as sign-in writes it; `ago` moves the sign-in into the past. */
async function openConsoleSession(userId: string, options: { ago?: number; lifeMs?: number } = {}) {
  const id = randomUUID();
  const signedInAt = new Date(Date.now() - (options.ago ?? 0));
  const expiresAt = new Date(signedInAt.getTime() + (options.lifeMs ?? 12 * HOUR));
  await h.database.db.transaction((tx) =>
    startConsoleSession(tx, { id, userId, teamId: 'T1', signedInAt, lastSeenAt: signedInAt, expiresAt }),
  );
  return id;
}

const sessionRow = async (id: string) =>
  (await h.database.db.select().from(consoleSessions).where(eq(consoleSessions.id, id)))[0];

/** Whether the console would still take a cookie naming this session (the read every request makes, 30 min idle). */
const sessionIsLive = async (id: string) => {
  const now = new Date();
  return (await liveConsoleSession(h.database.db, id, now, new Date(now.getTime() - HOUR / 2))) !== undefined;
};

/** A device of `userId`, paired and linked as the CLI and `/access link` do it. */
async function pairDevice(userId: string): Promise<string> {
  const key = await importDeviceKey(await generateDeviceKey('EdDSA'));
  const started = await startPairing(h.devices, {
    name: `${userId}-box`,
    publicJwk: key.publicJwk,
    thumbprint: key.thumbprint,
  });
  if (!started.ok) throw new Error(started.message);
  expect(await linkDeviceByCode(h.devices, { code: started.value.code, userId })).toMatchObject({
    ok: true,
  });
  return started.value.device.id;
}

const deviceStatus = async (id: string) =>
  (await h.database.db.select().from(devices).where(eq(devices.id, id)))[0]?.status;

const sendEvent = (event: { type: string } & Record<string, unknown>) =>
  postSigned(h.baseUrl, '/slack/events', eventCallbackBody(event), SIGNING_SECRET);

describe('offboarding: account deactivated (user_change)', () => {
  it('revokes every grant, ends every request, notes it in the approval channel, and the proxy denies', async () => {
    const first = await readGrant('UDEACT');
    const second = await readGrant('UDEACT');
    const requestId = await pendingRequest('UDEACT');
    const other = await readGrant('UKEEP');
    const token = await tokenFor(first);
    await eventually(() => view.lookup(first.id).kind === 'active');
    const before = await rawRequest(proxyPort, 'GET', '/billing-api/invoices/7', {
      authorization: `Bearer ${token}`,
    });
    expect(before.status).toBe(200);

    const response = await sendEvent({ type: 'user_change', user: { id: 'UDEACT', deleted: true } });
    expect(response.status).toBe(200);

    await eventually(async () => (await grantStatus(first.id)) === 'revoked');
    expect(await grantStatus(second.id)).toBe('revoked');
    expect(await grantStatus(other.id)).toBe('active');
    const request = await h.access.getRequest(requestId);
    expect(request).toMatchObject({ status: 'cancelled', decisionNote: 'offboarded: account deactivated' });
    const revoked = await h.access.getGrant(first.id);
    expect(revoked).toMatchObject({ endReason: 'offboarded: account deactivated', endedBy: 'offboarding' });

    // The proxy drops the grant on the NOTIFY of the same transaction.
    await eventually(() => view.lookup(first.id).kind !== 'active');
    const after = await rawRequest(proxyPort, 'GET', '/billing-api/invoices/7', {
      authorization: `Bearer ${token}`,
    });
    expect(after.status).toBe(403);
    expect(after.json().error).toBe('grant_revoked');

    // Audit: one row per change, with the reason, and one user.offboarded row.
    const rows = await h.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.kind, 'grant.revoked'), eq(auditEvents.grantId, first.id)));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'system:offboarding' });
    expect(rows[0]?.data).toMatchObject({ reason: 'offboarded: account deactivated' });
    const summary = await h.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.kind, 'user.offboarded'));
    expect(summary.map((r) => r.data)).toContainEqual(
      expect.objectContaining({ userId: 'UDEACT', grants: expect.arrayContaining([first.id, second.id]) }),
    );
    const cancelled = await h.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.kind, 'request.cancelled'), eq(auditEvents.requestId, requestId)));
    expect(cancelled[0]?.data).toMatchObject({ reason: 'offboarded: account deactivated' });

    // The approval channel is told; the deactivated person gets no DM (it could never arrive).
    const note = await h.api.waitFor(
      'chat.postMessage',
      (c) =>
        c.args.channel === 'CAPPROVALS' &&
        blockText(c).includes('Access ended') &&
        blockText(c).includes('UDEACT'),
    );
    expect(blockText(note)).toContain('offboarded: account deactivated');
    expect(blockText(note)).toContain('2 grants revoked, 1 pending request ended');
    await h.api.waitFor(
      'chat.update',
      (c) => blockText(c).includes('Ended by offboarding') && blockText(c).includes('account deactivated'),
    );
    expect(
      h.api
        .callsTo('chat.postMessage')
        .filter((c) => c.args.channel === 'UDEACT' && blockText(c).includes('revoked')),
    ).toHaveLength(0);
  });

  it("revokes the person's linked devices too, audited, and leaves everyone else's", async () => {
    const theirs = await pairDevice('UDEVGONE');
    const kept = await pairDevice('UDEVKEPT');
    await sendEvent({ type: 'user_change', user: { id: 'UDEVGONE', deleted: true } });
    await eventually(async () => (await deviceStatus(theirs)) === 'revoked');
    expect(await deviceStatus(kept)).toBe('linked');
    const rows = await h.database.db.select().from(auditEvents).where(eq(auditEvents.kind, 'device.revoked'));
    expect(rows.map((r) => r.data)).toEqual([
      expect.objectContaining({
        deviceId: theirs,
        userId: 'UDEVGONE',
        reason: 'offboarded: account deactivated',
      }),
    ]);
    expect(rows[0]).toMatchObject({ actor: 'system:offboarding' });
  });

  it('ignores a user_change that is not a deactivation', async () => {
    const grant = await readGrant('UKEEP');
    await sendEvent({ type: 'user_change', user: { id: 'UKEEP', deleted: false, real_name: 'Still here' } });
    await new Promise((r) => setTimeout(r, 100));
    expect(await grantStatus(grant.id)).toBe('active');
  });
});

describe('offboarding: console sessions', () => {
  it("ends every open console session of the person with the grants, audited, and no one else's", async () => {
    const grant = await readGrant('UCONSOLE');
    const laptop = await openConsoleSession('UCONSOLE');
    const phone = await openConsoleSession('UCONSOLE', { ago: 10 * 60_000 });
    const signedOut = await openConsoleSession('UCONSOLE', { ago: HOUR });
    expect(await endConsoleSession(h.database.db, signedOut, new Date())).toBe(true);
    const over = await openConsoleSession('UCONSOLE', { ago: 13 * HOUR, lifeMs: 12 * HOUR });
    const someoneElse = await openConsoleSession('UKEEP');
    expect(await sessionIsLive(laptop)).toBe(true);
    expect(await sessionIsLive(phone)).toBe(true);

    await sendEvent({ type: 'user_change', user: { id: 'UCONSOLE', deleted: true } });
    await eventually(async () => (await grantStatus(grant.id)) === 'revoked');

    // Already refused by the read every console request makes: no wait, no timeout involved.
    expect(await sessionIsLive(laptop)).toBe(false);
    expect(await sessionIsLive(phone)).toBe(false);
    const revokedAt = (await h.access.getGrant(grant.id))?.endedAt;
    for (const id of [laptop, phone]) {
      // One transaction, one `now`: the sessions ended at the instant the grant did.
      expect(await sessionRow(id)).toMatchObject({ endReason: 'offboarded', endedAt: revokedAt });
    }
    // A session signed out before keeps its own end; one past its absolute end is left as it is.
    expect(await sessionRow(signedOut)).toMatchObject({ endReason: 'signed_out' });
    expect(await sessionRow(over)).toMatchObject({ endedAt: null, endReason: null });
    expect(await sessionIsLive(someoneElse)).toBe(true);

    const ended = await h.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.kind, 'console.session_ended'));
    const theirs = ended.filter((r) => r.data.userId === 'UCONSOLE');
    expect(theirs.map((r) => r.data.sessionId).sort()).toEqual([laptop, phone].sort());
    const [summary] = (
      await h.database.db.select().from(auditEvents).where(eq(auditEvents.kind, 'user.offboarded'))
    ).filter((r) => r.data.userId === 'UCONSOLE');
    expect(summary?.data).toMatchObject({
      consoleSessions: [laptop, phone].sort(),
      grants: [grant.id],
      reason: 'offboarded: account deactivated',
    });
    for (const row of theirs) {
      expect(row).toMatchObject({ actor: 'system:offboarding' });
      expect(row.data).toMatchObject({
        reason: 'offboarded: account deactivated',
        offboardId: summary?.data.offboardId,
      });
    }
    expect(ended.filter((r) => r.data.userId === 'UKEEP')).toEqual([]);
  });

  it('offboards a person who holds nothing but a console session (an approver, an auditor)', async () => {
    const session = await openConsoleSession('UCONSONLY');
    const result = await h.offboarding.accountDeactivated('UCONSONLY');
    expect(result).toEqual({ grants: [], requests: [], consoleSessions: [session] });
    expect(await sessionIsLive(session)).toBe(false);
    const [summary] = (
      await h.database.db.select().from(auditEvents).where(eq(auditEvents.kind, 'user.offboarded'))
    ).filter((r) => r.data.userId === 'UCONSONLY');
    expect(summary?.data).toMatchObject({
      resources: [],
      grants: [],
      requests: [],
      consoleSessions: [session],
    });
    // No resource was touched, so no approval channel is told.
    const notes = await h.database.db.select().from(outbox).where(eq(outbox.kind, 'user_offboarded'));
    expect(notes.filter((n) => n.payload.userId === 'UCONSONLY')).toEqual([]);
    // Nothing left: a second run ends nothing and writes nothing.
    expect(await h.offboarding.accountDeactivated('UCONSONLY')).toEqual({
      grants: [],
      requests: [],
      consoleSessions: [],
    });
    const rows = await h.database.db
      .select()
      .from(auditEvents)
      .where(inArray(auditEvents.kind, ['user.offboarded', 'console.session_ended']));
    expect(rows.filter((r) => r.data.userId === 'UCONSONLY')).toHaveLength(2);
  });
});

describe('offboarding: leaving the requester groups (subteam_members_changed)', () => {
  it('offboards who left every requester group, keeps who is still in another', async () => {
    const leaver = await readGrant('ULEAVER');
    const leaverRequest = await pendingRequest('ULEAVER', 'admin-api', 'admin');
    const both = await readGrant('UBOTH');
    h.api.userGroups.SREQ = (h.api.userGroups.SREQ ?? []).filter((u) => u !== 'ULEAVER' && u !== 'UBOTH');
    await sendEvent({
      type: 'subteam_members_changed',
      subteam_id: 'SREQ',
      team_id: 'T1',
      added_users: [],
      added_users_count: '0',
      removed_users: ['ULEAVER', 'UBOTH'],
      removed_users_count: '2',
    });
    await eventually(async () => (await grantStatus(leaver.id)) === 'revoked');
    expect((await h.access.getGrant(leaver.id))?.endReason).toBe('offboarded: left requester group SREQ');
    expect((await h.access.getRequest(leaverRequest))?.status).toBe('cancelled');
    expect(await grantStatus(both.id)).toBe('active');
    // The admin-api approval channel hears about it too (the request was there).
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'CADMIN' && blockText(c).includes('left requester group SREQ'),
    );
    // Still active, so the person is told by DM.
    await h.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'ULEAVER' && blockText(c).includes('revoked'),
    );
    // A later request by the leaver is refused by the fresh membership.
    const again = await h.access.createRequest({
      actor: slackUser('ULEAVER'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'again',
    });
    expect(again).toMatchObject({ ok: false, code: 'not_allowed_to_request' });
  });
});

describe('offboarding: the periodic re-check', () => {
  it('catches a deactivation that sent no event, and leaves everyone else alone', async () => {
    const silent = await readGrant('USILENT');
    const keep = await readGrant('UKEEP');
    h.api.deactivated.add('USILENT');
    const result = await h.offboarding.recheck();
    expect(result.deactivated).toEqual(['USILENT']);
    expect(result.leftGroups).toEqual([]);
    expect(result.failures).toBe(0);
    expect(await grantStatus(silent.id)).toBe('revoked');
    expect(await grantStatus(keep.id)).toBe('active');
    expect(h.api.callsTo('users.info').map((c) => c.args.user)).toEqual(
      expect.arrayContaining(['USILENT', 'UKEEP']),
    );
    // Nothing left to end: a second run changes nothing.
    const again = await h.offboarding.recheck();
    expect(again.deactivated).toEqual([]);
  });

  it('asks about people with only a linked device or a console session too', async () => {
    const quietDevice = await pairDevice('UDEVQUIET');
    const leftDevice = await pairDevice('UDEVLEFT');
    // Approvers sign in to the console without being requesters: only a deactivation ends that.
    const approverSession = await openConsoleSession('UAPPRCONSOLE');
    const goneSession = await openConsoleSession('UCONSOLEGONE');
    h.api.deactivated.add('UDEVQUIET');
    h.api.deactivated.add('UCONSOLEGONE');
    h.api.userGroups.SREQ = (h.api.userGroups.SREQ ?? []).filter((u) => u !== 'UDEVLEFT');
    const asked = h.api.callsTo('users.info').length;
    const result = await h.offboarding.recheck();
    expect(result.deactivated).toEqual(expect.arrayContaining(['UDEVQUIET', 'UCONSOLEGONE']));
    expect(result.leftGroups).toEqual(['UDEVLEFT']);
    expect(result.failures).toBe(0);
    expect(await deviceStatus(quietDevice)).toBe('revoked');
    expect(await deviceStatus(leftDevice)).toBe('revoked');
    expect(await sessionIsLive(goneSession)).toBe(false);
    expect(await sessionRow(goneSession)).toMatchObject({ endReason: 'offboarded' });
    expect(await sessionIsLive(approverSession)).toBe(true);
    expect(
      h.api
        .callsTo('users.info')
        .slice(asked)
        .map((c) => c.args.user),
    ).toEqual(expect.arrayContaining(['UDEVQUIET', 'UDEVLEFT', 'UAPPRCONSOLE', 'UCONSOLEGONE']));
    const revoked = await h.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.kind, 'device.revoked'));
    expect(revoked.map((r) => r.data)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ deviceId: quietDevice, reason: 'offboarded: account deactivated' }),
        expect.objectContaining({
          deviceId: leftDevice,
          reason: expect.stringContaining('left requester group'),
        }),
      ]),
    );
  });

  it('never offboards on a Slack failure', async () => {
    const grant = await readGrant('UKEEP');
    h.api.failNext('users.info', { error: 'internal_error' }, 50);
    const result = await h.offboarding.recheck();
    expect(result.failures).toBeGreaterThan(0);
    expect(result.deactivated).toEqual([]);
    expect(await grantStatus(grant.id)).toBe('active');
    h.api.reset();
  });
});

describe('offboarding: the re-check timer (startOffboardingRecheck)', () => {
  it('runs the re-check by itself on every tick, and no more once stopped', async () => {
    const first = await readGrant('UTIMER1');
    const second = await readGrant('UTIMER2');
    const failures: object[] = [];
    const quiet = () => {};
    const stop = startOffboardingRecheck(h.offboarding, {
      everyMs: 100,
      logger: { info: quiet, warn: quiet, error: (obj) => failures.push(obj) },
    });
    try {
      // Nobody calls recheck(): the first tick finds the deactivation.
      h.api.deactivated.add('UTIMER1');
      await eventually(async () => (await grantStatus(first.id)) === 'revoked');
      expect((await h.access.getGrant(first.id))?.endReason).toBe('offboarded: account deactivated');
      expect(await grantStatus(second.id)).toBe('active');
      // A later tick finds the next one.
      h.api.deactivated.add('UTIMER2');
      await eventually(async () => (await grantStatus(second.id)) === 'revoked');
    } finally {
      await stop();
    }
    // Stopped: no tick asks Slack again (three periods pass without a users.info call).
    const asked = h.api.callsTo('users.info').length;
    await new Promise((r) => setTimeout(r, 300));
    expect(h.api.callsTo('users.info')).toHaveLength(asked);
    expect(failures).toEqual([]);
  });
});

describe('/access revoke-all', () => {
  async function adminGrant(userId: string): Promise<Grant> {
    const requestId = await pendingRequest(userId, 'admin-api', 'admin');
    await h.access.approve({ requestId, actor: slackUser('UAPPROVER1') });
    const done = await h.access.approve({ requestId, actor: slackUser('UAPPROVER2') });
    if (!done.ok || !done.value.grant) throw new Error('admin grant not made');
    return done.value.grant;
  }

  it('an approver of some resources ends what lies on those, and says what was left', async () => {
    const billing = await readGrant('UTARGET');
    const admin = await adminGrant('UTARGET');
    // UAPPROVER3 approves admin-api only.
    const { responseKey } = await h.command('UAPPROVER3', 'revoke-all <@UTARGET|target> left the project');
    const answer = await h.answer(responseKey);
    expect(blockText(answer)).toContain('Revoked 1 grant');
    expect(blockText(answer)).toContain('billing-api');
    expect(await grantStatus(admin.id)).toBe('revoked');
    expect(await grantStatus(billing.id)).toBe('active');
    expect((await h.access.getGrant(admin.id))?.endReason).toBe('left the project');

    // An approver of billing-api (and admin-api) ends the rest.
    const second = await h.command('UAPPROVER1', 'revoke-all UTARGET');
    expect(blockText(await h.answer(second.responseKey))).toContain('Revoked 1 grant');
    expect(await grantStatus(billing.id)).toBe('revoked');
    const row = await h.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.kind, 'grant.revoked'), eq(auditEvents.grantId, billing.id)));
    expect(row[0]).toMatchObject({ actor: 'slack:UAPPROVER1' });
  });

  it("an approver's revoke-all ends grants on their resources and leaves the console session", async () => {
    const grant = await readGrant('USCOPED');
    const session = await openConsoleSession('USCOPED');
    const { responseKey } = await h.command('UAPPROVER1', 'revoke-all USCOPED');
    expect(blockText(await h.answer(responseKey))).toContain('Revoked 1 grant');
    expect(await grantStatus(grant.id)).toBe('revoked');
    expect(await sessionIsLive(session)).toBe(true);
    expect((await sessionRow(session))?.endedAt).toBeNull();
  });

  it('is refused for a non-approver and changes nothing', async () => {
    const grant = await readGrant('UTARGET');
    const { responseKey } = await h.command('UKEEP', 'revoke-all <@UTARGET>');
    expect(blockText(await h.answer(responseKey))).toContain('for approvers');
    expect(await grantStatus(grant.id)).toBe('active');
    const [count] = await h.database.db
      .select({ id: grants.id })
      .from(grants)
      .where(and(eq(grants.userId, 'UTARGET'), eq(grants.status, 'active')));
    expect(count?.id).toBe(grant.id);
  });

  it('answers bad input with usage', async () => {
    const { response } = await h.command('UAPPROVER1', 'revoke-all @someone');
    const body = (await response.json()) as { text: string };
    expect(body.text).toContain('is not a Slack user');
  });

  it('says so when there is nothing to revoke', async () => {
    const { responseKey } = await h.command('UAPPROVER1', 'revoke-all UNOBODY');
    expect(blockText(await h.answer(responseKey))).toContain('no active grants');
    const [pending] = await h.database.db
      .select()
      .from(accessRequests)
      .where(eq(accessRequests.requesterId, 'UNOBODY'));
    expect(pending).toBeUndefined();
  });
});
