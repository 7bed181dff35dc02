import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quotaSettler } from '../../src/access/quota.ts';
import { callAuditEvent } from '../../src/audit/call-row.ts';
import { createAuditAppender } from '../../src/audit/call-writer.ts';
import { grants, outbox } from '../../src/db/schema/index.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import { staticPolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView, type ManagedActiveGrantView } from '../../src/proxy/active-grants.ts';
import { MASKED } from '../../src/proxy/json-mask.ts';
import { createQuotaTracker } from '../../src/proxy/quota.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import type { CallSink } from '../../src/shared/call-record.ts';
import { systemClock } from '../../src/shared/clock.ts';
import {
  createMemoryKeyStore,
  createVerifier,
  IDENTITY_ASSERTION_TYPE,
  type KeyStore,
} from '../../src/tokens/index.ts';
import {
  arraySink,
  eventually,
  heldByViews,
  insertGrantWithToken,
  openTestDatabase,
  rawRequest,
} from '../helpers/proxy-fixtures.ts';

/**
 * The policy-depth features end to end through a listening proxy: IP allowlists and
 * X-Forwarded-For, quotas, JSON masking, the identity assertion and call capture.
 */

const ISSUER = 'https://jitgate.test';
const clock = systemClock;

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let keyStore: KeyStore;
let view: ManagedActiveGrantView;
let upstream: Server;
let upstreamUrl: string;
const seen: { url: string; headers: Record<string, string | string[] | undefined> }[] = [];
const started: FastifyInstance[] = [];

const CUSTOMERS = {
  customers: [
    {
      id: 1,
      email: 'ada@example.com',
      orders: [{ card: { number: '4111111111111111' }, ssn: '111-11-1111' }],
    },
    { id: 2, email: 'bob@example.com', orders: [] },
  ],
  meta: { ssn: '222-22-2222', page: 1 },
};

/** The credential the proxy injects into calls to reflect-api (whose upstream echoes it). */
const REFLECT_CREDENTIAL = 'up-secret-7Hq2xPzL9aWmC4';

/** An upstream with one fixed answer per path. */
function startUpstream(): Promise<void> {
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      const path = (req.url ?? '').split('?')[0];
      const json = (value: unknown, extra: Record<string, string> = {}) => {
        const body = Buffer.from(JSON.stringify(value));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, ...extra });
        res.end(body);
      };
      switch (path) {
        case '/customers':
          return json(CUSTOMERS, { etag: '"v1"' });
        case '/big': // over the 2KB mask bound, with a Content-Length
          return json({ items: Array.from({ length: 200 }, (_, i) => ({ i, email: `u${i}@example.com` })) });
        case '/big-chunked': {
          // Over the bound without a Content-Length: found out while reading.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"items":[');
          for (let i = 0; i < 200; i++) res.write(`${i ? ',' : ''}{"email":"u${i}@example.com"}`);
          res.end(']}');
          return;
        }
        case '/csv':
          res.writeHead(200, { 'content-type': 'text/csv' });
          return res.end('email\nada@example.com\n');
        case '/gzip': {
          const body = gzipSync(JSON.stringify(CUSTOMERS));
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
          return res.end(body);
        }
        case '/not-json':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"email": "ada@example.com"');
        case '/reflect': // a debug endpoint: the request's headers, as it got them
          return json({ headers: req.headers });
        case '/reflect-text':
          res.writeHead(200, { 'content-type': 'text/plain' });
          return res.end(
            Object.entries(req.headers)
              .map(([k, v]) => `${k}: ${String(v)}`)
              .join('\n'),
          );
        case '/reflect-token': // the credential's token alone, without its scheme
          return json({ token: String(req.headers['x-api-key']).split(' ')[1] });
        case '/echo':
          return json({
            got: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'),
            secret: 's3cr3t-response',
          });
        default:
          return json({ ok: true, path });
      }
    });
  });
  return new Promise((resolve) =>
    upstream.listen(0, '127.0.0.1', () => {
      upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
      resolve();
    }),
  );
}

