import type { AddressInfo } from 'node:net';
import * as dpopPackage from 'dpop';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { exportJWK } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DeviceKey,
  generateDeviceKey,
  importDeviceKey,
  makeProof,
} from '../../src/cli/contractor/device-key.ts';
import { startForwarder, type TokenSource } from '../../src/cli/contractor/forwarder.ts';
import { type DeviceDeps, linkDeviceByCode, revokeDevice, startPairing } from '../../src/devices/index.ts';
import { parsePolicy } from '../../src/policy/loader.ts';
import { staticPolicyStore } from '../../src/policy/store.ts';
import { createActiveGrantView, type ManagedActiveGrantView } from '../../src/proxy/active-grants.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createDpopVerifier } from '../../src/tokens/dpop.ts';
import { createDpopNonces } from '../../src/tokens/dpop-nonces.ts';
import {
  connectReplayRedis,
  createMemoryReplayCache,
  createRedisReplayCache,
  type ReplayCache,
} from '../../src/tokens/dpop-replay.ts';
import { createMemoryKeyStore, createVerifier, type KeyStore } from '../../src/tokens/index.ts';
import {
  arraySink,
  eventually,
  heldByViews,
  insertGrantWithToken,
  openTestDatabase,
  rawRequest,
  startEchoUpstream,
} from '../helpers/proxy-fixtures.ts';
import { randomPrefix } from '../helpers/redis-fixtures.ts';
import { TEST_REDIS_URL } from '../helpers/redis-server.ts';

/**
 * The proxy's side of issue 17 against real PostgreSQL: a token bound to a device key (`cnf.jkt`)
 * works only as `Authorization: DPoP` with a proof by that key, each way a proof fails has its own
 * code and call record, `sender_constraint: dpop` refuses bearer tokens, and a revoked device's
 * tokens are refused through the grant view, whose feed carries device revocations.
 */
const ISSUER = 'https://jitgate.test';
const clock = systemClock;
let database: Awaited<ReturnType<typeof openTestDatabase>>;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let keyStore: KeyStore;
let view: ManagedActiveGrantView;
let app: FastifyInstance;
let nonceApp: FastifyInstance;
let port: number;
let noncePort: number;
let publicUrl = '';
const sink = arraySink();
let deviceDeps: DeviceDeps;

const policyYaml = (upstreamUrl: string) => `
resources:
  billing-api:
    upstream: ${upstreamUrl}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    scopes:
      read: { allow: ["GET /invoices/**"] }
      write: { allow: ["GET /**", "POST /invoices"] }
      secret: { allow: ["GET /**"], sender_constraint: dpop }
  bound-api:
    upstream: ${upstreamUrl}
    approvers: { users: [U0APPROVER] }
    approval_channel: C0APPROVAL
    sender_constraint: dpop
    scopes:
      read: { allow: ["GET /**"] }
`;

