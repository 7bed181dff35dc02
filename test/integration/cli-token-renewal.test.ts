import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiClient, createApiClient } from '../../src/cli/contractor/api-client.ts';
import { generateDeviceKey, importDeviceKey } from '../../src/cli/contractor/device-key.ts';
import { createTokenSource, startForwarder } from '../../src/cli/contractor/forwarder.ts';
import { linkDeviceByCode } from '../../src/devices/index.ts';
import { manualClock, systemClock } from '../../src/shared/clock.ts';
import { verifyGrantToken } from '../../src/tokens/index.ts';
import { slackUser } from '../helpers/actors.ts';
import { type DeviceWorld, ISSUER, openDeviceWorld } from '../helpers/device-world.ts';

let world: DeviceWorld;
beforeAll(async () => {
  world = await openDeviceWorld();
});
afterAll(async () => {
  await world?.close();
});

async function linkedClient(userId: string) {
  const key = await importDeviceKey(await generateDeviceKey('EdDSA'));
  const api = createApiClient(world.serverUrl, key);
  const started = await api.call<{ code: string }>('POST', '/pairings', { name: `${userId}-box` });
  if (!started.ok) throw new Error(started.message);
  expect(await linkDeviceByCode(world.devices, { code: started.value.code, userId })).toMatchObject({
    ok: true,
  });
  return { key, api };
}

const expiryOf = async (token: string) => {
  const verified = await verifyGrantToken(world.keyStore, token, { issuer: ISSUER, clock: systemClock });
  if (!verified.ok) throw new Error(verified.message);
  return verified.claims.expiresAt.getTime();
};

describe('token renewal in the CLI', () => {
  it('keeps its token while it lasts, and near expiry fetches one carrying the extended expiry', async () => {
    const { api } = await linkedClient('URENEW');
    const asked = await world.access.createRequest({
      actor: slackUser('URENEW'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 120,
      reason: 'renewal',
    });
    if (!asked.ok || !asked.value.grant) throw new Error('no grant');
    const grant = asked.value.grant;
    const clock = manualClock(new Date());
    const tokens = createTokenSource(api, 'billing-api', clock, { renewBeforeMs: 60_000, retryMs: 5_000 });
    const first = await tokens.get();
    if (!first.ok) throw new Error(first.message);
    clock.advance(30_000);
    expect(await tokens.get()).toEqual(first);

    const extended = await world.access.requestExtension({
      grantId: grant.id,
      actor: slackUser('URENEW'),
      durationSeconds: 1800,
    });
    expect(extended).toMatchObject({ ok: true });
    clock.advance(40_000);
    const renewed = await tokens.get();
    if (!renewed.ok) throw new Error(renewed.message);
    expect(renewed.value.token).not.toBe(first.value.token);
    expect(await expiryOf(renewed.value.token)).toBeGreaterThan(
      (await expiryOf(first.value.token)) + 1_000_000,
    );
  });

  it('a refused token is forgotten, so the next forwarded call carries a fresh one', async () => {
    const { key, api } = await linkedClient('UREFUSE');
    await world.access.createRequest({
      actor: slackUser('UREFUSE'),
      resource: 'billing-api',
      scope: 'read',
      durationSeconds: 600,
      reason: 'refuse',
    });
    let fetches = 0;
    const counted: ApiClient = {
      call: (method, path, body) => {
        if (path === '/tokens') fetches++;
        return api.call(method, path, body);
      },
    };
    const tokens = createTokenSource(counted, 'billing-api', systemClock);
    const forwarder = await startForwarder({
      resource: 'billing-api',
      proxyUrl: world.proxy.url,
      key,
      tokens,
      port: 0,
    });
    try {
      // The wrong resource is refused by the proxy (403): the token is dropped and fetched again.
      const wrong = await startForwarder({
        resource: 'admin-api',
        proxyUrl: world.proxy.url,
        key,
        tokens,
        port: 0,
      });
      expect((await fetch(`http://127.0.0.1:${wrong.port}/users/1`)).status).toBe(403);
      expect(fetches).toBe(1);
      await wrong.close();
      expect((await fetch(`http://127.0.0.1:${forwarder.port}/invoices/1`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${forwarder.port}/invoices/2`)).status).toBe(200);
      // Fetched again once after the refusal, then kept.
      expect(fetches).toBe(2);
    } finally {
      await forwarder.close();
    }
  });
});
