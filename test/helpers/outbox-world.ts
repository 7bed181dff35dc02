import { pino } from 'pino';
import { type AccessService, createAccessService, staticDirectory } from '../../src/access/index.ts';
import type { Db } from '../../src/db/client.ts';
import { countUndelivered } from '../../src/db/queries/outbox.ts';
import {
  type FakeSlackApi,
  type RecordedCall,
  startFakeSlackApi,
} from '../../src/dev/slack-stand-in/web-api.ts';
import type { OutboxMessage } from '../../src/outbox/index.ts';
import { type PolicyStore, staticPolicyStore } from '../../src/policy/index.ts';
import { createSchedulerStore, type SchedulerStore } from '../../src/scheduler/index.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { createHomeTabs, type HomeTabs } from '../../src/slack/home.ts';
import { createNotifier } from '../../src/slack/notifier.ts';
import { createOutboxDispatcher, type OutboxDispatcher } from '../../src/slack/outbox-dispatcher.ts';
import { openTestDatabase } from './db.ts';
import { TEST_POLICY_YAML, testPolicy } from './policy.ts';

export type ManualClock = ReturnType<typeof manualClock>;

const PROXY_URL = 'http://proxy.test:8080';

/** One jitgate process's Slack side: its own access service, notifier (bot token) and dispatcher. */
export interface SlackProcess {
  access: AccessService;
  homes: HomeTabs;
  dispatcher: OutboxDispatcher;
  botToken: string;
}

/**
 * Builds a process over `db`: the access service, a notifier pointed at the fake Slack API
 * with `botToken` (so recorded calls say which process made them), App Home tabs and an
 * outbox dispatcher that is NOT started: tests call `drain()` when they want delivery.
 */
export function slackProcess(input: {
  db: Db;
  grantChannel: string;
  clock: ManualClock;
  policy: PolicyStore;
  api: FakeSlackApi;
  botToken: string;
  batchSize?: number;
  /** Per Web API request (the notifier's `timeoutMs`): short, to make a call that never answers time out soon. */
  slackTimeoutMs?: number;
  onCommitted?: (events: readonly OutboxMessage[]) => void;
}): SlackProcess {
  const logger = pino({ level: 'silent' });
  const access = createAccessService({
    db: input.db,
    policy: input.policy,
    clock: input.clock,
    directory: staticDirectory({}),
    grantChannel: input.grantChannel,
    onCommitted: input.onCommitted,
  });
  const notifier = createNotifier({
    botToken: input.botToken,
    apiUrl: input.api.url,
    logger,
    baseDelayMs: 1,
    maxAttempts: 2,
    ...(input.slackTimeoutMs === undefined ? {} : { timeoutMs: input.slackTimeoutMs }),
  });
  const homes = createHomeTabs({ access, notifier, policy: input.policy, clock: input.clock, logger });
  const dispatcher = createOutboxDispatcher({
    db: input.db,
    access,
    policy: input.policy,
    notifier,
    clock: input.clock,
    logger,
    proxyUrl: PROXY_URL,
    homes,
    ...(input.batchSize === undefined ? {} : { batchSize: input.batchSize }),
  });
  return { access, homes, dispatcher, botToken: input.botToken };
}

export interface OutboxWorld extends SlackProcess {
  database: Awaited<ReturnType<typeof openTestDatabase>>;
  clock: ManualClock;
  policy: PolicyStore;
  api: FakeSlackApi;
  store: SchedulerStore;
  /** Where the access service's onCommitted goes besides nothing; tests point it at a scheduler. */
  setListener(listener: ((events: readonly OutboxMessage[]) => void) | undefined): void;
  undelivered(): Promise<number>;
  close(): Promise<void>;
}

/**
 * A schema of its own, a frozen manual clock (starting at the real time, so BullMQ's own
 * timestamps stay sensible), the Slack fake, and one Slack process over them.
 */
export async function openOutboxWorld(
  options: { yamlEdit?: (yaml: string) => string; batchSize?: number; slackTimeoutMs?: number } = {},
): Promise<OutboxWorld> {
  const database = await openTestDatabase('lifecycle');
  const api = await startFakeSlackApi();
  const clock = manualClock(new Date());
  const policy = staticPolicyStore(testPolicy((options.yamlEdit ?? ((y) => y))(TEST_POLICY_YAML)));
  let listener: ((events: readonly OutboxMessage[]) => void) | undefined;
  const process = slackProcess({
    db: database.db,
    grantChannel: database.channel('grants'),
    clock,
    policy,
    api,
    botToken: 'xoxb-lifecycle',
    batchSize: options.batchSize,
    ...(options.slackTimeoutMs === undefined ? {} : { slackTimeoutMs: options.slackTimeoutMs }),
    onCommitted: (events) => listener?.(events),
  });
  return {
    ...process,
    database,
    clock,
    policy,
    api,
    store: createSchedulerStore(database.db),
    setListener(l) {
      listener = l;
    },
    undelivered: () => countUndelivered(database.db),
    async close() {
      await process.dispatcher.stop();
      await api.close();
      await database.drop();
    },
  };
}

/** Calls to `method` recorded from index `since` on (a mark taken with `api.calls.length`). */
export function callsSince(api: FakeSlackApi, since: number, method: string): RecordedCall[] {
  return api.calls.slice(since).filter((c) => c.method === method);
}