const resource = (name: string, body: string) => `
  ${name}:
    upstream: ${upstreamUrl}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
${body}`;

function policyText(trust: string): string {
  return `${trust}
resources:${resource(
    'open-api',
    `    ip_allow: ["127.0.0.0/8", "::1/128"]
    scopes:
      read: { allow: ["GET /**"] }
      narrow: { allow: ["GET /**"], ip_allow: ["203.0.113.7"] }
`,
  )}${resource(
    'closed-api',
    `    ip_allow: ["203.0.113.0/24"]
    scopes:
      read: { allow: ["GET /**"] }
`,
  )}${resource(
    'quota-api',
    `    scopes:
      read: { allow: ["GET /**"], quota: { requests: 3 } }
      bytes: { allow: ["GET /**"], quota: { response_bytes: 100 } }
`,
  )}${resource(
    'mask-api',
    `    mask_max_bytes: 2KB
    scopes:
      read:
        allow: ["GET /**", "POST /echo"]
        mask: ["customers[*].email", "**.ssn", "customers[*].orders[*].card.number"]
      strict:
        allow: ["GET /**"]
        mask: ["**.email"]
        mask_required: true
      lean:
        allow: ["GET /**"]
        mask: ["customers[*].email", "meta"]
        mask_style: remove
`,
  )}${resource(
    'id-api',
    `    identity_assertion: { header: X-Caller, ttl: 30s }
    scopes:
      read: { allow: ["GET /**"] }
`,
  )}${resource(
    'capture-api',
    `    capture: { bodies: true, max_bytes: 48 }
    scopes:
      read:
        allow: ["GET /**", "POST /echo"]
        mask: ["**.password", "**.secret"]
`,
  )}${resource(
    'reflect-api',
    `    credential: { header: X-Api-Key, value: "Key \${REFLECT_CREDENTIAL}" }
    identity_assertion: { header: X-Caller, ttl: 30s }
    capture: { bodies: true, max_bytes: 4KB }
    scopes:
      read: { allow: ["POST /reflect*"] }
`,
  )}`;
}

