import { randomUUID } from 'node:crypto';
import { webApi } from '@slack/bolt';
import type { Logger } from 'pino';
import { type ChannelRate, channelPace } from '../shared/channel-pace.ts';
import { isRecord } from '../shared/is-record.ts';
import type { HomeView, ModalView, SlackMessage } from './blocks/index.ts';
import { classifySlackError, responseUrlError, SlackCallError } from './slack-errors.ts';

export { SlackCallError } from './slack-errors.ts';

/**
 * The one place jitgate talks to Slack's Web API. Retries are ours, not WebClient's, so
 * they are bounded and visible: 429 waits `Retry-After` (up to `maxRateLimitWaitMs`,
 * beyond which the outbox reschedules instead of holding a worker), 5xx and network
 * errors back off exponentially. Slack's own refusals (`ok: false`) are not retried; what
 * is retryable and what is permanent is decided once, in slack-errors.ts.
 */

export interface NotifierOptions {
  botToken: string;
  /** Web API base URL with trailing slash (`SLACK_API_URL`); Slack's own when undefined. */
  apiUrl: string | undefined;
  logger: Logger;
  /** Tries per call, first one included. */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxRateLimitWaitMs?: number;
  /** Per HTTP request. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /**
   * Posts to one channel are paced to Slack's per-channel rate (about 1 a second, short bursts
   * allowed), so a catch-up after an outage is not answered with 429s. Off when omitted.
   */
  channelRate?: ChannelRate;
  /** Told of every call that failed for good (after its retries), e.g. to count it in metrics. */
  onFailure?: (method: string) => void;
}

interface PostedMessage {
  channel: string;
  ts: string;
}

/**
 * What makes a post idempotent: `key` rides in the message's metadata, and a post that may
 * already have happened (`mayHavePosted`, or an earlier try that timed out) is first looked
 * up in the channel's history since `since` instead of being sent again.
 */
export interface PostOnce {
  key: string;
  /** A previous try of this post ended without Slack saying whether it posted (a timeout, a crash). */
  mayHavePosted: boolean;
  /** When the first try could have happened, at the earliest. */
  since: Date;
}

export interface Notifier {
  /** Posts `message`; with `once`, never a second copy of the same `once.key` (see {@link PostOnce}). */
  postMessage(channel: string, message: SlackMessage, once?: PostOnce): Promise<PostedMessage>;
  updateMessage(channel: string, ts: string, message: SlackMessage): Promise<void>;
  postEphemeral(channel: string, user: string, message: SlackMessage): Promise<void>;
  /** Answers through a command's or action's `response_url` (ephemeral unless told otherwise). */
  respond(responseUrl: string, message: SlackMessage, options?: { replaceOriginal?: boolean }): Promise<void>;
  /** Opens a modal; one try, as a trigger id lives 3 s and can be used once. */
  openView(triggerId: string, view: ModalView): Promise<OpenedView>;
  /** Replaces an open modal; `hash` makes Slack refuse it (`hash_conflict`) if the view changed meanwhile. */
  updateView(viewId: string, hash: string | undefined, view: ModalView): Promise<OpenedView>;
  publishHome(userId: string, view: HomeView): Promise<void>;
  listGroupMembers(groupId: string): Promise<string[]>;
  /**
   * Whether Slack reports the account as deactivated (`users.info` → `deleted: true`). A
   * failed call throws: an outage must never look like a deactivation (or its absence).
   */
  isDeactivated(userId: string): Promise<boolean>;
  /** The person's name as Slack shows it (`users.info`: real name, else display name), for the console. */
  userName(userId: string): Promise<string | undefined>;
  /** Who the bot token belongs to (`auth.test`): its user id and bot id. */
  whoAmI(): Promise<BotIdentity>;
}

export interface BotIdentity {
  botUserId: string;
  botId: string;
}

/** The metadata `event_type` of every message jitgate posts; its payload's `key` names the post. */
const DELIVERY_EVENT = 'jitgate_delivery';
/** Slack's clock and ours may disagree: the history is read from a little before `since`. */
const HISTORY_MARGIN_S = 120;
const HISTORY_PAGES = 5;

