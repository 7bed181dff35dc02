import { count } from 'drizzle-orm';
import { pino } from 'pino';
import {
  cachedDirectory,
  createAccessService,
  createOffboarding,
  type Directory,
  type Offboarding,
} from '../../src/access/index.ts';
import { createGrantSummarizer } from '../../src/audit/summary.ts';
import { offboardDevices } from '../../src/composition/devices.ts';
import type { Database } from '../../src/db/client.ts';
import { accessRequests, approvals, grants, outbox } from '../../src/db/schema/index.ts';
import { checkMessage, slackErrorLines } from '../../src/dev/slack-stand-in/block-kit-limits.ts';
import {
  blockActionsBody,
  eventCallbackBody,
  interactiveBody,
  issueTriggerId,
  type PostSignedOptions,
  postSigned,
  slashCommandBody,
  staticSelectActionPayload,
  type ViewStateValues,
  viewSubmissionBody,
} from '../../src/dev/slack-stand-in/signed-requests.ts';
import {
  type FakeSlackApi,
  type RecordedCall,
  startFakeSlackApi,
} from '../../src/dev/slack-stand-in/web-api.ts';
import type { DeviceDeps } from '../../src/devices/index.ts';
import { type Policy, staticPolicyStore } from '../../src/policy/index.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { createSlackApp, type SlackApp } from '../../src/slack/app.ts';
import type { IssueToken } from '../../src/slack/deps.ts';
import { slackGroupMembers } from '../../src/slack/directory.ts';
import { createNotifier, type Notifier } from '../../src/slack/notifier.ts';
import { createOutboxDispatcher, type OutboxDispatcher } from '../../src/slack/outbox-dispatcher.ts';
import { openTestDatabase } from './db.ts';
import { testPolicy } from './policy.ts';

export const SIGNING_SECRET = 'test-signing-secret';
const BOT_TOKEN = 'xoxb-test-bot-token';
export const APP_TOKEN = 'xapp-1-A1-123-test';
export const PROXY_URL = 'http://proxy.test:8080';

/** Fake tokens that make it obvious (and checkable) which grant and expiry they were issued for. */
export const fakeToken = (grant: { id: string; expiresAt: Date }) =>
  `tok.${grant.id}.${grant.expiresAt.getTime()}`;

let keyCounter = 0;
const nextKey = (prefix: string) => `${prefix}-${++keyCounter}`;

export interface SlackHarness {
  api: FakeSlackApi;
  /** Device pairing, as the bot has it (`/access link`, `/access devices`, offboarding). */
  devices: DeviceDeps;
  /** The one client of the Slack fake, as production builds it. */
  notifier: Notifier;
  slack: SlackApp;
  dispatcher: OutboxDispatcher;
  access: ReturnType<typeof createAccessService>;
  offboarding: Offboarding;
  /** The group-membership cache the app and the access service share. */
  directory: Directory;
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
    opts?: { messageTs?: string; channelId?: string; viewId?: string; viewHash?: string; triggerId?: string },
  ): Promise<{ response: Response; responseKey: string }>;
  /** Picks `option` in the static select `actionId`, shaped as Slack sends it (`selected_option`). */
  select(
    userId: string,
    actionId: string,
    option: { text: string; value: string },
    opts?: { messageTs?: string; channelId?: string; viewId?: string; viewHash?: string; actionTs?: string },
  ): Promise<{ response: Response; responseKey: string }>;
  submit(
    userId: string,
    callbackId: string,
    values: ViewStateValues,
    privateMetadata?: string,
  ): Promise<Response>;
  /** Opens `userId`'s App Home as Slack does (`app_home_opened`) and returns what was published. */
  openHome(userId: string): Promise<RecordedCall>;
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
  const devices: DeviceDeps = { db: database.db, clock, grantFeedChannel: database.channel('grants') };
  const offboarding = createOffboarding({
    access,
    policy,
    directory,
    isDeactivated: (userId) => notifier.isDeactivated(userId),
    logger,
    revokeDevices: offboardDevices(devices),
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
    // As production wires it (src/composition/roles.ts), so `/access audit` answers from the audit log.
    summarizeGrant: createGrantSummarizer(database.db),
    offboarding,
    devices,
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
    devices,
    notifier,
    slack,
    dispatcher: outboxDispatcher,
    access,
    offboarding,
    directory,
    database,
    policy,
    baseUrl,
    answer,
    async openHome(userId) {
      const mark = api.calls.length;
      const event = eventCallbackBody({
        type: 'app_home_opened',
        user: userId,
        tab: 'home',
        channel: `D${userId}`,
      });
      const res = await postSigned(baseUrl, '/slack/events', event, SIGNING_SECRET);
      if (res.status !== 200) throw new Error(`app_home_opened answered ${res.status}`);
      return api.waitFor('views.publish', (c) => c.args.user_id === userId && api.calls.indexOf(c) >= mark);
    },
    async command(userId, text, opts) {
      const responseKey = nextKey('cmd');
      const triggerId = issueTriggerId();
      const body = slashCommandBody({ userId, text, responseUrl: api.responseUrl(responseKey), triggerId });
      const response = await postSigned(baseUrl, '/slack/events', body, SIGNING_SECRET, opts);
      await assertValidAck(response);
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
        // Slack sends the view's hash as it is now; a test may pass an older one.
        viewHash: opts.viewHash ?? (opts.viewId ? api.viewHash(opts.viewId) : undefined),
        triggerId: opts.triggerId ?? issueTriggerId(),
        responseUrl: api.responseUrl(responseKey),
      });
      const response = await postSigned(baseUrl, '/slack/events', body, SIGNING_SECRET);
      await assertValidAck(response);
      return { response, responseKey };
    },
    async select(userId, actionId, option, opts = {}) {
      const responseKey = nextKey('sel');
      const payload = staticSelectActionPayload(
        {
          userId,
          actionId,
          value: option.value,
          channelId: opts.channelId ?? 'CAPPROVALS',
          messageTs: opts.messageTs,
          viewId: opts.viewId,
          viewHash: opts.viewHash ?? (opts.viewId ? api.viewHash(opts.viewId) : undefined),
          ...(opts.actionTs ? { actionTs: opts.actionTs } : {}),
          responseUrl: api.responseUrl(responseKey),
        },
        option,
      );
      const response = await postSigned(baseUrl, '/slack/events', interactiveBody(payload), SIGNING_SECRET);
      await assertValidAck(response);
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

/**
 * An ack that carries a message (Bolt answers a command with it) is shown by Slack like any
 * message, so it meets the same limits; a test fails here rather than on a refusal nobody sees.
 */
async function assertValidAck(response: Response): Promise<void> {
  if (!(response.headers.get('content-type') ?? '').includes('json')) return;
  const body: unknown = await response.clone().json();
  if (typeof body !== 'object' || body === null || !('blocks' in body || 'text' in body)) return;
  const checked = checkMessage(body as { text?: unknown; blocks?: unknown });
  if (checked.error) {
    throw new Error(
      `Slack would refuse this ack (${checked.error}): ${slackErrorLines(checked.violations).join('; ')}`,
    );
  }
}

/** The id Slack gave the view a `views.open` call opened. */
export function openedViewId(call: RecordedCall): string {
  const view = call.answer?.view;
  const id = typeof view === 'object' && view !== null && 'id' in view ? view.id : undefined;
  if (typeof id !== 'string') throw new Error(`${call.method} opened no view`);
  return id;
}

/** All mrkdwn/plain text inside recorded blocks, for asserting on what people would see. */
export function blockText(call: RecordedCall): string {
  return JSON.stringify(call.args.blocks ?? call.args.view ?? '');
}
