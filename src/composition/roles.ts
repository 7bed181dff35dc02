import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { createOffboarding, startOffboardingRecheck } from '../access/index.ts';
import { createAnomalyMonitor } from '../anomaly/index.ts';
import { createAuditAppender } from '../audit/call-writer.ts';
import { createGrantSummarizer } from '../audit/summary.ts';
import { createWeeklyReporter } from '../audit/weekly-report.ts';
import { type Config, ConfigError } from '../config.ts';
import { installPostgresCrashGuard } from '../db/postgres-crash-guard.ts';
import { grantQuotaUse } from '../db/queries/grants/proxy-use.ts';
import type { Grant } from '../db/schema/index.ts';
import {
  createAdminServer,
  createReadiness,
  createServiceServer,
  type ReadinessCheck,
} from '../ops/admin-server.ts';
import { createBacklog, registerBacklogGauges } from '../ops/backlog.ts';
import { metricsCallSink } from '../ops/metrics.ts';
import { createRedisReadiness } from '../ops/redis-readiness.ts';
import {
  readTlsMaterial,
  reloadTlsListeners,
  type TlsListener,
  type TlsReloadResult,
  tlsLogFields,
} from '../ops/tls.ts';
import { createActiveGrantView } from '../proxy/active-grants.ts';
import { createRedisLimits } from '../proxy/limits/redis-limits.ts';
import { createQuotaTracker } from '../proxy/quota.ts';
import { aggregateRefusals } from '../proxy/refusal-aggregator.ts';
import { createProxyServer } from '../proxy/server.ts';
import { closeProxyServer } from '../proxy/shutdown.ts';
import {
  createBullScheduler,
  createLocalScheduler,
  createSchedulerStore,
  type Scheduler,
} from '../scheduler/index.ts';
import { fanOut } from '../shared/call-record.ts';
import { refusalText } from '../slack/blocks/refusals.ts';
import { createOutboxDispatcher, createSlackApp, type SlackApp } from '../slack/index.ts';
import { connectReplayRedis } from '../tokens/dpop-replay.ts';
import { createVerifier, issueTokenForGrant } from '../tokens/index.ts';
import { buildCore, type Core, type CoreOverrides } from './core.ts';
import { startProofChecks } from './proof-checks.ts';

