import { createHmac, randomBytes } from 'node:crypto';

/**
 * Requests as Slack sends them to an app — slash commands, block actions, view submissions,
 * events — signed with the signing secret exactly as Slack signs them, so Bolt's real
 * verification runs. A stand-in for development (`jitgate demo`) and tests.
 */

/** Defaults shared by every payload so tests agree with the Web API fake (team T1, bot UBOT, app A1). */
export const FAKE_TEAM = { id: 'T1', domain: 'jitgate-test' } as const;
export const FAKE_APP_ID = 'A1';
// Slack still sends the deprecated verification token in every payload; Bolt ignores it.
const VERIFICATION_TOKEN = 'fake-verification-token';

export interface SlackSignedHeaders {
  'x-slack-signature': string;
  'x-slack-request-timestamp': string;
  'content-type': string;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Signs a raw body the way Slack does (v0 HMAC-SHA256 over `v0:<ts>:<body>`).
 * JSON bodies (Events API) get `application/json`, everything else is form-encoded like commands and interactions.
 */
export function signSlackRequest(
  secret: string,
  rawBody: string,
  timestampSeconds: number = nowSeconds(),
): SlackSignedHeaders {
  const ts = String(timestampSeconds);
  const hash = createHmac('sha256', secret).update(`v0:${ts}:${rawBody}`).digest('hex');
  return {
    'x-slack-signature': `v0=${hash}`,
    'x-slack-request-timestamp': ts,
    'content-type': rawBody.startsWith('{') ? 'application/json' : 'application/x-www-form-urlencoded',
  };
}

/** How long Slack honours a trigger_id: "Triggers expire in three seconds" (https://api.slack.com/docs/triggers). */
export const TRIGGER_LIFETIME_MS = 3000;

/**
 * A trigger_id as Slack mints one for a command or click (`<n>.<n>.<hex>`). Its first part is the
 * issue time in ms, so the Web API fake can tell when it expires without shared state.
 */
export function issueTriggerId(issuedAtMs: number = Date.now()): string {
  return `${Math.floor(issuedAtMs)}.${randomBytes(4).readUInt32BE()}.${randomBytes(16).toString('hex')}`;
}

/** When {@link issueTriggerId} minted `triggerId`; undefined for anything not shaped like one. */
export function triggerIssuedAt(triggerId: string): number | undefined {
  const match = /^(\d{13})\.\d+\.[0-9a-f]{32}$/.exec(triggerId);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

const fakeTriggerId = (): string => issueTriggerId();

function actionTs(): string {
  const ms = Date.now();
  return `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1000).padStart(6, '0')}`;
}

// --- slash commands ---------------------------------------------------------------------------

export interface SlashCommandOptions {
  command?: string;
  text: string;
  userId: string;
  userName?: string;
  channelId?: string;
  channelName?: string;
  teamId?: string;
  triggerId?: string;
  responseUrl?: string;
}

/** The slash command fields in Slack's order; the same object is the `payload` of a Socket Mode envelope. */
export function slashCommandPayload(opts: SlashCommandOptions): Record<string, string> {
  const teamId = opts.teamId ?? FAKE_TEAM.id;
  return {
    token: VERIFICATION_TOKEN,
    team_id: teamId,
    team_domain: FAKE_TEAM.domain,
    channel_id: opts.channelId ?? 'C0JITGATE',
    channel_name: opts.channelName ?? 'access-requests',
    user_id: opts.userId,
    user_name: opts.userName ?? opts.userId.toLowerCase(),
    command: opts.command ?? '/access',
    text: opts.text,
    api_app_id: FAKE_APP_ID,
    is_enterprise_install: 'false',
    response_url:
      opts.responseUrl ?? `https://hooks.slack.com/commands/${teamId}/1234567890/fakeResponseToken`,
    trigger_id: opts.triggerId ?? fakeTriggerId(),
  };
}

/** Raw `application/x-www-form-urlencoded` body of a slash command request. */
export function slashCommandBody(opts: SlashCommandOptions): string {
  return new URLSearchParams(slashCommandPayload(opts)).toString();
}

// --- interactivity ----------------------------------------------------------------------------

export interface SlackUserRef {
  id: string;
  username: string;
  name: string;
  team_id: string;
}

function userRef(userId: string, userName: string | undefined, teamId: string): SlackUserRef {
  const name = userName ?? userId.toLowerCase();
  return { id: userId, username: name, name, team_id: teamId };
}

export interface BlockActionsOptions {
  userId: string;
  userName?: string;
  actionId: string;
  value: string;
  blockId?: string;
  /** Message the button sits on; ignored when `viewId` is given. */
  channelId?: string;
  messageTs?: string;
  messageText?: string;
  messageBlocks?: unknown[];
  /** Set for a button inside a modal or the App Home: the container becomes that view. */
  viewId?: string;
  /** The view's current hash, as Slack sends it with each action (see `FakeSlackApi.viewHash`). */
  viewHash?: string;
  /** When Slack saw the click (`<seconds>.<micros>`); now unless a test replays an older one. */
  actionTs?: string;
  viewCallbackId?: string;
  privateMetadata?: string;
  triggerId?: string;
  teamId?: string;
  responseUrl?: string;
}

/** A `block_actions` payload for a button click, shaped like Slack's (container, actions[], state). */
export function blockActionsPayload(opts: BlockActionsOptions): Record<string, unknown> {
  const teamId = opts.teamId ?? FAKE_TEAM.id;
  const blockId = opts.blockId ?? 'actions';
  const common = {
    type: 'block_actions',
    user: userRef(opts.userId, opts.userName, teamId),
    api_app_id: FAKE_APP_ID,
    token: VERIFICATION_TOKEN,
    trigger_id: opts.triggerId ?? fakeTriggerId(),
    team: { id: teamId, domain: FAKE_TEAM.domain },
    enterprise: null,
    is_enterprise_install: false,
    state: { values: {} },
    actions: [
      {
        type: 'button',
        action_id: opts.actionId,
        block_id: blockId,
        text: { type: 'plain_text', text: opts.actionId, emoji: true },
        value: opts.value,
        action_ts: opts.actionTs ?? actionTs(),
      },
    ],
  };
  if (opts.viewId !== undefined) {
    return {
      ...common,
      container: { type: 'view', view_id: opts.viewId },
      view: {
        id: opts.viewId,
        team_id: teamId,
        type: 'modal',
        blocks: [],
        private_metadata: opts.privateMetadata ?? '',
        callback_id: opts.viewCallbackId ?? '',
        state: { values: {} },
        hash: opts.viewHash ?? `${actionTs()}.fakehash`,
        root_view_id: opts.viewId,
        previous_view_id: null,
        app_id: FAKE_APP_ID,
        external_id: '',
        app_installed_team_id: teamId,
        bot_id: 'BBOT',
      },
    };
  }
  const channelId = opts.channelId ?? 'C0JITGATE';
  const messageTs = opts.messageTs ?? '1700000000.000100';
  return {
    ...common,
    container: { type: 'message', message_ts: messageTs, channel_id: channelId, is_ephemeral: false },
    channel: { id: channelId, name: 'access-requests' },
    message: {
      type: 'message',
      user: 'UBOT',
      bot_id: 'BBOT',
      app_id: FAKE_APP_ID,
      team: teamId,
      ts: messageTs,
      text: opts.messageText ?? '',
      blocks: opts.messageBlocks ?? [],
    },
    response_url:
      opts.responseUrl ?? `https://hooks.slack.com/actions/${teamId}/1234567890/fakeResponseToken`,
  };
}

/**
 * A `block_actions` payload for picking `option` in a static select: Slack sends the chosen
 * option as `selected_option`, not as a button's `value`.
 */
export function staticSelectActionPayload(
  opts: BlockActionsOptions,
  option: { text: string; value: string },
  placeholder?: string,
): Record<string, unknown> {
  const payload = blockActionsPayload({ ...opts, value: option.value });
  const [button] = payload.actions as Record<string, unknown>[];
  payload.actions = [
    {
      type: 'static_select',
      action_id: opts.actionId,
      block_id: button?.block_id,
      selected_option: { text: { type: 'plain_text', text: option.text, emoji: true }, value: option.value },
      ...(placeholder ? { placeholder: { type: 'plain_text', text: placeholder, emoji: true } } : {}),
      action_ts: button?.action_ts,
    },
  ];
  return payload;
}

/** `state.values`: block_id → action_id → element state (`{ type, value }`, `{ type, selected_option }`, …). */
export type ViewStateValues = Record<string, Record<string, { type: string } & Record<string, unknown>>>;

/** Element state of a plain text input, for building {@link ViewStateValues}. */
export function plainTextState(value: string | null): { type: string; value: string | null } {
  return { type: 'plain_text_input', value };
}

/** Element state of a static select, for building {@link ViewStateValues}. */
export function staticSelectState(
  value: string | null,
  text = value ?? '',
): { type: string; selected_option: unknown } {
  return {
    type: 'static_select',
    selected_option: value === null ? null : { text: { type: 'plain_text', text, emoji: true }, value },
  };
}

export interface ViewSubmissionOptions {
  userId: string;
  userName?: string;
  callbackId: string;
  privateMetadata?: string;
  values: ViewStateValues;
  viewId?: string;
  triggerId?: string;
  teamId?: string;
}

/** A `view_submission` payload for a modal submit; the inputs live in `view.state.values`. */
export function viewSubmissionPayload(opts: ViewSubmissionOptions): Record<string, unknown> {
  const teamId = opts.teamId ?? FAKE_TEAM.id;
  const viewId = opts.viewId ?? 'V0000000001';
  return {
    type: 'view_submission',
    team: { id: teamId, domain: FAKE_TEAM.domain },
    user: userRef(opts.userId, opts.userName, teamId),
    api_app_id: FAKE_APP_ID,
    token: VERIFICATION_TOKEN,
    trigger_id: opts.triggerId ?? fakeTriggerId(),
    view: {
      id: viewId,
      team_id: teamId,
      type: 'modal',
      blocks: [],
      private_metadata: opts.privateMetadata ?? '',
      callback_id: opts.callbackId,
      state: { values: opts.values },
      hash: `${actionTs()}.fakehash`,
      title: { type: 'plain_text', text: 'Request access', emoji: true },
      clear_on_close: false,
      notify_on_close: false,
      close: { type: 'plain_text', text: 'Cancel', emoji: true },
      submit: { type: 'plain_text', text: 'Submit', emoji: true },
      previous_view_id: null,
      root_view_id: viewId,
      app_id: FAKE_APP_ID,
      external_id: '',
      app_installed_team_id: teamId,
      bot_id: 'BBOT',
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
}

/** Interactive payloads travel as a single form field `payload=<json>`, exactly as Slack posts them. */
export function interactiveBody(payload: Record<string, unknown>): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

export function blockActionsBody(opts: BlockActionsOptions): string {
  return interactiveBody(blockActionsPayload(opts));
}

export function viewSubmissionBody(opts: ViewSubmissionOptions): string {
  return interactiveBody(viewSubmissionPayload(opts));
}

// --- Events API -------------------------------------------------------------------------------

let eventCounter = 0;

/** The `event_callback` wrapper around an event (e.g. `{ type: 'app_home_opened', user, tab: 'home' }`). */
export function eventCallbackPayload(
  event: { type: string } & Record<string, unknown>,
  opts: { teamId?: string } = {},
): Record<string, unknown> {
  const teamId = opts.teamId ?? FAKE_TEAM.id;
  eventCounter += 1;
  const eventTs = actionTs();
  return {
    token: VERIFICATION_TOKEN,
    team_id: teamId,
    api_app_id: FAKE_APP_ID,
    event: { event_ts: eventTs, ...event },
    type: 'event_callback',
    event_id: `Ev${String(eventCounter).padStart(9, '0')}`,
    event_time: nowSeconds(),
    authorizations: [
      { enterprise_id: null, team_id: teamId, user_id: 'UBOT', is_bot: true, is_enterprise_install: false },
    ],
    is_ext_shared_channel: false,
    event_context: `4-fake-${eventCounter}`,
  };
}

/** Raw JSON body of an Events API request (Events API posts JSON, not form data). */
export function eventCallbackBody(
  event: { type: string } & Record<string, unknown>,
  opts: { teamId?: string } = {},
): string {
  return JSON.stringify(eventCallbackPayload(event, opts));
}

// --- sending ----------------------------------------------------------------------------------

export interface PostSignedOptions {
  /** Signing timestamp in seconds; pass an old one to test replay protection. */
  timestamp?: number;
  /** Sent instead of the correct signature, to test forgery rejection. */
  signature?: string;
  /** Extra headers, e.g. `x-slack-retry-num`. */
  headers?: Record<string, string>;
}

/** Posts a body signed with `secret` to `baseUrl + path` (Bolt's HTTP receiver listens on `/slack/events`). */
export function postSigned(
  baseUrl: string,
  path: string | undefined,
  body: string,
  secret: string,
  opts: PostSignedOptions = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    ...signSlackRequest(secret, body, opts.timestamp),
    ...opts.headers,
  };
  if (opts.signature !== undefined) headers['x-slack-signature'] = opts.signature;
  const url = new URL(path ?? '/slack/events', baseUrl);
  return fetch(url, { method: 'POST', headers, body });
}
