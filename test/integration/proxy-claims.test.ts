import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticPolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView, type ManagedActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import type { CallRecord } from '../../src/shared/call-record.ts';
import { manualClock } from '../../src/shared/clock.ts';
import {
  createMemoryKeyStore,
  createVerifier,
  issueGrantToken,
  type KeyStore,
} from '../../src/tokens/index.ts';
import {
  arraySink,
  eventually,
  type GrantWithToken,
  heldByViews,
  insertGrant,
  insertGrantWithToken,
  openTestDatabase,
  rawRequest,
  startEchoUpstream,
  type TestGrant,
  testPolicy,
} from '../helpers/proxy-fixtures.ts';

/**
 * Tokens that verify (our key, our issuer, unexpired) but whose claims disagree with their grant's
 * row, and grants that have not started. Every other proxy test signs a token from the row's own
 * fields, so these are the only calls that reach the row-vs-claims and start-time checks of
 * src/proxy/authorize.ts. Each directed test also makes a call that must be forwarded, so a denial
 * is known to come from the disagreement and not from a grant the proxy does not hold.
 */

const ISSUER = 'https://jitgate.test';
const DAY = 86_400_000;
const HOUR = 3_600_000;
const MISMATCH = 'This token does not match its grant.';

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
const clock = manualClock(new Date('2026-01-05T10:00:00Z'));
let keyStore: KeyStore;
let view: ManagedActiveGrantView;
let app: FastifyInstance;
let port: number;
const sink = arraySink();

