import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/**
 * The console's own form posts, for every role: the pages call the same actions as the API,
 * and each route is held to the same server-side checks (303 back to the page when done).
 */
let world: ConsoleWorld;
type Role = 'requester' | 'approver' | 'auditor' | 'admin' | 'anonymous';
const ROLES: Role[] = ['requester', 'approver', 'auditor', 'admin', 'anonymous'];
const clients: Partial<Record<Role, ConsoleClient>> = {};

beforeAll(async () => {
  world = await startConsoleWorld();
  for (const [role, userId] of [
    ['requester', REQUESTER],
    ['approver', APPROVER],
    ['auditor', AUDITOR],
    ['admin', ADMIN],
  ] as const) {
    clients[role] = (await world.signIn(userId)).client;
  }
  clients.anonymous = {
    jar: clients.requester!.jar,
    csrfToken: '',
    get: (path) => fetch(`${world.baseUrl}${path}`, { redirect: 'manual' }),
    post: (path, body) =>
      fetch(`${world.baseUrl}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(body as Record<string, string>).toString(),
      }),
  };
}, 60_000);
afterAll(async () => {
  await world?.close();
});

/** A pending write request by REQUESTER, and a live read grant of OTHER_REQUESTER. */
async function fixtures() {
  const access = world.harness.access;
  const request = await access.createRequest({
    actor: slackUser(REQUESTER),
    resource: 'billing-api',
    scope: 'write',
    durationSeconds: 7200,
    reason: 'forms fixture',
  });
  const granted = await access.createRequest({
    actor: slackUser(OTHER_REQUESTER),
    resource: 'billing-api',
    scope: 'read',
    durationSeconds: 1800,
    reason: 'forms fixture grant',
  });
  if (!request.ok || !granted.ok || !granted.value.grant) throw new Error('fixtures failed');
  return { requestId: request.value.request.id, grantId: granted.value.grant.id };
}

const cases: {
  name: string;
  call: (f: { requestId: string; grantId: string }) => [string, Record<string, string>];
  expect: Record<Role, number>;
}[] = [
  {
    name: 'approve',
    call: (f) => [`/console/requests/${f.requestId}/approve`, { duration: '1h' }],
    expect: { requester: 403, approver: 303, auditor: 403, admin: 403, anonymous: 401 },
  },
  {
    name: 'deny',
    call: (f) => [`/console/requests/${f.requestId}/deny`, { reason: 'not now' }],
    expect: { requester: 403, approver: 303, auditor: 403, admin: 403, anonymous: 401 },
  },
  {
    name: 'revoke',
    call: (f) => [`/console/grants/${f.grantId}/revoke`, { reason: 'done' }],
    expect: { requester: 403, approver: 303, auditor: 403, admin: 303, anonymous: 401 },
  },
  {
    name: 'extend',
    call: (f) => [`/console/grants/${f.grantId}/extend`, { duration: '30m' }],
    expect: { requester: 403, approver: 303, auditor: 403, admin: 403, anonymous: 401 },
  },
  {
    name: 'revoke-all',
    call: () => [`/console/people/${OTHER_REQUESTER}/revoke-all`, { reason: 'offboarded' }],
    expect: { requester: 403, approver: 303, auditor: 403, admin: 303, anonymous: 401 },
  },
  {
    name: 'verify the chain',
    call: () => ['/console/chain/verify', {}],
    expect: { requester: 403, approver: 403, auditor: 303, admin: 303, anonymous: 401 },
  },
];

describe('every form post of the console, for every role', () => {
  for (const c of cases) {
    for (const role of ROLES) {
      it(`${role} ${c.name} → ${c.expect[role]}`, async () => {
        const f = await fixtures();
        const [path, form] = c.call(f);
        const before = await world.harness.counts();
        const response = await clients[role]!.post(path, form, { form: true });
        const text = await response.text();
        expect(response.status, text).toBe(c.expect[role]);
        if (response.status !== 303) {
          // A refusal changes nothing (the chain check only appends its own row).
          expect(await world.harness.counts()).toEqual(before);
        }
      });
    }
  }

  it("the owner gives their own grant up from its page; another requester's is not theirs to end", async () => {
    const own = await world.harness.access.createRequest({
      actor: slackUser(REQUESTER),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'give it up',
    });
    const grantId = own.ok ? own.value.grant?.id : undefined;
    const page = await (await clients.requester!.get(`/console/grants/${grantId}`)).text();
    expect(page).toContain('Give up this grant');
    const done = await clients.requester!.post(
      `/console/grants/${grantId}/revoke`,
      { reason: 'finished' },
      { form: true },
    );
    expect(done.status).toBe(303);
    expect((await world.harness.access.getGrant(grantId ?? ''))?.status).toBe('revoked');
  });
});
