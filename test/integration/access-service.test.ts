import { asc, count, eq, sql } from 'drizzle-orm';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { chainHash, GENESIS_HASH } from '../../src/audit/chain.ts';
import { accessRequests, approvals, auditEvents, grants, outbox } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { createApprovalMessageClaims } from '../../src/slack/approval-message-claims.ts';
import { refusalText } from '../../src/slack/blocks/refusals.ts';
import { createMemoryKeyStore, issueTokenForGrant } from '../../src/tokens/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { testPolicy } from '../helpers/policy.ts';

type TestDb = Awaited<ReturnType<typeof openTestDatabase>>;

let database: TestDb;
let access: AccessService;
const clock = manualClock(new Date('2026-03-02T09:00:00Z'));
const committed: string[] = [];

beforeAll(async () => {
  database = await openTestDatabase('t_access');
  access = createAccessService({
    db: database.db,
    policy: staticPolicyStore(testPolicy()),
    clock,
    directory: staticDirectory({ SAPPROVERS: ['UGROUPAPPROVER'] }),
    grantChannel: database.channel('grants'),
    onCommitted: (events) => committed.push(...events.map((e) => e.kind)),
  });
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(() => {
  committed.length = 0;
});

async function rowCounts() {
  const [r] = await database.db.select({ n: count() }).from(accessRequests);
  const [g] = await database.db.select({ n: count() }).from(grants);
  const [a] = await database.db.select({ n: count() }).from(auditEvents);
  const [o] = await database.db.select({ n: count() }).from(outbox);
  return { requests: r?.n, grants: g?.n, audit: a?.n, outbox: o?.n };
}

async function pendingWrite(requesterId = 'UCONTRACTOR', resource = 'billing-api') {
  const created = await access.createRequest({
    actor: slackUser(requesterId),
    resource,
    scope: resource === 'billing-api' ? 'write' : 'admin',
    durationSeconds: 7200,
    reason: 'fix invoice 42',
  });
  if (!created.ok) throw new Error(created.code);
  expect(created.value.grant).toBeUndefined();
  return created.value.request;
}

describe('requests', () => {
  it('creates a pending request with its audit row and outbox event', async () => {
    const request = await pendingWrite();
    expect(request).toMatchObject({ status: 'pending', scope: 'write', approvalsRequired: 1 });
    expect(request.timeoutAt.getTime() - request.createdAt.getTime()).toBe(3600_000);
    const audit = await database.db.select().from(auditEvents).where(eq(auditEvents.requestId, request.id));
    expect(audit.map((a) => a.kind)).toEqual(['request.created']);
    expect(audit[0]!.actor).toBe('slack:UCONTRACTOR');
    expect(committed).toEqual(['request_created']);
  });

  it.each([
    [{ resource: 'nope' }, 'unknown_resource'],
    [{ scope: 'delete-everything' }, 'unknown_scope'],
    [{ durationSeconds: 9 * 3600 }, 'duration_too_long'],
    [{ durationSeconds: 0 }, 'duration_too_short'],
    [{ reason: '   ' }, 'reason_empty'],
    [{ reason: 'x'.repeat(2001) }, 'reason_too_long'],
  ])('refuses %j with %s and writes nothing', async (override, code) => {
    const before = await rowCounts();
    const result = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 3600,
      reason: 'ok',
      ...override,
    });
    expect(result).toMatchObject({ ok: false, code });
    expect(await rowCounts()).toEqual(before);
  });

  it('auto-approves a read scope within its limit', async () => {
    const result = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 1800,
      reason: 'look at invoices',
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.request.status).toBe('approved');
    expect(result.value.request.decidedBy).toBe('policy');
    expect(result.value.grant?.expiresAt.getTime()).toBe(clock.now().getTime() + 1800_000);
    expect(committed).toEqual(['request_created', 'request_approved', 'grant_created']);
  });

  it("ends a grant on a whole second, so its token's exp (whole seconds) ends access when the grant does", async () => {
    // Between two seconds: the grant's end is rounded down onto one, never past what was approved.
    clock.advance(537);
    try {
      const result = await access.createRequest({
        actor: slackUser('UCONTRACTOR'),
        resource: 'billing-api',
        scope: 'read',
        durationSeconds: 1800,
        reason: 'look at invoices',
      });
      expect(result.ok).toBe(true);
      if (!result.ok || !result.value.grant) throw new Error('expected an auto-approved grant');
      const expiresAt = result.value.grant.expiresAt.getTime();
      expect(expiresAt % 1000).toBe(0);
      expect(expiresAt).toBe(clock.now().getTime() - 537 + 1800_000);
      const keys = createMemoryKeyStore({ clock });
      await keys.load();
      const token = await issueTokenForGrant(keys, result.value.grant, 'jitgate');
      const { exp } = decodeJwt(token);
      expect((exp ?? 0) * 1000).toBe(expiresAt);
    } finally {
      clock.advance(463);
    }
  });

  it('does not auto-approve beyond the auto-approval limit', async () => {
    const result = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 7200,
      reason: 'long look',
    });
    expect(result.ok && result.value.request.status).toBe('pending');
  });

  it('refuses requesters outside the policy requester groups', async () => {
    const yaml = `requesters: { groups: [SCONTRACTORS] }\n${(await import('../helpers/policy.ts')).TEST_POLICY_YAML}`;
    const guarded = createAccessService({
      db: database.db,
      policy: staticPolicyStore(testPolicy(yaml)),
      clock,
      directory: staticDirectory({ SCONTRACTORS: ['UMEMBER'] }),
      grantChannel: database.channel('grants'),
    });
    const input = { resource: 'billing-api', scope: 'write', durationSeconds: 600, reason: 'x' };
    expect(await guarded.createRequest({ actor: slackUser('USTRANGER'), ...input })).toMatchObject({
      ok: false,
      code: 'not_allowed_to_request',
    });
    expect((await guarded.createRequest({ actor: slackUser('UMEMBER'), ...input })).ok).toBe(true);
  });
});

