import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, type KeyStore } from '../../src/tokens/index.ts';
import { TEST_DATABASE_URL } from '../helpers/db.ts';
import { type HostileUpstream, startHostileUpstream } from '../helpers/hostile-upstream.ts';
import { createScratchDatabase, type JitgateChild, startJitgate } from '../helpers/jitgate-process.ts';
import {
  eventually,
  forwardedAt,
  insertGrantWithToken,
  rawRequest,
  revokeGrant,
} from '../helpers/proxy-fixtures.ts';
import { tempDir } from '../helpers/tls.ts';

/**
 * Issue 20, the proxy under process faults, against real `jitgate proxy` children: a kill -9
 * under load, and a stop that cannot write its records (the database refuses connections)
 * while calls hang upstream. The invariant of issue 14 holds through both: every call the
 * upstream received has exactly one audit row under its request id, after the next start
 * replayed the intent journal, and the chain verifies.
 */

let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
let sql: postgres.Sql;
let admin: postgres.Sql;
let database: Database;
let upstream: HostileUpstream;
let keys: KeyStore;
let env: NodeJS.ProcessEnv & { DATABASE_URL: string };
const dir = tempDir('jitgate-faults-');
const children: JitgateChild[] = [];

beforeAll(async () => {
  scratch = await createScratchDatabase('jitgate_faults');
  sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  upstream = await startHostileUpstream();
  const signingKey = JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }));
  keys = createMemoryKeyStore({ clock: systemClock, configuredKey: signingKey });
  await keys.load();
  const policyFile = join(dir.path, 'policy.yml');
  writeFileSync(
    policyFile,
    `
resources:
  faulty-api:
    upstream: ${upstream.url}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      any: { allow: ["* /**"], allow_any_path: true }
    rate_limit: { requests: 1000000, per: 1m }
`,
  );
  env = { DATABASE_URL: scratch.url, JITGATE_POLICY: policyFile, JITGATE_SIGNING_KEY: signingKey };
  // A first child migrates the database; the tests start their own.
  const migrator = await startJitgate('proxy', { ...env, JITGATE_INTENT_DIR: 'off' });
  await migrator.stop('SIGTERM');
  database = await openDatabase({ databaseUrl: scratch.url, dataDir: '.jitgate-test', maxConnections: 2 });
});

afterAll(async () => {
  for (const child of children) await child.stop('SIGKILL');
  await admin?.unsafe(`alter database ${databaseName()} allow_connections true`).catch(() => undefined);
  await database?.close();
  await sql?.end({ timeout: 5 });
  await admin?.end({ timeout: 5 });
  await upstream?.close();
  await scratch?.drop();
  dir.remove();
});

function databaseName(): string {
  return new URL(scratch.url).pathname.slice(1);
}

async function startProxy(intentDir: string): Promise<JitgateChild> {
  const child = await startJitgate('proxy', { ...env, JITGATE_INTENT_DIR: intentDir });
  children.push(child);
  return child;
}

const grantFor = (proxy: JitgateChild) =>
  insertGrantWithToken(
    { database, keys, issuer: 'jitgate', seen: forwardedAt(proxy.proxyPort ?? 0, '/faulty-api/ok') },
    { resource: 'faulty-api', scope: 'any' },
  );

/** Request ids the upstream saw with `prefix`, and how many audit rows each has. */
async function rowsPerSeenCall(prefix: string): Promise<Map<string, number>> {
  const seen = [
    ...new Set(upstream.seen.flatMap((r) => (r.requestId?.startsWith(prefix) ? [r.requestId] : []))),
  ];
  const rows = await sql<{ requestId: string; n: number }[]>`
    select data->>'requestId' as "requestId", count(*)::int as n from audit_events
    where data->>'requestId' like ${`${prefix}%`} group by 1`;
  const counts = new Map(rows.map((r) => [r.requestId, r.n]));
  return new Map(seen.map((id) => [id, counts.get(id) ?? 0]));
}