async function startProxy(trust: string, sink: CallSink, quota = createQuotaTracker()) {
  const policy = parsePolicy(policyText(trust), {
    file: 'features.yml',
    env: { UPSTREAM: upstreamUrl, REFLECT_CREDENTIAL },
  });
  const server = createProxyServer({
    policy: staticPolicyStore(policy),
    grants: view,
    verifier: createVerifier(keyStore, { issuer: ISSUER, clock }),
    keyStore,
    issuer: ISSUER,
    clock,
    sink,
    quota,
    logger: pino({ level: 'silent' }),
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  started.push(server);
  return (server.server.address() as AddressInfo).port;
}

const grantWithToken = (resource: string, scope: string, quota?: { requests?: number; bytes?: number }) =>
  insertGrantWithToken(
    { database, keys: keyStore, issuer: ISSUER, seen: heldByViews(view) },
    {
      resource,
      scope,
      now: clock.now(),
      ...(quota?.requests !== undefined ? { quotaRequests: quota.requests } : {}),
      ...(quota?.bytes !== undefined ? { quotaResponseBytes: quota.bytes } : {}),
    },
  );

const sink = arraySink();
let port: number;

beforeAll(async () => {
  database = await openTestDatabase();
  await startUpstream();
  keyStore = createMemoryKeyStore({ clock });
  await keyStore.load();
  view = createActiveGrantView({ database, logger: pino({ level: 'silent' }) });
  await view.start();
  port = await startProxy('', sink);
});

afterAll(async () => {
  for (const server of started) await server.close();
  await view?.close();
  await new Promise<void>((resolve) => {
    upstream?.closeAllConnections();
    upstream?.close(() => resolve());
  });
  await database?.drop();
});

describe('IP allowlists', () => {
  it('forwards a call from an allowed address', async () => {
    const { auth } = await grantWithToken('open-api', 'read');
    expect((await rawRequest(port, 'GET', '/open-api/x', auth)).status).toBe(200);
  });

  it('refuses a resource allowlist miss with 403 ip_not_allowed before looking at the token, and records it', async () => {
    const res = await rawRequest(port, 'GET', '/closed-api/x', { authorization: 'Bearer not-even-a-token' });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ error: 'ip_not_allowed', message: expect.stringContaining('127.0.0.1') });
    await eventually(() => sink.records.some((r) => r.resource === 'closed-api'));
    const record = sink.records.find((r) => r.resource === 'closed-api')!;
    expect(record).toMatchObject({ decision: 'ip_not_allowed', status: 403, grantId: undefined });
    expect(record.clientIp).toMatch(/127\.0\.0\.1/);
    // The audit row says it too, and the denied-burst detector counts it (it is a denial).
    expect(callAuditEvent(record)).toMatchObject({
      kind: 'proxy.denied',
      data: { decision: 'ip_not_allowed' },
    });
  });

  it("applies the scope's allowlist on top of the resource's", async () => {
    const { grant, auth } = await grantWithToken('open-api', 'narrow');
    const res = await rawRequest(port, 'GET', '/open-api/x', auth);
    expect(res.status).toBe(403);
    expect(res.json().error).toBe('ip_not_allowed');
    await eventually(() => sink.records.some((r) => r.grantId === grant.id));
    expect(sink.records.find((r) => r.grantId === grant.id)).toMatchObject({
      decision: 'ip_not_allowed',
      scope: 'narrow',
    });
  });

  it('trust_proxy off (the default): a spoofed X-Forwarded-For changes nothing', async () => {
    const { auth } = await grantWithToken('closed-api', 'read');
    const res = await rawRequest(port, 'GET', '/closed-api/x', { ...auth, 'x-forwarded-for': '203.0.113.7' });
    expect(res.status).toBe(403);
    expect(res.json().error).toBe('ip_not_allowed');
    const narrow = await grantWithToken('open-api', 'narrow');
    const again = await rawRequest(port, 'GET', '/open-api/x', {
      ...narrow.auth,
      'x-forwarded-for': '203.0.113.7',
    });
    expect(again.status).toBe(403);
  });

  it('trust_proxy on: the entry the trusted hop appended counts, what the client wrote before it does not', async () => {
    const trustedSink = arraySink();
    const trusted = await startProxy('trust_proxy: { hops: 1, from: ["127.0.0.0/8"] }', trustedSink);
    const { grant, auth } = await grantWithToken('closed-api', 'read');
    // As a load balancer on 127.0.0.1 forwards a client at 203.0.113.7:
    const ok = await rawRequest(trusted, 'GET', '/closed-api/x', {
      ...auth,
      'x-forwarded-for': '203.0.113.7',
    });
    expect(ok.status).toBe(200);
    // A client at 192.0.2.99 claiming to be 203.0.113.7; the balancer appends the real address.
    const spoof = await rawRequest(trusted, 'GET', '/closed-api/x', {
      ...auth,
      'x-forwarded-for': '203.0.113.7, 192.0.2.99',
    });
    expect(spoof.status).toBe(403);
    expect(spoof.json()).toEqual({ error: 'ip_not_allowed', message: expect.stringContaining('192.0.2.99') });
    // The spoofed call is refused before its token is read, so it carries no grant id.
    await eventually(() => trustedSink.records.filter((r) => r.resource === 'closed-api').length === 2);
    expect(trustedSink.records.find((r) => r.grantId === grant.id)?.clientIp).toBe('203.0.113.7');
    expect(trustedSink.records.filter((r) => r.resource === 'closed-api').map((r) => r.clientIp)).toEqual([
      '203.0.113.7',
      '192.0.2.99',
    ]);
    // Not an address at all in the trusted position: refused, not guessed.
    const junk = await rawRequest(trusted, 'GET', '/closed-api/x', { ...auth, 'x-forwarded-for': 'unknown' });
    expect(junk.status).toBe(403);
  });
});