describe('free text with control characters', () => {
  it('is refused at every way in, naming the character, and nothing reaches the database', async () => {
    const request = await pendingWrite();
    const approved = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'read it',
    });
    if (!approved.ok || !approved.value.grant) throw new Error('no grant');
    const grant = approved.value.grant;
    const before = await rowCounts();
    const nul = 'drop\u0000table';
    const outcomes = [
      await access.createRequest({
        actor: slackUser('UCONTRACTOR'),
        resource: 'billing-api',
        scope: 'write',
        durationSeconds: 600,
        reason: nul,
      }),
      await access.deny({ requestId: request.id, actor: slackUser('UAPPROVER1'), note: nul }),
      await access.revokeGrant({
        grantId: grant.id,
        actor: { type: 'slack', userId: 'UAPPROVER1' },
        reason: nul,
      }),
      await access.revokeAll({ targetId: 'UCONTRACTOR', actor: slackUser('UAPPROVER1'), reason: nul }),
      await access.requestExtension({
        grantId: grant.id,
        actor: slackUser('UCONTRACTOR'),
        durationSeconds: 600,
        reason: nul,
      }),
      await access.offboardUser({ userId: 'UCONTRACTOR', reason: `bell\u0007`, actor: { type: 'cli' } }),
    ];
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({ ok: false, code: 'text_has_control_characters' });
      if (!outcome.ok) expect(refusalText(outcome)).toMatch(/control character \(U\+00(00, NUL|07)\)/);
    }
    expect(await rowCounts()).toEqual(before);
    expect((await access.getRequest(request.id))?.status).toBe('pending');
    expect((await access.getGrant(grant.id))?.status).toBe('active');
  });

  it('keeps tabs and line breaks, and drops bidi controls before storing', async () => {
    const created = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 600,
      reason: 'line one\r\nline\ttwo \u202Egnp.exe\u202C',
    });
    if (!created.ok) throw new Error(created.code);
    expect(created.value.request.reason).toBe('line one\nline\ttwo gnp.exe');
  });
});