const ROLES = ['bot', 'proxy', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface StartOptions {
  roles: ReadonlySet<Role>;
  /** `serve` runs without Slack when it is not configured; `jitgate bot` refuses to. */
  requireSlack?: boolean;
  overrides?: CoreOverrides;
  /** Seconds between re-reads of signing keys, so a rotation elsewhere is picked up. */
  keyRefreshSeconds?: number;
}

export interface Running {
  core: Core;
  /** Bound ports (useful when PORT, ADMIN_PORT or PROXY_PORT is 0). PORT: Slack events and probes. */
  port: number;
  /** ADMIN_PORT: `/healthz`, `/readyz` with each check, `/metrics`. */
  adminListenerPort: number;
  proxyPort: number | undefined;
  slack: SlackApp | undefined;
  scheduler: Scheduler | undefined;
  /**
   * Re-read the TLS certificate and key of each HTTPS listener (SIGHUP does this). New
   * connections get the new certificate; bad files keep the old one and are logged.
   */
  reloadTls(): TlsReloadResult[];
  /** Graceful: stop listening, finish in-flight work, flush the audit log, close connections. */
  stop(): Promise<void>;
}

const SHUTDOWN_STEP_TIMEOUT_MS = 10_000;

/** One shutdown step may not hang the rest: each gets a deadline, and failures are logged. */
async function step(core: Core, name: string, work: () => Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      work(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${SHUTDOWN_STEP_TIMEOUT_MS} ms`)),
          SHUTDOWN_STEP_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    core.logger.error({ err: error, step: name }, 'shutdown step failed');
  } finally {
    clearTimeout(timer);
  }
}

function closeServer(server: HttpServer): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Start the given roles in this process on one Core. `serve` is all three; a deployment
 * scales out by running `proxy` and `worker` processes beside one or more `bot`s.
 */
export async function startRoles(config: Config, options: StartOptions): Promise<Running> {
  // Certificates first: an unreadable or mismatched file stops start-up (exit 2, the variable
  // named) before any database or Slack work starts.
  const proxyTlsMaterial =
    options.roles.has('proxy') && config.proxyTls ? readTlsMaterial(config.proxyTls) : undefined;
  const adminTlsMaterial = config.adminTls ? readTlsMaterial(config.adminTls) : undefined;
  const tlsListeners: TlsListener[] = [];
  const core = await buildCore(config, options.overrides);
  const { logger, clock, database, policy, keys, access, metrics } = core;
  const stops: { name: string; run: () => Promise<unknown> }[] = [];
  const checks: ReadinessCheck[] = [
    {
      name: 'database',
      check: async () => {
        await database.db.execute(sql`select 1`);
        return true;
      },
    },
    { name: 'policy', check: () => Object.keys(policy.current().resources).length > 0 },
  ];
  const issueToken = (grant: Grant) => issueTokenForGrant(keys, grant, config.issuer);

  try {
    // Every role talks to Redis when REDIS_URL is set (the scheduler queue); without it there is
    // nothing to check, and readiness must not depend on a Redis that is not used.
    if (config.redisUrl) {
      const redis = createRedisReadiness(config.redisUrl);
      checks.push(redis);
      stops.push({ name: 'redis readiness', run: () => redis.close() });
    }

    // Scheduler: every role that commits changes schedules their jobs; only workers run them.
    let scheduler: Scheduler | undefined;
    const store = createSchedulerStore(database.db);
    // Runs inside whichever sweep runs (worker roles); the outbox dedupe key sends each week once.
    const weeklyReport = createWeeklyReporter({ db: database.db, policy, clock });
    const notifier = core.notifier;
    const offboarding = notifier
      ? createOffboarding({
          access,
          policy,
          directory: core.directory,
          isDeactivated: (userId) => notifier.isDeactivated(userId),
          logger: logger.child({ component: 'offboarding' }),
        })
      : undefined;
    if (config.redisUrl) {
      scheduler = createBullScheduler({
        redisUrl: config.redisUrl,
        store,
        access,
        policy,
        clock,
        logger,
        processJobs: options.roles.has('worker'),
        weeklyReport,
      });
    } else if (options.roles.has('worker')) {
      scheduler = createLocalScheduler({ store, access, policy, clock, logger, weeklyReport });
    } else {
      logger.warn('REDIS_URL is not set and this process runs no worker: expiry DMs wait for a worker');
    }
    if (scheduler) {
      const running = scheduler;
      core.onAccessEvents((events) => running.onAccessEvents(events));
      await running.start();
      stops.push({ name: 'scheduler', run: () => running.stop() });
    }

    // The offboarding re-check is periodic work like the sweep, so the worker role runs it.
    if (offboarding && options.roles.has('worker') && config.offboardingRecheckSeconds > 0) {
      const stopRecheck = startOffboardingRecheck(offboarding, {
        everyMs: config.offboardingRecheckSeconds * 1000,
        logger,
      });
      stops.push({ name: 'offboarding re-check', run: stopRecheck });
    }

    // Bot: Slack app, outbox delivery. The admin server below shares its port in HTTP mode.
    let slack: SlackApp | undefined;
    if (options.roles.has('bot')) {
      if (!core.notifier) {
        if (options.requireSlack)
          throw new ConfigError(['SLACK_BOT_TOKEN: expects a bot token (xoxb-…) for the bot role']);
        logger.warn('SLACK_BOT_TOKEN is not set: the Slack bot is off (requests and approvals need it)');
      } else {
        const dispatcher = createOutboxDispatcher({
          db: database.db,
          access,
          policy,
          notifier: core.notifier,
          clock,
          logger,
          proxyUrl: config.publicProxyUrl,
        });
        slack = createSlackApp({
          slack: {
            botToken: config.slack.botToken ?? '',
            signingSecret: config.slack.signingSecret,
            appToken: config.slack.appToken,
            apiUrl: config.slack.apiUrl,
          },
          access,
          policy,
          clock,
          notifier: core.notifier,
          issueToken,
          summarizeGrant: createGrantSummarizer(database.db),
          ...(offboarding ? { offboarding } : {}),
          directory: core.directory,
          logger,
          proxyUrl: config.publicProxyUrl,
        });
        core.onAccessEvents(() => dispatcher.kick());
        dispatcher.start();
        const bot = slack;
        stops.push({ name: 'outbox', run: () => dispatcher.stop() });
        if (bot.mode === 'socket') {
          await bot.start();
          stops.push({ name: 'slack', run: () => bot.stop() });
        }
      }
    }

    // Proxy: live grant view, token verification, audit and anomaly hand-off.
    let proxy: FastifyInstance | undefined;
    let proxyPort: number | undefined;
    if (options.roles.has('proxy')) {
      const view = createActiveGrantView({ database, logger });
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
      const appender = createAuditAppender({
        db: database.db,
        logger,
        quota,
        settleQuota: access.settleQuotaUse,
      });
      stops.push({ name: 'audit', run: () => appender.close() });
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
      const dpop = await startProofChecks(core, config, (name, run) => stops.push({ name, run }));
      proxy = createProxyServer({
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
      const refresh = setInterval(
        () => {
          keys
            .refresh()
            .catch((error: unknown) => logger.warn({ err: error }, 'could not refresh signing keys'));
        },
        (options.keyRefreshSeconds ?? 30) * 1000,
      );
      refresh.unref();
      stops.push({ name: 'key refresh', run: async () => clearInterval(refresh) });
      await proxy.listen({ port: config.proxyPort, host: config.host });
      proxyPort = (proxy.server.address() as AddressInfo).port;
      const listening = proxy;
      // Stops first among the proxy's parts (stops run in reverse): in-flight calls finish, or
      // are cut after a drain and recorded, before the audit writer's last flush.
      stops.push({ name: 'proxy', run: () => closeProxyServer(listening) });
      if (config.proxyTls && proxy.server instanceof TlsServer) {
        tlsListeners.push({ name: 'proxy', server: proxy.server, files: config.proxyTls });
      }
      logger.info(
        { port: proxyPort, tls: proxyTlsMaterial ? tlsLogFields(proxyTlsMaterial) : false },
        'proxy listening',
      );
    }

    registerBacklogGauges(metrics, createBacklog({ db: database.db, clock }));

    // The web console and /api/v1 share the bot's port (Sign in with Slack is a bot-side feature).
    let web: FastifyInstance | undefined;
    if (options.roles.has('bot') && config.console) {
      const { createWebApp, accessServiceActions } = await import('../console/index.ts');
      web = await createWebApp({
        config: config.console,
        db: database.db,
        policy,
        directory: core.directory,
        clock,
        logger,
        actions: accessServiceActions(access),
      });
      const app = web;
      stops.push({ name: 'console', run: () => app.close() });
    }
    const consoleApp = web;
    const readiness = createReadiness(() => checks);
    const service = createServiceServer({
      readiness,
      ...(consoleApp
        ? {
            mounts: [
              {
                prefixes: ['/console', '/api/v1', '/favicon.ico'],
                handler: (req, res) => consoleApp.routing(req, res),
              },
            ],
          }
        : {}),
      ...(slack?.requestListener ? { fallback: slack.requestListener } : {}),
      ...(adminTlsMaterial ? { tls: adminTlsMaterial } : {}),
    });
    if (config.adminTls && service instanceof TlsServer) {
      tlsListeners.push({ name: 'admin', server: service, files: config.adminTls });
    }
    const port = await listen(service, config.port, config.host);
    stops.push({ name: 'http', run: () => closeServer(service) });
    const admin = createAdminServer({ metrics, readiness, token: config.admin.token });
    const adminListenerPort = await listen(admin, config.admin.port, config.admin.host);
    stops.push({ name: 'admin', run: () => closeServer(admin) });
    logger.info(
      {
        port,
        adminPort: adminListenerPort,
        adminHost: config.admin.host,
        adminToken: config.admin.token !== undefined,
        roles: [...options.roles],
        slack: slack?.mode ?? 'off',
        console: consoleApp && config.console ? `${config.console.publicUrl}/console` : 'off',
        tls: adminTlsMaterial ? tlsLogFields(adminTlsMaterial) : false,
      },
      'jitgate started',
    );

    let stopping: Promise<void> | undefined;
    return {
      core,
      port,
      adminListenerPort,
      proxyPort,
      slack,
      scheduler,
      reloadTls: () => reloadTlsListeners(tlsListeners, logger),
      stop() {
        stopping ??= (async () => {
          for (const { name, run } of stops.reverse()) await step(core, name, run);
          await step(core, 'database', () => core.close());
        })();
        return stopping;
      },
    };
  } catch (error) {
    for (const { name, run } of stops.reverse()) await step(core, name, run);
    await core.close();
    throw error;
  }
}

/**
 * Runs roles until SIGTERM or SIGINT; SIGHUP reloads the policy (and with it credential and CA
 * files) and the listeners' TLS certificates. Returns the exit code.
 */
export async function runRoles(config: Config, options: StartOptions): Promise<number> {
  const running = await startRoles(config, options);
  const { logger, policy } = running.core;
  installPostgresCrashGuard(logger);
  const onHangup = () => {
    const result = policy.reload();
    if (result.ok) logger.info('policy reloaded');
    else logger.error({ err: result.error.message }, 'policy reload failed; keeping the previous policy');
    // Independent of the policy's outcome: a bad policy file must not pin an expiring certificate.
    running.reloadTls();
  };
  process.on('SIGHUP', onHangup);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'shutting down');
  process.off('SIGHUP', onHangup);
  await running.stop();
  return 0;
}