describe('quotas', () => {
  it('exhaustion → 403 quota_exhausted, the requester notified once, totals in the grant row', async () => {
    const quota = createQuotaTracker();
    const appender = createAuditAppender({
      db: database.db,
      flushIntervalMs: 5,
      quota,
      settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
    });
    const quotaPort = await startProxy('', appender, quota);
    const { grant, auth } = await grantWithToken('quota-api', 'read', { requests: 3 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await rawRequest(quotaPort, 'GET', '/quota-api/x', auth)).status);
    const denied = await rawRequest(quotaPort, 'GET', '/quota-api/x', auth);
    expect(statuses).toEqual([200, 200, 200]);
    expect(denied.status).toBe(403);
    expect(denied.json()).toEqual({ error: 'quota_exhausted', message: expect.stringContaining('quota') });
    await appender.flush();
    // Later calls stay refused, and another batch does not notify again.
    expect((await rawRequest(quotaPort, 'GET', '/quota-api/x', auth)).status).toBe(403);
    await appender.flush();
    const [row] = await database.db.select().from(grants).where(eq(grants.id, grant.id));
    expect(row).toMatchObject({ usedRequests: 3, quotaRequests: 3 });
    expect(row!.quotaExhaustedAt).toBeInstanceOf(Date);
    const notices = await database.db
      .select()
      .from(outbox)
      .where(
        and(
          eq(outbox.kind, 'grant_quota_exhausted'),
          eq(outbox.dedupeKey, `grant_quota_exhausted:${grant.id}`),
        ),
      );
    expect(notices).toHaveLength(1);
    expect(notices[0]!.payload).toEqual({ kind: 'grant_quota_exhausted', grantId: grant.id });
    // The live view got the new totals through the feed.
    await eventually(() => {
      const found = view.lookup(grant.id);
      return found.kind === 'active' && found.grant.usedRequests === 3;
    });
    await appender.close();
  });

  it('two proxies share one quota through the database', async () => {
    const make = async () => {
      const quota = createQuotaTracker();
      const appender = createAuditAppender({
        db: database.db,
        flushIntervalMs: 5,
        quota,
        settleQuota: quotaSettler({ grantChannel: database.channel('grants') }),
      });
      return { appender, port: await startProxy('', appender, quota) };
    };
    const a = await make();
    const b = await make();
    const { grant, auth } = await grantWithToken('quota-api', 'read', { requests: 5 });
    const allowed: string[] = [];
    for (let i = 0; i < 8; i++) {
      const proxy = i % 2 === 0 ? a : b;
      const res = await rawRequest(proxy.port, 'GET', '/quota-api/x', auth);
      if (res.status === 200) allowed.push(i % 2 === 0 ? 'a' : 'b');
      else expect(res.json().error).toBe('quota_exhausted');
      // Each call committed and seen by the feed before the next: the count is then exact.
      await proxy.appender.flush();
      const committed = allowed.length;
      await eventually(() => {
        const found = view.lookup(grant.id);
        return found.kind === 'active' && found.grant.usedRequests === committed;
      });
    }
    expect(allowed).toEqual(['a', 'b', 'a', 'b', 'a']);
    await a.appender.close();
    await b.appender.close();
  });

  it('a byte quota refuses the calls after the one that used it up', async () => {
    const { auth } = await grantWithToken('quota-api', 'bytes', { bytes: 100 });
    const first = await rawRequest(
      port,
      'GET',
      '/quota-api/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
      auth,
    );
    expect(first.status).toBe(200);
    expect(Buffer.byteLength(first.body)).toBeGreaterThan(100);
    const second = await rawRequest(port, 'GET', '/quota-api/x', auth);
    expect(second.status).toBe(403);
    expect(second.json().error).toBe('quota_exhausted');
  });
});

