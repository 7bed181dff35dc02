import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { GRANT_MACHINE, REQUEST_MACHINE, type Transition } from '../../src/access/transitions.ts';
import { accessRequests, grants } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { openTestDatabase } from '../helpers/db.ts';
import { TEST_POLICY_YAML, testPolicy } from '../helpers/policy.ts';

/**
 * The actions move rows only along the state machine's tables: random runs of every action
 * against real PostgreSQL, each row's status read before and after every step, and each
 * change must be one of the transitions that action is allowed (new rows start where the
 * machine starts, or one allowed step from there).
 */

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let access: AccessService;
const clock = manualClock(new Date('2026-03-02T09:00:00Z'));

beforeAll(async () => {
  database = await openTestDatabase('t_machine');
  access = createAccessService({
    db: database.db,
    // Idle revocation takes part too.
    policy: staticPolicyStore(
      testPolicy(TEST_POLICY_YAML.replace('remind_before: 10m', 'remind_before: 10m\n    idle_timeout: 20m')),
    ),
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
  });
});

afterAll(async () => {
  await database?.drop();
});

const R = REQUEST_MACHINE.transitions;
const G = GRANT_MACHINE.transitions;

type Step =
  | { op: 'create'; user: number; scope: 'read' | 'write' | 'admin'; minutes: number }
  | { op: 'approve' | 'deny'; pick: number; approver: number }
  | { op: 'cancel'; pick: number }
  | { op: 'timeOut'; pick: number }
  | { op: 'revoke' | 'extend' | 'extendByApprover' | 'expire' | 'remind'; pick: number; approver: number }
  | { op: 'offboard'; user: number }
  | { op: 'expireDue' | 'revokeIdle' }
  | { op: 'wait'; minutes: number };

/** What each step may change: request and grant transitions. */
const ALLOWED: Record<Step['op'], { requests: Transition<string>[]; grants: Transition<string>[] }> = {
  create: { requests: [R.approve], grants: [] },
  approve: { requests: [R.approve], grants: [G.extend] },
  deny: { requests: [R.deny], grants: [] },
  cancel: { requests: [R.cancel], grants: [] },
  timeOut: { requests: [R.timeOut], grants: [] },
  revoke: { requests: [], grants: [G.revoke] },
  extend: { requests: [R.approve], grants: [G.extend] },
  extendByApprover: { requests: [R.approve], grants: [G.extend] },
  expire: { requests: [], grants: [G.expire] },
  remind: { requests: [], grants: [] },
  offboard: { requests: [R.cancel], grants: [G.revoke] },
  expireDue: { requests: [], grants: [G.expire] },
  revokeIdle: { requests: [], grants: [G.revoke] },
  wait: { requests: [], grants: [] },
};

const USERS = ['UCONTRACTOR', 'UOTHER'];
const APPROVERS = ['UAPPROVER1', 'UAPPROVER2', 'UAPPROVER3', 'UCONTRACTOR'];

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('create' as const),
      user: fc.nat(1),
      scope: fc.constantFrom('read' as const, 'write' as const, 'admin' as const),
      minutes: fc.constantFrom(5, 30, 90),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constantFrom('approve' as const, 'deny' as const),
      pick: fc.nat(),
      approver: fc.nat(3),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constantFrom('cancel' as const, 'timeOut' as const), pick: fc.nat() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constantFrom(
        'revoke' as const,
        'extend' as const,
        'extendByApprover' as const,
        'expire' as const,
        'remind' as const,
      ),
      pick: fc.nat(),
      approver: fc.nat(3),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('offboard' as const), user: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('expireDue' as const, 'revokeIdle' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('wait' as const), minutes: fc.constantFrom(1, 25, 70) }),
  },
);

async function statuses(): Promise<{ requests: Map<string, string>; grants: Map<string, string> }> {
  const [requests, live] = await Promise.all([
    database.db.select({ id: accessRequests.id, status: accessRequests.status }).from(accessRequests),
    database.db.select({ id: grants.id, status: grants.status }).from(grants),
  ]);
  return {
    requests: new Map(requests.map((r) => [r.id, r.status])),
    grants: new Map(live.map((g) => [g.id, g.status])),
  };
}

const pickOf = <T>(rows: readonly T[], n: number): T | undefined =>
  rows.length ? rows[n % rows.length] : undefined;

