import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    expect(Date.parse(body.grant.expiresAt) - Date.parse(body.grant.startsAt)).toBe(3600_000);
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
      ]),
    );
    expect(JSON.stringify(doc.paths['/api/v1/audit'])).toContain('decision');
  });
});