describe('approvals', () => {
  it('20 concurrent approvals make exactly one grant', async () => {
    const request = await pendingWrite();
    const approvers = ['UAPPROVER1', 'UAPPROVER2', 'UGROUPAPPROVER'];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        access.approve({ requestId: request.id, actor: slackUser(approvers[i % approvers.length]!) }),
      ),
    );
    const granted = results.filter((r) => r.ok && r.value.grant);
    expect(granted).toHaveLength(1);
    for (const r of results.filter((r) => !(r.ok && r.value.grant))) {
      expect(r).toMatchObject({ ok: false });
      if (!r.ok) expect(['request_not_pending', 'already_approved']).toContain(r.code);
    }
    const made = await database.db.select().from(grants).where(eq(grants.requestId, request.id));
    expect(made).toHaveLength(1);
    const created = await database.db
      .select()
      .from(outbox)
      .where(eq(outbox.dedupeKey, `grant_created:${made[0]!.id}`));
    expect(created).toHaveLength(1);
  });

  it("refuses the requester's own approval and a non-approver's", async () => {
    const request = await pendingWrite('UAPPROVER1');
    expect(await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: false,
      code: 'self_approval',
    });
    expect(await access.approve({ requestId: request.id, actor: slackUser('URANDOM') })).toMatchObject({
      ok: false,
      code: 'not_an_approver',
    });
    expect(await access.deny({ requestId: request.id, actor: slackUser('URANDOM') })).toMatchObject({
      ok: false,
      code: 'not_an_approver',
    });
    expect((await access.getRequest(request.id))?.status).toBe('pending');
    const rows = await database.db.select().from(approvals).where(eq(approvals.requestId, request.id));
    expect(rows).toHaveLength(0);
  });

  it('accepts an approver through a user group', async () => {
    const request = await pendingWrite();
    const result = await access.approve({ requestId: request.id, actor: slackUser('UGROUPAPPROVER') });
    expect(result.ok && result.value.grant?.userId).toBe('UCONTRACTOR');
  });

  it('2-of-N needs two distinct people', async () => {
    const request = await pendingWrite('UCONTRACTOR', 'admin-api');
    const first = await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1') });
    expect(first).toMatchObject({ ok: true, value: { approvals: 1, required: 2, grant: undefined } });
    expect(await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: false,
      code: 'already_approved',
    });
    expect((await access.getRequest(request.id))?.status).toBe('pending');
    const second = await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER2') });
    expect(second.ok && second.value.grant).toBeTruthy();
    expect(second.ok && second.value.request.status).toBe('approved');
  });

  it('grants the shortest duration any approver allowed, and never longer than asked', async () => {
    const request = await pendingWrite('UCONTRACTOR', 'admin-api');
    expect(
      await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1'), durationSeconds: 9000 }),
    ).toMatchObject({ ok: false, code: 'duration_longer_than_requested' });
    await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1'), durationSeconds: 1800 });
    const done = await access.approve({
      requestId: request.id,
      actor: slackUser('UAPPROVER2'),
      durationSeconds: 3600,
    });
    expect(done.ok && done.value.grant!.expiresAt.getTime() - done.value.grant!.startsAt.getTime()).toBe(
      1800_000,
    );
  });

  it('deny records the note and ends the request; a later approve is refused', async () => {
    const request = await pendingWrite();
    const denied = await access.deny({
      requestId: request.id,
      actor: slackUser('UAPPROVER2'),
      note: 'use staging',
    });
    expect(denied).toMatchObject({ ok: true, value: { status: 'denied', decisionNote: 'use staging' } });
    expect(await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: false,
      code: 'request_not_pending',
    });
    expect(await access.deny({ requestId: request.id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: false,
      code: 'request_not_pending',
    });
  });

  it('cancel only by the requester, only while pending', async () => {
    const request = await pendingWrite();
    expect(await access.cancel({ requestId: request.id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: false,
      code: 'not_grant_owner',
    });
    expect(await access.cancel({ requestId: request.id, actor: slackUser('UCONTRACTOR') })).toMatchObject({
      ok: true,
    });
    expect(await access.cancel({ requestId: request.id, actor: slackUser('UCONTRACTOR') })).toMatchObject({
      ok: false,
      code: 'request_not_pending',
    });
  });

  it('a request times out only after its deadline', async () => {
    const request = await pendingWrite();
    expect(await access.expireRequest(request.id)).toMatchObject({ ok: false, code: 'not_due' });
    clock.advance(3600_000);
    expect(await access.expireRequest(request.id)).toMatchObject({ ok: true, value: { status: 'expired' } });
    expect(await access.expireRequest(request.id)).toMatchObject({ ok: false, code: 'request_not_pending' });
    expect(await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: false,
      code: 'request_not_pending',
    });
  });
});

