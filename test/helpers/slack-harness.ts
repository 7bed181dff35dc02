import { count } from 'drizzle-orm';
import { pino } from 'pino';
import {
  cachedDirectory,
  createAccessService,
  createOffboarding,
  type Offboarding,
} from '../../src/access/index.ts';
import { createGrantSummarizer } from '../../src/audit/summary.ts';
import type { Database } from '../../src/db/client.ts';
import { accessRequests, approvals, grants, outbox } from '../../src/db/schema/index.ts';
import { type Policy, staticPolicyStore } from '../../src/policy/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createSlackApp, type SlackApp } from '../../src/slack/app.ts';
import type { IssueToken } from '../../src/slack/deps.ts';
import { slackGroupMembers } from '../../src/slack/directory.ts';
import { createNotifier } from '../../src/slack/notifier.ts';
import { createOutboxDispatcher, type OutboxDispatcher } from '../../src/slack/outbox-dispatcher.ts';
import { type FakeSlackApi, type RecordedCall, startFakeSlackApi } from '../fakes/slack-api.ts';
import {
  blockActionsBody,
  type PostSignedOptions,
  postSigned,
  slashCommandBody,
  type ViewStateValues,
  viewSubmissionBody,
} from '../fakes/slack-signing.ts';
import { openTestDatabase } from './db.ts';
import { testPolicy } from './policy.ts';

export const SIGNING_SECRET = 'test-signing-secret';
export const BOT_TOKEN = 'xoxb-test-bot-token';
export const APP_TOKEN = 'xapp-1-A1-123-test';
export const PROXY_URL = 'http://proxy.test:8080';

/** Fake tokens that make it obvious (and checkable) which grant and expiry they were issued for. */
export const fakeToken = (grant: { id: string; expiresAt: Date }) =>
  `tok.${grant.id}.${grant.expiresAt.getTime()}`;

let keyCounter = 0;
const nextKey = (prefix: string) => `${prefix}-${++keyCounter}`;

export interface SlackHarness {
  api: FakeSlackApi;
  slack: SlackApp;
  dispatcher: OutboxDispatcher;
  access: ReturnType<typeof createAccessService>;
  offboarding: Offboarding;
  database: Database;
  /** The policy the service and Slack app read; `replace` stands in for a reload. */
  policy: ReturnType<typeof staticPolicyStore>;
  baseUrl: string;
  /** Posts a signed `/access <text>`; `responseKey` names the `response_url` the answer goes to. */
  command(
    userId: string,
    text: string,
    opts?: PostSignedOptions,
  ): Promise<{ response: Response; responseKey: string; triggerId: string }>;
  click(
    userId: string,
    actionId: string,
    value: string,
    opts?: { messageTs?: string; channelId?: string; viewId?: string },
  ): Promise<{ response: Response; responseKey: string }>;
  submit(
    userId: string,
    callbackId: string,
    values: ViewStateValues,
    privateMetadata?: string,
  ): Promise<Response>;
  /** The next answer posted to the `response_url` named `key`. */
  answer(key: string): Promise<RecordedCall>;
  counts(): Promise<{ requests: number; grants: number; approvals: number; outbox: number }>;
  close(): Promise<void>;
}

