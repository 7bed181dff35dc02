import type { AddressInfo } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { createAnomalyMonitor } from '../anomaly/index.ts';
import { createAuditAppender } from '../audit/call-writer.ts';
import { grantQuotaUse } from '../db/queries/grants/proxy-use.ts';
import type { ReadinessCheck } from '../ops/admin-server.ts';
import { metricsCallSink } from '../ops/metrics.ts';
import { type readTlsMaterial, type TlsListener, tlsLogFields } from '../ops/tls.ts';
import { createActiveGrantView } from '../proxy/active-grants.ts';
import { createRedisLimits } from '../proxy/limits/redis-limits.ts';
import { createQuotaTracker } from '../proxy/quota.ts';
import { aggregateRefusals } from '../proxy/refusal-aggregator.ts';
import { createProxyServer } from '../proxy/server.ts';
import { closeProxyServer } from '../proxy/shutdown.ts';
import { fanOut } from '../shared/call-record.ts';
import { refusalText } from '../slack/blocks/refusals.ts';
import { connectReplayRedis } from '../tokens/dpop-replay.ts';
import { createVerifier } from '../tokens/index.ts';
import type { Core } from './core.ts';
import { startProofChecks } from './proof-checks.ts';

/** What the proxy role adds to the process: shutdown steps, readiness checks, TLS listeners. */
export interface RoleHooks {
  stops: { name: string; run: () => Promise<unknown> }[];
  checks: ReadinessCheck[];
  tlsListeners: TlsListener[];
  keyRefreshSeconds: number;
}

/**
 * The proxy role: live grant view, limits (shared through Redis with REDIS_URL), the audit
 * writer, anomaly hand-off, DPoP checks for device-bound tokens, and the listener on
 * PROXY_PORT. Resolves with the bound port.
 */
export async function startProxyRole(
  core: Core,
  role: RoleHooks,
  proxyTlsMaterial: ReturnType<typeof readTlsMaterial> | undefined,
): Promise<number> {
  const { config, logger, clock, database, policy, keys, access, metrics } = core;
  const view = createActiveGrantView({ database, logger });
  await view.start();
  role.stops.push({ name: 'grant view', run: () => view.close() });
  role.checks.push({ name: 'grant_feed', check: () => view.isLive() });
  // One quota tracker per process, shared by the proxy (admits) and the appender (settles).
  const tracker = createQuotaTracker();
  // With Redis, rate limits and quotas hold across every proxy (src/proxy/limits/); stopped
  // after the audit writer (stops run in reverse), so its last settlements reach Redis.
  const limits = config.redisUrl
    ? createRedisLimits({
        redis: connectReplayRedis(config.redisUrl),
        quota: tracker,
        clock,
        whenRedisDown: config.quotaWhenRedisDown,
        readGrantUse: (grantId) => grantQuotaUse(database.db, grantId),
        logger: logger.child({ component: 'limits' }),
      })
    : undefined;
  if (limits) {
    await limits.start();
    role.stops.push({ name: 'shared limits', run: () => limits.close() });
  }
  const quota = limits ?? tracker;
  const appender = createAuditAppender({
    db: database.db,
    logger,
    quota,
    settleQuota: access.settleQuotaUse,
  });
  role.stops.push({ name: 'audit', run: () => appender.close() });
  // Refusals without a verified token reach the audit log bounded (src/proxy/refusal-aggregator.ts);
  // closed before the appender, so the last window's counts are written.
  const refusals = aggregateRefusals(appender, {
    clock,
    knownResource: (name) => Object.hasOwn(policy.current().resources, name),
  });
  role.stops.push({ name: 'refusal summaries', run: () => refusals.close() });
  const monitor = createAnomalyMonitor({
    db: database.db,
    policy,
    clock,
    access,
    logger,
    describeRefusal: refusalText,
  });
  role.stops.push({ name: 'anomaly', run: () => monitor.close() });
  metrics.addGauge(
    'jitgate_audit_backlog',
    'Proxy call records waiting to be written',
    () => appender.stats().queued,
  );
  role.checks.push({ name: 'audit', check: () => appender.hasCapacity() });
  const dpop = await startProofChecks(core, config, (name, run) => role.stops.push({ name, run }));
  const proxy = createProxyServer({
    dpop,
    policy,
    grants: view,
    verifier: createVerifier(keys, { issuer: config.issuer, clock }),
    keyStore: keys,
    clock,
    sink: fanOut([refusals, monitor, metricsCallSink(metrics)]),
    logger,
    quota,
    ...(limits ? { limits } : {}),
    issuer: config.issuer,
    ...(proxyTlsMaterial ? { tls: proxyTlsMaterial } : {}),
  });
  const refresh = setInterval(() => {
    keys.refresh().catch((error: unknown) => logger.warn({ err: error }, 'could not refresh signing keys'));
  }, role.keyRefreshSeconds * 1000);
  refresh.unref();
  role.stops.push({ name: 'key refresh', run: async () => clearInterval(refresh) });
  await proxy.listen({ port: config.proxyPort, host: config.host });
  const proxyPort = (proxy.server.address() as AddressInfo).port;
  const listening = proxy;
  // Stops first among the proxy's parts (stops run in reverse): in-flight calls finish, or
  // are cut after a drain and recorded, before the audit writer's last flush.
  role.stops.push({ name: 'proxy', run: () => closeProxyServer(listening) });
  if (config.proxyTls && proxy.server instanceof TlsServer) {
    role.tlsListeners.push({ name: 'proxy', server: proxy.server, files: config.proxyTls });
  }
  logger.info(
    { port: proxyPort, tls: proxyTlsMaterial ? tlsLogFields(proxyTlsMaterial) : false },
    'proxy listening',
  );
  return proxyPort;
}