beforeAll(async () => {
  database = await openTestDatabase();
  upstream = await startEchoUpstream();
  keyStore = createMemoryKeyStore({ clock });
  await keyStore.load();
  view = createActiveGrantView({ database, logger: pino({ level: 'silent' }) });
  await view.start();
  app = createProxyServer({
    policy: staticPolicyStore(testPolicy(upstream.url)),
    grants: view,
    verifier: createVerifier(keyStore, { issuer: ISSUER, clock }),
    keyStore,
    clock,
    sink,
    logger: pino({ level: 'silent' }),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app?.close();
  await view?.close();
  await upstream?.close();
  await database?.drop();
});

const grantWithToken = (resource: string, scope: string): Promise<GrantWithToken> =>
  insertGrantWithToken(
    { database, keys: keyStore, issuer: ISSUER, seen: heldByViews(view) },
    { resource, scope, now: clock.now() },
  );

/** A token signed by the proxy's own key for `grant`, with some of its claims replaced. */
const signedFor = (
  grant: TestGrant,
  claims: Partial<{ userId: string; resource: string; scope: string }> = {},
): Promise<string> =>
  issueGrantToken(keyStore, {
    grantId: grant.id,
    userId: claims.userId ?? grant.userId,
    resource: claims.resource ?? grant.resource,
    scope: claims.scope ?? grant.scope,
    expiresAt: new Date(clock.now().getTime() + DAY),
    issuer: ISSUER,
  });

let calls = 0;

/** One call with its own request id: its answer, whether the upstream saw it, and its call record. */
async function call(
  method: string,
  path: string,
  token: string,
): Promise<{ status: number; body: Record<string, unknown>; forwarded: number; record: CallRecord }> {
  const requestId = `claims-${++calls}`;
  const before = upstream.seen.length;
  const res = await rawRequest(port, method, path, {
    authorization: `Bearer ${token}`,
    'x-request-id': requestId,
  });
  const forwarded = upstream.seen.length - before;
  await eventually(() => sink.records.some((r) => r.requestId === requestId));
  const record = sink.records.find((r) => r.requestId === requestId)!;
  return { status: res.status, body: res.json(), forwarded, record };
}

describe('proxy: a valid signature on claims its grant does not have', () => {
  it('refuses a write scope signed for a read grant, on a path both scopes allow', async () => {
    const { grant, token } = await grantWithToken('billing-api', 'read');
    const genuine = await call('GET', '/billing-api/invoices/1', token);
    expect(genuine.status).toBe(200);
    expect(genuine.forwarded).toBe(1);

    for (const scope of ['write', 'admin']) {
      const swapped = await call('GET', '/billing-api/invoices/1', await signedFor(grant, { scope }));
      expect(swapped.status, scope).toBe(403);
      expect(swapped.body).toEqual({ error: 'grant_not_found', message: MISMATCH });
      expect(swapped.forwarded).toBe(0);
      // The record names the grant and the scope the token claimed, as the evidence of what was tried.
      expect(swapped.record).toMatchObject({
        decision: 'grant_not_found',
        status: 403,
        resource: 'billing-api',
        grantId: grant.id,
        userId: grant.userId,
        scope,
        path: '/invoices/1',
      });
    }
    // A write-only call: refused on the claims, not merely out of the read scope.
    const post = await call('POST', '/billing-api/invoices', await signedFor(grant, { scope: 'write' }));
    expect(post.status).toBe(403);
    expect(post.body.error).toBe('grant_not_found');
    expect(post.forwarded).toBe(0);
  });

  it("refuses another user's id signed on this user's grant", async () => {
    const { grant, token } = await grantWithToken('billing-api', 'read');
    expect((await call('GET', '/billing-api/invoices/2', token)).status).toBe(200);

    const other = await call(
      'GET',
      '/billing-api/invoices/2',
      await signedFor(grant, { userId: 'U0INTRUDER' }),
    );
    expect(other.status).toBe(403);
    expect(other.body).toEqual({ error: 'grant_not_found', message: MISMATCH });
    expect(other.forwarded).toBe(0);
    expect(other.record).toMatchObject({
      decision: 'grant_not_found',
      status: 403,
      grantId: grant.id,
      userId: 'U0INTRUDER',
      scope: 'read',
    });
  });

  it('refuses another resource: wrong_resource at the named resource, grant_not_found at the claimed one', async () => {
    const { grant, token } = await grantWithToken('billing-api', 'read');
    expect((await call('GET', '/billing-api/invoices/3', token)).status).toBe(200);
    const forOther = await signedFor(grant, { resource: 'other-api' });

    // Called at the grant's resource, the audience check (step 3) refuses first.
    const atGrant = await call('GET', '/billing-api/invoices/3', forOther);
    expect(atGrant.status).toBe(403);
    expect(atGrant.body.error).toBe('wrong_resource');
    expect(atGrant.forwarded).toBe(0);
    expect(atGrant.record).toMatchObject({ decision: 'wrong_resource', status: 403, grantId: grant.id });

    // Called at the resource the token names, only the row's resource tells it apart.
    const atClaimed = await call('GET', '/other-api/anything', forOther);
    expect(atClaimed.status).toBe(403);
    expect(atClaimed.body).toEqual({ error: 'grant_not_found', message: MISMATCH });
    expect(atClaimed.forwarded).toBe(0);
    expect(atClaimed.record).toMatchObject({
      decision: 'grant_not_found',
      status: 403,
      resource: 'other-api',
      grantId: grant.id,
      userId: grant.userId,
    });
  });

  it('never forwards a validly signed token whose resource, user or scope differs from its grant', async () => {
    const resources = ['billing-api', 'other-api', 'tiny-api'] as const;
    const rows = await Promise.all(resources.map((r) => grantWithToken(r, 'read')));
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...rows),
        fc.record({
          resource: fc.constantFrom(...resources),
          userId: fc.oneof(fc.constant('U0CONTRACTOR'), fc.stringMatching(/^U[0-9A-Z]{1,12}$/)),
          scope: fc.oneof(fc.constantFrom('read', 'write', 'admin'), fc.stringMatching(/^[a-z_]{1,12}$/)),
        }),
        async ({ grant }, claims) => {
          fc.pre(
            claims.resource !== grant.resource ||
              claims.userId !== grant.userId ||
              claims.scope !== grant.scope,
          );
          // Called at the resource the token names, so the audience check passes and the row decides.
          const res = await call('GET', `/${claims.resource}/invoices/1`, await signedFor(grant, claims));
          expect(res.forwarded).toBe(0);
          expect(res.status).toBe(403);
          expect(res.body.error).toBe('grant_not_found');
          expect(res.record).toMatchObject({ decision: 'grant_not_found', grantId: grant.id });
        },
      ),
      { numRuns: 100 },
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

// Last in the file: these tests move the shared clock forward.
describe('proxy: a grant whose start is still to come', () => {
  // Approval writes starts_at = its own now (src/access/approval.ts); the schema allows any start
  // before the expiry, so a later start reaches a proxy through a clock ahead of the proxy's or a
  // row written by hand.
  it('refuses its genuine token until the start, then forwards it', async () => {
    const now = clock.now().getTime();
    const grant = await insertGrant(database, {
      resource: 'billing-api',
      scope: 'read',
      startsAt: new Date(now + HOUR),
      expiresAt: new Date(now + DAY),
    });
    await eventually(() => view.lookup(grant.id).kind === 'active');
    const token = await signedFor(grant);

    const early = await call('GET', '/billing-api/invoices/4', token);
    expect(early.status).toBe(403);
    expect(early.body).toEqual({ error: 'grant_not_found', message: 'This grant has not started yet.' });
    expect(early.forwarded).toBe(0);
    expect(early.record).toMatchObject({
      decision: 'grant_not_found',
      status: 403,
      grantId: grant.id,
      userId: grant.userId,
      scope: 'read',
    });

    clock.advance(HOUR - 1);
    expect((await call('GET', '/billing-api/invoices/4', token)).status).toBe(403);
    clock.advance(1);
    const started = await call('GET', '/billing-api/invoices/4', token);
    expect(started.status).toBe(200);
    expect(started.forwarded).toBe(1);
    expect(started.record).toMatchObject({ decision: 'allowed', grantId: grant.id });
  });

  // The token's own not-before is the verifier's check (jose's nbf), not the grant row's start.
  it('refuses a token whose nbf is to come as invalid_token, on a grant that has started', async () => {
    const { grant, token } = await grantWithToken('billing-api', 'read');
    expect((await call('GET', '/billing-api/invoices/5', token)).status).toBe(200);
    const notYet = await issueGrantToken(keyStore, {
      grantId: grant.id,
      userId: grant.userId,
      resource: grant.resource,
      scope: grant.scope,
      notBefore: new Date(clock.now().getTime() + 10 * 60_000),
      expiresAt: new Date(clock.now().getTime() + DAY),
      issuer: ISSUER,
    });
    const early = await call('GET', '/billing-api/invoices/5', notYet);
    expect(early.status).toBe(401);
    expect(early.body).toEqual({ error: 'invalid_token', message: 'token claim "nbf" is not acceptable' });
    expect(early.forwarded).toBe(0);
    // Refused before its claims are trusted: the record names no grant.
    expect(early.record).toMatchObject({ decision: 'invalid_token', status: 401, grantId: undefined });

    // Past nbf (and the verifier's 5 s memory of the failure) the same token is forwarded.
    clock.advance(10 * 60_000);
    expect((await call('GET', '/billing-api/invoices/5', notYet)).status).toBe(200);
  });
});
