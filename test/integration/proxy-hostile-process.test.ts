import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import fc from 'fast-check';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { grants } from '../../src/db/schema/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, type KeyStore } from '../../src/tokens/index.ts';
import {
  deepJson,
  HOSTILE_SECRET,
  type HostileUpstream,
  startHostileUpstream,
} from '../helpers/hostile-upstream.ts';
import { createScratchDatabase, type JitgateChild, startJitgate } from '../helpers/jitgate-process.ts';
import { eventually, forwardedAt, insertGrantWithToken, rawRequest } from '../helpers/proxy-fixtures.ts';
import { type Abandon, abandonedRequest } from '../helpers/raw-client.ts';
import { tempDir } from '../helpers/tls.ts';

/**
 * Issue 14 against `jitgate serve` itself — bot, proxy and worker in one process, wired as an
 * operator runs it (the real audit appender, refusal aggregator, anomaly monitor, crash guard):
 * responses that used to end the process, and a property test driving random client aborts
 * and hostile upstream behaviours, checking that every call the upstream saw has exactly one
 * audit row under its request id, and that the process stays up.
 */

const CREDENTIAL = 'hostile-process-credential';

let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
let sql: postgres.Sql;
let database: Database;
let upstream: HostileUpstream;
let keys: KeyStore;
let serve: JitgateChild;
let env: NodeJS.ProcessEnv & { DATABASE_URL: string };
const dir = tempDir('jitgate-hostile-');

beforeAll(async () => {
  scratch = await createScratchDatabase('jitgate_hostile');
  sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  upstream = await startHostileUpstream();
  const signingKey = JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }));
  keys = createMemoryKeyStore({ clock: systemClock, configuredKey: signingKey });
  await keys.load();
  const policyFile = join(dir.path, 'policy.yml');
  writeFileSync(
    policyFile,
    `
resources:
  hostile-api:
    upstream: ${upstream.url}
    credential: { header: X-Api-Key, value: "${CREDENTIAL}" }
    identity_assertion: true
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      any: { allow: ["* /**"], allow_any_path: true }
      masked: { allow: ["* /**"], allow_any_path: true, mask: ["**.secret"] }
    rate_limit: { requests: 100000, per: 1m }
`,
  );
  env = { DATABASE_URL: scratch.url, JITGATE_POLICY: policyFile, JITGATE_SIGNING_KEY: signingKey };
  serve = await startJitgate('serve', env);
  database = await openDatabase({ databaseUrl: scratch.url, dataDir: '.jitgate-test', maxConnections: 2 });
});

afterAll(async () => {
  await serve?.stop('SIGKILL');
  await database?.close();
  await sql?.end({ timeout: 5 });
  await upstream?.close();
  await scratch?.drop();
  dir.remove();
});

/** A grant on hostile-api; the child (`serve` unless `port` names another) forwards with it when this resolves. */
const grantWithToken = (scope: string, quotaRequests?: number, port = serve.proxyPort ?? 0) =>
  insertGrantWithToken(
    { database, keys, issuer: 'jitgate', seen: forwardedAt(port, '/hostile-api/ok') },
    { resource: 'hostile-api', scope, ...(quotaRequests !== undefined ? { quotaRequests } : {}) },
  );

interface Row {
  kind: string;
  decision: string;
  status: number;
  aborted: string | null;
}

const rowsFor = (requestId: string) =>
  sql<Row[]>`
    select kind, data->>'decision' as decision, (data->>'status')::int as status, data->>'aborted' as aborted
    from audit_events where data->>'requestId' = ${requestId} order by seq`;

async function settledRows(requestId: string): Promise<Row[]> {
  await eventually(async () => (await rowsFor(requestId)).length > 0, 10_000);
  return rowsFor(requestId);
}

async function expectServeUp(): Promise<void> {
  expect(serve.child.exitCode, serve.log()).toBeNull();
  expect(serve.child.signalCode).toBeNull();
  expect((await fetch(`http://127.0.0.1:${serve.port}/healthz`)).status).toBe(200);
  expect(serve.log()).not.toContain('uncaught exception');
}

