import type { Config } from '../config.ts';
import type { ProofChecks } from '../proxy/authorize.ts';
import { createRevokedDeviceView } from '../proxy/revoked-devices.ts';
import { createDpopVerifier } from '../tokens/dpop.ts';
import {
  connectReplayRedis,
  createMemoryReplayCache,
  createRedisReplayCache,
  type ReplayCache,
} from '../tokens/dpop-replay.ts';
import type { Core } from './core.ts';

/**
 * What the proxy needs for device-bound tokens: the DPoP verifier, whose replay cache is shared
 * by every proxy through Redis when REDIS_URL is set (one `SET NX PX` per proof, no PostgreSQL),
 * in-process otherwise; the public URL proofs name; and the live view of revoked device keys.
 */
export async function startProofChecks(
  core: Core,
  config: Config,
  onStop: (name: string, run: () => Promise<unknown>) => void,
): Promise<ProofChecks> {
  const { clock, logger, database } = core;
  let replay: ReplayCache = createMemoryReplayCache({ clock });
  if (config.redisUrl) {
    const redis = connectReplayRedis(config.redisUrl);
    onStop('dpop replay cache', async () => redis.disconnect());
    const log = logger.child({ component: 'dpop' });
    replay = createRedisReplayCache({
      redis,
      onError: (error) => log.warn({ err: error }, 'DPoP replay check failed; proof refused'),
    });
  }
  const devices = createRevokedDeviceView({ database, logger: logger.child({ component: 'devices' }) });
  // Not awaited: start-up never waits on it. Until it has loaded, bound tokens get 503
  // grant_unconfirmed (fail closed); bearer tokens never consult it.
  devices.start().catch((error: unknown) => logger.error({ err: error }, 'device view failed to start'));
  onStop('device view', () => devices.close());
  return {
    verifier: createDpopVerifier({ clock, replay }),
    publicUrl: () => config.publicProxyUrl,
    deviceState: (thumbprint) => devices.stateOf(thumbprint),
  };
}
