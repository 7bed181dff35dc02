import type { FastifyInstance } from 'fastify';
import Fastify from 'fastify';
import type { AccessService } from '../access/index.ts';
import { deviceAccessFrom, deviceApi } from '../api/device/index.ts';
import type { Config } from '../config.ts';
import { deleteStalePairings, findDeviceByThumbprint } from '../db/queries/devices.ts';
import { type DeviceDeps, revokeDevicesOf, startPairing } from '../devices/index.ts';
import { createRateLimiter } from '../proxy/rate-limit.ts';
import type { Clock } from '../shared/clock.ts';
import { issueDeviceBoundToken } from '../tokens/device-token.ts';
import { createDpopVerifier } from '../tokens/dpop.ts';
import type { DpopNonces } from '../tokens/dpop-nonces.ts';
import {
  connectReplayRedis,
  createMemoryReplayCache,
  createRedisReplayCache,
  type ReplayCache,
} from '../tokens/dpop-replay.ts';
import type { KeyStore } from '../tokens/index.ts';
import type { Core } from './core.ts';
import { dpopNoncesOf } from './proof-checks.ts';

/** Where the device API lives on the service listener (PORT). */
export const DEVICE_API_PREFIX = '/api/v1/device';
/** Pairings one client address may start: a burst of 10, then one every 6 s. */
const PAIRINGS_PER_MINUTE = 10;
/** How long after its code expired a never-linked device is kept (for the CLI to learn it expired). */
const STALE_PAIRING_MS = 60 * 60_000;

export function deviceDepsOf(core: Core): DeviceDeps {
  return {
    db: core.database.db,
    clock: core.clock,
    grantFeedChannel: core.database.channel('grants'),
  };
}

/** Offboarding's part for devices: every linked device of the person, revoked and audited. */
export function offboardDevices(devices: DeviceDeps) {
  return async (userId: string, reason: string): Promise<number> =>
    (await revokeDevicesOf(devices, { userId, actor: { type: 'system', component: 'offboarding' }, reason }))
      .length;
}

/**
 * Registers the device API (pairing, requests, device-bound tokens) on `app` under
 * DEVICE_API_PREFIX: into the console's app when it runs (so `/api/v1/openapi.json` describes
 * it), else into an app of its own.
 */
export async function registerDeviceApi(app: FastifyInstance, wiring: DeviceApiWiring): Promise<void> {
  const { clock, keys, devices } = wiring;
  const pairings = createRateLimiter({ clock });
  await app.register(deviceApi, {
    prefix: DEVICE_API_PREFIX,
    access: deviceAccessFrom(wiring.access),
    devices: {
      findByThumbprint: (thumbprint) => findDeviceByThumbprint(devices.db, thumbprint),
      startPairing: (input) => startPairing(devices, input),
    },
    verifier: createDpopVerifier({
      clock,
      replay: wiring.replay ?? createMemoryReplayCache({ clock }),
      ...(wiring.nonces ? { nonces: wiring.nonces } : {}),
    }),
    issueToken: (grant, device) => issueDeviceBoundToken(keys, grant, device, wiring.issuer),
    publicUrl: () => wiring.serviceUrl,
    proxyUrl: wiring.proxyUrl,
    allowPairing: (clientIp) =>
      pairings.take(
        `pairing:${clientIp}`,
        { requests: PAIRINGS_PER_MINUTE, perSeconds: 60 },
        clock.now().getTime(),
      ).ok,
  });
}

/** What the device API is built from. */
export interface DeviceApiWiring {
  access: AccessService;
  keys: KeyStore;
  devices: DeviceDeps;
  clock: Clock;
  issuer: string;
  /** JITGATE_CONSOLE_URL: the URL the CLI calls, which its proofs name. */
  serviceUrl: string;
  /** JITGATE_PUBLIC_URL: where the CLI sends proxied calls. */
  proxyUrl: string;
  /** With REDIS_URL, shared by every bot, so a proof replayed to another bot is refused too. Default: in-process. */
  replay?: ReplayCache;
  /** JITGATE_DPOP_NONCE_SECRET set: proofs must carry a nonce this server issued. */
  nonces?: DpopNonces;
}

export function deviceApiWiring(
  core: Core,
  config: Config,
  devices: DeviceDeps,
  onStop: (name: string, run: () => Promise<unknown>) => void,
): DeviceApiWiring {
  let replay: ReplayCache | undefined;
  if (config.redisUrl) {
    const redis = connectReplayRedis(config.redisUrl);
    onStop('device API replay cache', async () => redis.disconnect());
    replay = createRedisReplayCache({ redis, prefix: 'jitgate:dpop-device-api:' });
  }
  return {
    access: core.access,
    keys: core.keys,
    devices,
    clock: core.clock,
    issuer: config.issuer,
    serviceUrl: config.serviceUrl,
    proxyUrl: config.publicProxyUrl,
    ...(replay ? { replay } : {}),
    ...dpopNoncesOf(config, core.clock),
  };
}

/** The device API alone, for a bot without the console. */
export async function createDeviceApp(wiring: DeviceApiWiring): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 16 * 1024, trustProxy: false });
  await registerDeviceApi(app, wiring);
  await app.ready();
  return app;
}

/** Deletes never-linked devices an hour after their code expired, every minute; returns the stop. */
export function sweepStalePairings(core: Core, devices: DeviceDeps): () => Promise<void> {
  const timer = setInterval(() => {
    const before = new Date(core.clock.now().getTime() - STALE_PAIRING_MS);
    deleteStalePairings(devices.db, before).catch((error: unknown) =>
      core.logger.warn({ err: error }, 'could not sweep stale device pairings'),
    );
  }, 60_000);
  timer.unref();
  return async () => clearInterval(timer);
}