describe('grants', () => {
  async function activeGrant() {
    const request = await pendingWrite();
    const result = await access.approve({ requestId: request.id, actor: slackUser('UAPPROVER1') });
    if (!result.ok || !result.value.grant) throw new Error('no grant');
    return result.value.grant;
  }

  it('the owner gives up, an approver revokes, a stranger cannot', async () => {
    const mine = await activeGrant();
    expect(
      await access.revokeGrant({
        grantId: mine.id,
        actor: { type: 'slack', userId: 'USTRANGER' },
        reason: 'x',
      }),
    ).toMatchObject({ ok: false, code: 'not_allowed_to_revoke' });
    expect(
      await access.revokeGrant({
        grantId: mine.id,
        actor: { type: 'slack', userId: 'UCONTRACTOR' },
        reason: 'done',
      }),
    ).toMatchObject({ ok: true, value: { status: 'revoked', endedBy: 'UCONTRACTOR' } });
    expect(
      await access.revokeGrant({
        grantId: mine.id,
        actor: { type: 'slack', userId: 'UAPPROVER1' },
        reason: 'x',
      }),
    ).toMatchObject({ ok: false, code: 'grant_not_active' });
    const other = await activeGrant();
    expect(
      await access.revokeGrant({
        grantId: other.id,
        actor: { type: 'slack', userId: 'UGROUPAPPROVER' },
        reason: 'x',
      }),
    ).toMatchObject({ ok: true });
  });

  it('expires only at its expiry, once', async () => {
    const grant = await activeGrant();
    expect(await access.expireGrant(grant.id)).toMatchObject({ ok: false, code: 'not_due' });
    clock.set(grant.expiresAt);
    expect(await access.expireGrant(grant.id)).toMatchObject({ ok: true, value: { status: 'expired' } });
    expect(await access.expireGrant(grant.id)).toMatchObject({ ok: false, code: 'grant_not_active' });
    const events = await database.db
      .select()
      .from(outbox)
      .where(eq(outbox.dedupeKey, `grant_expired:${grant.id}`));
    expect(events).toHaveLength(1);
  });

  it('expires every due grant in one batch, once', async () => {
    const first = await activeGrant();
    const second = await activeGrant();
    clock.set(second.expiresAt);
    const later = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 3600,
      reason: 'later',
    });
    const expired = await access.expireDueGrants();
    expect(expired).toEqual(expect.arrayContaining([first.id, second.id]));
    if (!later.ok || !later.value.grant) throw new Error('no auto-approved grant');
    expect(expired).not.toContain(later.value.grant.id);
    expect(await access.expireDueGrants()).toEqual([]);
    for (const id of [first.id, second.id]) {
      expect((await access.getGrant(id))?.status).toBe('expired');
      const events = await database.db
        .select()
        .from(outbox)
        .where(eq(outbox.dedupeKey, `grant_expired:${id}`));
      expect(events).toHaveLength(1);
    }
  });

  it('notifies listeners of grant changes on commit', async () => {
    const heard: string[] = [];
    const stop = await database.listen(database.channel('grants'), {
      onMessage: (id) => heard.push(id),
      onConnect: () => {},
      onDisconnect: () => {},
    });
    try {
      const grant = await activeGrant();
      await access.revokeGrant({ grantId: grant.id, actor: { type: 'cli' }, reason: 'test' });
      await expect.poll(() => heard.filter((id) => id === grant.id).length, { timeout: 5000 }).toBe(2);
    } finally {
      await stop();
    }
  });

  it('extends through approval, up to max_extensions', async () => {
    const grant = await activeGrant();
    const ask = () =>
      access.requestExtension({ grantId: grant.id, actor: slackUser('UCONTRACTOR'), durationSeconds: 1800 });
    expect(
      await access.requestExtension({
        grantId: grant.id,
        actor: slackUser('USTRANGER'),
        durationSeconds: 1800,
      }),
    ).toMatchObject({ ok: false, code: 'not_grant_owner' });
    for (let i = 1; i <= 2; i++) {
      const asked = await ask();
      if (!asked.ok) throw new Error(asked.code);
      expect(await ask()).toMatchObject({ ok: false, code: 'extension_pending' });
      const approved = await access.approve({
        requestId: asked.value.request.id,
        actor: slackUser('UAPPROVER2'),
      });
      expect(approved.ok && approved.value.grant).toMatchObject({
        id: grant.id,
        extensions: i,
        version: 1 + i,
        expiresAt: new Date(grant.expiresAt.getTime() + i * 1800_000),
      });
    }
    expect(await ask()).toMatchObject({ ok: false, code: 'extension_limit_reached' });
    expect(committed).toContain('grant_extended');
  });

  it("an approver extends someone's grant: their approval counts, N-of-M holds, the audit names them", async () => {
    const grant = await activeGrant();
    const by = (userId: string, durationSeconds = 600) =>
      access.extendByApprover({
        grantId: grant.id,
        actor: slackUser(userId),
        durationSeconds,
        reason: 'late batch',
      });
    expect(await by('UCONTRACTOR')).toMatchObject({ ok: false, code: 'self_approval' });
    expect(await by('USTRANGER')).toMatchObject({ ok: false, code: 'not_an_approver', attempted: 'extend' });
    expect(await by('UAPPROVER2', 9 * 3600)).toMatchObject({ ok: false, code: 'duration_too_long' });
    const done = await by('UAPPROVER2');
    if (!done.ok) throw new Error(done.code);
    expect(done.value.grant).toMatchObject({
      id: grant.id,
      extensions: 1,
      expiresAt: new Date(grant.expiresAt.getTime() + 600_000),
    });
    const rows = await database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.requestId, done.value.request.id))
      .orderBy(asc(auditEvents.seq));
    expect(rows.map((r) => [r.kind, r.actor])).toEqual([
      ['request.created', 'slack:UAPPROVER2'],
      ['request.approval_added', 'slack:UAPPROVER2'],
      ['grant.extended', 'slack:UAPPROVER2'],
      ['request.approved', 'slack:UAPPROVER2'],
    ]);
    expect(rows[0]?.data).toMatchObject({ extension: true, byApprover: true, reason: 'late batch' });
    expect(done.value.request).toMatchObject({ requesterId: 'UCONTRACTOR', extendsGrantId: grant.id });
    // The owner's DM about the new expiry goes out through the outbox, as for any extension.
    const queued = await database.db
      .select()
      .from(outbox)
      .where(eq(outbox.dedupeKey, `grant_extended:${grant.id}:${grant.version + 1}`));
    expect(queued).toHaveLength(1);

    // admin-api needs two approvals: the extending approver's is the first.
    const asked = await pendingWrite('UCONTRACTOR', 'admin-api');
    await access.approve({ requestId: asked.id, actor: slackUser('UAPPROVER1') });
    const made = await access.approve({ requestId: asked.id, actor: slackUser('UAPPROVER2') });
    if (!made.ok || !made.value.grant) throw new Error('no admin grant');
    const adminGrant = made.value.grant;
    const first = await access.extendByApprover({
      grantId: adminGrant.id,
      actor: slackUser('UAPPROVER3'),
      durationSeconds: 600,
    });
    if (!first.ok) throw new Error(first.code);
    expect(first.value).toMatchObject({ grant: undefined, approvals: 1, required: 2 });
    expect(
      await access.extendByApprover({
        grantId: adminGrant.id,
        actor: slackUser('UAPPROVER1'),
        durationSeconds: 600,
      }),
    ).toMatchObject({ ok: false, code: 'extension_pending' });
    expect(
      await access.approve({ requestId: first.value.request.id, actor: slackUser('UAPPROVER3') }),
    ).toMatchObject({ ok: false, code: 'already_approved' });
    const second = await access.approve({
      requestId: first.value.request.id,
      actor: slackUser('UAPPROVER1'),
    });
    expect(second.ok && second.value.grant).toMatchObject({ id: adminGrant.id, extensions: 1 });
  });

  it('extendGrant asks as the owner and gives as an approver', async () => {
    const grant = await activeGrant();
    const asked = await access.extendGrant({
      grantId: grant.id,
      actor: slackUser('UCONTRACTOR'),
      durationSeconds: 600,
    });
    expect(asked.ok && asked.value).toMatchObject({ grant: undefined, approvals: 0, required: 1 });
    const given = await access.extendGrant({
      grantId: grant.id,
      actor: slackUser('UAPPROVER1'),
      durationSeconds: 600,
    });
    // The owner's own extension is waiting: an approver approves that one rather than add another.
    expect(given).toMatchObject({ ok: false, code: 'extension_pending' });
  });

  it('a reminder is queued once per grant version', async () => {
    const grant = await activeGrant();
    await access.remindGrant(grant.id, grant.version);
    await access.remindGrant(grant.id, grant.version);
    const rows = await database.db
      .select()
      .from(outbox)
      .where(eq(outbox.dedupeKey, `grant_reminder:${grant.id}:${grant.version}`));
    expect(rows).toHaveLength(1);
  });

  it('a reminder planned for an earlier version stands down, even against an extension still committing', async () => {
    const grant = await activeGrant();
    const reminderRows = async () =>
      (await database.db.select().from(outbox).where(eq(outbox.kind, 'grant_reminder'))).filter((row) =>
        JSON.stringify(row.payload).includes(grant.id),
      );
    // An extension holding the row lock and raising the version, not yet committed.
    let commitExtension!: () => void;
    const extensionMayCommit = new Promise<void>((resolve) => {
      commitExtension = resolve;
    });
    let lockHeld!: () => void;
    const lockTaken = new Promise<void>((resolve) => {
      lockHeld = resolve;
    });
    const extension = database.db.transaction(async (tx) => {
      await tx.select().from(grants).where(eq(grants.id, grant.id)).for('update');
      await tx
        .update(grants)
        .set({ version: grant.version + 1 })
        .where(eq(grants.id, grant.id));
      lockHeld();
      await extensionMayCommit;
    });
    await lockTaken;
    const reminding = access.remindGrant(grant.id, grant.version);
    // The reminder must be waiting on the row lock, not reading the row as it was before.
    await expect
      .poll(async () => {
        const [row] = await database.db
          .select({ waiting: sql<number>`count(*)::int` })
          .from(sql`pg_locks`)
          .where(sql`not granted`);
        return row?.waiting ?? 0;
      })
      .toBeGreaterThan(0);
    commitExtension();
    await extension;
    expect(await reminding).toMatchObject({ ok: false, code: 'grant_version_changed' });
    expect(await reminderRows()).toHaveLength(0);
    expect((await access.remindGrant(grant.id, grant.version + 1)).ok).toBe(true);
    expect(await reminderRows()).toHaveLength(1);
  });
});