/** Real Postgres, the Slack fake, the real access service and the Slack app over HTTP (or Socket Mode). */
export async function startSlackHarness(
  options: {
    userGroups?: Record<string, string[]>;
    socketUrl?: string;
    policy?: Policy;
    /** How Show token makes a token; {@link fakeToken} unless a test wants real, verifiable ones. */
    issueToken?: IssueToken;
  } = {},
): Promise<SlackHarness> {
  const database = await openTestDatabase('slack');
  const api = await startFakeSlackApi({ userGroups: options.userGroups ?? {}, socketUrl: options.socketUrl });
  const logger = pino({ level: 'silent' });
  const policy = staticPolicyStore(options.policy ?? testPolicy());
  const clock = systemClock;
  const notifier = createNotifier({ botToken: BOT_TOKEN, apiUrl: api.url, logger, baseDelayMs: 10 });
  let dispatcher: OutboxDispatcher | undefined;
  const directory = cachedDirectory(slackGroupMembers(notifier), clock);
  const access = createAccessService({
    db: database.db,
    policy,
    clock,
    directory,
    grantChannel: database.channel('grants'),
    onCommitted: () => dispatcher?.kick(),
  });
  const offboarding = createOffboarding({
    access,
    policy,
    directory,
    isDeactivated: (userId) => notifier.isDeactivated(userId),
    logger,
  });
  const slack = createSlackApp({
    slack: {
      botToken: BOT_TOKEN,
      signingSecret: SIGNING_SECRET,
      appToken: options.socketUrl ? APP_TOKEN : undefined,
      apiUrl: api.url,
    },
    access,
    policy,
    clock,
    notifier,
    issueToken: options.issueToken ?? (async (grant) => fakeToken(grant)),
    // As production wires it (src/roles.ts), so `/access audit` answers from the audit log.
    summarizeGrant: createGrantSummarizer(database.db),
    offboarding,
    directory,
    logger,
    proxyUrl: PROXY_URL,
  });
  const outboxDispatcher = createOutboxDispatcher({
    db: database.db,
    access,
    policy,
    notifier,
    clock,
    logger,
    proxyUrl: PROXY_URL,
    homes: slack.homes,
    pollIntervalMs: 200,
  });
  dispatcher = outboxDispatcher;
  outboxDispatcher.start();
  const { port } = await slack.start(0, '127.0.0.1');
  const baseUrl = `http://127.0.0.1:${port ?? 0}`;

  const answer = (key: string) => api.waitFor('response_url', (c) => c.path.endsWith(`/${key}`));

  return {
    api,
    slack,
    dispatcher: outboxDispatcher,
    access,
    offboarding,
    database,
    policy,
    baseUrl,
    answer,
    async command(userId, text, opts) {
      const responseKey = nextKey('cmd');
      const triggerId = nextKey('trigger');
      const body = slashCommandBody({ userId, text, responseUrl: api.responseUrl(responseKey), triggerId });
      const response = await postSigned(baseUrl, '/slack/events', body, SIGNING_SECRET, opts);
      return { response, responseKey, triggerId };
    },
    async click(userId, actionId, value, opts = {}) {
      const responseKey = nextKey('act');
      const body = blockActionsBody({
        userId,
        actionId,
        value,
        channelId: opts.channelId ?? 'CAPPROVALS',
        messageTs: opts.messageTs,
        viewId: opts.viewId,
        responseUrl: api.responseUrl(responseKey),
      });
      const response = await postSigned(baseUrl, '/slack/events', body, SIGNING_SECRET);
      return { response, responseKey };
    },
    submit(userId, callbackId, values, privateMetadata) {
      const body = viewSubmissionBody({ userId, callbackId, values, privateMetadata });
      return postSigned(baseUrl, '/slack/events', body, SIGNING_SECRET);
    },
    async counts() {
      const db = database.db;
      const [[r], [g], [a], [o]] = await Promise.all([
        db.select({ n: count() }).from(accessRequests),
        db.select({ n: count() }).from(grants),
        db.select({ n: count() }).from(approvals),
        db.select({ n: count() }).from(outbox),
      ]);
      return { requests: r?.n ?? 0, grants: g?.n ?? 0, approvals: a?.n ?? 0, outbox: o?.n ?? 0 };
    },
    async close() {
      await slack.stop();
      await outboxDispatcher.stop();
      await api.close();
      await database.drop();
    },
  };
}

/** All mrkdwn/plain text inside recorded blocks, for asserting on what people would see. */
export function blockText(call: RecordedCall): string {
  return JSON.stringify(call.args.blocks ?? call.args.view ?? '');
}