const proxyPort = () => {
  if (serve.proxyPort === undefined) throw new Error('serve runs a proxy');
  return serve.proxyPort;
};

describe('responses that used to end the process', () => {
  it('two Content-Encoding headers on a masked scope: 502 ambiguous_response, audited, serve stays up', async () => {
    const { auth } = await grantWithToken('masked');
    const id = `dup-encoding-${randomUUID()}`;
    const res = await rawRequest(proxyPort(), 'GET', '/hostile-api/dup-content-encoding', {
      ...auth,
      'x-request-id': id,
    });
    expect(res.status).toBe(502);
    expect(res.json().error).toBe('ambiguous_response');
    expect(await settledRows(id)).toEqual([
      { kind: 'proxy.denied', decision: 'ambiguous_response', status: 502, aborted: null },
    ]);
    await expectServeUp();
  });

  it('JSON a contractor POSTed 5,000 levels deep, read back on a masked scope: masked, serve stays up', async () => {
    const write = await grantWithToken('any');
    const read = await grantWithToken('masked');
    const stored = await rawRequest(
      proxyPort(),
      'POST',
      '/hostile-api/store',
      { ...write.auth, 'content-type': 'application/json' },
      deepJson(5000),
    );
    expect(stored.status).toBe(201);
    const back = await rawRequest(proxyPort(), 'GET', '/hostile-api/store', read.auth);
    expect(back.status).toBe(200);
    expect(back.body).not.toContain(HOSTILE_SECRET);
    expect(back.body.split('"[masked]"').length - 1).toBe(5000);
    await expectServeUp();
  });
});

