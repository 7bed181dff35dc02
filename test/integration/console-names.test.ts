import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { personNames } from '../../src/db/schema/index.ts';
import { slackUser } from '../helpers/actors.ts';
import {
  APPROVER,
  type ConsoleClient,
  type ConsoleWorld,
  OTHER_REQUESTER,
  REQUESTER,
  startConsoleWorld,
} from '../helpers/console-world.ts';

/** The console shows people's names, from a cache: never one Slack call per row or per view. */
let world: ConsoleWorld;
let approver: ConsoleClient;
beforeAll(async () => {
  world = await startConsoleWorld();
  world.harness.api.realNames[REQUESTER] = 'Cory Contractor';
  world.harness.api.realNames[OTHER_REQUESTER] = '<img src=x onerror=alert(1)> Mallory';
  approver = (await world.signIn(APPROVER)).client;
}, 60_000);
afterAll(async () => {
  await world?.close();
});

async function readGrant(userId: string) {
  const created = await world.harness.access.createRequest({
    actor: slackUser(userId),
    resource: 'billing-api',
    scope: 'read',
    durationSeconds: 600,
    reason: 'names fixture',
  });
  if (!created.ok || !created.value.grant) throw new Error('no grant');
}

const lookupsOf = (userId: string) =>
  world.harness.api.callsTo('users.info').filter((c) => c.args.user === userId).length;

async function pageUntil(path: string, contains: string): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const page = await (await approver.get(path)).text();
    if (page.includes(contains) || Date.now() > deadline) return page;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('people are shown by name', () => {
  it('asks Slack once per unknown person, in the background, and shows the name beside the id', async () => {
    for (let i = 0; i < 4; i++) await readGrant(REQUESTER);
    await readGrant(OTHER_REQUESTER);
    const page = await pageUntil('/console/grants', 'Cory Contractor');
    expect(page).toContain('Cory Contractor');
    expect(page).toContain(REQUESTER);
    // Four rows of one person, one more person: one lookup each, however many rows and views.
    for (let i = 0; i < 3; i++) await (await approver.get('/console/grants')).text();
    await (await approver.get('/console/people')).text();
    await (await approver.get(`/console/audit?user=${REQUESTER}`)).text();
    expect(lookupsOf(REQUESTER)).toBe(1);
    expect(lookupsOf(OTHER_REQUESTER)).toBe(1);
    const [row] = await world.harness.database.db
      .select()
      .from(personNames)
      .where(eq(personNames.userId, REQUESTER));
    expect(row).toMatchObject({ name: 'Cory Contractor', source: 'slack' });
    const people = (await (await approver.get('/api/v1/people')).json()) as {
      people: { userId: string; name: string | null }[];
    };
    expect(people.people.find((p) => p.userId === REQUESTER)?.name).toBe('Cory Contractor');
  });

  it('escapes a name like any text from outside', async () => {
    const page = await pageUntil('/console/people', 'Mallory');
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt; Mallory');
    expect(page).not.toContain('<img src=x');
  });

  it('takes the signed-in person’s name from the ID token, with no Slack call', async () => {
    const [row] = await world.harness.database.db
      .select()
      .from(personNames)
      .where(eq(personNames.userId, APPROVER));
    expect(row).toMatchObject({ name: `Person ${APPROVER}`, source: 'sign_in' });
    await (await approver.get(`/console/audit?user=${APPROVER}`)).text();
    expect(lookupsOf(APPROVER)).toBe(0);
  });
});