describe('response masking', () => {
  it('masks nested arrays and drops the stale length and etag', async () => {
    const { auth } = await grantWithToken('mask-api', 'read');
    const before = seen.length;
    const res = await rawRequest(port, 'GET', '/mask-api/customers', { ...auth, 'accept-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({
      customers: [
        { id: 1, email: MASKED, orders: [{ card: { number: MASKED }, ssn: MASKED }] },
        { id: 2, email: MASKED, orders: [] },
      ],
      meta: { ssn: MASKED, page: 1 },
    });
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
    expect(res.headers.etag).toBeUndefined();
    // Asked upstream for an uncompressed body, whatever the client accepts.
    expect(seen[before]!.headers['accept-encoding']).toBe('identity');
  });

  it('removes keys with mask_style remove', async () => {
    const { auth } = await grantWithToken('mask-api', 'lean');
    const res = await rawRequest(port, 'GET', '/mask-api/customers', auth);
    expect(res.json()).toEqual({
      customers: [
        { id: 1, orders: [{ card: { number: '4111111111111111' }, ssn: '111-11-1111' }] },
        { id: 2, orders: [] },
      ],
    });
  });

  it.each([
    ['/big', 'with a Content-Length'],
    ['/big-chunked', 'streamed without a length'],
  ])(
    'refuses a body larger than the buffer bound (%s, %s) with 502 mask_too_large, sending none of it',
    async (path) => {
      const { grant, auth } = await grantWithToken('mask-api', 'read');
      const res = await rawRequest(port, 'GET', `/mask-api${path}`, auth);
      expect(res.status).toBe(502);
      expect(res.json()).toEqual({ error: 'mask_too_large', message: expect.stringContaining('2048') });
      expect(res.body).not.toContain('@example.com');
      await eventually(() => sink.records.some((r) => r.grantId === grant.id));
      expect(sink.records.find((r) => r.grantId === grant.id)).toMatchObject({
        decision: 'mask_too_large',
        status: 502,
      });
    },
  );

  it('passes non-JSON untouched unless mask_required, then 502 mask_unsupported', async () => {
    const read = await grantWithToken('mask-api', 'read');
    const csv = await rawRequest(port, 'GET', '/mask-api/csv', read.auth);
    expect(csv.status).toBe(200);
    expect(csv.body).toBe('email\nada@example.com\n');
    const strict = await grantWithToken('mask-api', 'strict');
    const refused = await rawRequest(port, 'GET', '/mask-api/csv', strict.auth);
    expect(refused.status).toBe(502);
    expect(refused.json()).toEqual({
      error: 'mask_unsupported',
      message: expect.stringContaining('text/csv'),
    });
    expect(refused.headers['content-type']).toMatch(/application\/json/);
  });

  it('refuses a compressed or broken JSON body rather than pass it unmasked', async () => {
    const { auth } = await grantWithToken('mask-api', 'read');
    for (const path of ['/gzip', '/not-json']) {
      const res = await rawRequest(port, 'GET', `/mask-api${path}`, auth);
      expect(res.status, path).toBe(502);
      expect(res.json().error).toBe('mask_unsupported');
      expect(res.headers['content-encoding']).toBeUndefined();
    }
  });
});

