import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { eq, sql } from 'drizzle-orm';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quotaSettler } from '../../src/access/quota.ts';
import { type AuditAppender, createAuditAppender } from '../../src/audit/call-writer.ts';
import { postgresClientOf } from '../../src/db/client.ts';
import { resultRows } from '../../src/db/queries/result-rows.ts';
import { grants } from '../../src/db/schema/index.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import { staticPolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView, type ManagedActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createQuotaTracker, type QuotaTracker } from '../../src/proxy/quota.ts';
import { aggregateRefusals } from '../../src/proxy/refusal-aggregator.ts';
import { createProxyServer, type ProxyServerDeps } from '../../src/proxy/server.ts';
import type { CallSink } from '../../src/shared/call-record.ts';
import { systemClock } from '../../src/shared/clock.ts';
import {
  createKeyStore,
  createMemoryKeyStore,
  createVerifier,
  issueGrantToken,
  type KeyStore,
} from '../../src/tokens/index.ts';
import {
  deepJson,
  HOSTILE_SECRET,
  type HostileUpstream,
  startHostileUpstream,
} from '../helpers/hostile-upstream.ts';
import {
  eventually,
  heldByViews,
  insertGrantWithToken,
  logTo,
  openTestDatabase,
  rawRequest,
} from '../helpers/proxy-fixtures.ts';
import { abandonedRequest, parseRawAnswer, rawExchange } from '../helpers/raw-client.ts';

/**
 * Issue 14: the proxy's promises at the edges, each against the real proxy, the real audit
 * appender writing the hash chain to PostgreSQL, and an upstream that misbehaves on purpose.
 */

const ISSUER = 'https://jitgate.test';
const DAY = 86_400_000;
const CREDENTIAL = 'hostile-api-credential-value';
const clock = systemClock;

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let upstream: HostileUpstream;
let keys: KeyStore;
let view: ManagedActiveGrantView;
let quota: QuotaTracker;
let appender: AuditAppender;
let port: number;
const started: FastifyInstance[] = [];
const logLines: string[] = [];

function policyText(): string {
  const common = `    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL`;
  return `
resources:
  hostile-api:
    upstream: ${upstream.url}
    credential: { header: X-Api-Key, value: "${CREDENTIAL}" }
    identity_assertion: { header: X-Jitgate-Identity, ttl: 60s }
${common}
    scopes:
      any: { allow: ["* /**"], allow_any_path: true }
      masked: { allow: ["* /**"], allow_any_path: true, mask: ["**.secret"] }
  limited-api:
    upstream: ${upstream.url}
${common}
    scopes:
      read: { allow: ["GET /**", "POST /**"], allow_any_path: true }
    rate_limit: { requests: 3, per: 1h }
`;
}