/** The key of a posted message, if it carries jitgate's delivery metadata. */
function deliveryKeyOf(message: unknown): string | undefined {
  const metadata: unknown = isRecord(message) ? message.metadata : undefined;
  if (!isRecord(metadata) || metadata.event_type !== DELIVERY_EVENT) return undefined;
  const payload = metadata.event_payload;
  return isRecord(payload) && typeof payload.key === 'string' ? payload.key : undefined;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Where Slack put an opened or updated view, and the hash the next update must name. */
interface OpenedView {
  id: string;
  hash: string | undefined;
}

function openedView(method: string, result: unknown): OpenedView {
  const view: unknown = isRecord(result) ? result.view : undefined;
  const id = isRecord(view) && typeof view.id === 'string' ? view.id : undefined;
  if (!id) throw new SlackCallError(method, 'answer_without_view', false);
  return { id, hash: isRecord(view) && typeof view.hash === 'string' ? view.hash : undefined };
}

/** The fields of a message Slack takes: no `blocks` at all when there are none (a text-only fallback). */
function messageArgs(message: SlackMessage): { text: string; blocks?: SlackMessage['blocks'] } {
  return message.blocks.length > 0 ? { text: message.text, blocks: message.blocks } : { text: message.text };
}

export function createNotifier(options: NotifierOptions): Notifier {
  const maxAttempts = options.maxAttempts ?? 4;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxRateLimitWaitMs = options.maxRateLimitWaitMs ?? 30_000;
  const sleep = options.sleep ?? defaultSleep;
  const log = options.logger.child({ component: 'slack-notifier' });
  const clientOptions: webApi.WebClientOptions = {
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: options.timeoutMs ?? 10_000,
    logLevel: webApi.LogLevel.ERROR,
  };
  if (options.apiUrl) clientOptions.slackApiUrl = options.apiUrl;
  const client = new webApi.WebClient(options.botToken, clientOptions);
  // A little under Slack's rate: requests sent on their turn may arrive closer together.
  const pace = options.channelRate
    ? channelPace({
        perSecond: options.channelRate.perSecond * 0.8,
        burst: Math.max(1, options.channelRate.burst - 1),
      })
    : undefined;

  async function withRetry<T>(method: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await call();
      } catch (raw) {
        const error = classifySlackError(method, raw);
        const wait =
          error.retryAfterMs !== undefined
            ? error.retryAfterMs
            : Math.min(baseDelayMs * 2 ** (attempt - 1), 10_000) * (0.5 + Math.random() / 2);
        const giveUp = !error.retryable || attempt >= maxAttempts || wait > maxRateLimitWaitMs;
        log.warn(
          {
            method,
            attempt,
            code: error.code,
            reason: error.reason,
            retrying: !giveUp,
            waitMs: Math.round(wait),
          },
          'slack call failed',
        );
        if (giveUp) {
          options.onFailure?.(method);
          throw error;
        }
        await sleep(wait);
      }
    }
  }

  /**
   * The message carrying `key` posted to `channel` since `since`, read from the channel's
   * history (a DM's by its conversation id). Undefined when none is found in the pages read.
   */
  async function findPosted(channel: string, key: string, since: Date): Promise<PostedMessage | undefined> {
    let conversation = channel;
    if (/^[UW]/.test(channel)) {
      const opened = await client.conversations.open({ users: channel });
      const id: unknown = isRecord(opened.channel) ? opened.channel.id : undefined;
      if (typeof id !== 'string')
        throw new SlackCallError('conversations.open', 'answer_without_channel', false);
      conversation = id;
    }
    const oldest = String(Math.floor(since.getTime() / 1000) - HISTORY_MARGIN_S);
    let cursor: string | undefined;
    for (let page = 0; page < HISTORY_PAGES; page += 1) {
      const result = await client.conversations.history({
        channel: conversation,
        oldest,
        limit: 200,
        include_all_metadata: true,
        ...(cursor ? { cursor } : {}),
      });
      const found = (result.messages ?? []).find((m) => deliveryKeyOf(m) === key);
      if (found && typeof found.ts === 'string') return { channel: conversation, ts: found.ts };
      cursor = result.response_metadata?.next_cursor;
      if (!result.has_more || !cursor) return undefined;
    }
    log.warn({ channel: conversation, pages: HISTORY_PAGES }, 'post not found in the history pages read');
    return undefined;
  }

  return {
    async postMessage(channel, message, once) {
      const key = once?.key ?? randomUUID();
      const since = once?.since ?? new Date();
      let mayHavePosted = once?.mayHavePosted ?? false;
      return withRetry('chat.postMessage', async () => {
        if (mayHavePosted) {
          const found = await findPosted(channel, key, since);
          if (found) {
            log.info({ channel: found.channel, key }, 'message already posted: not sent again');
            return found;
          }
        }
        let result: Awaited<ReturnType<typeof client.chat.postMessage>>;
        const turn = pace?.take(channel, Date.now()) ?? 0;
        if (turn > 0) await sleep(turn);
        try {
          result = await client.chat.postMessage({
            channel,
            ...messageArgs(message),
            unfurl_links: false,
            metadata: { event_type: DELIVERY_EVENT, event_payload: { key } },
          });
        } catch (raw) {
          const error = classifySlackError('chat.postMessage', raw);
          // No answer, or a server error: Slack may have posted it. Anything else it refused.
          if (error.maybeDone || error.code.startsWith('http_5')) mayHavePosted = true;
          throw error;
        }
        if (typeof result.ts !== 'string' || typeof result.channel !== 'string') {
          throw new SlackCallError('chat.postMessage', 'answer_without_ts', false);
        }
        return { channel: result.channel, ts: result.ts };
      });
    },
    async updateMessage(channel, ts, message) {
      await withRetry('chat.update', () =>
        client.chat.update({ channel, ts, text: message.text, blocks: message.blocks }),
      );
    },
    async postEphemeral(channel, user, message) {
      await withRetry('chat.postEphemeral', () =>
        client.chat.postEphemeral({ channel, user, ...messageArgs(message) }),
      );
    },
    async respond(responseUrl, message, respondOptions = {}) {
      const body = JSON.stringify({
        response_type: 'ephemeral',
        replace_original: respondOptions.replaceOriginal ?? false,
        ...messageArgs(message),
      });
      await withRetry('response_url', async () => {
        let response: Response;
        try {
          response = await fetch(responseUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
          });
        } catch (error) {
          const detail = error instanceof Error ? error.message : 'unknown';
          throw new SlackCallError('response_url', 'network', true, undefined, [detail], true);
        }
        if (response.status < 400) {
          await response.body?.cancel();
          return;
        }
        const after = Number(response.headers.get('retry-after') ?? '1');
        const text = (await response.text().catch(() => '')).slice(0, 2000);
        throw responseUrlError(response.status, Number.isFinite(after) ? after : undefined, text);
      });
    },
    async openView(triggerId, view) {
      // A trigger id lives 3 s: one try only, a retry would be too late anyway.
      try {
        return openedView('views.open', await client.views.open({ trigger_id: triggerId, view }));
      } catch (raw) {
        const error = classifySlackError('views.open', raw);
        log.warn({ method: 'views.open', code: error.code, reason: error.reason }, 'slack call failed');
        throw error;
      }
    },
    async updateView(viewId, hash, view) {
      // One try: the person is looking at the modal now, and a stale hash means they moved on.
      try {
        return openedView(
          'views.update',
          await client.views.update({ view_id: viewId, ...(hash ? { hash } : {}), view }),
        );
      } catch (raw) {
        const error = classifySlackError('views.update', raw);
        // A stale hash is the person moving on, not a fault; the caller decides what to do.
        const level = error.code === 'hash_conflict' ? 'debug' : 'warn';
        log[level]({ method: 'views.update', code: error.code, reason: error.reason }, 'slack call failed');
        throw error;
      }
    },
    async publishHome(userId, view) {
      await withRetry('views.publish', () => client.views.publish({ user_id: userId, view }));
    },
    async listGroupMembers(groupId) {
      const result = await withRetry('usergroups.users.list', () =>
        client.usergroups.users.list({ usergroup: groupId }),
      );
      const users: unknown = isRecord(result) ? result.users : undefined;
      return Array.isArray(users) ? users.filter((u): u is string => typeof u === 'string') : [];
    },
    async isDeactivated(userId) {
      const result = await withRetry('users.info', () => client.users.info({ user: userId }));
      const user: unknown = isRecord(result) ? result.user : undefined;
      if (!isRecord(user)) throw new SlackCallError('users.info', 'answer_without_user', false);
      return user.deleted === true;
    },
    async whoAmI() {
      const result = await withRetry('auth.test', () => client.auth.test());
      if (typeof result.user_id !== 'string' || typeof result.bot_id !== 'string')
        throw new SlackCallError('auth.test', 'answer_without_identity', false);
      return { botUserId: result.user_id, botId: result.bot_id };
    },
    async userName(userId) {
      const result = await withRetry('users.info', () => client.users.info({ user: userId }));
      const user: unknown = isRecord(result) ? result.user : undefined;
      if (!isRecord(user)) return undefined;
      const profile: unknown = user.profile;
      const candidates = [
        isRecord(profile) ? profile.real_name : undefined,
        user.real_name,
        isRecord(profile) ? profile.display_name : undefined,
      ];
      const name = candidates.find((c): c is string => typeof c === 'string' && c.trim() !== '');
      return name?.trim();
    },
  };
}
