import type { AddressInfo } from 'node:net';
import fastify, { type FastifyInstance } from 'fastify';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import { deviceAccessFrom, deviceApi } from '../../src/api/device/index.ts';
import { findDeviceByThumbprint } from '../../src/db/queries/devices.ts';
import { type DeviceDeps, startPairing } from '../../src/devices/index.ts';
import { staticPolicyStore } from '../../src/policy/index.ts';
import { type Clock, systemClock } from '../../src/shared/clock.ts';
import { issueDeviceBoundToken } from '../../src/tokens/device-token.ts';
import {
  createDpopVerifier,
  type DpopVerifier,
  dpopChallengeHeaders,
  dpopRefusalStatus,
} from '../../src/tokens/dpop.ts';
import { expectedHtu } from '../../src/tokens/dpop-htu.ts';
import type { DpopNonces } from '../../src/tokens/dpop-nonces.ts';
import { createMemoryReplayCache } from '../../src/tokens/dpop-replay.ts';
import { createMemoryKeyStore, type KeyStore, verifyGrantToken } from '../../src/tokens/index.ts';
import { openTestDatabase } from './db.ts';
import { TEST_POLICY_YAML, testPolicy } from './policy.ts';

export const ISSUER = 'jitgate';
export const API_PREFIX = '/api/v1/device';

export interface DeviceWorld {
  database: Awaited<ReturnType<typeof openTestDatabase>>;
  access: AccessService;
  keyStore: KeyStore;
  devices: DeviceDeps;
  api: FastifyInstance;
  /** `http://127.0.0.1:<port>`: where the device API listens (what `--server` takes). */
  serverUrl: string;
  /** The stand-in for the phase-2 proxy, see `startBoundProxyStandIn`. */
  proxy: BoundProxyStandIn;
  close(): Promise<void>;
}

/** A real PostgreSQL schema, the access service and the device API on a port of its own. */
export async function openDeviceWorld(
  options: {
    clock?: Clock;
    yamlEdit?: (yaml: string) => string;
    nonces?: DpopNonces;
    allowPairing?: (clientIp: string) => boolean;
  } = {},
): Promise<DeviceWorld> {
  const clock = options.clock ?? systemClock;
  const database = await openTestDatabase('dev');
  const policy = staticPolicyStore(testPolicy((options.yamlEdit ?? ((y) => y))(TEST_POLICY_YAML)));
  const access = createAccessService({
    db: database.db,
    policy,
    clock,
    directory: staticDirectory({}),
    grantChannel: database.channel('grants'),
  });
  const keyStore = createMemoryKeyStore({ clock });
  await keyStore.load();
  const devices: DeviceDeps = { db: database.db, clock };
  const proxy = await startBoundProxyStandIn(keyStore, clock);
  const api = fastify();
  let serverUrl = '';
  await api.register(deviceApi, {
    prefix: API_PREFIX,
    access: deviceAccessFrom(access),
    devices: {
      findByThumbprint: (thumbprint) => findDeviceByThumbprint(database.db, thumbprint),
      startPairing: (input) => startPairing(devices, input),
    },
    verifier: createDpopVerifier({
      clock,
      replay: createMemoryReplayCache({ clock }),
      ...(options.nonces ? { nonces: options.nonces } : {}),
    }),
    issueToken: (grant, device) => issueDeviceBoundToken(keyStore, grant, device, ISSUER),
    publicUrl: () => serverUrl,
    proxyUrl: proxy.url,
    pollSeconds: 0.05,
    ...(options.allowPairing ? { allowPairing: options.allowPairing } : {}),
  });
  await api.listen({ port: 0, host: '127.0.0.1' });
  serverUrl = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  return {
    database,
    access,
    keyStore,
    devices,
    api,
    serverUrl,
    proxy,
    async close() {
      await api.close();
      await proxy.close();
      await database.drop();
    },
  };
}

interface SeenCall {
  method: string;
  path: string;
  body: string;
  authorization: string | undefined;
  proof: string | undefined;
  userId: string | undefined;
}

interface BoundProxyStandIn {
  url: string;
  calls: SeenCall[];
  verifier: DpopVerifier;
  close(): Promise<void>;
}

/**
 * What phase 2's proxy will check of a bound token, and only that: the grant token verifies, it
 * carries `cnf.jkt`, it comes as `Authorization: DPoP`, and the `DPoP` proof passes our verifier
 * with that key, this call's method and URL and the token's hash. It answers with what it saw, so
 * CLI tests can check what reached "the upstream". The CLI end to end tests run against the real
 * proxy (test/e2e/cli-contractor.test.ts, cli-proxy.test.ts); this is for tests of the CLI's parts
 * in this process (cli-token-renewal.test.ts).
 */
async function startBoundProxyStandIn(keyStore: KeyStore, clock: Clock): Promise<BoundProxyStandIn> {
  const calls: SeenCall[] = [];
  const verifier = createDpopVerifier({ clock, replay: createMemoryReplayCache({ clock }) });
  const app = fastify();
  let url = '';
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.all('/*', async (request, reply) => {
    const authorization = request.headers.authorization;
    const proof = typeof request.headers.dpop === 'string' ? request.headers.dpop : undefined;
    const seen: SeenCall = {
      method: request.method,
      path: request.url,
      body: typeof request.body === 'string' ? request.body : '',
      authorization,
      proof,
      userId: undefined,
    };
    calls.push(seen);
    const deny = (status: number, error: string, headers: Record<string, string> = {}) =>
      reply.code(status).headers(headers).send({ error, message: error });
    const match = /^DPoP ([^\s]+)$/.exec(authorization ?? '');
    if (!match) return deny(401, authorization ? 'dpop_required' : 'missing_token');
    const token = match[1]!;
    const verified = await verifyGrantToken(keyStore, token, { issuer: ISSUER, clock });
    if (!verified.ok) return deny(verified.code === 'token_expired' ? 403 : 401, verified.code);
    if (!verified.claims.boundKey) return deny(401, 'invalid_token');
    const checked = await verifier.verify({
      proof: request.headers.dpop,
      method: request.method,
      htu: expectedHtu(url, request.url) ?? '',
      accessToken: token,
      boundKey: verified.claims.boundKey,
    });
    if (!checked.ok)
      return deny(dpopRefusalStatus(checked.code), checked.code, dpopChallengeHeaders(checked));
    if (request.url.split('/')[1] !== verified.claims.resource) return deny(403, 'wrong_resource');
    seen.userId = verified.claims.userId;
    return reply.send({
      ok: true,
      method: request.method,
      path: request.url,
      body: seen.body,
      user: seen.userId,
    });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return { url, calls, verifier, close: () => app.close() };
}