const stopAt = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the proxy under process faults', () => {
  it('kill -9 under load: every call the upstream received has exactly one audit row after the next start, and the chain verifies', async () => {
    const intentDir = join(dir.path, 'intents-kill');
    const proxy = await startProxy(intentDir);
    const port = proxy.proxyPort ?? 0;
    const { auth } = await grantFor(proxy);
    const prefix = `kill-${randomUUID().slice(0, 8)}-`;
    let running = true;
    let n = 0;
    // 24 clients back to back, half of them on a slow path, so calls are in flight at the kill.
    const clients = Array.from({ length: 24 }, async (_, c) => {
      while (running) {
        const id = `${prefix}${c}-${n++}`;
        const path = c % 2 === 0 ? '/faulty-api/ok' : '/faulty-api/slow?ms=30';
        await rawRequest(port, 'GET', path, { ...auth, 'x-request-id': id }).catch(() => undefined);
      }
    });
    await eventually(() => upstream.seen.filter((r) => r.requestId?.startsWith(prefix)).length > 500, 15_000);
    await proxy.stop('SIGKILL');
    running = false;
    await Promise.all(clients);

    const before = await rowsPerSeenCall(prefix);
    const lost = [...before.values()].filter((count) => count === 0).length;
    // The kill left calls the upstream got without a row (the writer's queue died with it)…
    expect(lost).toBeGreaterThan(0);
    expect(readdirSync(intentDir).length).toBeGreaterThan(0);

    // …and the next start audits each of them from the journal before it forwards anything.
    const next = await startProxy(intentDir);
    const replayed = next.logLines(
      'intent journal replayed: calls forwarded by a process that died are audited',
    );
    expect(replayed[0]?.written, next.log()).toBeGreaterThanOrEqual(lost);
    const after = await rowsPerSeenCall(prefix);
    expect(after.size).toBe(before.size);
    expect([...after].filter(([, count]) => count !== 1)).toEqual([]);
    const unknown = await sql<{ n: number }[]>`
      select count(*)::int as n from audit_events
      where data->>'requestId' like ${`${prefix}%`} and data->>'result' = 'unknown'`;
    expect(unknown[0]?.n).toBe(replayed[0]?.written);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
    await next.stop('SIGTERM');
  }, 90_000);

  it('a stop that cannot write its records exits 1 and keeps their intents; the next start audits every call, hanging ones included', async () => {
    const intentDir = join(dir.path, 'intents-stop');
    const proxy = await startProxy(intentDir);
    const port = proxy.proxyPort ?? 0;
    const { auth } = await grantFor(proxy);
    const prefix = `stop-${randomUUID().slice(0, 8)}-`;
    const hanging = Array.from({ length: 3 }, (_, i) =>
      rawRequest(port, 'GET', '/faulty-api/hang', { ...auth, 'x-request-id': `${prefix}hang-${i}` }).catch(
        () => undefined,
      ),
    );
    await eventually(
      () => upstream.seen.filter((r) => r.requestId?.startsWith(`${prefix}hang-`)).length === 3,
    );
    // The database goes away: nothing this process still holds can be written.
    await admin.unsafe(`alter database ${databaseName()} allow_connections false`);
    await admin`select pg_terminate_backend(pid) from pg_stat_activity
      where datname = ${databaseName()} and pid <> pg_backend_pid()`;
    for (let i = 0; i < 5; i++) {
      await rawRequest(port, 'GET', '/faulty-api/ok', {
        ...auth,
        'x-request-id': `${prefix}late-${i}`,
      }).catch(() => undefined);
    }
    const code = await proxy.stop('SIGTERM');
    children.splice(children.indexOf(proxy), 1);
    await Promise.all(hanging);
    expect(code, proxy.log()).toBe(1);
    expect(
      proxy.logLines('shutdown step failed').map((l) => l.step),
      proxy.log(),
    ).toContain('intent journal');
    expect(readdirSync(intentDir).length).toBeGreaterThan(0);

    await admin.unsafe(`alter database ${databaseName()} allow_connections true`);
    await sql`select 1`.catch(() => undefined);
    await stopAt(100);
    const next = await startProxy(intentDir);
    const after = await rowsPerSeenCall(prefix);
    expect(after.size).toBeGreaterThanOrEqual(3);
    expect(
      [...after].filter(([, count]) => count !== 1),
      next.log(),
    ).toEqual([]);
    expect(await verifyAuditChain(database.db)).toMatchObject({ ok: true });
    await next.stop('SIGTERM');
  }, 120_000);

  it('a frozen notification connection (its backend SIGSTOPped) keeps a revoked grant usable for less than a second', async () => {
    const proxy = await startProxy(join(dir.path, 'intents-frozen'));
    const port = proxy.proxyPort ?? 0;
    const { grant, auth } = await grantFor(proxy);
    const [backend] = await admin<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = ${databaseName()} and query ilike 'listen %'`;
    expect(backend?.pid).toBeGreaterThan(0);
    const pid = backend!.pid;
    // Alive but silent: the connection stays open, the backend delivers nothing.
    process.kill(pid, 'SIGSTOP');
    try {
      await revokeGrant(database, grant.id, new Date());
      const revoked = performance.now();
      let allowedAfter = 0;
      let firstRefusal: { ms: number; status: number } | undefined;
      while (performance.now() - revoked < 3000) {
        const res = await rawRequest(port, 'GET', '/faulty-api/ok', auth);
        if (res.status === 200) allowedAfter++;
        else firstRefusal ??= { ms: performance.now() - revoked, status: res.status };
        if (firstRefusal && res.status === 403) break;
      }
      expect(firstRefusal, proxy.log()).toBeDefined();
      // README: a revocation is enforced within a second, a dead feed included.
      expect(firstRefusal!.ms).toBeLessThan(1000);
      expect([403, 503]).toContain(firstRefusal!.status);
      expect(proxy.logLines('grant feed silent; failing closed and re-subscribing').length).toBeGreaterThan(
        0,
      );
      // Once re-subscribed on a new connection, the view is live again and knows of the revocation.
      await eventually(
        async () => (await rawRequest(port, 'GET', '/faulty-api/ok', auth)).status === 403,
        10_000,
      );
      expect(allowedAfter).toBeLessThan(1000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await proxy.stop('SIGTERM');
  }, 60_000);
});
