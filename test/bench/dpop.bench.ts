import { randomBytes } from 'node:crypto';
import { generateDeviceKey, importDeviceKey, makeProof } from '../../src/cli/contractor/device-key.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createDpopVerifier, type ProofCheck } from '../../src/tokens/dpop.ts';
import {
  connectReplayRedis,
  createMemoryReplayCache,
  createRedisReplayCache,
  type ReplayCache,
} from '../../src/tokens/dpop-replay.ts';
import { createMemoryKeyStore, createVerifier, issueGrantToken } from '../../src/tokens/index.ts';
import type { BenchModule, BenchTable } from './run.ts';

const CALLS = 2_000;
const URL_CALLED = 'http://127.0.0.1:8080/billing-api/invoices/1';

/**
 * What a bound token costs the proxy per call, beside what a bearer token costs, in one run: the
 * bearer check is the grant-token verifier's cache hit (every call after a token's first); a
 * bound call adds one DPoP proof check (thumbprint, signature, claims) and one replay-cache claim,
 * in process or one Redis round trip. Proofs are made before timing: a client's cost, not ours.
 */
export const dpopBench: BenchModule = {
  name: 'dpop',
  async run(ctx) {
    const keyStore = createMemoryKeyStore({ clock: systemClock });
    await keyStore.load();
    const token = await issueGrantToken(keyStore, {
      grantId: crypto.randomUUID(),
      userId: 'UBENCH',
      resource: 'billing-api',
      scope: 'read',
      expiresAt: new Date(Date.now() + 3600_000),
      issuer: 'jitgate',
    });
    const bearer = createVerifier(keyStore, { issuer: 'jitgate', clock: systemClock });
    await bearer.verify(token);
    const rows: (string | number)[][] = [];
    const time = async (label: string, each: (i: number) => unknown) => {
      const started = performance.now();
      for (let i = 0; i < CALLS; i++) await each(i);
      const us = ((performance.now() - started) * 1000) / CALLS;
      rows.push([label, CALLS, us.toFixed(1), Math.round(1_000_000 / us)]);
    };
    await time('bearer (verified-token cache hit)', () => bearer.peek(token));

    const redis = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
    const client = connectReplayRedis(redis);
    const prefix = `jgbench-${randomBytes(4).toString('hex')}:`;
    const caches: [string, ReplayCache][] = [
      ['in-process', createMemoryReplayCache({ clock: systemClock })],
      ['Redis', createRedisReplayCache({ redis: client, prefix })],
    ];
    try {
      await new Promise((resolve) => client.once('ready', resolve));
      for (const alg of ['ES256', 'EdDSA'] as const) {
        const key = await importDeviceKey(await generateDeviceKey(alg));
        for (const [where, replay] of caches) {
          const verifier = createDpopVerifier({ clock: systemClock, replay });
          ctx.log(`dpop: making ${CALLS} ${alg} proofs`);
          const checks: ProofCheck[] = [];
          for (let i = 0; i < CALLS; i++) {
            const proof = await makeProof(key, { method: 'GET', url: URL_CALLED, accessToken: token });
            checks.push({
              proof,
              method: 'GET',
              htu: URL_CALLED,
              accessToken: token,
              boundKey: key.thumbprint,
            });
          }
          let refused = 0;
          await time(`bound, ${alg} proof, ${where} replay cache`, async (i) => {
            bearer.peek(token);
            if (!(await verifier.verify(checks[i]!)).ok) refused++;
          });
          if (refused > 0) throw new Error(`${refused} bench proofs were refused`);
        }
      }
    } finally {
      const keys = await client.keys(`${prefix}*`).catch(() => []);
      if (keys.length > 0) await client.del(...keys);
      client.disconnect();
    }
    const table: BenchTable = {
      title: 'Token check per proxied call: bearer vs DPoP-bound (one process, sequential)',
      columns: ['check', 'calls', 'µs per call', 'calls/s on one core'],
      rows,
      notes: [
        'Bound rows include the bearer check they add to (the grant token is still verified and cached).',
      ],
    };
    return [table];
  },
};