async function run(s: Step, seen: { requests: string[]; grants: string[] }): Promise<void> {
  const request = 'pick' in s ? pickOf(seen.requests, s.pick) : undefined;
  const grant = 'pick' in s ? pickOf(seen.grants, s.pick) : undefined;
  const approver = slackUser('approver' in s ? APPROVERS[s.approver]! : 'UAPPROVER1');
  switch (s.op) {
    case 'create':
      await access.createRequest({
        actor: slackUser(USERS[s.user]!),
        resource: s.scope === 'admin' ? 'admin-api' : 'billing-api',
        scope: s.scope,
        durationSeconds: s.minutes * 60,
        reason: 'state machine',
      });
      return;
    case 'approve':
      if (request) await access.approve({ actor: approver, requestId: request });
      return;
    case 'deny':
      if (request) await access.deny({ actor: approver, requestId: request, note: 'no' });
      return;
    case 'cancel':
      if (request) await access.cancel({ actor: slackUser(USERS[s.pick % 2]!), requestId: request });
      return;
    case 'timeOut':
      if (request) await access.expireRequest(request);
      return;
    case 'revoke':
      if (grant) await access.revokeGrant({ actor: approver, grantId: grant, reason: 'done' });
      return;
    case 'extend': {
      const owner = grant ? (await access.getGrant(grant))?.userId : undefined;
      if (grant && owner) {
        await access.requestExtension({ actor: slackUser(owner), grantId: grant, durationSeconds: 600 });
      }
      return;
    }
    case 'extendByApprover':
      if (grant) await access.extendByApprover({ actor: approver, grantId: grant, durationSeconds: 600 });
      return;
    case 'expire':
      if (grant) await access.expireGrant(grant);
      return;
    case 'remind': {
      const version = grant ? (await access.getGrant(grant))?.version : undefined;
      if (grant && version !== undefined) await access.remindGrant(grant, version);
      return;
    }
    case 'offboard':
      await access.offboardUser({
        userId: USERS[s.user]!,
        reason: 'offboarded: test',
        actor: { type: 'system', component: 'offboarding' },
      });
      return;
    case 'expireDue':
      await access.expireDueGrants();
      return;
    case 'revokeIdle':
      await access.revokeIdleGrants();
      return;
    case 'wait':
      clock.advance(s.minutes * 60_000);
      return;
  }
}

/** Every change seen, as `op kind from→to`: the run must have exercised each transition. */
const exercised = new Set<string>();

function checkChanges(
  kind: 'requests' | 'grants',
  initial: string,
  before: Map<string, string>,
  after: Map<string, string>,
  allowed: readonly Transition<string>[],
  s: Step,
): void {
  for (const [id, to] of after) {
    const from = before.get(id);
    if (from === to) continue;
    const ok =
      from === undefined
        ? to === initial || allowed.some((t) => t.from.includes(initial) && t.to === to)
        : allowed.some((t) => t.from.includes(from) && t.to === to);
    expect(ok, `${s.op} moved a ${kind.slice(0, -1)} ${from ?? '(new)'} → ${to}`).toBe(true);
    exercised.add(`${s.op} ${kind} ${from ?? 'new'}→${to}`);
  }
  for (const id of before.keys()) expect(after.has(id), `${s.op} removed a row`).toBe(true);
}

/** One run, written out, that makes every transition happen (open rows are picked with `pick: 1`). */
const SCRIPTED: Step[] = [
  { op: 'create', user: 0, scope: 'write', minutes: 30 },
  { op: 'approve', pick: 1, approver: 0 },
  { op: 'extendByApprover', pick: 1, approver: 1 },
  { op: 'revoke', pick: 1, approver: 0 },
  { op: 'create', user: 1, scope: 'write', minutes: 30 },
  { op: 'deny', pick: 1, approver: 0 },
  { op: 'create', user: 0, scope: 'write', minutes: 30 },
  { op: 'cancel', pick: 2 },
  { op: 'create', user: 1, scope: 'write', minutes: 30 },
  { op: 'wait', minutes: 70 },
  { op: 'timeOut', pick: 1 },
  { op: 'create', user: 1, scope: 'read', minutes: 30 },
  { op: 'wait', minutes: 70 },
  { op: 'expireDue' },
  { op: 'create', user: 0, scope: 'read', minutes: 60 },
  { op: 'wait', minutes: 25 },
  { op: 'revokeIdle' },
  { op: 'create', user: 1, scope: 'read', minutes: 30 },
  { op: 'create', user: 1, scope: 'write', minutes: 30 },
  { op: 'offboard', user: 1 },
  { op: 'create', user: 0, scope: 'read', minutes: 5 },
  { op: 'wait', minutes: 6 },
  { op: 'expire', pick: 1, approver: 0 },
  { op: 'create', user: 0, scope: 'read', minutes: 30 },
  { op: 'extend', pick: 1, approver: 0 },
  { op: 'remind', pick: 1, approver: 0 },
];

it('every action moves requests and grants only along the transitions it is allowed', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 6, maxLength: 16 }), async (steps) => {
      for (const s of steps) {
        const before = await statuses();
        // Mostly rows still open, where something can happen; every fourth pick any row (a late click).
        const late = 'pick' in s && s.pick % 4 === 0;
        const open = (rows: Map<string, string>, state: string) =>
          [...rows]
            .filter(([, status]) => late || status === state)
            .map(([id]) => id)
            .sort();
        await run(s, { requests: open(before.requests, 'pending'), grants: open(before.grants, 'active') });
        const after = await statuses();
        const allowed = ALLOWED[s.op];
        checkChanges(
          'requests',
          REQUEST_MACHINE.initial,
          before.requests,
          after.requests,
          allowed.requests,
          s,
        );
        checkChanges('grants', GRANT_MACHINE.initial, before.grants, after.grants, allowed.grants, s);
      }
    }),
    { numRuns: 30, examples: [[SCRIPTED]] },
  );
  // Seeded by fast-check per run; the weights make each of these all but certain to happen.
  // The scripted run makes every transition of the tables happen at least once.
  expect([...exercised].sort()).toEqual(
    expect.arrayContaining([
      'approve requests pending→approved',
      'deny requests pending→denied',
      'cancel requests pending→cancelled',
      'timeOut requests pending→expired',
      'offboard requests pending→cancelled',
      'revoke grants active→revoked',
      'revokeIdle grants active→revoked',
      'offboard grants active→revoked',
      'expire grants active→expired',
      'expireDue grants active→expired',
      'extend requests new→approved',
      'extendByApprover requests new→approved',
    ]),
  );
});
