/** What the Slack Web API stand-in records and how tests drive it (see web-api.ts). */

/** One Web API call as the fake received it. */
export interface RecordedCall {
  /** Slack method name (`chat.postMessage`), or `response_url` for posts to a {@link FakeSlackApi.responseUrl}. */
  method: string;
  /** Request path, e.g. `/api/chat.postMessage` or `/response/<key>`. */
  path: string;
  /** Parsed arguments; JSON-encoded form fields such as `blocks` or `view` are decoded back into objects. */
  args: Record<string, unknown>;
  /** Token from `Authorization: Bearer …`, falling back to a `token` argument; undefined when neither was sent. */
  token: string | undefined;
  at: Date;
  /** What the fake answered (set once answered), e.g. the `view.id` a `views.open` got. */
  answer?: Record<string, unknown>;
}

/** How the fake should misbehave for a call; mirrors the ways Slack actually fails. */
export type SlackFault =
  | { status: 429; retryAfter: number }
  | { status: 500 }
  | { error: string }
  | { dropConnection: true };

export interface FaultedCall extends RecordedCall {
  fault: SlackFault;
}

/** A call Slack would refuse (`ok: false`), answered as Slack answers it and kept apart from `calls`. */
export interface RefusedCall extends RecordedCall {
  error: string;
  /** Slack's `errors` lines for `invalid_blocks` / `invalid_arguments` (`… [json-pointer:/blocks/0/…]`). */
  errors: string[];
}

/** How a channel answers the bot: Slack's refusals for a channel it cannot post to. */
export type ChannelState = 'ok' | 'not_in_channel' | 'channel_not_found' | 'is_archived';

/** Refusals that mean jitgate built something Slack does not accept (as opposed to Slack state). */
export const PAYLOAD_ERRORS: ReadonlySet<string> = new Set([
  'invalid_blocks',
  'invalid_arguments',
  'msg_too_long',
  'no_text',
]);

/** Computes a method's answer; return the JSON body Slack would send (include `ok`). */
export type SlackResponder = (call: RecordedCall) => Record<string, unknown>;

export interface FakeSlackApiOptions {
  /** WebSocket URL handed out by `apps.connections.open` (see `startFakeSocketMode`). */
  socketUrl?: string;
  userGroups?: Record<string, string[]>;
  deactivated?: Iterable<string>;
  /** People's real names for `users.info` (default `User <id>`). */
  realNames?: Record<string, string>;
  /** The fake's clock (ms), for trigger expiry; `Date.now` unless a test holds time. */
  now?: () => number;
}

export interface FakeSlackApi {
  /** Web API base URL with trailing slash, ready for `clientOptions.slackApiUrl`. */
  readonly url: string;
  /** Calls that got a normal answer, in arrival order. */
  readonly calls: readonly RecordedCall[];
  /** Calls that were answered by an injected fault; kept apart so `calls` counts deliveries. */
  readonly faultedCalls: readonly FaultedCall[];
  /** Calls answered `ok: false` (a payload Slack refuses, an expired trigger, a stale hash, a channel the bot cannot post to). */
  readonly refusals: readonly RefusedCall[];
  /**
   * What Slack accepts but asks apps not to do (an updated message keeping a block_id whose
   * block changed). The harnesses fail a test file that leaves any.
   */
  readonly warnings: readonly string[];
  /** Members of each user group, by group id, for `usergroups.users.list`. */
  userGroups: Record<string, string[]>;
  /** User ids that `users.info` reports as `deleted: true`. */
  deactivated: Set<string>;
  /** People's real names for `users.info` (default `User <id>`). */
  realNames: Record<string, string>;
  socketUrl: string | undefined;
  callsTo(method: string): RecordedCall[];
  /** Resolves with the first call (already recorded or future) to `method` matching `predicate`. */
  waitFor(
    method: string,
    predicate?: (call: RecordedCall) => boolean,
    timeoutMs?: number,
  ): Promise<RecordedCall>;
  /** The next `times` calls to `method` get `fault` instead of a normal answer. */
  failNext(method: string, fault: SlackFault, times?: number): void;
  /** Replaces the built-in answer for `method` (until `reset`); payloads are still checked first. */
  respondTo(method: string, responder: SlackResponder): void;
  /** Refusals of payloads jitgate built (`invalid_blocks`, `msg_too_long`, …): a test expects none unless it says so. */
  payloadRefusals(): RefusedCall[];
  /**
   * Marks the payload refusals and warnings so far as expected. `close` fails on any that were
   * not, so a test that never looks at a message still learns that Slack would have refused it.
   */
  acknowledge(): void;
  /** How posts to `channel` are answered from now on (`ok` again to undo). */
  setChannel(channel: string, state: ChannelState): void;
  /** The current hash of an open view (what a `block_actions` payload from it carries). */
  viewHash(viewId: string): string | undefined;
  /** A URL to use as a slash command's or action's `response_url`; posts to it are recorded as `response_url`. */
  responseUrl(key?: string): string;
  /**
   * Forgets calls, refusals, warnings, pending faults and responders; Slack's own state (directory,
   * channels, posted messages, open views, used triggers, socketUrl) stays.
   */
  reset(): void;
  close(): Promise<void>;
}
