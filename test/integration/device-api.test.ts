import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DeviceKey,
  generateDeviceKey,
  importDeviceKey,
  makeProof,
} from '../../src/cli/contractor/device-key.ts';
import { deleteStalePairings } from '../../src/db/queries/devices.ts';
import { auditEvents, devices } from '../../src/db/schema/index.ts';
import { findPairing, linkDeviceByCode, revokeDevice, revokeDevicesOf } from '../../src/devices/index.ts';
import { createRateLimiter } from '../../src/proxy/rate-limit.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { verifyGrantToken } from '../../src/tokens/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { API_PREFIX, type DeviceWorld, ISSUER, openDeviceWorld } from '../helpers/device-world.ts';

/** The parts of the API's answers these tests read. */
interface ApiJson {
  error?: string;
  code?: string;
  deviceId?: string;
  token?: string;
  request?: { id: string; status: string; grant?: { scope: string } };
}

let world: DeviceWorld;
beforeAll(async () => {
  world = await openDeviceWorld();
});
afterAll(async () => {
  await world?.close();
});

const newKey = async (alg: 'ES256' | 'EdDSA' = 'ES256') => importDeviceKey(await generateDeviceKey(alg));

/** One signed call to the device API, as the CLI makes it. */
async function call(key: DeviceKey, method: string, path: string, body?: unknown, proof?: string) {
  const url = `${world.serverUrl}${API_PREFIX}${path}`;
  const response = await fetch(url, {
    method,
    headers: {
      dpop: proof ?? (await makeProof(key, { method, url })),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as ApiJson,
  };
}

async function pairedDevice(userId: string, alg: 'ES256' | 'EdDSA' = 'ES256') {
  const key = await newKey(alg);
  const started = await call(key, 'POST', '/pairings', { name: `${userId}-laptop` });
  expect(started.status).toBe(201);
  const linked = await linkDeviceByCode(world.devices, { code: started.json.code!, userId });
  expect(linked).toMatchObject({ ok: true });
  return { key, deviceId: started.json.deviceId as string };
}

describe('device pairing (happy)', () => {
  it('a key pairs pending, a person links it with the code, and the CLI sees it linked', async () => {
    const key = await newKey();
    const started = await call(key, 'POST', '/pairings', { name: 'alice-laptop' });
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({ name: 'alice-laptop', proxyUrl: world.proxy.url });
    expect(started.json.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    expect((await call(key, 'GET', '/pairing')).json).toMatchObject({ status: 'pending' });
    expect(await call(key, 'POST', '/tokens', { resource: 'billing-api' })).toMatchObject({
      status: 403,
      json: { error: 'device_pending' },
    });

    // Typed sloppily, as people do: lower case, O for 0, no dash.
    const typed = (started.json.code as string).toLowerCase().replace('-', ' ').replace(/0/g, 'o');
    const linked = await linkDeviceByCode(world.devices, { code: typed, userId: 'UALICE' });
    expect(linked).toMatchObject({ ok: true, value: { status: 'linked', userId: 'UALICE' } });
    expect((await call(key, 'GET', '/pairing')).json).toMatchObject({ status: 'linked', userId: 'UALICE' });

    const [row] = await world.database.db
      .select()
      .from(devices)
      .where(eq(devices.id, started.json.deviceId!));
    expect(row).toMatchObject({ pairingHandle: null, pairingSecretHash: null, thumbprint: key.thumbprint });
    const audit = await world.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.kind, 'device.linked'), eq(auditEvents.actor, 'slack:UALICE')));
    expect(audit).toHaveLength(1);
    expect(audit[0]!.data).toMatchObject({ deviceId: started.json.deviceId, name: 'alice-laptop' });
  });

  it('a linked device asks, is auto-approved, and gets a token bound to its key', async () => {
    const { key } = await pairedDevice('UBOB', 'EdDSA');
    const asked = await call(key, 'POST', '/requests', {
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 1800,
      reason: 'INV-42',
    });
    expect(asked).toMatchObject({
      status: 201,
      json: { request: { status: 'approved', resource: 'billing-api' } },
    });
    const requestId = asked.json.request!.id;
    expect((await call(key, 'GET', `/requests/${requestId}`)).json.request!.grant).toMatchObject({
      scope: 'read',
    });

    const issued = await call(key, 'POST', '/tokens', { resource: 'billing-api' });
    expect(issued).toMatchObject({
      status: 200,
      json: { tokenType: 'DPoP', resource: 'billing-api', scope: 'read' },
    });
    const verified = await verifyGrantToken(world.keyStore, issued.json.token!, {
      issuer: ISSUER,
      clock: systemClock,
    });
    expect(verified).toMatchObject({ ok: true, claims: { userId: 'UBOB', boundKey: key.thumbprint } });
  });

  it('a request that needs an approver stays pending until one approves', async () => {
    const { key } = await pairedDevice('UCAROL');
    const asked = await call(key, 'POST', '/requests', {
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 3600,
      reason: 'fix INV-7',
    });
    expect(asked.json.request).toMatchObject({ status: 'pending' });
    expect(asked.json.request!.grant).toBeUndefined();
    const id = asked.json.request!.id;
    expect(await world.access.approve({ requestId: id, actor: slackUser('UAPPROVER1') })).toMatchObject({
      ok: true,
    });
    expect((await call(key, 'GET', `/requests/${id}`)).json.request).toMatchObject({
      status: 'approved',
      decidedBy: 'UAPPROVER1',
      grant: { scope: 'write' },
    });
  });
});