describe('audit', () => {
  it('every transition so far is in one verifiable chain', async () => {
    const rows = await database.db.select().from(auditEvents).orderBy(asc(auditEvents.seq));
    expect(rows.length).toBeGreaterThan(20);
    let prev = GENESIS_HASH;
    rows.forEach((row, index) => {
      expect(row.seq).toBe(index + 1);
      expect(row.prevHash).toBe(prev);
      expect(row.hash).toBe(chainHash(prev, row));
      prev = row.hash;
    });
    const kinds = new Set(rows.map((r) => r.kind));
    for (const kind of [
      'request.created',
      'request.approval_added',
      'request.approved',
      'request.denied',
      'request.cancelled',
      'request.expired',
      'grant.created',
      'grant.revoked',
      'grant.expired',
      'grant.extended',
    ]) {
      expect(kinds).toContain(kind);
    }
  });

  it('refuses to update or delete audit rows', async () => {
    await expect(database.db.update(auditEvents).set({ kind: 'forged' })).rejects.toThrow();
    await expect(database.db.delete(auditEvents)).rejects.toThrow();
  });
});

describe('approval message slot', () => {
  it('lets one instance post, and takes over a stale claim (looking first: the crashed poster may have posted)', async () => {
    const request = await pendingWrite();
    const slot = createApprovalMessageClaims({ db: database.db, clock });
    const claims = await Promise.all([1, 2, 3].map(() => slot.claim(request.id)));
    expect(claims.filter((c) => c === 'claimed')).toHaveLength(1);
    expect(claims.filter((c) => c === 'posting_elsewhere')).toHaveLength(2);
    clock.advance(61_000);
    expect(await slot.claim(request.id)).toBe('claimed_after_unknown');
    // A post that timed out is given back at once, but whoever posts next looks for it first.
    await slot.releaseUnsure(request.id);
    expect(await slot.claim(request.id)).toBe('claimed_after_unknown');
    await slot.release(request.id);
    expect(await slot.claim(request.id)).toBe('claimed');
    await slot.record(request.id, 'CAPPROVALS', '1700000000.000100');
    expect(await slot.claim(request.id)).toBe('already_posted');
    expect(await slot.claim('00000000-0000-4000-8000-000000000000')).toBe('not_found');
  });
});
