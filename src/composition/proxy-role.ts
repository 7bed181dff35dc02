import type { AddressInfo } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { createAnomalyMonitor } from '../anomaly/index.ts';
import { createAuditAppender } from '../audit/call-writer.ts';
import {
  createIntentJournal,
  type IntentJournal,
  intentDirProblem,
  intentLogId,
} from '../audit/intent-journal.ts';
import { replayIntentJournal } from '../audit/intent-replay.ts';
import { type Config, ConfigError } from '../config.ts';
import { postgresClientOf } from '../db/client.ts';
import { grantQuotaUse } from '../db/queries/grants/proxy-use.ts';
import type { ReadinessCheck } from '../ops/admin-server.ts';
import { metricsCallSink } from '../ops/metrics.ts';
import { type TlsListener, type TlsMaterial, tlsLogFields } from '../ops/tls.ts';
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

export interface ProxyRoleContext {
  config: Config;
  core: Core;
  stops: { name: string; run: () => Promise<unknown> }[];
  checks: ReadinessCheck[];
  tls: TlsMaterial | undefined;
  tlsListeners: TlsListener[];
  keyRefreshSeconds: number;
}

/**
 * The proxy role: live grant view, token verification (DPoP for device-bound tokens), intent
 * journal, audit and anomaly hand-off. Adds its stops (run in reverse) and readiness checks to the context's lists and
 * resolves with the bound port.
 */
export async function startProxyRole(ctx: ProxyRoleContext): Promise<number> {
  const { config, core, stops, checks } = ctx;
  const { logger, clock, database, policy, keys, access, metrics } = core;
  if (config.intentDir) {
    const problem = intentDirProblem(config.intentDir);
    if (problem) {
      throw new ConfigError([
        `JITGATE_INTENT_DIR: cannot write ${config.intentDir} (${problem}); mount a writable volume there, or set it to off`,
      ]);
    }
  }
  const log = intentLogId(config.databaseUrl, config.dataDir, database.schemaName);
  // Calls a process that died had forwarded get their audit rows before this one forwards any.
  if (config.intentDir) {
    await replayIntentJournal({
      dir: config.intentDir,
      log,
      db: database.db,
      logger,
      settleQuota: access.settleQuotaUse,
    });
  }
  const view = createActiveGrantView({ database, logger, clock });
  await view.start();
  stops.push({ name: 'grant view', run: () => view.close() });
  checks.push({ name: 'grant_feed', check: () => view.isLive() });
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
    stops.push({ name: 'shared limits', run: () => limits.close() });
  }
  const quota = limits ?? tracker;
  const client = postgresClientOf(database.db);
  const appender = createAuditAppender({
    db: database.db,
    // On PostgreSQL, batches go pipelined on postgres.js itself; PGlite's all take drizzle's path.
    ...(client ? { client } : {}),
    logger,
    quota,
    settleQuota: access.settleQuotaUse,
  });
  let journal: IntentJournal | undefined;
  let auditWritten = false;
  if (config.intentDir) {
    const opened = createIntentJournal({
      dir: config.intentDir,
      log,
      flushCommitted: () => appender.flush(),
      logger,
    });
    journal = opened;
    // After the audit writer's close (stops run in reverse): what it wrote lets segments go;
    // what it could not write stays on disk for the next start, and the stop fails (exit 1).
    stops.push({
      name: 'intent journal',
      run: async () => {
        const kept = await opened.close(auditWritten);
        if (kept > 0)
          throw new Error(`${kept} intent segment(s) kept: their calls are audited at the next start`);
      },
    });
  }
  stops.push({
    name: 'audit',
    run: async () => {
      await appender.close();
      auditWritten = true;
    },
  });
  // Refusals without a verified token reach the audit log bounded (src/proxy/refusal-aggregator.ts);
  // closed before the appender, so the last window's counts are written.
  const refusals = aggregateRefusals(appender, {
    clock,
    knownResource: (name) => Object.hasOwn(policy.current().resources, name),
  });
  stops.push({ name: 'refusal summaries', run: () => refusals.close() });
  const monitor = createAnomalyMonitor({
    db: database.db,
    policy,
    clock,
    access,
    logger,
    describeRefusal: refusalText,
  });
  stops.push({ name: 'anomaly', run: () => monitor.close() });
  metrics.addGauge(
    'jitgate_audit_backlog',
    'Proxy call records waiting to be written',
    () => appender.stats().queued,
  );
  checks.push({ name: 'audit', check: () => appender.hasCapacity() });
  const dpop = startProofChecks(core, config, view, (name, run) => stops.push({ name, run }));
  const proxy: FastifyInstance = createProxyServer({
    dpop,
    policy,
    grants: view,
    verifier: createVerifier(keys, { issuer: config.issuer, clock }),
    keyStore: keys,
    clock,
    sink: fanOut([refusals, monitor, metricsCallSink(metrics)]),
    ...(journal ? { journal } : {}),
    logger,
    quota,
    ...(limits ? { limits } : {}),
    issuer: config.issuer,
    ...(ctx.tls ? { tls: ctx.tls } : {}),
  });
  const refresh = setInterval(() => {
    keys.refresh().catch((error: unknown) => logger.warn({ err: error }, 'could not refresh signing keys'));
  }, ctx.keyRefreshSeconds * 1000);
  refresh.unref();
  stops.push({ name: 'key refresh', run: async () => clearInterval(refresh) });
  await proxy.listen({ port: config.proxyPort, host: config.host });
  const proxyPort = (proxy.server.address() as AddressInfo).port;
  // Stops first among the proxy's parts (stops run in reverse): in-flight calls finish, or
  // are cut after a drain and recorded, before the audit writer's last flush.
  stops.push({ name: 'proxy', run: () => closeProxyServer(proxy) });
  if (config.proxyTls && proxy.server instanceof TlsServer) {
    ctx.tlsListeners.push({ name: 'proxy', server: proxy.server, files: config.proxyTls });
  }
  logger.info({ port: proxyPort, tls: ctx.tls ? tlsLogFields(ctx.tls) : false }, 'proxy listening');
  return proxyPort;
}