async function startProxy(
  withNonces: boolean,
  shared?: { replay: ReplayCache; publicUrl: string },
): Promise<{ server: FastifyInstance; port: number }> {
  let url = shared?.publicUrl ?? '';
  const server = createProxyServer({
    policy: staticPolicyStore(parsePolicy(policyYaml(upstream.url), { file: 'dpop.yml', env: {} })),
    grants: view,
    verifier: createVerifier(keyStore, { issuer: ISSUER, clock }),
    keyStore,
    clock,
    sink,
    logger: pino({ level: 'silent' }),
    dpop: {
      verifier: createDpopVerifier({
        clock,
        replay: shared?.replay ?? createMemoryReplayCache({ clock }),
        ...(withNonces ? { nonces: createDpopNonces({ secret: new Uint8Array(32).fill(7), clock }) } : {}),
      }),
      publicUrl: () => url,
      deviceState: (thumbprint) => view.deviceKeyState(thumbprint),
    },
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  const listening = (server.server.address() as AddressInfo).port;
  if (!shared) url = `http://127.0.0.1:${listening}`;
  return { server, port: listening };
}

/** A device paired and linked to `userId` through the device actions, and its key. */
async function linkedDevice(userId: string): Promise<{ key: DeviceKey; id: string }> {
  const key = await importDeviceKey(await generateDeviceKey('ES256'));
  const started = await startPairing(deviceDeps, {
    name: `${userId}-laptop`,
    publicJwk: key.publicJwk,
    thumbprint: key.thumbprint,
  });
  if (!started.ok) throw new Error(started.message);
  const linked = await linkDeviceByCode(deviceDeps, { code: started.value.code, userId });
  if (!linked.ok) throw new Error(linked.message);
  return { key, id: started.value.device.id };
}

const grantToken = (resource: string, scope: string, boundKey?: string, userId = 'U0CONTRACTOR') =>
  insertGrantWithToken(
    { database, keys: keyStore, issuer: ISSUER, seen: heldByViews(view) },
    { resource, scope, userId, lifetimeMs: 3_600_000, ...(boundKey ? { boundKey } : {}) },
  );

const urlOf = (path: string, on = port) => `http://127.0.0.1:${on}${path}`;
const proofFor = (key: DeviceKey, method: string, path: string, token: string, extra = {}) =>
  makeProof(key, { method, url: urlOf(path), accessToken: token, ...extra });
const boundHeaders = async (key: DeviceKey, method: string, path: string, token: string, extra = {}) => ({
  authorization: `DPoP ${token}`,
  dpop: await proofFor(key, method, path, token, extra),
});
const recordOf = (grantId: string) => sink.records.filter((r) => r.grantId === grantId).at(-1);

beforeAll(async () => {
  database = await openTestDatabase();
  upstream = await startEchoUpstream();
  keyStore = createMemoryKeyStore({ clock });
  await keyStore.load();
  view = createActiveGrantView({ database, logger: pino({ level: 'silent' }) });
  await view.start();
  deviceDeps = { db: database.db, clock, grantFeedChannel: database.channel('grants') };
  ({ server: app, port } = await startProxy(false));
  ({ server: nonceApp, port: noncePort } = await startProxy(true));
  publicUrl = urlOf('');
});

afterAll(async () => {
  await app?.close();
  await nonceApp?.close();
  await view?.close();
  await upstream?.close();
  await database?.drop();
});

describe('a device-bound token at the proxy', () => {
  it('goes through as "DPoP <token>" with a fresh proof by its key; the upstream sees neither token nor proof', async () => {
    const { key } = await linkedDevice('U0ALICE');
    const { grant, token } = await grantToken('billing-api', 'write', key.thumbprint, 'U0ALICE');
    for (const [method, path] of [
      ['GET', '/billing-api/invoices/1?page=2'],
      ['POST', '/billing-api/invoices'],
      ['GET', '/billing-api/invoices/1'],
    ] as const) {
      const headers = await boundHeaders(key, method, path, token);
      const response = await rawRequest(port, method, path, headers, method === 'POST' ? '{}' : undefined);
      expect(response.status).toBe(200);
      const seen = upstream.seen.at(-1)!;
      expect(seen.headers.authorization).toBeUndefined();
      expect(seen.headers.dpop).toBeUndefined();
    }
    expect(recordOf(grant.id)).toMatchObject({ decision: 'allowed', userId: 'U0ALICE' });
    expect(publicUrl).toBe(`http://127.0.0.1:${port}`);
  });

  it('each way a proof fails is refused with its own code, a DPoP challenge, and a record naming the grant', async () => {
    const { key } = await linkedDevice('U0BOB');
    const { grant, token } = await grantToken('billing-api', 'write', key.thumbprint, 'U0BOB');
    const path = '/billing-api/invoices/7';
    const thief = await importDeviceKey(await generateDeviceKey('EdDSA'));
    const other = await grantToken('billing-api', 'write', key.thumbprint, 'U0BOB');
    const replayed = await boundHeaders(key, 'GET', path, token);
    expect((await rawRequest(port, 'GET', path, replayed)).status).toBe(200);
    const cases: [string, Record<string, string>, number][] = [
      ['dpop_required', { authorization: `Bearer ${token}` }, 401],
      ['dpop_required', { authorization: `DPoP ${token}` }, 401],
      ['dpop_wrong_method', await boundHeaders(key, 'POST', path, token), 401],
      ['dpop_wrong_url', await boundHeaders(key, 'GET', '/billing-api/invoices/8', token), 401],
      ['dpop_replayed', replayed, 401],
      [
        'dpop_stale',
        await boundHeaders(key, 'GET', path, token, { now: new Date(Date.now() - 5 * 60_000) }),
        401,
      ],
      [
        'dpop_wrong_key',
        {
          authorization: `DPoP ${token}`,
          dpop: await makeProof(thief, { method: 'GET', url: urlOf(path), accessToken: token }),
        },
        401,
      ],
      [
        'dpop_ath_mismatch',
        { authorization: `DPoP ${token}`, dpop: await proofFor(key, 'GET', path, other.token) },
        401,
      ],
      ['dpop_invalid', { authorization: `DPoP ${token}`, dpop: 'not.a.proof' }, 401],
    ];
    for (const [code, headers, status] of cases) {
      const before = sink.records.length;
      const response = await rawRequest(port, 'GET', path, headers);
      expect({ code, status: response.status, error: response.json().error }).toEqual({
        code,
        status,
        error: code,
      });
      expect(response.headers['www-authenticate']).toMatch(
        /^DPoP error="(invalid_token|invalid_dpop_proof)", algs="ES256 EdDSA Ed25519"$/,
      );
      const records = sink.records.slice(before);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ decision: code, grantId: grant.id, userId: 'U0BOB' });
    }
  });

  it('an unbound token sent as DPoP is refused: the scheme says what the token is', async () => {
    const { token } = await grantToken('billing-api', 'read');
    const response = await rawRequest(port, 'GET', '/billing-api/invoices/1', {
      authorization: `DPoP ${token}`,
    });
    expect(response.status).toBe(401);
    expect(response.json().error).toBe('invalid_token');
  });

  it('proofs made by the independent `dpop` package are accepted', async () => {
    const pair = await dpopPackage.generateKeyPair('ES256', { extractable: true });
    const key = await importDeviceKey({ alg: 'ES256', privateJwk: await exportJWK(pair.privateKey) });
    const started = await startPairing(deviceDeps, {
      name: 'carol-2',
      publicJwk: key.publicJwk,
      thumbprint: key.thumbprint,
    });
    if (!started.ok) throw new Error(started.message);
    expect(await linkDeviceByCode(deviceDeps, { code: started.value.code, userId: 'U0CAROL' })).toMatchObject(
      { ok: true },
    );
    const { token } = await grantToken('billing-api', 'read', key.thumbprint, 'U0CAROL');
    const path = '/billing-api/invoices/3';
    const proof = await dpopPackage.generateProof(pair, urlOf(path), 'GET', undefined, token);
    const response = await rawRequest(port, 'GET', path, { authorization: `DPoP ${token}`, dpop: proof });
    expect(response.status).toBe(200);
  });

  it('with nonces on, a proof without one gets 401 dpop_nonce_required and a DPoP-Nonce; signed with it, the call goes through', async () => {
    const { key } = await linkedDevice('U0DAN');
    const { token } = await grantToken('billing-api', 'read', key.thumbprint, 'U0DAN');
    const path = '/billing-api/invoices/1';
    const url = urlOf(path, noncePort);
    const first = await rawRequest(noncePort, 'GET', path, {
      authorization: `DPoP ${token}`,
      dpop: await makeProof(key, { method: 'GET', url, accessToken: token }),
    });
    expect(first.status).toBe(401);
    expect(first.json().error).toBe('dpop_nonce_required');
    expect(first.headers['www-authenticate']).toContain('error="use_dpop_nonce"');
    const nonce = String(first.headers['dpop-nonce']);
    const second = await rawRequest(noncePort, 'GET', path, {
      authorization: `DPoP ${token}`,
      dpop: await makeProof(key, { method: 'GET', url, accessToken: token, nonce }),
    });
    expect(second.status).toBe(200);
  });

  it("the CLI's forwarder answers a nonce challenge once more, body and all, and keeps the nonce", async () => {
    const { key } = await linkedDevice('U0DORA');
    const { grant, token } = await grantToken('billing-api', 'write', key.thumbprint, 'U0DORA');
    const tokens: TokenSource = {
      get: async () => ({
        ok: true,
        value: { token, grantId: grant.id, scope: 'write', expiresAt: grant.expiresAt },
      }),
      invalidate: () => undefined,
    };
    const forwarder = await startForwarder({
      resource: 'billing-api',
      proxyUrl: `http://127.0.0.1:${noncePort}`,
      key,
      tokens,
      port: 0,
    });
    try {
      const marker = `invoice-${grant.id}`;
      const posted = await fetch(`http://127.0.0.1:${forwarder.port}/invoices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ marker }),
      });
      expect(posted.status).toBe(200);
      // The upstream got the call once, with its body: the challenged attempt never reached it.
      expect(upstream.seen.filter((r) => r.body.includes(marker))).toHaveLength(1);
      const read = await fetch(`http://127.0.0.1:${forwarder.port}/invoices/7`);
      expect(read.status).toBe(200);
      const decisions = sink.records.filter((r) => r.grantId === grant.id).map((r) => r.decision);
      // One challenge for the forwarder's first call; the second is signed with the kept nonce.
      expect(decisions).toEqual(['dpop_nonce_required', 'allowed', 'allowed']);
    } finally {
      await forwarder.close();
    }
  });
});

describe('the replay cache shared through Redis', () => {
  it('a proof used at one proxy is refused at another behind the same public URL', async () => {
    const prefix = `${randomPrefix()}:dpop:`;
    const redisClients = [connectReplayRedis(TEST_REDIS_URL), connectReplayRedis(TEST_REDIS_URL)];
    await eventually(() => redisClients.every((r) => r.status === 'ready'));
    const publicUrl = 'https://proxy.jitgate.test';
    const [a, b] = await Promise.all(
      redisClients.map((redis) =>
        startProxy(false, { replay: createRedisReplayCache({ redis, prefix }), publicUrl }),
      ),
    );
    try {
      const { key } = await linkedDevice('U0HANK');
      const { token } = await grantToken('billing-api', 'read', key.thumbprint, 'U0HANK');
      const path = '/billing-api/invoices/1';
      const headers = {
        authorization: `DPoP ${token}`,
        dpop: await makeProof(key, { method: 'GET', url: `${publicUrl}${path}`, accessToken: token }),
      };
      expect((await rawRequest(a!.port, 'GET', path, headers)).status).toBe(200);
      const again = await rawRequest(b!.port, 'GET', path, headers);
      expect(again.json().error).toBe('dpop_replayed');
    } finally {
      await a?.server.close();
      await b?.server.close();
      for (const r of redisClients) r.disconnect();
    }
  });
});

describe('sender_constraint: dpop', () => {
  it('on a resource or a scope refuses bearer tokens with dpop_required; bound tokens pass', async () => {
    const bearerOnBound = await grantToken('bound-api', 'read');
    const onResource = await rawRequest(port, 'GET', '/bound-api/x', {
      authorization: `Bearer ${bearerOnBound.token}`,
    });
    expect(onResource.status).toBe(401);
    expect(onResource.json().error).toBe('dpop_required');
    const bearerOnScope = await grantToken('billing-api', 'secret');
    const onScope = await rawRequest(port, 'GET', '/billing-api/x', {
      authorization: `Bearer ${bearerOnScope.token}`,
    });
    expect(onScope.json().error).toBe('dpop_required');
    // The resource's other scopes still take bearer tokens.
    const read = await grantToken('billing-api', 'read');
    expect(
      (await rawRequest(port, 'GET', '/billing-api/invoices/1', { authorization: `Bearer ${read.token}` }))
        .status,
    ).toBe(200);

    const { key } = await linkedDevice('U0ERIN');
    const bound = await grantToken('bound-api', 'read', key.thumbprint, 'U0ERIN');
    const ok = await rawRequest(
      port,
      'GET',
      '/bound-api/x',
      await boundHeaders(key, 'GET', '/bound-api/x', bound.token),
    );
    expect(ok.status).toBe(200);
  });
});

describe('device revocation', () => {
  it("reaches the proxy's live view: the device's tokens are refused within a second, other devices' are not", async () => {
    const alice = await linkedDevice('U0FRANK');
    const spare = await linkedDevice('U0FRANK');
    const { token } = await grantToken('billing-api', 'read', alice.key.thumbprint, 'U0FRANK');
    const { token: spareToken } = await grantToken('billing-api', 'read', spare.key.thumbprint, 'U0FRANK');
    const path = '/billing-api/invoices/1';
    expect(
      (await rawRequest(port, 'GET', path, await boundHeaders(alice.key, 'GET', path, token))).status,
    ).toBe(200);
    const revokedAt = performance.now();
    expect(
      await revokeDevice(deviceDeps, {
        deviceId: alice.id,
        actor: { type: 'slack', userId: 'U0FRANK' },
        reason: 'lost laptop',
      }),
    ).toMatchObject({ ok: true });
    await eventually(() => view.deviceKeyState(alice.key.thumbprint) === 'revoked', 1000);
    expect(performance.now() - revokedAt).toBeLessThan(1000);
    const refused = await rawRequest(port, 'GET', path, await boundHeaders(alice.key, 'GET', path, token));
    expect(refused.status).toBe(403);
    expect(refused.json().error).toBe('device_revoked');
    expect(
      (await rawRequest(port, 'GET', path, await boundHeaders(spare.key, 'GET', path, spareToken))).status,
    ).toBe(200);
  });

  it('a frozen feed (its backend SIGSTOPped) keeps a revoked device usable for less than a second', async () => {
    const frozen = await linkedDevice('U0IVAN');
    const { token } = await grantToken('billing-api', 'read', frozen.key.thumbprint, 'U0IVAN');
    const path = '/billing-api/invoices/1';
    const call = async () =>
      rawRequest(port, 'GET', path, await boundHeaders(frozen.key, 'GET', path, token));
    expect((await call()).status).toBe(200);
    // The view's own LISTEN connection, told apart from other test files' by its schema's channel.
    const listening = `listen "${database.channel('grants')}"`;
    const [backend] = (await database.db.execute(
      sql`select pid from pg_stat_activity where query = ${listening}`,
    )) as unknown as { pid: number }[];
    expect(backend?.pid).toBeGreaterThan(0);
    const pid = backend!.pid;
    // Alive but silent: the connection stays open, the backend delivers nothing, the revocation's
    // NOTIFY among it. Device revocations ride the grant feed, so its liveness ping covers them.
    process.kill(pid, 'SIGSTOP');
    try {
      await revokeDevice(deviceDeps, {
        deviceId: frozen.id,
        actor: { type: 'slack', userId: 'U0IVAN' },
        reason: 'stolen laptop',
      });
      const revokedAt = performance.now();
      let firstRefusal: { ms: number; status: number; code: string } | undefined;
      while (performance.now() - revokedAt < 3000 && !firstRefusal) {
        const res = await call();
        if (res.status !== 200)
          firstRefusal = {
            ms: performance.now() - revokedAt,
            status: res.status,
            code: String(res.json().error),
          };
      }
      expect(firstRefusal).toBeDefined();
      // README: a revocation is enforced within a second, a dead feed included.
      expect(firstRefusal!.ms).toBeLessThan(1000);
      expect([
        [403, 'device_revoked'],
        [503, 'grant_unconfirmed'],
      ]).toContainEqual([firstRefusal!.status, firstRefusal!.code]);
      // Re-subscribed on a new connection, the view reloads and knows the device is revoked.
      await eventually(() => view.deviceKeyState(frozen.key.thumbprint) === 'revoked', 10_000);
      const refused = await call();
      expect([refused.status, refused.json().error]).toEqual([403, 'device_revoked']);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 30_000);

  it('a revocation made while no proxy listened is in the view a new proxy loads', async () => {
    const gone = await linkedDevice('U0GINA');
    const kept = await linkedDevice('U0HANK');
    await revokeDevice(deviceDeps, {
      deviceId: gone.id,
      actor: { type: 'system', component: 'offboarding' },
      reason: 'x',
    });
    const fresh = createActiveGrantView({ database, logger: pino({ level: 'silent' }) });
    expect(fresh.deviceKeyState(gone.key.thumbprint)).toBe('unconfirmed');
    await fresh.start();
    expect(fresh.deviceKeyState(gone.key.thumbprint)).toBe('revoked');
    expect(fresh.deviceKeyState(kept.key.thumbprint)).toBe('usable');
    await fresh.close();
    expect(fresh.deviceKeyState(gone.key.thumbprint)).toBe('unconfirmed');
  });
});