describe('identity assertion', () => {
  it('sends a short-lived JWT that verifies against the proxy JWKS, replacing any the client sent', async () => {
    const { grant, auth } = await grantWithToken('id-api', 'read');
    const before = seen.length;
    const res = await rawRequest(port, 'GET', '/id-api/x', {
      ...auth,
      'x-caller': 'forged',
      'x-request-id': 'req-id-1',
    });
    expect(res.status).toBe(200);
    const assertion = seen[before]!.headers['x-caller'];
    expect(typeof assertion).toBe('string');
    expect(assertion).not.toBe('forged');
    const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(assertion as string, jwks, {
      issuer: ISSUER,
      audience: 'id-api',
      typ: IDENTITY_ASSERTION_TYPE,
    });
    expect(payload).toMatchObject({
      sub: grant.userId,
      grant: grant.id,
      scope: 'read',
      request_id: 'req-id-1',
    });
    // The client chose the request id; the assertion's jti is the proxy's own (issue 14).
    expect(payload.jti).not.toBe('req-id-1');
    expect(payload.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(payload.exp! - payload.iat!).toBe(30);
    expect(protectedHeader.alg).toBe('EdDSA');
    // It is no grant token: the proxy refuses it as a bearer.
    const replay = await rawRequest(port, 'GET', '/id-api/x', {
      authorization: `Bearer ${assertion as string}`,
    });
    expect(replay.status).toBe(401);
  });
});

describe('call capture', () => {
  it('captures request and response bodies truncated to max_bytes and masked, never headers', async () => {
    const { grant, auth } = await grantWithToken('capture-api', 'read');
    const body = JSON.stringify({ password: 'hunter2-hunter2', note: 'n'.repeat(200) });
    const res = await rawRequest(
      port,
      'POST',
      '/capture-api/echo',
      { ...auth, 'content-type': 'application/json', cookie: 'session=abc' },
      body,
    );
    expect(res.status).toBe(200);
    // The client itself gets the full, masked response (the scope masks responses too).
    expect(res.json()).toMatchObject({ got: { password: MASKED }, secret: MASKED });
    await eventually(() => sink.records.some((r) => r.grantId === grant.id));
    const record = sink.records.find((r) => r.grantId === grant.id)!;
    const { request, response } = record.capture!;
    expect(request).toMatchObject({ encoding: 'utf8', bytes: Buffer.byteLength(body), truncated: true });
    expect(Buffer.byteLength(request!.text)).toBeLessThanOrEqual(48);
    expect(request!.text).toContain(MASKED);
    expect(request!.text).not.toContain('hunter2');
    expect(response).toMatchObject({ truncated: true });
    expect(Buffer.byteLength(response!.text)).toBeLessThanOrEqual(48);
    expect(response!.text).not.toContain('hunter2');
    const row = JSON.stringify(callAuditEvent(record));
    expect(row).toContain('"capture"');
    for (const secret of ['hunter2', 'session=abc', auth.authorization.slice(7)])
      expect(row).not.toContain(secret);
  });

  it('never keeps what the proxy injected, when the upstream echoes it back', async () => {
    const { grant, auth } = await grantWithToken('reflect-api', 'read');
    for (const path of ['/reflect', '/reflect-text', '/reflect-token']) {
      const before = seen.length;
      const res = await rawRequest(
        port,
        'POST',
        `/reflect-api${path}`,
        {
          ...auth,
          'content-type': 'text/plain',
        },
        `my own body, not ${REFLECT_CREDENTIAL.slice(0, 3)}`,
      );
      expect(res.status).toBe(200);
      const got = seen[before]!.headers;
      // The upstream did get both, so an echo has something to leak.
      expect(got['x-api-key']).toBe(`Key ${REFLECT_CREDENTIAL}`);
      const assertion = String(got['x-caller']);
      expect(assertion.split('.')).toHaveLength(3);
      await eventually(() => sink.records.some((r) => r.grantId === grant.id && r.path === path));
      const record = sink.records.find((r) => r.grantId === grant.id && r.path === path)!;
      const row = JSON.stringify(callAuditEvent(record));
      expect(record.capture?.response?.text).toContain('[redacted]');
      expect(record.capture?.request?.text).toBe(`my own body, not ${REFLECT_CREDENTIAL.slice(0, 3)}`);
      for (const secret of [REFLECT_CREDENTIAL, assertion, assertion.split('.')[2]!])
        expect(row).not.toContain(secret);
    }
  });

  it('keeps no request entry for a call without a body', async () => {
    const { grant, auth } = await grantWithToken('capture-api', 'read');
    await rawRequest(port, 'GET', '/capture-api/x', auth);
    await eventually(() => sink.records.some((r) => r.grantId === grant.id));
    const record = sink.records.find((r) => r.grantId === grant.id)!;
    expect(record.capture?.request).toBeUndefined();
    expect(record.capture?.response?.text).toBe('{"ok":true,"path":"/x"}');
  });
});
