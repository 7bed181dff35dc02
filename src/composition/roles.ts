import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { createOffboarding, startOffboardingRecheck } from '../access/index.ts';
import { createGrantSummarizer } from '../audit/summary.ts';
import { createWeeklyReporter } from '../audit/weekly-report.ts';
import { type Config, ConfigError } from '../config.ts';
import { installPostgresCrashGuard } from '../db/postgres-crash-guard.ts';
import type { Grant } from '../db/schema/index.ts';
import {
  createAdminServer,
  createReadiness,
  createServiceServer,
  type ReadinessCheck,
} from '../ops/admin-server.ts';
import { createBacklog, registerBacklogGauges } from '../ops/backlog.ts';
import { createRedisReadiness } from '../ops/redis-readiness.ts';
import {
  readTlsMaterial,
  reloadTlsListeners,
  type TlsListener,
  type TlsReloadResult,
  tlsLogFields,
} from '../ops/tls.ts';
import {
  createBullScheduler,
  createLocalScheduler,
  createSchedulerStore,
  type Scheduler,
} from '../scheduler/index.ts';
import { createOutboxDispatcher, createSlackApp, type SlackApp } from '../slack/index.ts';
import { issueTokenForGrant } from '../tokens/index.ts';
import { buildCore, type Core, type CoreOverrides } from './core.ts';
import {
  createDeviceApp,
  DEVICE_API_PREFIX,
  deviceApiWiring,
  deviceDepsOf,
  offboardDevices,
  registerDeviceApi,
  sweepStalePairings,
} from './devices.ts';
import { startProxyRole } from './proxy-role.ts';

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
  /**
   * Graceful: stop listening, finish in-flight work, flush the audit log, close connections.
   * Resolves false when a step failed or ran past its deadline (`runRoles` then exits 1).
   */
  stop(): Promise<boolean>;
}

const SHUTDOWN_STEP_TIMEOUT_MS = 10_000;

/**
 * One shutdown step may not hang the rest: each gets a deadline, and failures are logged.
 * Resolves false when the step failed or timed out.
 */
async function step(core: Core, name: string, work: () => Promise<unknown>): Promise<boolean> {
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
    return true;
  } catch (error) {
    core.logger.error({ err: error, step: name }, 'shutdown step failed');
    return false;
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
      // A proxy is ready when it can confirm grants and write its audit; without Redis it keeps
      // serving (limits fall back per JITGATE_QUOTA_WHEN_REDIS_DOWN), so a proxy-only process
      // reports Redis without leaving the rotation for it. Bot and worker need it to schedule.
      const needsRedis = options.roles.has('bot') || options.roles.has('worker');
      checks.push({ name: redis.name, check: () => redis.check(), informational: !needsRedis });
      stops.push({ name: 'redis readiness', run: () => redis.close() });
    }

    // Scheduler: every role that commits changes schedules their jobs; only workers run them.
    let scheduler: Scheduler | undefined;
    const store = createSchedulerStore(database.db);
    // Runs inside whichever sweep runs (worker roles); the outbox dedupe key sends each week once.
    const weeklyReport = createWeeklyReporter({ db: database.db, policy, clock });
    const notifier = core.notifier;
    const devices = deviceDepsOf(core);
    const offboarding = notifier
      ? createOffboarding({
          access,
          policy,
          directory: core.directory,
          isDeactivated: (userId) => notifier.isDeactivated(userId),
          revokeDevices: offboardDevices(devices),
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
          serverUrl: config.serviceUrl,
          devices,
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

    // Proxy: live grant view, token and DPoP verification, intent journal, audit and anomaly hand-off.
    const proxyPort = options.roles.has('proxy')
      ? await startProxyRole({
          config,
          core,
          stops,
          checks,
          tls: proxyTlsMaterial,
          tlsListeners,
          keyRefreshSeconds: options.keyRefreshSeconds ?? 30,
        })
      : undefined;

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
        moreApi: (app) =>
          registerDeviceApi(
            app,
            deviceApiWiring(core, config, devices, (name, run) => stops.push({ name, run })),
          ),
        ...(notifier ? { lookupName: (userId: string) => notifier.userName(userId) } : {}),
      });
      const app = web;
      stops.push({ name: 'console', run: () => app.close() });
    }
    const consoleApp = web;
    // The device API is the bot's: inside the console's app when it runs, else on its own.
    const deviceApp =
      options.roles.has('bot') && !consoleApp
        ? await createDeviceApp(
            deviceApiWiring(core, config, devices, (name, run) => stops.push({ name, run })),
          )
        : undefined;
    if (options.roles.has('bot'))
      stops.push({ name: 'pairing sweep', run: sweepStalePairings(core, devices) });
    const readiness = createReadiness(() => checks);
    const service = createServiceServer({
      readiness,
      mounts: [
        ...(consoleApp
          ? [
              {
                prefixes: ['/console', '/api/v1', '/favicon.ico'],
                handler: (req: IncomingMessage, res: ServerResponse) => consoleApp.routing(req, res),
              },
            ]
          : []),
        ...(deviceApp
          ? [
              {
                prefixes: [DEVICE_API_PREFIX],
                handler: (req: IncomingMessage, res: ServerResponse) => deviceApp.routing(req, res),
              },
            ]
          : []),
      ],
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

    let stopping: Promise<boolean> | undefined;
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
          let clean = true;
          for (const { name, run } of stops.reverse()) clean = (await step(core, name, run)) && clean;
          return (await step(core, 'database', () => core.close())) && clean;
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
  // Non-zero when something could not be finished (an audit write, say): the orchestrator sees it.
  const clean = await running.stop();
  logger.info({ clean }, 'stopped');
  return clean ? 0 : 1;
}
