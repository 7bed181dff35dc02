import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessService, staticDirectory } from '../../src/access/index.ts';
import { chainHash, GENESIS_HASH } from '../../src/audit/chain.ts';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { auditEvents, grants } from '../../src/db/schema/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { slackUser } from '../helpers/actors.ts';
import { testPolicy } from '../helpers/policy.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'jitgate-embedded-'));
let database: Database;

beforeAll(async () => {
  database = await openDatabase({ databaseUrl: undefined, dataDir });
  await database.migrate();
});

afterAll(async () => {
  await database?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('embedded database (PGlite)', () => {
  it('runs the same access service: one grant from racing approvals, chained audit, grant feed', async () => {
    const heard: string[] = [];
    const stop = await database.listen(database.channel('grants'), {
      onMessage: (id) => heard.push(id),
      onConnect: () => {},
      onDisconnect: () => {},
    });
    const access = createAccessService({
      db: database.db,
      policy: staticPolicyStore(testPolicy()),
      clock: manualClock(),
      directory: staticDirectory({}),
      grantChannel: database.channel('grants'),
    });
    const created = await access.createRequest({
      actor: slackUser('UCONTRACTOR'),
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 600,
      reason: 'embedded',
    });
    if (!created.ok) throw new Error(created.code);
    const results = await Promise.all(
      ['UAPPROVER1', 'UAPPROVER2', 'UAPPROVER1', 'UAPPROVER2'].map((approverId) =>
        access.approve({ requestId: created.value.request.id, actor: slackUser(approverId) }),
      ),
    );
    expect(results.filter((r) => r.ok && r.value.grant)).toHaveLength(1);
    const made = await database.db
      .select()
      .from(grants)
      .where(eq(grants.requestId, created.value.request.id));
    expect(made).toHaveLength(1);
    await expect.poll(() => heard, { timeout: 5000 }).toContain(made[0]!.id);
    await stop();

    const rows = await database.db.select().from(auditEvents).orderBy(asc(auditEvents.seq));
    let prev = GENESIS_HASH;
    for (const row of rows) {
      expect(row.hash).toBe(chainHash(prev, row));
      prev = row.hash;
    }
    await expect(database.db.delete(auditEvents)).rejects.toThrow();
  });
});