describe('device API (error)', () => {
  it('refuses a policy refusal, an unknown request, another person’s request and a missing grant', async () => {
    const { key } = await pairedDevice('UDAVE');
    expect(
      await call(key, 'POST', '/requests', {
        resource: 'billing-api',
        scope: 'read',
        durationSeconds: 86_400 * 2,
        reason: 'x',
      }),
    ).toMatchObject({ status: 400, json: { error: 'duration_too_long' } });
    expect(
      await call(key, 'POST', '/requests', { resource: 'nope', durationSeconds: 60, reason: 'x' }),
    ).toMatchObject({
      status: 404,
      json: { error: 'unknown_resource' },
    });
    expect(await call(key, 'GET', '/requests/not-a-uuid')).toMatchObject({
      status: 404,
      json: { error: 'request_not_found' },
    });
    const { key: erin } = await pairedDevice('UERIN');
    const hers = await call(erin, 'POST', '/requests', {
      resource: 'billing-api',
      scope: 'write',
      durationSeconds: 60,
      reason: 'x',
    });
    expect(await call(key, 'GET', `/requests/${hers.json.request!.id}`)).toMatchObject({
      status: 404,
      json: { error: 'request_not_found' },
    });
    expect(await call(key, 'POST', '/tokens', { resource: 'admin-api' })).toMatchObject({
      status: 404,
      json: { error: 'no_active_grant' },
    });
    expect(await call(key, 'POST', '/requests', { resource: 'billing-api', extra: 1 })).toMatchObject({
      status: 400,
      json: { error: 'bad_request' },
    });
  });

  it('a key pairs once: again (even after revocation) is refused', async () => {
    const { key, deviceId } = await pairedDevice('UFRANK');
    expect(await call(key, 'POST', '/pairings', { name: 'again' })).toMatchObject({
      status: 409,
      json: { error: 'device_key_known' },
    });
    await revokeDevice(world.devices, {
      deviceId,
      actor: { type: 'slack', userId: 'UFRANK' },
      reason: 'lost',
    });
    expect(await call(key, 'POST', '/pairings', { name: 'again' })).toMatchObject({
      status: 409,
      json: { error: 'device_key_known' },
    });
    const fresh = await newKey();
    expect(await call(fresh, 'POST', '/pairings', { name: 'a\u202ename' })).toMatchObject({
      status: 400,
      json: { error: 'device_name_invalid' },
    });
  });
});

