import { type AccessService, cachedDirectory, createAccessService, type Directory } from '../access/index.ts';
import type { Config } from '../config.ts';
import { type Database, openDatabase } from '../db/client.ts';
import { createMetrics, type Metrics } from '../ops/metrics.ts';
import type { OutboxMessage } from '../outbox/index.ts';
import { filePolicyStore, type PolicyStore } from '../policy/index.ts';
import type { Clock } from '../shared/clock.ts';
import { systemClock } from '../shared/clock.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { createNotifier, type Notifier, slackGroupMembers } from '../slack/index.ts';
import { createKeyStore, type KeyStore } from '../tokens/index.ts';

/**
 * What every role shares, built once per process: the database, policy, key store and the
 * access service. The only place that constructs them; roles.ts (the composition root) builds
 * the bot, proxy and worker on top of a Core.
 */
export interface Core {
  config: Config;
  logger: Logger;
  clock: Clock;
  database: Database;
  policy: PolicyStore;
  keys: KeyStore;
  directory: Directory;
  access: AccessService;
  metrics: Metrics;
  /** The one client of Slack's Web API; undefined when Slack is not configured. */
  notifier: Notifier | undefined;
  /** React to committed state changes (the scheduler schedules, the Slack outbox delivers). */
  onAccessEvents(listener: AccessEventListener): () => void;
  close(): Promise<void>;
}

type AccessEventListener = (events: readonly OutboxMessage[]) => void;

export interface CoreOverrides {
  clock?: Clock;
  logger?: Logger;
  policy?: PolicyStore;
  directory?: Directory;
  schemaName?: string;
}

export async function buildCore(config: Config, overrides: CoreOverrides = {}): Promise<Core> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const clock = overrides.clock ?? systemClock;
  // The policy is read first: a bad file should stop start-up before anything connects.
  const policy = overrides.policy ?? filePolicyStore(config.policyPath, config.environment);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    ...(overrides.schemaName ? { schemaName: overrides.schemaName } : {}),
  });
  try {
    await database.migrate();
    const keys = createKeyStore({
      db: database.db,
      clock,
      ...(config.signingKey ? { configuredKey: config.signingKey } : {}),
      ...(config.masterKey ? { masterKey: config.masterKey } : {}),
    });
    await keys.load();
    const metrics = createMetrics();
    const notifier = config.slack.botToken
      ? createNotifier({
          botToken: config.slack.botToken,
          apiUrl: config.slack.apiUrl,
          logger,
          onFailure: (method) => metrics.slackApiErrors.inc({ method }),
        })
      : undefined;
    // Without Slack no group can be looked up, so only approvers listed by user ID count.
    const directory =
      overrides.directory ?? cachedDirectory(notifier ? slackGroupMembers(notifier) : async () => [], clock);
    const listeners = new Set<AccessEventListener>();
    const access = createAccessService({
      db: database.db,
      policy,
      clock,
      directory,
      grantChannel: database.channel('grants'),
      onCommitted: (events) => {
        for (const listener of listeners) {
          try {
            listener(events);
          } catch (error) {
            // The change is committed; a failing reaction is retried by its own sweep or outbox poll.
            logger.error({ err: error }, 'access event listener failed');
          }
        }
      },
    });
    return {
      config,
      logger,
      clock,
      database,
      policy,
      keys,
      directory,
      access,
      metrics,
      notifier,
      onAccessEvents(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      close: () => database.close(),
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}
