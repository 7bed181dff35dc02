import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { accessServiceActions } from '../../src/console/actions.ts';
import { auditEvents } from '../../src/db/schema/index.ts';
import { slackUser } from '../helpers/actors.ts';
import {
  ADMIN,
  APPROVER,
  AUDITOR,
  type ConsoleClient,
  type ConsoleWorld,
  OTHER_REQUESTER,
  REQUESTER,
  startConsoleWorld,
} from '../helpers/console-world.ts';
import { blockText } from '../helpers/slack-harness.ts';

let world: ConsoleWorld;
const clients: Record<string, ConsoleClient> = {};
type Role = 'requester' | 'approver' | 'auditor' | 'admin' | 'anonymous';
const ROLES: Role[] = ['requester', 'approver', 'auditor', 'admin', 'anonymous'];
const PEOPLE: Record<Exclude<Role, 'anonymous'>, string> = {
  requester: REQUESTER,
  approver: APPROVER,
  auditor: AUDITOR,
  admin: ADMIN,
};

beforeAll(async () => {
  world = await startConsoleWorld();
  for (const [role, userId] of Object.entries(PEOPLE)) clients[role] = (await world.signIn(userId)).client;
  clients.anonymous = {
    jar: clients.requester!.jar,
    csrfToken: '',
    get: (path) => fetch(`${world.baseUrl}${path}`, { redirect: 'manual' }),
    post: (path, body) =>
      fetch(`${world.baseUrl}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body ?? {}),
      }),
  };
}, 60_000);
afterAll(async () => {
  await world?.close();
});

/** A pending write request by REQUESTER, and a live read grant of OTHER_REQUESTER (auto-approved). */
async function fixtures() {
  const access = world.harness.access;
  const request = await access.createRequest({
    actor: slackUser(REQUESTER),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 7200,
    reason: 'Fix invoice <script>alert(1)</script>',
  });
  const granted = await access.createRequest({
    actor: slackUser(OTHER_REQUESTER),
    resource: 'billing-api',
    scope: 'read',
    durationSeconds: 1800,
    reason: 'Read one invoice',
  });
  if (!request.ok || !granted.ok || !granted.value.grant) throw new Error('fixtures failed');
  return { requestId: request.value.request.id, grantId: granted.value.grant.id };
}

describe('every read route, for every role (server-side checks)', () => {
  let grantId = '';
  beforeAll(async () => {
    ({ grantId } = await fixtures());
  });
  const table: { route: () => string; expect: Record<Role, number> }[] = [
    {
      route: () => '/api/v1/session',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/grants',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => `/api/v1/grants/${grantId}`,
      expect: { requester: 404, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/requests',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/people',
      expect: { requester: 403, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/alerts',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/audit',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/audit/histogram',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/audit/export?format=csv',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/audit/chain',
      expect: { requester: 403, approver: 403, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/api/v1/policy',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 401 },
    },
    {
      route: () => '/console',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/grants',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => `/console/grants/${grantId}`,
      expect: { requester: 404, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/requests',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/people',
      expect: { requester: 403, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/alerts',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/audit',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/chain',
      expect: { requester: 403, approver: 403, auditor: 200, admin: 200, anonymous: 302 },
    },
    {
      route: () => '/console/policy',
      expect: { requester: 200, approver: 200, auditor: 200, admin: 200, anonymous: 302 },
    },
  ];
  for (const row of table) {
    for (const role of ROLES) {
      it(`${role} GET ${row.route().replace(/[0-9a-f-]{36}/, ':id')} → ${row.expect[role]}`, async () => {
        const response = await clients[role]!.get(row.route());
        await response.arrayBuffer();
        expect(response.status).toBe(row.expect[role]);
      });
    }
  }

  it('a requester sees only their own grants and audit rows', async () => {
    const grants = (await (await clients.requester!.get('/api/v1/grants')).json()) as {
      grants: { userId: string }[];
    };
    expect(grants.grants.every((g) => g.userId === REQUESTER)).toBe(true);
    const audit = (await (await clients.requester!.get('/api/v1/audit')).json()) as {
      rows: { actor: string; data: { userId?: string } }[];
    };
    expect(audit.rows.length).toBeGreaterThan(0);
    expect(audit.rows.every((r) => r.actor.endsWith(REQUESTER) || r.data.userId === REQUESTER)).toBe(true);
  });

  it('grants and requests come with the names of the people they mention', async () => {
    const granted = await world.harness.access.createRequest({
      actor: slackUser(REQUESTER),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'names',
    });
    if (!granted.ok || !granted.value.grant) throw new Error('no grant');
    const grantId = granted.value.grant.id;
    // Everyone here signed in once, so the names cache holds the provider's `name` for them.
    const signedInName = `Person ${REQUESTER}`;
    const list = (await (await clients.admin!.get(`/api/v1/grants?user=${REQUESTER}`)).json()) as {
      grants: { userId: string }[];
      names: Record<string, string>;
    };
    expect(list.grants.length).toBeGreaterThan(0);
    expect(list.names).toEqual({ [REQUESTER]: signedInName });
    const one = (await (await clients.admin!.get(`/api/v1/grants/${grantId}`)).json()) as {
      names: Record<string, string>;
    };
    expect(one.names[REQUESTER]).toBe(signedInName);
    const pending = (await (await clients.approver!.get('/api/v1/requests')).json()) as {
      requests: { requesterId: string }[];
      names: Record<string, string>;
    };
    expect(pending.requests.some((r) => r.requesterId === REQUESTER)).toBe(true);
    expect(pending.names[REQUESTER]).toBe(signedInName);
  });

  it('policy pages never show a credential, and the upstream only to those who act on it', async () => {
    const requester = await (await clients.requester!.get('/api/v1/policy')).text();
    const approver = await (await clients.approver!.get('/api/v1/policy')).text();
    expect(requester).not.toContain('upstream-secret-billing');
    expect(approver).not.toContain('upstream-secret-billing');
    expect(requester).not.toContain('127.0.0.1:9000');
    expect(approver).toContain('127.0.0.1:9000');
  });
});

describe('every state-changing route, for every role', () => {
  const cases: {
    name: string;
    call: (f: { requestId: string; grantId: string }) => [string, unknown];
    expect: Record<Role, number>;
  }[] = [
    {
      name: 'approve',
      call: (f) => [`/api/v1/requests/${f.requestId}/approve`, {}],
      expect: { requester: 403, approver: 200, auditor: 403, admin: 403, anonymous: 401 },
    },
    {
      name: 'deny',
      call: (f) => [`/api/v1/requests/${f.requestId}/deny`, { reason: 'not now' }],
      expect: { requester: 403, approver: 200, auditor: 403, admin: 403, anonymous: 401 },
    },
    {
      name: 'revoke',
      call: (f) => [`/api/v1/grants/${f.grantId}/revoke`, { reason: 'done' }],
      expect: { requester: 403, approver: 200, auditor: 403, admin: 200, anonymous: 401 },
    },
    {
      name: 'extend (owner or approver)',
      call: (f) => [`/api/v1/grants/${f.grantId}/extend`, { duration: '30m' }],
      expect: { requester: 403, approver: 200, auditor: 403, admin: 403, anonymous: 401 },
    },
    {
      name: 'revoke-all',
      call: () => [`/api/v1/people/${OTHER_REQUESTER}/revoke-all`, { reason: 'offboarded' }],
      expect: { requester: 403, approver: 200, auditor: 403, admin: 200, anonymous: 401 },
    },
    {
      name: 'verify the chain',
      call: () => ['/api/v1/audit/chain/verify', {}],
      expect: { requester: 403, approver: 403, auditor: 200, admin: 200, anonymous: 401 },
    },
  ];
  for (const c of cases) {
    for (const role of ROLES) {
      it(`${role} ${c.name} → ${c.expect[role]}`, async () => {
        const [path, body] = c.call(await fixtures());
        const response = await clients[role]!.post(path, body);
        const text = await response.text();
        expect(response.status, text).toBe(c.expect[role]);
      });
    }
    it(`${c.name} without a CSRF token is refused, and changes nothing`, async () => {
      const f = await fixtures();
      const [path, body] = c.call(f);
      const before = await world.harness.counts();
      const response = await clients.admin!.post(path, body, { csrf: false });
      expect(response.status).toBe(403);
      expect(((await response.json()) as { error: string }).error).toBe('csrf_failed');
      const after = await world.harness.counts();
      expect(after).toEqual(before);
    });
  }

  it('a CSRF token from another person is refused', async () => {
    const f = await fixtures();
    const approver = clients.approver!;
    // The approver's cookies with the auditor's token: bound to another person, so void.
    const swapped = await fetch(`${world.baseUrl}/api/v1/grants/${f.grantId}/revoke`, {
      method: 'POST',
      headers: {
        cookie: approver.jar.header(world.baseUrl),
        'content-type': 'application/json',
        'x-csrf-token': clients.auditor!.csrfToken,
      },
      body: '{}',
    });
    expect(swapped.status).toBe(403);
  });

  it('a request from a foreign Origin is refused even with the token', async () => {
    const f = await fixtures();
    const approver = clients.approver!;
    const response = await fetch(`${world.baseUrl}/api/v1/grants/${f.grantId}/revoke`, {
      method: 'POST',
      headers: {
        cookie: approver.jar.header(world.baseUrl),
        'content-type': 'application/json',
        'x-csrf-token': approver.csrfToken,
        origin: 'https://evil.example',
      },
      body: '{}',
    });
    expect(response.status).toBe(403);
    expect(((await response.json()) as { error: string }).error).toBe('forbidden_origin');
  });
});

describe('a decision in the console shows in Slack as one made in Slack', () => {
  it('approving updates the approval message in place and DMs the requester; the audit row says console', async () => {
    const api = world.harness.api;
    const { requestId } = await fixtures();
    await api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === 'CAPPROVALS' && blockText(c).includes(requestId),
      10_000,
    );
    await world.harness.dispatcher.drain();
    const messageTs = (await world.harness.access.getRequest(requestId))?.approvalMessageTs;
    expect(messageTs).toBeTruthy();
    const response = await clients.approver!.post(`/api/v1/requests/${requestId}/approve`, {
      duration: '1h',
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { grant: { id: string; expiresAt: string; startsAt: string } };
    // On a whole second, rounded down (the token's exp): never past the hour approved.
    expect(Date.parse(body.grant.expiresAt) % 1000).toBe(0);
    expect(Date.parse(body.grant.startsAt) + 3600_000 - Date.parse(body.grant.expiresAt)).toBeLessThan(1000);
    expect(Date.parse(body.grant.expiresAt)).toBeLessThanOrEqual(Date.parse(body.grant.startsAt) + 3600_000);
    const updated = await api.waitFor(
      'chat.update',
      (c) => c.args.ts === messageTs && blockText(c).includes('Approved by'),
      10_000,
    );
    expect(updated.args.channel).toBe('CAPPROVALS');
    expect(blockText(updated)).toContain(`<@${APPROVER}>`);
    const dm = await api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === REQUESTER && blockText(c).includes('is approved'),
      10_000,
    );
    expect(dm).toBeDefined();
    const rows = await world.harness.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.requestId, requestId));
    expect(rows.filter((r) => r.kind === 'request.approved').map((r) => r.actor)).toEqual([
      `console:${APPROVER}`,
    ]);
  });

  it('a replayed approval makes no second grant', async () => {
    const { requestId } = await fixtures();
    const first = await clients.approver!.post(`/api/v1/requests/${requestId}/approve`, {});
    const again = await clients.approver!.post(`/api/v1/requests/${requestId}/approve`, {});
    expect(first.status).toBe(200);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe('request_not_pending');
  });
});

describe('the access service checks a console admin claim against the policy', () => {
  it('refuses a revoke from a console actor claiming admin who is not in console.admins', async () => {
    const { grantId } = await fixtures();
    const result = await world.harness.access.revokeGrant({
      grantId,
      actor: { type: 'console', userId: 'UNOBODY', admin: true },
      reason: 'forged claim',
    });
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.code).toBe('not_allowed_to_revoke');
    const honoured = await world.harness.access.revokeGrant({
      grantId,
      actor: { type: 'console', userId: ADMIN, admin: true },
      reason: 'admin',
    });
    expect(honoured.ok).toBe(true);
  });
});

describe("an approver extends someone else's grant from the console", () => {
  it('extends it at once, audited as the approver in the console, and the owner is told in Slack', async () => {
    const { grantId } = await fixtures();
    const before = await world.harness.access.getGrant(grantId);
    const response = await clients.approver!.post(`/api/v1/grants/${grantId}/extend`, {
      duration: '30m',
      reason: 'the import runs late',
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const body = (await response.json()) as {
      grant: { expiresAt: string };
      request: { requesterId: string };
    };
    expect(Date.parse(body.grant.expiresAt) - before!.expiresAt.getTime()).toBe(1800_000);
    // The extension is the owner's grant's, asked and approved by the approver.
    expect(body.request.requesterId).toBe(OTHER_REQUESTER);
    const after = await world.harness.access.getGrant(grantId);
    expect(after).toMatchObject({ extensions: 1, version: before!.version + 1 });
    const rows = await world.harness.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.grantId, grantId));
    const extended = rows.filter((r) => r.kind === 'grant.extended');
    expect(extended.map((r) => r.actor)).toEqual([`console:${APPROVER}`]);
    const created = rows.find((r) => r.kind === 'request.created' && r.actor === `console:${APPROVER}`);
    expect(created?.data).toMatchObject({
      extension: true,
      byApprover: true,
      reason: 'the import runs late',
    });
    const dm = await world.harness.api.waitFor(
      'chat.postMessage',
      (c) => c.args.channel === OTHER_REQUESTER && blockText(c).includes('now lasts until'),
      10_000,
    );
    expect(dm).toBeDefined();
  });

  it("never beyond the resource's max_duration or max_extensions, and never by a non-approver", async () => {
    const { grantId } = await fixtures();
    const tooLong = await clients.approver!.post(`/api/v1/grants/${grantId}/extend`, { duration: '9h' });
    expect(tooLong.status).toBe(422);
    expect(((await tooLong.json()) as { error: string }).error).toBe('duration_too_long');
    for (const _ of [1, 2]) {
      expect(
        (await clients.approver!.post(`/api/v1/grants/${grantId}/extend`, { duration: '1m' })).status,
      ).toBe(200);
    }
    const third = await clients.approver!.post(`/api/v1/grants/${grantId}/extend`, { duration: '1m' });
    expect(third.status).toBe(409);
    expect(((await third.json()) as { error: string }).error).toBe('extension_limit_reached');
    const byAdmin = await clients.admin!.post(`/api/v1/grants/${grantId}/extend`, { duration: '1m' });
    expect(byAdmin.status).toBe(403);
    expect(((await byAdmin.json()) as { error: string; message: string }).message).toContain(
      "Only the grant's owner or approvers of billing-api can extend it.",
    );
    expect((await world.harness.access.getGrant(grantId))?.extensions).toBe(2);
  });
});

describe('revoke-all by a console admin is checked inside the action', () => {
  it('a stale admin claim ends only what the person approves, like any approver', async () => {
    await fixtures();
    const held = await world.harness.access.createRequest({
      actor: slackUser(OTHER_REQUESTER),
      resource: 'admin-api',
      scope: 'admin',
      durationSeconds: 600,
      reason: 'pending on admin-api',
    });
    expect(held.ok).toBe(true);
    // UAPPROVER3 approves admin-api only and is not among console.admins: the claim widens nothing.
    const actions = accessServiceActions(world.harness.access);
    const stale = await actions.revokeAll(
      { userId: 'UAPPROVER3', name: 'Stale', admin: true, auditor: false, approves: new Set(['admin-api']) },
      { userId: OTHER_REQUESTER, reason: 'stale admin claim' },
    );
    if (!stale.ok) throw new Error(stale.code);
    expect(stale.value.untouchedResources).toEqual(['billing-api']);
    expect(stale.value.grants).toEqual([]);
    expect(stale.value.requests.map((r) => r.resource)).toEqual(['admin-api']);
    expect((await world.harness.access.listForUser(OTHER_REQUESTER)).active.length).toBeGreaterThan(0);

    const admin = await actions.revokeAll(
      { userId: ADMIN, name: 'Admin', admin: true, auditor: false, approves: new Set() },
      { userId: OTHER_REQUESTER, reason: 'offboarded' },
    );
    if (!admin.ok) throw new Error(admin.code);
    expect(admin.value.untouchedResources).toEqual([]);
    expect((await world.harness.access.listForUser(OTHER_REQUESTER)).active).toEqual([]);
  });
});

describe('the device API beside the console', () => {
  it('answers the CLI (signed with DPoP, no console session) and refuses an unsigned call with its own code', async () => {
    const key = await importDeviceKey(await generateDeviceKey('ES256'));
    const url = `${world.baseUrl}/api/v1/device/pairings`;
    const started = await fetch(url, {
      method: 'POST',
      headers: { dpop: await makeProof(key, { method: 'POST', url }), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'alice-laptop' }),
    });
    expect(started.status).toBe(201);
    expect(((await started.json()) as { code: string }).code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    const unsigned = await fetch(`${world.baseUrl}/api/v1/device/pairing`);
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { error: string }).error).toBe('dpop_required');
  });
});

describe('the OpenAPI document', () => {
  it('is generated from the route schemas', async () => {
    const response = await fetch(`${world.baseUrl}/api/v1/openapi.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/grants',
        '/api/v1/grants/{id}',
        '/api/v1/requests/{id}/approve',
        '/api/v1/audit',
        '/api/v1/audit/export',
        '/api/v1/audit/chain',
        '/api/v1/people/{userId}/revoke-all',
        '/api/v1/policy',
        '/api/v1/device/pairings',
        '/api/v1/device/pairing',
        '/api/v1/device/requests',
        '/api/v1/device/requests/{id}',
        '/api/v1/device/tokens',
      ]),
    );
    expect(JSON.stringify(doc.paths['/api/v1/device/tokens'])).toContain('DPoP');
    expect(JSON.stringify(doc.paths['/api/v1/audit'])).toContain('decision');
  });
});
