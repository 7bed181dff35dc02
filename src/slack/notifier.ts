import { webApi } from '@slack/bolt';
import type { Logger } from 'pino';
import type { HomeView, ModalView, SlackMessage } from './blocks.ts';

/**
 * The one place jitgate talks to Slack's Web API. Retries are ours, not WebClient's, so
 * they are bounded and visible: 429 waits `Retry-After` (up to `maxRateLimitWaitMs`,
 * beyond which the outbox reschedules instead of holding a worker), 5xx and network
 * errors back off exponentially. Slack's own refusals (`ok: false`) are not retried.
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

export interface PostedMessage {
  channel: string;
  ts: string;
}

export interface Notifier {
  postMessage(channel: string, message: SlackMessage): Promise<PostedMessage>;
  updateMessage(channel: string, ts: string, message: SlackMessage): Promise<void>;
  postEphemeral(channel: string, user: string, message: SlackMessage): Promise<void>;
  /** Answers through a command's or action's `response_url` (ephemeral unless told otherwise). */
  respond(responseUrl: string, message: SlackMessage, options?: { replaceOriginal?: boolean }): Promise<void>;
  openView(triggerId: string, view: ModalView): Promise<void>;
  /** Replaces an open modal; `hash` makes Slack refuse it if the view changed meanwhile. */
  updateView(viewId: string, hash: string | undefined, view: ModalView): Promise<void>;
  publishHome(userId: string, view: HomeView): Promise<void>;
  listGroupMembers(groupId: string): Promise<string[]>;
  /**
   * Whether Slack reports the account as deactivated (`users.info` → `deleted: true`). A
   * failed call throws: an outage must never look like a deactivation (or its absence).
   */
  isDeactivated(userId: string): Promise<boolean>;
}

/** Why a Slack call failed, without any token or message body in it. */
export class SlackCallError extends Error {
  constructor(
    readonly method: string,
    readonly reason: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(`${method}: ${reason}`);
    this.name = 'SlackCallError';
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Maps WebClient's error classes onto retry decisions; never keeps the original (it can hold request data). */
function classify(method: string, error: unknown): SlackCallError {
  if (error instanceof SlackCallError) return error;
  if (error instanceof webApi.WebAPIRateLimitedError) {
    return new SlackCallError(
      method,
      `rate limited (retry after ${error.retryAfter}s)`,
      true,
      error.retryAfter * 1000,
    );
  }
  if (error instanceof webApi.WebAPIHTTPError) {
    return new SlackCallError(method, `HTTP ${error.statusCode}`, error.statusCode >= 500);
  }
  if (error instanceof webApi.WebAPIRequestError) {
    return new SlackCallError(method, `network error: ${error.original.message}`, true);
  }
  if (error instanceof webApi.WebAPIPlatformError) {
    return new SlackCallError(method, `slack error ${error.data.error}`, false);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SlackCallError(method, message.replace(/xox[a-z]-[A-Za-z0-9-]+/g, 'xox?-…'), false);
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
        const error = classify(method, raw);
        const wait =
          error.retryAfterMs !== undefined
            ? error.retryAfterMs
            : Math.min(baseDelayMs * 2 ** (attempt - 1), 10_000) * (0.5 + Math.random() / 2);
        const giveUp = !error.retryable || attempt >= maxAttempts || wait > maxRateLimitWaitMs;
        log.warn(
          { method, attempt, reason: error.reason, retrying: !giveUp, waitMs: Math.round(wait) },
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
        client.chat.postMessage({ channel, text: message.text, blocks: message.blocks, unfurl_links: false }),
      );
      if (typeof result.ts !== 'string' || typeof result.channel !== 'string') {
        throw new SlackCallError('chat.postMessage', 'answer without channel and ts', false);
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
        client.chat.postEphemeral({ channel, user, text: message.text, blocks: message.blocks }),
      );
    },
    async respond(responseUrl, message, respondOptions = {}) {
      const body = JSON.stringify({
        response_type: 'ephemeral',
        replace_original: respondOptions.replaceOriginal ?? false,
        text: message.text,
        blocks: message.blocks,
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
          throw new SlackCallError(
            'response_url',
            `network error: ${error instanceof Error ? error.message : 'unknown'}`,
            true,
          );
        }
        await response.body?.cancel();
        if (response.status === 429) {
          const after = Number(response.headers.get('retry-after') ?? '1');
          throw new SlackCallError(
            'response_url',
            'rate limited',
            true,
            (Number.isFinite(after) ? after : 1) * 1000,
          );
        }
        if (response.status >= 500) throw new SlackCallError('response_url', `HTTP ${response.status}`, true);
        if (response.status >= 400)
          throw new SlackCallError('response_url', `HTTP ${response.status}`, false);
      });
    },
    async openView(triggerId, view) {
      // A trigger id lives 3 s: one try only, a retry would be too late anyway.
      try {
        await client.views.open({ trigger_id: triggerId, view });
      } catch (raw) {
        const error = classify('views.open', raw);
        log.warn({ method: 'views.open', reason: error.reason }, 'slack call failed');
        throw error;
      }
    },
    async updateView(viewId, hash, view) {
      // One try: the person is looking at the modal now, and a stale hash means they moved on.
      try {
        await client.views.update({ view_id: viewId, ...(hash ? { hash } : {}), view });
      } catch (raw) {
        const error = classify('views.update', raw);
        log.warn({ method: 'views.update', reason: error.reason }, 'slack call failed');
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
      if (!isRecord(user)) throw new SlackCallError('users.info', 'answer without a user', false);
      return user.deleted === true;
    },
  };
}