describe('device API (security)', () => {
  it('every call needs a fresh proof by a known, linked, unrevoked key for this very call', async () => {
    const { key, deviceId } = await pairedDevice('UGRACE');
    const url = `${world.serverUrl}${API_PREFIX}/tokens`;
    const body = { resource: 'billing-api' };
    const noProof = await fetch(url, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(noProof.status).toBe(401);
    expect(noProof.headers.get('www-authenticate')).toBe(
      'DPoP error="invalid_token", algs="ES256 EdDSA Ed25519"',
    );
    expect(((await noProof.json()) as { error: string }).error).toBe('dpop_required');

    const proof = await makeProof(key, { method: 'POST', url });
    expect((await call(key, 'POST', '/tokens', body, proof)).json.error).toBe('no_active_grant');
    const replayed = await call(key, 'POST', '/tokens', body, proof);
    expect(replayed).toMatchObject({ status: 401, json: { error: 'dpop_replayed' } });
    expect(replayed.headers.get('www-authenticate')).toContain('error="invalid_dpop_proof"');
    const forGet = await makeProof(key, { method: 'GET', url });
    expect((await call(key, 'POST', '/tokens', body, forGet)).json.error).toBe('dpop_wrong_method');
    const forPairing = await makeProof(key, {
      method: 'POST',
      url: `${world.serverUrl}${API_PREFIX}/pairings`,
    });
    expect((await call(key, 'POST', '/tokens', body, forPairing)).json.error).toBe('dpop_wrong_url');
    // The Host header does not make a proof for another server valid here.
    const elsewhere = await makeProof(key, {
      method: 'POST',
      url: `http://jitgate.evil.example${API_PREFIX}/tokens`,
    });
    expect((await call(key, 'POST', '/tokens', body, elsewhere)).json.error).toBe('dpop_wrong_url');
    const old = await makeProof(key, { method: 'POST', url, now: new Date(Date.now() - 120_000) });
    expect((await call(key, 'POST', '/tokens', body, old)).json.error).toBe('dpop_stale');

    expect(await call(await newKey(), 'POST', '/tokens', body)).toMatchObject({
      status: 401,
      json: { error: 'device_unknown' },
    });
    await revokeDevice(world.devices, {
      deviceId,
      actor: { type: 'system', component: 'offboarding' },
      reason: 'gone',
    });
    expect(await call(key, 'POST', '/tokens', body)).toMatchObject({
      status: 403,
      json: { error: 'device_revoked' },
    });
  });
});

describe('device table and actions', () => {
  async function pending() {
    const key = await newKey();
    const started = await call(key, 'POST', '/pairings', { name: 'pending-one' });
    return { key, code: started.json.code as string, deviceId: started.json.deviceId as string };
  }
  const wrongSecret = (code: string) => `${code.slice(0, 5)}${code.slice(5) === '0000' ? '1111' : '0000'}`;

  it('five wrong codes lock the device for good, audited; the right code no longer works', async () => {
    const { code, deviceId } = await pending();
    for (let i = 1; i <= 4; i++) {
      expect(await findPairing(world.devices, { code: wrongSecret(code), userId: 'UMALLORY' })).toMatchObject(
        {
          ok: false,
          code: 'pairing_code_wrong',
          message: expect.stringContaining(`${5 - i} tr`),
        },
      );
    }
    expect(await findPairing(world.devices, { code: wrongSecret(code), userId: 'UMALLORY' })).toMatchObject({
      code: 'pairing_locked',
    });
    expect(await linkDeviceByCode(world.devices, { code, userId: 'UALICE' })).toMatchObject({
      code: 'pairing_code_unknown',
    });
    const [row] = await world.database.db.select().from(devices).where(eq(devices.id, deviceId));
    expect(row).toMatchObject({
      status: 'revoked',
      pairingAttempts: 5,
      revokeReason: 'too many wrong pairing codes',
    });
    const locked = await world.database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.kind, 'device.pairing_locked'));
    expect(locked.map((r) => r.data.deviceId)).toContain(deviceId);
  });

  it('parallel wrong guesses cannot get past the bound', async () => {
    const { code, deviceId } = await pending();
    await Promise.all(
      Array.from({ length: 12 }, () =>
        findPairing(world.devices, { code: wrongSecret(code), userId: 'UMALLORY' }),
      ),
    );
    const [row] = await world.database.db.select().from(devices).where(eq(devices.id, deviceId));
    expect(row).toMatchObject({ status: 'revoked', pairingAttempts: 5 });
  });

  it('of two people linking one code at once, one wins', async () => {
    const { code } = await pending();
    const results = await Promise.all([
      linkDeviceByCode(world.devices, { code, userId: 'UONE' }),
      linkDeviceByCode(world.devices, { code, userId: 'UTWO' }),
    ]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
  });

  it('an expired code is refused, and malformed codes say what a code looks like', async () => {
    const { code, deviceId } = await pending();
    await world.database.db
      .update(devices)
      .set({ createdAt: new Date(Date.now() - 700_000), pairingExpiresAt: new Date(Date.now() - 1000) })
      .where(eq(devices.id, deviceId));
    expect(await linkDeviceByCode(world.devices, { code, userId: 'UALICE' })).toMatchObject({
      code: 'pairing_code_expired',
    });
    expect(await linkDeviceByCode(world.devices, { code: 'K7QF-3M9', userId: 'UALICE' })).toMatchObject({
      code: 'pairing_code_malformed',
    });
    expect(await linkDeviceByCode(world.devices, { code: 'UUUU-UUUU', userId: 'UALICE' })).toMatchObject({
      code: 'pairing_code_malformed',
    });
  });

  it('the schema refuses a linked device without owner, a pending one with an owner, and a second row per key', async () => {
    const { deviceId, key } = await pending();
    const db = world.database.db;
    await expect(
      db
        .update(devices)
        .set({ status: 'linked', pairingHandle: null, pairingSecretHash: null })
        .where(eq(devices.id, deviceId)),
    ).rejects.toThrow();
    await expect(db.update(devices).set({ userId: 'UX' }).where(eq(devices.id, deviceId))).rejects.toThrow();
    await expect(
      db.update(devices).set({ pairingAttempts: 6 }).where(eq(devices.id, deviceId)),
    ).rejects.toThrow();
    await expect(
      db.update(devices).set({ status: 'revoked' }).where(eq(devices.id, deviceId)),
    ).rejects.toThrow();
    await expect(
      db.insert(devices).values({
        id: crypto.randomUUID(),
        name: 'dup',
        thumbprint: key.thumbprint,
        publicJwk: {},
        pairingHandle: 'ZZZZ',
        pairingSecretHash: 'x',
        pairingExpiresAt: new Date(Date.now() + 1000),
        createdAt: new Date(),
      }),
    ).rejects.toThrow();
  });

  it('a person revokes only their own devices; offboarding revokes all of them, audited', async () => {
    const first = await pairedDevice('UHEIDI');
    const second = await pairedDevice('UHEIDI');
    expect(
      await revokeDevice(world.devices, {
        deviceId: first.deviceId,
        actor: { type: 'slack', userId: 'UIVAN' },
        reason: 'x',
      }),
    ).toMatchObject({ code: 'not_device_owner' });
    const revoked = await revokeDevicesOf(world.devices, {
      userId: 'UHEIDI',
      actor: { type: 'system', component: 'offboarding' },
      reason: 'offboarded: account deactivated',
    });
    expect(revoked.map((d) => d.id).sort()).toEqual([first.deviceId, second.deviceId].sort());
    expect(await call(second.key, 'GET', '/pairing')).toMatchObject({
      json: { status: 'revoked', revokeReason: 'offboarded: account deactivated' },
    });
    const rows = await world.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.kind, 'device.revoked'), eq(auditEvents.actor, 'system:offboarding')));
    expect(rows.filter((r) => r.data.userId === 'UHEIDI')).toHaveLength(2);
  });
});

