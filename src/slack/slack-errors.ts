import { webApi } from '@slack/bolt';

/**
 * Why a Slack call failed, and what to do about it. Retryable: rate limits (with Slack's
 * Retry-After), Slack's 5xx and its own `internal_error`-like answers, and the network.
 * Everything else Slack answered is permanent: sending the same call again gets the same
 * answer, so it is given up and recorded instead of retried forever.
 */
export class SlackCallError extends Error {
  constructor(
    readonly method: string,
    /** Slack's error code (`invalid_blocks`, `not_in_channel`), or `http_503`, `network`, `ratelimited`. */
    readonly code: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
    /** Slack's detail lines for a refused payload (`… [json-pointer:/blocks/0/text/text]`). */
    readonly details: readonly string[] = [],
    /** True when Slack may have acted before the failure (a timeout, a dropped connection). */
    readonly maybeDone = false,
  ) {
    super(
      `${method}: ${said(code, retryAfterMs)}${details.length > 0 ? ` (${details.slice(0, 3).join('; ')})` : ''}`,
    );
    this.name = 'SlackCallError';
  }

  /** What Slack said, without any token or message body in it (kept for logs and `last_error`). */
  get reason(): string {
    return this.message.slice(this.method.length + 2);
  }
}

function said(code: string, retryAfterMs: number | undefined): string {
  if (code.startsWith('http_')) return `HTTP ${code.slice(5)}`;
  if (code === 'ratelimited')
    return `rate limited${retryAfterMs ? ` (retry after ${retryAfterMs / 1000}s)` : ''}`;
  if (code === 'network') return 'network error';
  return `slack error ${code}`;
}

/** Slack answers that say "try again": its own trouble, not ours. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  'ratelimited',
  'rate_limited',
  'internal_error',
  'fatal_error',
  'service_unavailable',
  'request_timeout',
  'team_added_to_org',
]);

/** Refusals of what was sent (the blocks, the text): sending something smaller may work. */
const PAYLOAD_CODES: ReadonlySet<string> = new Set([
  'invalid_blocks',
  'invalid_blocks_format',
  'invalid_arguments',
  'msg_too_long',
  'msg_blocks_too_long',
  'no_text',
  'too_many_attachments',
  'invalid_attachments',
]);

/** Refusals of where it was sent: no message will get through until someone fixes the channel. */
const CHANNEL_CODES: ReadonlySet<string> = new Set([
  'not_in_channel',
  'channel_not_found',
  'is_archived',
  'restricted_action',
  'restricted_action_read_only_channel',
  'cannot_dm_bot',
  'user_not_found',
  'user_disabled',
]);

export const isPayloadRefusal = (error: unknown): boolean =>
  error instanceof SlackCallError && PAYLOAD_CODES.has(error.code);

export const isChannelRefusal = (error: unknown): boolean =>
  error instanceof SlackCallError && CHANNEL_CODES.has(error.code);

/** A view changed since the hash was read: the person moved on (`views.update` with a stale hash). */
export const isStaleView = (error: unknown): boolean =>
  error instanceof SlackCallError && error.code === 'hash_conflict';

/** Sending the same call again cannot help: Slack answered, and not with "try later". */
export const isPermanent = (error: unknown): error is SlackCallError =>
  error instanceof SlackCallError && !error.retryable;

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string').slice(0, 10) : [];
}

/** Slack's detail lines, from `errors` or `response_metadata.messages`, as WebClient hands them over. */
function detailsOf(data: unknown): string[] {
  if (typeof data !== 'object' || data === null) return [];
  const record = data as Record<string, unknown>;
  const errors = strings(record.errors);
  if (errors.length > 0) return errors;
  const meta = record.response_metadata;
  return typeof meta === 'object' && meta !== null ? strings((meta as Record<string, unknown>).messages) : [];
}

const TOKEN = /xox[a-z]-[A-Za-z0-9-]+/g;

/** Maps WebClient's error classes onto {@link SlackCallError}; never keeps the original (it can hold request data). */
export function classifySlackError(method: string, error: unknown): SlackCallError {
  if (error instanceof SlackCallError) return error;
  if (error instanceof webApi.WebAPIRateLimitedError) {
    return new SlackCallError(method, 'ratelimited', true, error.retryAfter * 1000);
  }
  if (error instanceof webApi.WebAPIHTTPError) {
    return new SlackCallError(method, `http_${error.statusCode}`, error.statusCode >= 500);
  }
  if (error instanceof webApi.WebAPIRequestError) {
    const detail = error.original.message.replace(TOKEN, 'xox?-…').slice(0, 200);
    return new SlackCallError(method, 'network', true, undefined, [detail], true);
  }
  if (error instanceof webApi.WebAPIPlatformError) {
    const code = String(error.data.error);
    return new SlackCallError(method, code, RETRYABLE_CODES.has(code), undefined, detailsOf(error.data));
  }
  const message = (error instanceof Error ? error.message : String(error))
    .replace(TOKEN, 'xox?-…')
    .slice(0, 200);
  return new SlackCallError(method, 'unexpected', false, undefined, [message]);
}

/** An HTTP answer from a `response_url`, in the same terms. */
export function responseUrlError(
  status: number,
  retryAfterSeconds: number | undefined,
  body: string,
): SlackCallError {
  if (status === 429)
    return new SlackCallError('response_url', 'ratelimited', true, (retryAfterSeconds ?? 1) * 1000);
  if (status >= 500) return new SlackCallError('response_url', `http_${status}`, true);
  let code = `http_${status}`;
  let details: string[] = [];
  try {
    const parsed: unknown = JSON.parse(body);
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      typeof (parsed as { error?: unknown }).error === 'string'
    ) {
      code = (parsed as { error: string }).error;
      details = detailsOf(parsed);
    }
  } catch {
    // Slack's response_url answers plain text for some refusals; the status says enough.
  }
  return new SlackCallError('response_url', code, false, undefined, details);
}
