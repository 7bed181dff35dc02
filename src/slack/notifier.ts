import { webApi } from '@slack/bolt';
import type { Logger } from 'pino';
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
  /** Told of every call that failed for good (after its retries), e.g. to count it in metrics. */
  onFailure?: (method: string) => void;
}

interface PostedMessage {
  channel: string;
  ts: string;
}

export interface Notifier {
  postMessage(channel: string, message: SlackMessage): Promise<PostedMessage>;
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

  return {
    async postMessage(channel, message) {
      const result = await withRetry('chat.postMessage', () =>
        client.chat.postMessage({ channel, ...messageArgs(message), unfurl_links: false }),
      );
      if (typeof result.ts !== 'string' || typeof result.channel !== 'string') {
        throw new SlackCallError('chat.postMessage', 'answer_without_ts', false);
      }
      return { channel: result.channel, ts: result.ts };
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
