import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { manualClock, systemClock } from '../../src/shared/clock.ts';
import { createDpopVerifier } from '../../src/tokens/dpop.ts';
import {
  connectReplayRedis,
  createMemoryReplayCache,
  createRedisReplayCache,
  type ReplayVerdict,
} from '../../src/tokens/dpop-replay.ts';
import { randomPrefix, waitFor } from '../helpers/redis-fixtures.ts';
import { startOwnRedis, TEST_REDIS_URL } from '../helpers/redis-server.ts';

const clients: Redis[] = [];
const prefixes: string[] = [];

/** A client as a proxy would have it, and a key prefix of this test's own. */
function proxyRedis(url = TEST_REDIS_URL): Redis {
  const client = connectReplayRedis(url);
  clients.push(client);
  return client;
}

function newPrefix(): string {
  const prefix = `${randomPrefix()}:dpop:`;
  prefixes.push(prefix);
  return prefix;
}

const ready = (client: Redis) => waitFor(() => client.status === 'ready', { what: 'redis ready' });

afterAll(async () => {
  const admin = proxyRedis();
  await ready(admin);
  for (const prefix of prefixes) {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
  for (const client of clients) client.disconnect();
});

describe('Redis replay cache (shared by every proxy)', () => {
  it('a key claimed through one proxy is a replay through another, and expires with its window', async () => {
    const prefix = newPrefix();
    const [a, b] = [proxyRedis(), proxyRedis()];
    await Promise.all([ready(a), ready(b)]);
    const first = createRedisReplayCache({ redis: a, prefix });
    const second = createRedisReplayCache({ redis: b, prefix });
    expect(await first.claim('jkt:jti-1', 60_000)).toBe('fresh');
    expect(await second.claim('jkt:jti-1', 60_000)).toBe('replayed');
    expect(await first.claim('jkt:jti-1', 60_000)).toBe('replayed');
    const ttl = await a.pttl(`${prefix}jkt:jti-1`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await second.claim('jkt:jti-2', 30)).toBe('fresh');
    await waitFor(async () => (await a.exists(`${prefix}jkt:jti-2`)) === 0, { what: 'the key to expire' });
    expect(await first.claim('jkt:jti-2', 60_000)).toBe('fresh');
  });

  it('of many concurrent claims of one proof from two proxies, exactly one is fresh', async () => {
    const prefix = newPrefix();
    const [a, b] = [proxyRedis(), proxyRedis()];
    await Promise.all([ready(a), ready(b)]);
    const caches = [
      createRedisReplayCache({ redis: a, prefix }),
      createRedisReplayCache({ redis: b, prefix }),
    ];
    const verdicts = await Promise.all(
      Array.from({ length: 40 }, (_, i) => caches[i % 2]!.claim('jkt:same', 60_000)),
    );
    expect(verdicts.filter((v) => v === 'fresh')).toHaveLength(1);
    expect(verdicts.filter((v) => v === 'replayed')).toHaveLength(39);
  });

  it('a proof accepted by one proxy is refused as replayed by another', async () => {
    const prefix = newPrefix();
    const [a, b] = [proxyRedis(), proxyRedis()];
    await Promise.all([ready(a), ready(b)]);
    const key = await importDeviceKey(await generateDeviceKey('EdDSA'));
    const verifierOn = (redis: Redis) =>
      createDpopVerifier({ clock: systemClock, replay: createRedisReplayCache({ redis, prefix }) });
    const url = 'https://proxy.example/billing-api/invoices';
    const proof = await makeProof(key, { method: 'GET', url, accessToken: 't' });
    const check = { proof, method: 'GET', htu: url, accessToken: 't', boundKey: key.thumbprint };
    expect(await verifierOn(a).verify(check)).toMatchObject({ ok: true });
    expect(await verifierOn(b).verify(check)).toMatchObject({ ok: false, code: 'dpop_replayed' });
  });

  it('with Redis down, proofs are refused (fail closed) and accepted again once it is back', async () => {
    const own = await startOwnRedis();
    try {
      const redis = proxyRedis(own.url);
      await ready(redis);
      const errors: unknown[] = [];
      const cache = createRedisReplayCache({ redis, prefix: newPrefix(), onError: (e) => errors.push(e) });
      expect(await cache.claim('k1', 60_000)).toBe('fresh');
      await own.kill();
      expect(await cache.claim('k2', 60_000)).toBe('unavailable');
      expect(errors.length).toBeGreaterThan(0);
      const key = await importDeviceKey(await generateDeviceKey('ES256'));
      const verifier = createDpopVerifier({ clock: systemClock, replay: cache });
      const url = 'https://proxy.example/billing-api/x';
      const check = async () => ({
        proof: await makeProof(key, { method: 'GET', url }),
        method: 'GET',
        htu: url,
        boundKey: key.thumbprint,
      });
      expect(await verifier.verify(await check())).toMatchObject({ ok: false, code: 'dpop_unavailable' });
      await own.restart();
      await waitFor(async () => (await verifier.verify(await check())).ok, { what: 'proofs accepted again' });
    } finally {
      await own.stop();
    }
  });
});

describe('in-process replay cache', () => {
  it('expires entries by their window and stays within its bound, refusing rather than forgetting', async () => {
    const clock = manualClock();
    const cache = createMemoryReplayCache({ clock, maxEntries: 3 });
    const claim = (key: string, ttl = 60_000): Promise<ReplayVerdict> => cache.claim(key, ttl);
    expect(await claim('a', 10_000)).toBe('fresh');
    expect(await claim('b')).toBe('fresh');
    expect(await claim('c')).toBe('fresh');
    expect(await claim('a')).toBe('replayed');
    expect(await claim('d')).toBe('unavailable');
    expect(cache.size).toBe(3);
    clock.advance(10_000);
    // 'a' has expired: its slot is reused, and 'a' itself may be claimed again.
    expect(await claim('d')).toBe('fresh');
    expect(await claim('a')).toBe('unavailable');
    clock.advance(60_000);
    expect(await claim('a')).toBe('fresh');
    expect(cache.size).toBe(1);
  });

  it('of concurrent claims of one key, exactly one is fresh', async () => {
    const cache = createMemoryReplayCache({ clock: systemClock });
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => cache.claim('same', 60_000)));
    expect(verdicts.filter((v) => v === 'fresh')).toHaveLength(1);
  });
});