describe('property: random client aborts against a hostile upstream', () => {
  type Behaviour =
    | 'ok'
    | 'slow'
    | 'hang'
    | 'abort-mid-body'
    | 'reset'
    | '503'
    | 'dup-content-type'
    | 'dup-content-encoding'
    | 'deep-json'
    | 'reflect'
    | 'not-modified';
  type ClientMove = { after: 'none' } | Abandon;
  interface Move {
    behaviour: Behaviour;
    scope: 'any' | 'masked';
    method: 'GET' | 'POST' | 'HEAD';
    client: ClientMove;
  }

  async function play(move: Move, requestId: string, auth: Record<string, string>): Promise<void> {
    const path = `/hostile-api/${move.behaviour}${move.behaviour === 'slow' ? '?ms=80' : move.behaviour === 'deep-json' ? '?depth=3000' : ''}`;
    const headers = { ...auth, 'x-request-id': requestId, 'content-type': 'application/json' };
    const body = move.method === 'POST' ? JSON.stringify({ secret: 'posted', n: 1 }) : undefined;
    // A call to an upstream that never answers is always left by its client in the end.
    const client: ClientMove =
      move.client.after === 'none' && move.behaviour === 'hang' ? { after: 'ms', ms: 100 } : move.client;
    if (client.after === 'none') {
      await rawRequest(proxyPort(), move.method, path, headers, body).catch(() => undefined);
      return;
    }
    await abandonedRequest(
      proxyPort(),
      { method: move.method, path, headers, ...(body ? { body } : {}) },
      client,
    );
  }

  it('every call the upstream saw has exactly one audit row with its request id, each is counted, and serve stays up', async () => {
    const any = await grantWithToken('any', 1_000_000);
    const masked = await grantWithToken('masked', 1_000_000);
    let played = 0;
    const move: fc.Arbitrary<Move> = fc.record({
      behaviour: fc.constantFrom<Behaviour>(
        'ok',
        'slow',
        'hang',
        'abort-mid-body',
        'reset',
        '503',
        'dup-content-type',
        'dup-content-encoding',
        'deep-json',
        'reflect',
        'not-modified',
      ),
      scope: fc.constantFrom('any', 'masked'),
      method: fc.constantFrom('GET', 'POST', 'HEAD'),
      client: fc.oneof(
        fc.constant<ClientMove>({ after: 'none' }),
        fc.constant<ClientMove>({ after: 'write' }),
        fc.constant<ClientMove>({ after: 'first-byte' }),
        fc.integer({ min: 0, max: 120 }).map<ClientMove>((ms) => ({ after: 'ms', ms })),
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(move, { minLength: 1, maxLength: 6 }), async (moves) => {
        const ids = moves.map(() => `prop-${randomUUID()}`);
        // Concurrently, as clients do: aborts land while other calls are in flight.
        await Promise.all(moves.map((m, i) => play(m, ids[i]!, m.scope === 'any' ? any.auth : masked.auth)));
        played += moves.length;
        for (const [i, id] of ids.entries()) {
          const rows = await settledRows(id);
          const seen = upstream.seenWithId(id);
          // Exactly one row per call; the upstream saw it at most once (no hidden retry).
          expect(rows, `${JSON.stringify(moves[i])}: ${JSON.stringify(rows)}`).toHaveLength(1);
          expect(seen.length, JSON.stringify(moves[i])).toBeLessThanOrEqual(1);
          const [row] = rows;
          // A fault in the proxy would say internal_error; a hostile answer never should.
          expect(row?.decision, JSON.stringify(moves[i])).not.toBe('internal_error');
          if (seen.length === 1) {
            // What the upstream received carried the injected credential, not the client's token.
            expect(seen[0]?.headers['x-api-key']).toBe(CREDENTIAL);
            expect(seen[0]?.headers.authorization).toBeUndefined();
          } else {
            // The upstream never got it: the client left before the proxy forwarded it, or while
            // the request was still on its way (its row says the client left), or the
            // connection failed. Nothing else keeps a call from an upstream here.
            const leftFirst =
              row?.decision === 'client_closed' ||
              row?.aborted === 'client' ||
              row?.decision === 'upstream_unreachable';
            expect(leftFirst, `${JSON.stringify(moves[i])}: ${JSON.stringify(row)}`).toBe(true);
          }
        }
        await expectServeUp();
      }),
      { numRuns: 40 },
    );
    // Every call counted toward its grant's quota, aborted or not: each was admitted, so the
    // count equals the grant's rows (less the set-up calls refused before the feed had it).
    const admitted = async (grantId: string) =>
      (
        await sql<{ n: number }[]>`
          select count(*)::int as n from audit_events
          where grant_id = ${grantId} and data->>'decision' <> 'grant_not_found'`
      )[0]?.n;
    const used = async (grantId: string) =>
      (await database.db.select().from(grants).where(eq(grants.id, grantId)))[0]?.usedRequests;
    for (const { grant } of [any, masked]) {
      // The quota totals are written in the same transaction as the rows.
      expect(await used(grant.id)).toBe(await admitted(grant.id));
    }
    expect((await admitted(any.grant.id)) ?? 0).toBeGreaterThan(0);
    expect(played).toBeGreaterThan(20);
  }, 120_000);
});

describe('shutdown', () => {
  it('a call still hanging upstream at SIGTERM has its audit row once the process has exited', async () => {
    const proxy = await startJitgate('proxy', env);
    try {
      const port = proxy.proxyPort ?? 0;
      const { auth } = await grantWithToken('any', undefined, port);
      const id = `sigterm-hang-${randomUUID()}`;
      const answer = rawRequest(port, 'GET', '/hostile-api/hang', { ...auth, 'x-request-id': id }).catch(
        () => undefined,
      );
      await eventually(() => upstream.seenWithId(id).length === 1);
      const code = await proxy.stop('SIGTERM');
      expect(code, proxy.log()).toBe(0);
      await answer;
      const rows = await rowsFor(id);
      expect(rows, proxy.log()).toHaveLength(1);
      expect(rows[0]?.kind).toMatch(/^proxy\./);
    } finally {
      await proxy.stop('SIGKILL');
    }
  });
});
