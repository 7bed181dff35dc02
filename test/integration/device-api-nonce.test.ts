import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiClient } from '../../src/cli/contractor/api-client.ts';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createDpopNonces } from '../../src/tokens/dpop-nonces.ts';
import { API_PREFIX, type DeviceWorld, openDeviceWorld } from '../helpers/device-world.ts';

let world: DeviceWorld;
const nonces = createDpopNonces({ secret: new Uint8Array(32).fill(9), clock: systemClock });
beforeAll(async () => {
  world = await openDeviceWorld({ nonces });
});
afterAll(async () => {
  await world?.close();
});

describe('DPoP-Nonce challenge on the device API', () => {
  it('a proof without the nonce gets 401 use_dpop_nonce with a DPoP-Nonce to sign next', async () => {
    const key = await importDeviceKey(await generateDeviceKey('ES256'));
    const url = `${world.serverUrl}${API_PREFIX}/pairing`;
    const response = await fetch(url, { headers: { dpop: await makeProof(key, { method: 'GET', url }) } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="use_dpop_nonce"');
    const nonce = response.headers.get('dpop-nonce');
    expect(nonce).toBe(nonces.current());
    const again = await fetch(url, {
      headers: { dpop: await makeProof(key, { method: 'GET', url, nonce: nonce! }) },
    });
    // Past the nonce, the key is simply unknown: the challenge was the only thing in the way.
    expect(((await again.json()) as { error: string }).error).toBe('device_unknown');
  });

  it('the CLI answers the challenge by itself: one retry with the nonce, kept for later calls', async () => {
    const key = await importDeviceKey(await generateDeviceKey('EdDSA'));
    const api = createApiClient(world.serverUrl, key);
    const started = await api.call<{ code: string }>('POST', '/pairings', { name: 'nonce-box' });
    expect(started).toMatchObject({ ok: true, status: 201 });
    expect(await api.call('GET', '/pairing')).toMatchObject({ ok: true, value: { status: 'pending' } });
  });
});
