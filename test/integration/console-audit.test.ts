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

/** The audit search, its export, the chain's status and the policy page, read through the console. */
let world: ConsoleWorld;
let approver: ConsoleClient;
let requester: ConsoleClient;
let auditor: ConsoleClient;
let admin: ConsoleClient;
beforeAll(async () => {
  world = await startConsoleWorld();
  approver = (await world.signIn(APPROVER)).client;
  requester = (await world.signIn(REQUESTER)).client;
  auditor = (await world.signIn(AUDITOR)).client;
  admin = (await world.signIn(ADMIN)).client;
  for (const [who, resource, scope] of [
    [REQUESTER, 'billing-api', 'read'],
    [REQUESTER, 'billing-api', 'write'],
    [REQUESTER, 'admin-api', 'admin'],
    [OTHER_REQUESTER, 'billing-api', 'read'],
    [OTHER_REQUESTER, 'admin-api', 'admin'],
  ] as const) {
    const created = await world.harness.access.createRequest({
      actor: slackUser(who),
      resource,
      scope,
      durationSeconds: 600,
      reason: `audit fixture ${resource} ${scope}`,
    });
    if (!created.ok) throw new Error(created.code);
  }
}, 60_000);
afterAll(async () => {
  await world?.close();
});

type Row = { seq: number; actor: string; resource: string | null; data: { userId?: string } };

async function searched(client: ConsoleClient, filter: string): Promise<number[]> {
  const seqs: number[] = [];
  let cursor = '';
  for (;;) {
    const page = (await (await client.get(`/api/v1/audit?${filter}&limit=2${cursor}`)).json()) as {
      rows: Row[];
      next: number | null;
    };
    seqs.push(...page.rows.map((r) => r.seq));
    if (page.next === null) return seqs;
    cursor = `&cursor=${page.next}`;
  }
}

async function exported(client: ConsoleClient, filter: string, format: 'jsonl' | 'csv') {
  const response = await client.get(`/api/v1/audit/export?${filter}&format=${format}`);
  expect(response.status).toBe(200);
  return { response, text: await response.text() };
}

describe('audit export', () => {
  for (const [who, filter] of [
    ['an auditor', `user=${REQUESTER}`],
    ['an auditor', `user=${REQUESTER}&resource=admin-api`],
    ['an auditor', 'resource=billing-api'],
  ] as const) {
    it(`has exactly the rows of the search (${who}, ${filter}), oldest first, as JSON Lines and CSV`, async () => {
      const seqs = await searched(auditor, filter);
      expect(seqs.length).toBeGreaterThan(0);
      const jsonl = await exported(auditor, filter, 'jsonl');
      expect(jsonl.response.headers.get('content-type')).toContain('application/x-ndjson');
      const lines = jsonl.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Row);
      expect(lines.map((r) => r.seq)).toEqual([...seqs].reverse());
      const csv = await exported(auditor, filter, 'csv');
      expect(csv.response.headers.get('content-type')).toContain('text/csv');
      const records = csv.text.trim().split('\n');
      expect(records[0]).toMatch(/^seq,/);
      expect(records.slice(1).map((l) => Number(l.split(',')[0]))).toEqual([...seqs].reverse());
    });
  }

  it("is narrowed like the search: a requester's export holds their rows only, an approver's only their resources'", async () => {
    const own = (await exported(requester, '', 'jsonl')).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row);
    expect(own.length).toBeGreaterThan(0);
    expect(own.every((r) => r.actor.endsWith(REQUESTER) || r.data.userId === REQUESTER)).toBe(true);
    expect(own.map((r) => r.seq)).toEqual([...(await searched(requester, ''))].reverse());
    // UAPPROVER1 approves billing-api and admin-api; a person filter does not widen that.
    const theirs = (await exported(approver, `user=${OTHER_REQUESTER}`, 'jsonl')).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row);
    expect(theirs.length).toBeGreaterThan(0);
    expect(theirs.every((r) => r.resource === 'billing-api' || r.resource === 'admin-api')).toBe(true);
  });

  it('refuses a filter it cannot read, as the search does', async () => {
    expect((await auditor.get('/api/v1/audit/export?since=yesterday&format=csv')).status).toBe(400);
    expect((await auditor.get('/api/v1/audit/export?format=xml')).status).toBe(400);
  });
});

describe('chain status', () => {
  it('records a check in the chain: its head hash, rows, who; rows appended since are counted', async () => {
    const before = (await (await auditor.get('/api/v1/audit/chain')).json()) as {
      tail: { seq: number; hash: string };
    };
    const checked = (await (await admin.post('/api/v1/audit/chain/verify', {})).json()) as {
      lastCheck: { ok: boolean; rows: number; headSeq: number; headHash: string; by: string };
      tail: { seq: number };
      rowsSinceCheck: number;
    };
    expect(checked.lastCheck).toMatchObject({
      ok: true,
      rows: before.tail.seq,
      headSeq: before.tail.seq,
      headHash: before.tail.hash,
      by: `console:${ADMIN}`,
    });
    expect(checked.tail.seq).toBe(before.tail.seq + 1);
    expect(checked.rowsSinceCheck).toBe(0);
    await world.harness.access.createRequest({
      actor: slackUser(REQUESTER),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 600,
      reason: 'after the check',
    });
    const later = (await (await auditor.get('/api/v1/audit/chain')).json()) as { rowsSinceCheck: number };
    expect(later.rowsSinceCheck).toBe(1);
    const page = await (await auditor.get('/console/chain')).text();
    expect(page).toContain('intact');
    expect(page).toContain(before.tail.hash);
  });
});

describe('policy page', () => {
  it('renders each resource: scopes, rules, approvers, limits; never a credential; upstream only for its approvers', async () => {
    const mine = await (await requester.get('/console/policy')).text();
    for (const shown of [
      'billing-api',
      'admin-api',
      'GET /invoices/**',
      'UAPPROVER1',
      '600 per 1m',
      '(2 needed)',
      'up to 2 extensions',
    ]) {
      expect(mine).toContain(shown);
    }
    expect(mine).not.toContain('upstream-secret-billing');
    expect(mine).not.toContain('127.0.0.1:9000');
    const theirs = await (await approver.get('/console/policy')).text();
    expect(theirs).toContain('127.0.0.1:9000');
    expect(theirs).not.toContain('upstream-secret-billing');
    // Read-only: the page offers no form to change anything.
    expect(mine).not.toMatch(/<form[^>]*method="post"[^>]*action="\/console\/policy/);
  });
});