describe('pairing limits', () => {
  it('pairings past the per-address limit get 429 pairing_rate_limited before any proof work, and nothing is stored', async () => {
    const limiter = createRateLimiter({ clock: systemClock });
    const limited = await openDeviceWorld({
      allowPairing: (ip) => limiter.take(`pairing:${ip}`, { requests: 2, perSeconds: 60 }).ok,
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const key = await newKey();
        const url = `${limited.serverUrl}${API_PREFIX}/pairings`;
        const response = await fetch(url, {
          method: 'POST',
          headers: {
            dpop: await makeProof(key, { method: 'POST', url }),
            'content-type': 'application/json',
          },
          body: JSON.stringify({ name: `box-${i}` }),
        });
        statuses.push(response.status);
        if (response.status === 429) {
          expect(((await response.json()) as ApiJson).error).toBe('pairing_rate_limited');
        } else await response.arrayBuffer();
      }
      expect(statuses).toEqual([201, 201, 429, 429]);
      expect(await limited.database.db.select().from(devices)).toHaveLength(2);
    } finally {
      await limited.close();
    }
  });

  it('the sweep deletes never-linked devices whose code expired before the cut-off, and nothing else', async () => {
    const stale = await newKey();
    const fresh = await newKey();
    const staleStart = await call(stale, 'POST', '/pairings', { name: 'stale' });
    const freshStart = await call(fresh, 'POST', '/pairings', { name: 'fresh' });
    const linked = await pairedDevice('USWEEP');
    // Move the stale one's window into the past, as if it had waited two hours.
    await world.database.db
      .update(devices)
      .set({
        createdAt: new Date(Date.now() - 3 * 3600_000),
        pairingExpiresAt: new Date(Date.now() - 2 * 3600_000),
      })
      .where(eq(devices.id, staleStart.json.deviceId!));
    expect(await deleteStalePairings(world.database.db, new Date(Date.now() - 3600_000))).toBe(1);
    const left = new Set((await world.database.db.select().from(devices)).map((d) => d.id));
    expect(left.has(staleStart.json.deviceId!)).toBe(false);
    expect(left.has(freshStart.json.deviceId!)).toBe(true);
    expect(left.has(linked.deviceId)).toBe(true);
  });
});