async function startProxy(sink: CallSink, extra: Partial<ProxyServerDeps> = {}): Promise<number> {
  const server = createProxyServer({
    policy: staticPolicyStore(parsePolicy(policyText(), { file: 'hardening.yml', env: {} })),
    grants: view,
    verifier: createVerifier(keys, { issuer: ISSUER, clock }),
    keyStore: keys,
    issuer: ISSUER,
    clock,
    sink,
    quota,
    logger: pino({ level: 'debug' }, logTo(logLines)),
    ...extra,
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  started.push(server);
  return (server.server.address() as AddressInfo).port;
}

const grantWithToken = (resource: string, scope: string, quotaRequests?: number) =>
  insertGrantWithToken(
    { database, keys, issuer: ISSUER, seen: heldByViews(view) },
    { resource, scope, now: clock.now(), ...(quotaRequests !== undefined ? { quotaRequests } : {}) },
  );

interface AuditRow {
  kind: string;
  grantId: string | null;
  data: Record<string, unknown>;
}

async function rowsWhere(condition: ReturnType<typeof sql>): Promise<AuditRow[]> {
  await appender.flush();
  return resultRows(
    await database.db.execute(
      sql`select kind, grant_id as "grantId", data from audit_events where ${condition} order by seq`,
    ),
  ) as unknown as AuditRow[];
}

const rowsFor = (requestId: string) => rowsWhere(sql`data->>'requestId' = ${requestId}`);

/** Waits until the call's row is written (the client may have left long before), then returns its rows. */
async function settledRowsFor(requestId: string): Promise<AuditRow[]> {
  await eventually(async () => (await rowsFor(requestId)).length > 0);
  return rowsFor(requestId);
}

/** `n` small headers, `x-pad-0: 1` …, to push a request head toward (or past) its bounds. */
function padding(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-pad-${i}`, '1']));
}

let sequence = 0;
const newId = (label: string) => `${label}-${Date.now().toString(36)}-${(sequence++).toString(36)}`;

beforeAll(async () => {
  database = await openTestDatabase();
  upstream = await startHostileUpstream();
  // A database-backed key store, so a database fault can reach the token check; every unknown
  // kid asks the database (no refresh spacing), which is what the fault test needs.
  keys = createKeyStore({ db: database.db, clock, unknownKidRefreshIntervalMs: 0 });
  await keys.load();
  view = createActiveGrantView({ database, logger: pino({ level: 'silent' }) });
  await view.start();
  quota = createQuotaTracker();
  const client = postgresClientOf(database.db);
  appender = createAuditAppender({
    db: database.db,
    // As proxy-role.ts wires it: batches without quota use go pipelined on postgres.js.
    ...(client ? { client } : {}),
    flushIntervalMs: 5,
    quota,
    settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
  });
  port = await startProxy(appender);
});

afterAll(async () => {
  for (const server of started) await server.close();
  await appender?.close();
  await view?.close();
  await upstream?.close();
  await database?.drop();
});

describe('every forwarded call has exactly one audit row and counts, whatever the client does', () => {
  it('a client that leaves before the answer (slow upstream, or right after writing a POST)', async () => {
    const { grant, auth } = await grantWithToken('limited-api', 'read', 100);
    const slowGet = newId('abort-slow-get');
    const slowPost = newId('abort-slow-post');
    const postThenLeave = newId('abort-post');
    const once = (id: string) => ({
      after: 'ready' as const,
      ready: () => upstream.seenWithId(id).length > 0,
    });
    const post = (id: string) => ({
      method: 'POST',
      path: '/limited-api/slow?ms=300',
      headers: { ...auth, 'x-request-id': id, 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 42 }),
    });
    await Promise.all([
      // The upstream has the call (with the injected credential) when the client leaves.
      abandonedRequest(
        port,
        { method: 'GET', path: '/limited-api/slow?ms=300', headers: { ...auth, 'x-request-id': slowGet } },
        once(slowGet),
      ),
      abandonedRequest(port, post(slowPost), once(slowPost)),
      // Gone the moment its POST is written: the proxy may or may not have handed it on by then.
      abandonedRequest(port, post(postThenLeave), { after: 'write' }),
    ]);
    for (const id of [slowGet, slowPost]) {
      expect(upstream.seenWithId(id), id).toHaveLength(1);
      // The audit log has exactly one row for it, saying the client left.
      const rows = await settledRowsFor(id);
      expect(rows, id).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        kind: 'proxy.call',
        grantId: grant.id,
        data: { decision: 'allowed', status: 499, aborted: 'client', requestId: id },
      });
    }
    // One row for the racing POST too, whichever way the race went, and it says the client left.
    const raced = await settledRowsFor(postThenLeave);
    expect(raced).toHaveLength(1);
    expect(raced[0]?.data.status).toBe(499);
    if (upstream.seenWithId(postThenLeave).length === 1) {
      expect(raced[0]).toMatchObject({
        kind: 'proxy.call',
        data: { decision: 'allowed', aborted: 'client' },
      });
    } else {
      expect(['client_closed', 'allowed']).toContain(raced[0]?.data.decision);
    }
    // Each counted toward the rate limit (3 an hour): the fourth call is refused.
    const fourth = await rawRequest(port, 'GET', '/limited-api/ok', auth);
    expect(fourth.status).toBe(429);
    expect(fourth.json().error).toBe('rate_limited');
    // And toward the quota kept in PostgreSQL.
    await appender.flush();
    const [row] = await database.db.select().from(grants).where(eq(grants.id, grant.id));
    expect(row?.usedRequests).toBe(3);
  });

  it('an upstream that resets, stops mid-body or hangs past the client: one row each', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const reset = newId('up-reset');
    const midBody = newId('up-mid-body');
    const hang = newId('up-hang');
    const resetAnswer = await rawRequest(port, 'GET', '/hostile-api/reset', {
      ...auth,
      'x-request-id': reset,
    });
    expect(resetAnswer.status).toBe(502);
    expect(resetAnswer.json().error).toBe('upstream_unreachable');
    await abandonedRequest(
      port,
      { method: 'GET', path: '/hostile-api/abort-mid-body', headers: { ...auth, 'x-request-id': midBody } },
      { after: 'ms', ms: 2000 },
    );
    await abandonedRequest(
      port,
      { method: 'GET', path: '/hostile-api/hang', headers: { ...auth, 'x-request-id': hang } },
      { after: 'ready', ready: () => upstream.seenWithId(hang).length > 0 },
    );
    expect((await settledRowsFor(reset))[0]?.data).toMatchObject({
      decision: 'upstream_unreachable',
      status: 502,
    });
    const midRows = await settledRowsFor(midBody);
    expect(midRows).toHaveLength(1);
    expect(midRows[0]?.data).toMatchObject({ decision: 'allowed', status: 200, aborted: 'upstream' });
    const hangRows = await settledRowsFor(hang);
    expect(hangRows).toHaveLength(1);
    expect(hangRows[0]?.data).toMatchObject({ decision: 'allowed', status: 499, aborted: 'client' });
    for (const id of [reset, midBody, hang]) expect(upstream.seenWithId(id), id).toHaveLength(1);
  });
});

describe('one client call is one upstream call', () => {
  it('a GET answered 503 (with Retry-After: 0) is sent once, and the client gets the 503', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const id = newId('retry-503');
    const res = await rawRequest(port, 'GET', '/hostile-api/503', { ...auth, 'x-request-id': id });
    expect(res.status).toBe(503);
    // Give a hidden retry every chance to show up before counting.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(upstream.seenWithId(id)).toHaveLength(1);
    expect(await rowsFor(id)).toHaveLength(1);
  });
});

describe('client headers', () => {
  it('more than 100 client headers: 431 headers_too_large, audited, nothing forwarded', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const id = newId('padded');
    const res = await rawRequest(port, 'GET', '/hostile-api/reflect', {
      ...auth,
      'x-request-id': id,
      ...padding(150),
    });
    expect(res.status).toBe(431);
    expect(res.json()).toEqual({ error: 'headers_too_large', message: expect.any(String) });
    expect(upstream.seenWithId(id)).toHaveLength(0);
    expect((await settledRowsFor(id))[0]?.data).toMatchObject({ decision: 'headers_too_large', status: 431 });
  });

  it('2,000 client headers (past 16 KB): the same 431 from the parser, audited, nothing forwarded', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const seenBefore = upstream.seen.length;
    const refusals = sql`data->>'decision' = 'headers_too_large' and data->>'method' = ''`;
    const before = (await rowsWhere(refusals)).length;
    const res = await rawRequest(port, 'GET', '/hostile-api/reflect', { ...auth, ...padding(2000) });
    expect(res.status).toBe(431);
    expect(res.json()).toEqual({ error: 'headers_too_large', message: expect.any(String) });
    expect(upstream.seen.length).toBe(seenBefore);
    await eventually(async () => (await rowsWhere(refusals)).length === before + 1);
  });

  it("at the bound, the proxy's own headers go first and all reach the upstream", async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const id = newId('at-bound');
    // Host, Authorization, X-Request-Id, Connection and 96 more: 100, the most allowed.
    const res = await rawRequest(port, 'GET', '/hostile-api/reflect', {
      ...auth,
      'x-request-id': id,
      ...padding(96),
    });
    expect(res.status).toBe(200);
    const [seen] = upstream.seenWithId(id);
    expect(seen?.headers['x-api-key']).toBe(CREDENTIAL);
    expect(typeof seen?.headers['x-jitgate-identity']).toBe('string');
    // First on the wire after the two the HTTP client writes itself (host, connection), so no
    // upstream limit on the number of headers can drop them.
    expect(seen?.rawHeaderNames.slice(0, 5).map((n) => n.toLowerCase())).toEqual([
      'host',
      'connection',
      'x-api-key',
      'x-jitgate-identity',
      'x-request-id',
    ]);
  });

  it('strips routing and method-override headers, and underscore spellings of the names it injects', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const id = newId('routing');
    const routing = {
      'X-HTTP-Method-Override': 'DELETE',
      'X-HTTP-Method': 'DELETE',
      'X-Method-Override': 'DELETE',
      'X-Original-URL': '/admin/users',
      'X-Rewrite-URL': '/admin/users',
      'X-Forwarded-Host': 'admin.internal',
      'X-Forwarded-Prefix': '/admin',
      Forwarded: 'for=1.2.3.4;host=admin.internal;proto=https',
      X_Api_Key: 'forged-credential',
      'X-Api-Key': 'forged-credential',
      X_Jitgate_Identity: 'forged-identity',
      x_request_id: 'forged-id',
      'X-Kept': 'kept',
    };
    const res = await rawRequest(port, 'GET', '/hostile-api/reflect', {
      ...auth,
      ...routing,
      'x-request-id': id,
    });
    expect(res.status).toBe(200);
    const [seen] = upstream.seenWithId(id);
    const names = Object.keys(seen?.headers ?? {});
    for (const name of Object.keys(routing).filter((n) => n !== 'X-Kept' && n !== 'X-Api-Key')) {
      expect(names, name).not.toContain(name.toLowerCase());
    }
    expect(seen?.headers['x-api-key']).toBe(CREDENTIAL);
    expect(seen?.headers['x-kept']).toBe('kept');
    expect(JSON.stringify(seen?.headers)).not.toContain('forged');
    // The method and path the upstream acted on are the ones the scope allowed and the row shows.
    expect(seen?.method).toBe('GET');
    expect(seen?.url).toBe('/reflect');
  });

  it('property: whatever names a client sends, none it may not set reaches the upstream; the injected ones always do', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const dangerous = [
      'x-api-key',
      'x-jitgate-identity',
      'x-request-id',
      'x-http-method-override',
      'x-http-method',
      'x-method-override',
      'x-original-url',
      'x-rewrite-url',
      'x-forwarded-host',
      'x-forwarded-prefix',
      'forwarded',
      'proxy-authorization',
      'cookie',
    ];
    // Each dangerous name in a random spelling: case, and `_` for any of its dashes.
    const spelling = fc
      .tuple(fc.constantFrom(...dangerous), fc.array(fc.boolean(), { minLength: 24, maxLength: 24 }))
      .map(([name, flips]) =>
        [...name]
          .map((c, i) => (c === '-' && flips[i] ? '_' : flips[(i + 7) % 24] ? c.toUpperCase() : c))
          .join(''),
      );
    const benign = fc.constantFrom('accept', 'x-trace', 'user-agent', 'x-custom_field');
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.oneof(spelling, benign), { maxLength: 12, selector: (n) => n.toLowerCase() }),
        async (names) => {
          const id = newId('prop-headers');
          const headers: Record<string, string> = { ...auth };
          for (const name of names) headers[name] = 'client-value';
          headers['x-request-id'] = id;
          const res = await rawRequest(port, 'GET', '/hostile-api/reflect', headers);
          expect(res.status).toBe(200);
          const [seen] = upstream.seenWithId(id);
          expect(seen?.headers['x-api-key']).toBe(CREDENTIAL);
          expect(seen?.headers['x-jitgate-identity']).not.toBe('client-value');
          for (const [name, value] of Object.entries(seen?.headers ?? {})) {
            if (value !== 'client-value') continue;
            expect(dangerous, name).not.toContain(name.replaceAll('_', '-'));
          }
          for (const name of names) {
            if (dangerous.includes(name.toLowerCase().replaceAll('_', '-'))) continue;
            expect(seen?.headers[name.toLowerCase()], name).toBe('client-value');
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('methods and malformed requests', () => {
  it('never forwards TRACE or CONNECT, even on a scope that allows every method', async () => {
    const { auth, token } = await grantWithToken('hostile-api', 'any');
    const id = newId('trace');
    const trace = await rawRequest(port, 'TRACE', '/hostile-api/reflect', { ...auth, 'x-request-id': id });
    expect(trace.status).toBe(405);
    expect(trace.json()).toEqual({ error: 'method_not_allowed', message: expect.stringContaining('TRACE') });
    expect(trace.body).not.toContain(CREDENTIAL);
    expect(upstream.seenWithId(id)).toHaveLength(0);
    expect((await settledRowsFor(id))[0]).toMatchObject({
      kind: 'proxy.denied',
      data: { method: 'TRACE', decision: 'method_not_allowed', status: 405 },
    });

    const seenBefore = upstream.seen.length;
    const connectId = newId('connect');
    const answer = parseRawAnswer(
      await rawExchange(
        port,
        `CONNECT 127.0.0.1:${upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:${upstream.port}\r\nAuthorization: Bearer ${token}\r\nX-Request-Id: ${connectId}\r\n\r\n`,
      ),
    );
    expect(answer.status).toBe(405);
    expect(JSON.parse(answer.body)).toEqual({ error: 'method_not_allowed', message: expect.any(String) });
    expect(upstream.seen.length).toBe(seenBefore);
    expect((await settledRowsFor(connectId))[0]?.data).toMatchObject({
      method: 'CONNECT',
      decision: 'method_not_allowed',
    });
  });

  it('PROPFIND, QUERY and methods the parser cannot read get jitgate JSON denials, each audited', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    for (const method of ['PROPFIND', 'QUERY', 'MKCOL']) {
      const id = newId(method);
      const res = await rawRequest(port, method, '/hostile-api/x', { ...auth, 'x-request-id': id });
      expect(res.status, method).toBe(405);
      expect(res.json(), method).toEqual({ error: 'method_not_allowed', message: expect.any(String) });
      expect((await settledRowsFor(id))[0]?.data, method).toMatchObject({
        method,
        decision: 'method_not_allowed',
      });
    }
    const before = (await rowsWhere(sql`data->>'decision' = 'bad_request'`)).length;
    const brew = parseRawAnswer(await rawExchange(port, 'BREW /hostile-api/x HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(brew.status).toBe(400);
    expect(JSON.parse(brew.body)).toEqual({ error: 'bad_request', message: expect.any(String) });
    await eventually(
      async () => (await rowsWhere(sql`data->>'decision' = 'bad_request'`)).length === before + 1,
    );
  });

  it('URLs the router refuses (overlong UTF-8) get bad_path and an audit row', async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const id = newId('bad-url');
    const res = await rawRequest(port, 'GET', '/hostile-api/%c0%ae%c0%ae/admin', {
      ...auth,
      'x-request-id': id,
    });
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('bad_path');
    expect((await settledRowsFor(id))[0]).toMatchObject({
      kind: 'proxy.denied',
      data: { decision: 'bad_path', status: 400 },
    });
    expect(upstream.seenWithId(id)).toHaveLength(0);
  });
});

describe('refusals without a verified token are aggregated', () => {
  it('a flood writes a bounded number of rows per client and code, and their counts add up', async () => {
    const aggregated = aggregateRefusals(appender, { clock, detailPerKey: 10 });
    const floodPort = await startProxy(aggregated);
    const tag = newId('flood');
    const calls = 300;
    for (let i = 0; i < calls; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          rawRequest(floodPort, 'GET', '/hostile-api/x', { 'x-request-id': `${tag}-${i + j}` }),
        ),
      );
    }
    aggregated.flush();
    const rows = await rowsWhere(sql`data->>'requestId' like ${`${tag}-%`}`);
    // Ten in full, as evidence, then one row that counts the rest of the window.
    expect(rows.length).toBeLessThanOrEqual(11);
    const counted = rows.reduce(
      (n, r) => n + Number((r.data.aggregated as { count?: number })?.count ?? 1),
      0,
    );
    expect(counted).toBe(calls);
    expect(rows.every((r) => r.data.decision === 'missing_token' && r.kind === 'proxy.denied')).toBe(true);
    await aggregated.close();
  });
});

describe('error bodies carry a code, a plain message and the request id, never internals', () => {
  it('a database fault during an unknown-kid check: 500 internal_error, no SQL', async () => {
    const foreign = createMemoryKeyStore({ clock });
    await foreign.load();
    const token = await issueGrantToken(foreign, {
      grantId: '00000000-0000-4000-8000-000000000000',
      userId: 'U0SOMEONE',
      resource: 'hostile-api',
      scope: 'any',
      expiresAt: new Date(clock.now().getTime() + DAY),
      issuer: ISSUER,
    });
    const id = newId('db-fault');
    await database.db.execute(sql`alter table signing_keys rename to signing_keys_gone`);
    let res: Awaited<ReturnType<typeof rawRequest>>;
    try {
      res = await rawRequest(port, 'GET', '/hostile-api/x', {
        authorization: `Bearer ${token}`,
        'x-request-id': id,
      });
    } finally {
      await database.db.execute(sql`alter table signing_keys_gone rename to signing_keys`);
    }
    expect(res.status).toBe(500);
    expect(Object.keys(res.json()).sort()).toEqual(['error', 'message']);
    expect(res.json().error).toBe('internal_error');
    expect(res.json().message).toContain(id);
    expect(res.headers['x-request-id']).toBe(id);
    expect(res.body.toLowerCase()).not.toMatch(/select|signing_keys|relation|query/);
    // The detail is in the log, under the request id.
    expect(logLines.some((l) => l.includes(id) && l.includes('signing_keys'))).toBe(true);
    expect((await settledRowsFor(id))[0]?.data).toMatchObject({ decision: 'internal_error', status: 500 });
  });
});

describe('responses on a masked scope', () => {
  it('two Content-Type headers: 502 ambiguous_response, none of the body sent, audited', async () => {
    const { auth } = await grantWithToken('hostile-api', 'masked');
    const id = newId('dup-type');
    const res = await rawRequest(port, 'GET', '/hostile-api/dup-content-type', {
      ...auth,
      'x-request-id': id,
    });
    expect(res.status).toBe(502);
    expect(res.json()).toEqual({
      error: 'ambiguous_response',
      message: expect.stringContaining('Content-Type'),
    });
    expect(res.body).not.toContain(HOSTILE_SECRET);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect((await settledRowsFor(id))[0]?.data).toMatchObject({
      decision: 'ambiguous_response',
      status: 502,
    });
  });

  it('two Content-Encoding headers: 502 ambiguous_response, and the proxy keeps serving', async () => {
    const { auth } = await grantWithToken('hostile-api', 'masked');
    const id = newId('dup-encoding');
    const res = await rawRequest(port, 'GET', '/hostile-api/dup-content-encoding', {
      ...auth,
      'x-request-id': id,
    });
    expect(res.status).toBe(502);
    expect(res.json().error).toBe('ambiguous_response');
    expect(res.body).not.toContain(HOSTILE_SECRET);
    expect((await settledRowsFor(id))[0]?.data).toMatchObject({ decision: 'ambiguous_response' });
    expect((await rawRequest(port, 'GET', '/hostile-api/ok', auth)).status).toBe(200);
  });

  it('JSON nested 10,000 levels deep is masked all the way down', async () => {
    const { auth } = await grantWithToken('hostile-api', 'masked');
    const res = await rawRequest(port, 'GET', '/hostile-api/deep-json?depth=10000', auth);
    expect(res.status).toBe(200);
    expect(res.body).not.toContain(HOSTILE_SECRET);
    expect(res.body.split('"[masked]"').length - 1).toBe(10_000);
  });

  it('a contractor who POSTs deep JSON and GETs it back gets it masked, and the proxy keeps serving', async () => {
    const { auth } = await grantWithToken('hostile-api', 'masked');
    const stored = await rawRequest(
      port,
      'POST',
      '/hostile-api/store',
      { ...auth, 'content-type': 'application/json' },
      deepJson(5000),
    );
    expect(stored.status).toBe(201);
    const back = await rawRequest(port, 'GET', '/hostile-api/store', auth);
    expect(back.status).toBe(200);
    expect(back.body).not.toContain(HOSTILE_SECRET);
    expect((await rawRequest(port, 'GET', '/hostile-api/ok', auth)).status).toBe(200);
  });

  it('HEAD and 304 carry no body: they pass through', async () => {
    const { auth } = await grantWithToken('hostile-api', 'masked');
    const head = await rawRequest(port, 'HEAD', '/hostile-api/anything', auth);
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('application/json');
    expect(head.body).toBe('');
    const notModified = await rawRequest(port, 'GET', '/hostile-api/not-modified', {
      ...auth,
      'if-none-match': '"v1"',
    });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
  });
});

describe('identity assertion', () => {
  it("its jti is the proxy's own, never the client's X-Request-Id", async () => {
    const { auth } = await grantWithToken('hostile-api', 'any');
    const jtis: string[] = [];
    for (let i = 0; i < 2; i++) {
      const id = newId('same-id');
      const res = await rawRequest(port, 'GET', '/hostile-api/ok', { ...auth, 'x-request-id': id });
      expect(res.status).toBe(200);
      const assertion = upstream.seenWithId(id)[0]?.headers['x-jitgate-identity'];
      const claims = decodeJwt(assertion as string);
      expect(claims.request_id).toBe(id);
      expect(claims.jti).not.toBe(id);
      expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
      jtis.push(claims.jti as string);
    }
    expect(new Set(jtis).size).toBe(2);
  });
});

describe('slowloris', () => {
  it('400 sockets trickling their headers do not hurt other calls, and are cut at the headers timeout', async () => {
    const slowPort = await startProxy(appender, { clientHeadersTimeoutMs: 1000 });
    const { auth } = await grantWithToken('hostile-api', 'any');
    const answers: string[] = [];
    let closed = 0;
    const sockets = Array.from({ length: 400 }, () => {
      const socket = connect(slowPort, '127.0.0.1', () =>
        socket.write('GET /hostile-api/ok HTTP/1.1\r\nHost: x\r\n'),
      );
      let answer = '';
      socket.on('data', (chunk: Buffer) => {
        answer += chunk.toString('latin1');
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        closed++;
        answers.push(answer);
      });
      return socket;
    });
    // A header byte now and then keeps each of them "still sending".
    const trickle = setInterval(() => {
      for (const socket of sockets) if (!socket.destroyed) socket.write('X');
    }, 200);
    try {
      for (let i = 0; i < 50; i++) {
        const res = await rawRequest(slowPort, 'GET', '/hostile-api/ok', auth);
        expect(res.status).toBe(200);
      }
      await eventually(() => closed === 400, 5000);
    } finally {
      clearInterval(trickle);
      for (const socket of sockets) socket.destroy();
    }
    const timedOut = answers.filter((a) => parseRawAnswer(a).status === 408);
    expect(timedOut.length).toBeGreaterThan(390);
    expect(JSON.parse(parseRawAnswer(timedOut[0] ?? '').body)).toEqual({
      error: 'request_timeout',
      message: expect.any(String),
    });
  });
});
