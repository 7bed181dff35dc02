import type { Config } from '../config.ts';
import type { ActiveGrantView } from '../proxy/active-grants.ts';
import type { ProofChecks } from '../proxy/authorize.ts';
import type { Clock } from '../shared/clock.ts';
import { createDpopVerifier } from '../tokens/dpop.ts';
import { createDpopNonces, type DpopNonces } from '../tokens/dpop-nonces.ts';
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
 * in-process otherwise; the public URL proofs name; and revoked device keys, which the grant
 * view holds (they ride the grant feed, under its liveness check).
 */
export function startProofChecks(
  core: Core,
  config: Config,
  grants: ActiveGrantView,
  onStop: (name: string, run: () => Promise<unknown>) => void,
): ProofChecks {
  const { clock, logger } = core;
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
  return {
    verifier: createDpopVerifier({ clock, replay, ...dpopNoncesOf(config, clock) }),
    publicUrl: () => config.publicProxyUrl,
    deviceState: (thumbprint) => grants.deviceKeyState(thumbprint),
  };
}

/** The server nonces JITGATE_DPOP_NONCE_SECRET asks for, as verifier options (none when unset). */
export function dpopNoncesOf(config: Config, clock: Clock): { nonces?: DpopNonces } {
  if (config.dpopNonceSecret === undefined) return {};
  return { nonces: createDpopNonces({ secret: new TextEncoder().encode(config.dpopNonceSecret), clock }) };
}
