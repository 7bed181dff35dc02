import type { types } from '@slack/bolt';
import type { AlertCall } from '../access/events.ts';
import { grantedQuota } from '../access/transitions.ts';
import type { WeeklyReport } from '../audit/weekly-report.ts';
import type { AccessRequest, Grant } from '../db/schema/index.ts';
import { describeDuration, type Policy, type ResourcePolicy } from '../policy/index.ts';
import type { GrantCallSummary } from '../shared/grant-summary.ts';

/**
 * The one module that builds what jitgate shows in Slack. Everything a user typed goes
 * through `escapeText` before it lands in mrkdwn, so a reason cannot ping or link.
 */

export type Block = types.KnownBlock;
export type ModalView = types.ModalView;
export type HomeView = types.HomeView;

/** A message: `text` is the notification/fallback line, `blocks` what people see. */
export interface SlackMessage {
  text: string;
  blocks: Block[];
}

export const ACTIONS = {
  approve: 'approve_request',
  approveShorter: 'approve_shorter',
  approveLowerQuota: 'approve_lower_quota',
  deny: 'deny_request',
  cancel: 'cancel_request',
  showToken: 'show_token',
  giveUp: 'give_up_grant',
  revoke: 'revoke_grant',
  extend: 'extend_grant',
  openRequestModal: 'open_request_modal',
} as const;

export const VIEWS = { request: 'request_access', deny: 'deny_reason', token: 'show_token' } as const;

/** Block and action ids of the request modal's inputs; the submission handler reads them back. */
export const REQUEST_FIELDS = {
  target: { block: 'target', action: 'target' },
  duration: { block: 'duration', action: 'duration' },
  reason: { block: 'reason', action: 'reason' },
} as const;

export const DENY_FIELDS = { reason: { block: 'deny_reason', action: 'deny_reason' } } as const;

/** Durations offered in menus; each menu keeps those that fit the policy. */
export const DURATION_CHOICES: readonly number[] = [
  5 * 60,
  15 * 60,
  30 * 60,
  3600,
  2 * 3600,
  4 * 3600,
  8 * 3600,
  86_400,
];

/** Longest text we put in one section (Slack's limit is 3000; leave room for labels). */
const MAX_USER_TEXT = 1500;

// --- text helpers ---------------------------------------------------------------------------

/**
 * Slack's three control characters become entities, so `<!channel>`, `<@U1>` and
 * `<https://x|y>` written by a user show as typed and ping or link nobody.
 */
export function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escaped and cut to a length that fits a section. */
export function userText(text: string, max = MAX_USER_TEXT): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return escapeText(cut);
}

const USER_ID = /^[UW][A-Z0-9]{2,}$/;

/** A mention of a real user id; anything else (like `timeout` or `policy`) is shown as text. */
export function mention(userId: string): string {
  return USER_ID.test(userId) ? `<@${userId}>` : escapeText(userId);
}

/** Each reader sees the time in their own zone; the fallback is UTC. */
export function slackDate(at: Date, format = '{date_short_pretty} {time}'): string {
  const unix = Math.floor(at.getTime() / 1000);
  const fallback = `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  return `<!date^${unix}^${format}|${fallback}>`;
}

function timeLeft(until: Date, now: Date): string {
  const seconds = Math.max(0, Math.round((until.getTime() - now.getTime()) / 1000));
  return seconds === 0 ? 'ended' : `${describeDuration(seconds)} left`;
}

const plain = (text: string): types.PlainTextElement => ({
  type: 'plain_text',
  text: text.slice(0, 150),
  emoji: true,
});
const section = (text: string): Block => ({ type: 'section', text: { type: 'mrkdwn', text } });
const context = (text: string): Block => ({ type: 'context', elements: [{ type: 'mrkdwn', text }] });
const header = (text: string): Block => ({ type: 'header', text: plain(text) });

function button(
  text: string,
  actionId: string,
  value: string,
  style?: 'primary' | 'danger',
  confirm?: types.ConfirmationDialog,
): types.Button {
  const element: types.Button = { type: 'button', text: plain(text), action_id: actionId, value };
  if (style) element.style = style;
  if (confirm) element.confirm = confirm;
  return element;
}

function option(text: string, value: string): types.PlainTextOption {
  return { text: plain(text), value };
}

/** Values travel in button `value`s as `id|seconds`; the actions parse them back. */
export function encodeValue(id: string, seconds: number): string {
  return `${id}|${seconds}`;
}

export function decodeValue(value: string): { id: string; seconds: number } | undefined {
  const [id, seconds, ...rest] = value.split('|');
  const n = Number(seconds);
  if (!id || rest.length > 0 || !Number.isSafeInteger(n) || n <= 0) return undefined;
  return { id, seconds: n };
}

function durationsBetween(min: number, max: number): number[] {
  return DURATION_CHOICES.filter((s) => s >= min && s <= max);
}

const NUMBER = new Intl.NumberFormat('en-US');

/** `1,000 calls`, `10 MB`, joined: what a quota allows, for people. */
export function describeQuota(quota: {
  requests?: number | null;
  responseBytes?: number | null;
}): string | undefined {
  const parts: string[] = [];
  if (quota.requests != null)
    parts.push(`${NUMBER.format(quota.requests)} call${quota.requests === 1 ? '' : 's'}`);
  if (quota.responseBytes != null) parts.push(describeBytes(quota.responseBytes));
  return parts.length > 0 ? parts.join(', ') : undefined;
}

export function describeBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GB', 1024 ** 3],
    ['MB', 1024 ** 2],
    ['KB', 1024],
  ] as const) {
    if (bytes >= size) return `${NUMBER.format(Math.round((bytes / size) * 10) / 10)} ${unit}`;
  }
  return `${NUMBER.format(bytes)} bytes`;
}

/** `412 of 1,000 calls used` for a grant with a quota; undefined without one. */
export function quotaUse(
  grant: Pick<Grant, 'quotaRequests' | 'quotaResponseBytes' | 'usedRequests' | 'usedResponseBytes'>,
): string | undefined {
  const parts: string[] = [];
  if (grant.quotaRequests !== null) {
    parts.push(`${NUMBER.format(grant.usedRequests)} of ${NUMBER.format(grant.quotaRequests)} calls`);
  }
  if (grant.quotaResponseBytes !== null) {
    parts.push(`${describeBytes(grant.usedResponseBytes)} of ${describeBytes(grant.quotaResponseBytes)}`);
  }
  return parts.length > 0 ? `${parts.join(', ')} used` : undefined;
}

/** A quota an approver may choose: calls, response bytes or both (absent: unchanged). */
export interface QuotaChoice {
  requests?: number;
  responseBytes?: number;
}

/**
 * Options for "Approve with a smaller quota…": a few round fractions of the quota the grant
 * would get, applied to every cap it has (calls and response bytes alike), so one click
 * gives less of everything. A fraction that would leave a cap below 1 is not offered.
 */
export function lowerQuotaChoices(quota: {
  requests?: number | null | undefined;
  responseBytes?: number | null | undefined;
}): QuotaChoice[] {
  const caps = { requests: quota.requests ?? undefined, responseBytes: quota.responseBytes ?? undefined };
  if (caps.requests === undefined && caps.responseBytes === undefined) return [];
  const choices = new Map<string, QuotaChoice>();
  for (const fraction of [0.5, 0.25, 0.1, 0.01]) {
    const choice: QuotaChoice = {};
    let usable = true;
    for (const key of ['requests', 'responseBytes'] as const) {
      const cap = caps[key];
      if (cap === undefined) continue;
      const n = Math.floor(cap * fraction);
      if (n < 1 || n >= cap) usable = false;
      choice[key] = n;
    }
    if (usable) choices.set(`${choice.requests}|${choice.responseBytes}`, choice);
  }
  return [...choices.values()];
}

/**
 * `id|calls|bytes` (`-` for a cap left alone). Messages posted before bytes could be lowered
 * carry `id|calls`; both decode.
 */
export function encodeQuotaValue(id: string, choice: QuotaChoice): string {
  return `${id}|${choice.requests ?? '-'}|${choice.responseBytes ?? '-'}`;
}

export function decodeQuotaValue(value: string): { id: string; quota: QuotaChoice } | undefined {
  const [id, ...figures] = value.split('|');
  if (!id || figures.length < 1 || figures.length > 2) return undefined;
  const read = (text: string | undefined): number | undefined | null => {
    if (text === undefined || text === '-') return undefined;
    const n = Number(text);
    return /^[0-9]+$/.test(text) && Number.isSafeInteger(n) && n > 0 ? n : null;
  };
  const requests = read(figures[0]);
  const responseBytes = read(figures[1]);
  if (requests === null || responseBytes === null) return undefined;
  if (requests === undefined && responseBytes === undefined) return undefined;
  const quota: QuotaChoice = {};
  if (requests !== undefined) quota.requests = requests;
  if (responseBytes !== undefined) quota.responseBytes = responseBytes;
  return { id, quota };
}

function scopeLabel(resource: string, scope: string): string {
  return `*${escapeText(resource)}* · \`${escapeText(scope)}\``;
}

// --- approval message -----------------------------------------------------------------------

export interface ApprovalMessageInput {
  request: AccessRequest;
  approvals: readonly {
    approverId: string;
    durationSeconds: number | null;
    quotaRequests?: number | null;
    quotaResponseBytes?: number | null;
  }[];
  /** The grant this request made (or, for an extension, the grant it extends). */
  grant: Grant | undefined;
  resource: ResourcePolicy | undefined;
  now: Date;
}

/** The message in the approval channel, in every state; it is posted once and then updated in place. */
export function approvalMessage(input: ApprovalMessageInput): SlackMessage {
  const { request, approvals, grant, resource, now } = input;
  const kind = request.extendsGrantId ? 'Extension request' : 'Access request';
  // The quota the grant has (once made) or will have: the policy's, lowered by any approver.
  const policyQuota = resource?.scopes[request.scope]?.quota;
  const pendingQuota = grantedQuota(policyQuota, approvals);
  const quota = request.extendsGrantId
    ? undefined
    : grant
      ? { requests: grant.quotaRequests, responseBytes: grant.quotaResponseBytes }
      : pendingQuota;
  const quotaText = quota ? describeQuota(quota) : undefined;
  const policyText = policyQuota ? describeQuota(policyQuota) : undefined;
  // Approvers lowered it: say from what, so the next approver (and the audit reader) sees both.
  const chosen = approvals.some((a) => a.quotaRequests != null || a.quotaResponseBytes != null);
  const loweredFrom = chosen && quotaText !== undefined && policyText !== quotaText ? policyText : undefined;
  const summary = [request.scope, describeDuration(request.durationSeconds), quotaText]
    .filter(Boolean)
    .join(', ');
  const lines = [
    `*${kind}* from ${mention(request.requesterId)}`,
    `*Resource:* ${scopeLabel(request.resource, request.scope)}`,
    `*Duration:* ${describeDuration(request.durationSeconds)}`,
    ...(quotaText
      ? [
          `*Quota:* ${quotaText} over the grant's life${
            loweredFrom ? ` (lowered from the policy's ${loweredFrom})` : ''
          }`,
        ]
      : []),
    `*Reason:* ${userText(request.reason)}`,
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  const given = approvals.length;
  const required = request.approvalsRequired;
  let text: string;
  switch (request.status) {
    case 'pending': {
      const who = approvals.map((a) => mention(a.approverId)).join(', ');
      blocks.push(
        context(
          `:hourglass_flowing_sand: ${given} of ${required} approval${required === 1 ? '' : 's'}${
            who ? ` (${who})` : ''
          } · times out ${slackDate(request.timeoutAt)}`,
        ),
      );
      const elements: types.ActionsBlockElement[] = [
        button('Approve', ACTIONS.approve, request.id, 'primary'),
        button('Deny', ACTIONS.deny, request.id, 'danger'),
      ];
      const shorter = durationsBetween(resource?.minDurationSeconds ?? 1, request.durationSeconds - 1);
      if (shorter.length > 0) {
        elements.push({
          type: 'static_select',
          action_id: ACTIONS.approveShorter,
          placeholder: plain('Approve for less…'),
          options: shorter.map((s) =>
            option(`Approve for ${describeDuration(s)}`, encodeValue(request.id, s)),
          ),
        });
      }
      const smaller = request.extendsGrantId ? [] : lowerQuotaChoices(pendingQuota);
      if (smaller.length > 0) {
        elements.push({
          type: 'static_select',
          action_id: ACTIONS.approveLowerQuota,
          placeholder: plain('Approve with a smaller quota…'),
          options: smaller.map((choice) =>
            option(`Approve for ${describeQuota(choice)}`, encodeQuotaValue(request.id, choice)),
          ),
        });
      }
      blocks.push({ type: 'actions', block_id: `decide:${request.id}`, elements });
      text = `${kind} from ${request.requesterId} for ${request.resource}: ${summary} (${given}/${required} approvals)`;
      break;
    }
    case 'approved': {
      const by =
        approvals.length > 0
          ? approvals.map((a) => mention(a.approverId)).join(', ')
          : 'policy (auto-approved)';
      let outcome = `:white_check_mark: Approved by ${by} ${slackDate(request.decidedAt ?? now)}`;
      if (grant) outcome += `\n${grantState(grant, now)}`;
      blocks.push(section(outcome));
      text = `Approved: ${request.resource} for ${request.requesterId}`;
      break;
    }
    case 'denied': {
      const note = request.decisionNote ? `: ${userText(request.decisionNote)}` : '';
      blocks.push(section(`:no_entry: Denied by ${mention(request.decidedBy ?? '')}${note}`));
      text = `Denied: ${request.resource} for ${request.requesterId}`;
      break;
    }
    case 'expired':
      blocks.push(section(':alarm_clock: Timed out: nobody decided in time.'));
      text = `Timed out: ${request.resource} for ${request.requesterId}`;
      break;
    case 'cancelled':
      // Offboarding and revoke-all end requests too; say who and why rather than blame the requester.
      blocks.push(
        section(
          request.decidedBy === null || request.decidedBy === request.requesterId
            ? ':wastebasket: Cancelled by the requester.'
            : `:wastebasket: Ended by ${mention(request.decidedBy)}${
                request.decisionNote ? `: ${userText(request.decisionNote, 500)}` : ''
              }`,
        ),
      );
      text = `Cancelled: ${request.resource} for ${request.requesterId}`;
      break;
  }
  return { text, blocks };
}

function grantState(grant: Grant, now: Date): string {
  switch (grant.status) {
    case 'active':
      return grant.expiresAt > now
        ? `Grant \`${grant.id}\` active until ${slackDate(grant.expiresAt)}`
        : `Grant \`${grant.id}\` ended ${slackDate(grant.expiresAt)}`;
    case 'revoked':
      return `:octagonal_sign: Grant \`${grant.id}\` revoked by ${mention(grant.endedBy ?? '')} ${slackDate(
        grant.endedAt ?? now,
      )}${grant.endReason ? `: ${userText(grant.endReason, 500)}` : ''}`;
    case 'expired':
      return `:hourglass: Grant \`${grant.id}\` expired ${slackDate(grant.expiresAt)}`;
  }
}

// --- requester DMs --------------------------------------------------------------------------

export interface GrantDmInput {
  grant: Grant;
  proxyUrl: string;
  approvers: readonly string[];
}

/** The curl line the DM shows; the token itself comes only from the modal. */
export function curlExample(proxyUrl: string, resource: string): string {
  return `curl -H "Authorization: Bearer $JITGATE_TOKEN" ${proxyUrl}/${resource}/<path>`;
}

export function grantApprovedDm(input: GrantDmInput): SlackMessage {
  const { grant, proxyUrl } = input;
  const by = input.approvers.length > 0 ? input.approvers.map(mention).join(', ') : 'policy (auto-approved)';
  return {
    text: `Your access to ${grant.resource} is approved`,
    blocks: [
      section(
        `:white_check_mark: Your access to ${scopeLabel(grant.resource, grant.scope)} is approved by ${by}.\n` +
          `It lasts until ${slackDate(grant.expiresAt)}. Grant id: \`${grant.id}\``,
      ),
      section(
        `*Proxy URL:* \`${escapeText(`${proxyUrl}/${grant.resource}/…`)}\`\n` +
          `Press *Show token*, then:\n\`\`\`export JITGATE_TOKEN=&lt;token from Show token&gt;\n${escapeText(
            curlExample(proxyUrl, grant.resource),
          )}\`\`\``,
      ),
      {
        type: 'actions',
        block_id: `grant:${grant.id}`,
        elements: [
          button('Show token', ACTIONS.showToken, grant.id, 'primary'),
          button('Give up access', ACTIONS.giveUp, grant.id, undefined, giveUpConfirm()),
        ],
      },
      context('The token is shown only in a private window, never in this conversation.'),
    ],
  };
}

export function grantExtendedDm(grant: Grant): SlackMessage {
  return {
    text: `Your access to ${grant.resource} was extended`,
    blocks: [
      section(
        `:arrows_counterclockwise: Your access to ${scopeLabel(grant.resource, grant.scope)} now lasts until ${slackDate(
          grant.expiresAt,
        )}. Your current token still stops at the old time; press *Show token* for one valid until the new expiry.`,
      ),
      {
        type: 'actions',
        block_id: `grant:${grant.id}`,
        elements: [button('Show token', ACTIONS.showToken, grant.id)],
      },
    ],
  };
}

export function requestDeniedDm(request: AccessRequest): SlackMessage {
  const note = request.decisionNote ? `\n>${userText(request.decisionNote)}` : '';
  return {
    text: `Your request for ${request.resource} was denied`,
    blocks: [
      section(
        `:no_entry: Your request for ${scopeLabel(request.resource, request.scope)} was denied by ${mention(
          request.decidedBy ?? '',
        )}.${note}`,
      ),
    ],
  };
}

export function requestTimedOutDm(request: AccessRequest): SlackMessage {
  return {
    text: `Your request for ${request.resource} timed out`,
    blocks: [
      section(
        `:alarm_clock: Nobody decided your request for ${scopeLabel(request.resource, request.scope)} in time, so it ` +
          'has expired. Ask again with `/access` if you still need access.',
      ),
    ],
  };
}

export function grantRevokedDm(grant: Grant): SlackMessage {
  const self = grant.endedBy === grant.userId;
  const why = grant.endReason ? `: ${userText(grant.endReason, 500)}` : '';
  return {
    text: self
      ? `You gave up your access to ${grant.resource}`
      : `Your access to ${grant.resource} was revoked`,
    blocks: [
      section(
        self
          ? `:wave: You gave up your access to ${scopeLabel(grant.resource, grant.scope)}. The token no longer works.`
          : `:octagonal_sign: Your access to ${scopeLabel(grant.resource, grant.scope)} was revoked${revokedBy(
              grant.endedBy,
            )}${why}. The token no longer works.`,
      ),
    ],
  };
}

/** ` by <@U…>` for a person; nothing for the system (the reason, like `idle for 30m`, says why). */
function revokedBy(endedBy: string | null): string {
  return endedBy !== null && USER_ID.test(endedBy) ? ` by ${mention(endedBy)}` : '';
}

export function grantExpiredDm(grant: Grant): SlackMessage {
  return {
    text: `Your access to ${grant.resource} has expired`,
    blocks: [
      section(
        `:hourglass: Your access to ${scopeLabel(grant.resource, grant.scope)} expired ${slackDate(
          grant.expiresAt,
        )}. Ask again with \`/access\` if you need more time.`,
      ),
    ],
  };
}

export function grantQuotaExhaustedDm(grant: Grant): SlackMessage {
  const quota = describeQuota({ requests: grant.quotaRequests, responseBytes: grant.quotaResponseBytes });
  return {
    text: `Your access to ${grant.resource} has used up its quota`,
    blocks: [
      section(
        `:no_entry_sign: Your access to ${scopeLabel(grant.resource, grant.scope)} has used up its quota${
          quota ? ` (${quota})` : ''
        }; the proxy now refuses its calls with \`quota_exhausted\`. Ask again with \`/access\` if you need more.`,
      ),
    ],
  };
}

function giveUpConfirm(): types.ConfirmationDialog {
  return {
    title: plain('Give up access?'),
    text: { type: 'mrkdwn', text: 'The token stops working at once.' },
    confirm: plain('Give up'),
    deny: plain('Keep it'),
  };
}

/** Extension choices that fit the resource (and never exceed its max duration). */
export function extendOptions(grant: Grant, resource: ResourcePolicy | undefined): types.PlainTextOption[] {
  const max = resource?.maxDurationSeconds ?? 3600;
  const min = resource?.minDurationSeconds ?? 1;
  return durationsBetween(min, Math.min(max, 4 * 3600)).map((s) =>
    option(`Extend by ${describeDuration(s)}`, encodeValue(grant.id, s)),
  );
}

export function grantReminderDm(grant: Grant, resource: ResourcePolicy | undefined, now: Date): SlackMessage {
  const choices = extendOptions(grant, resource);
  const elements: types.ActionsBlockElement[] = [];
  if (choices.length > 0) {
    elements.push({
      type: 'static_select',
      action_id: ACTIONS.extend,
      placeholder: plain('Extend…'),
      options: choices,
    });
  }
  elements.push(button('Give up now', ACTIONS.giveUp, grant.id, undefined, giveUpConfirm()));
  return {
    text: `Your access to ${grant.resource} ends soon`,
    blocks: [
      section(
        `:bell: Your access to ${scopeLabel(grant.resource, grant.scope)} ends ${slackDate(grant.expiresAt)} (${timeLeft(
          grant.expiresAt,
          now,
        )}).`,
      ),
      { type: 'actions', block_id: `remind:${grant.id}`, elements },
    ],
  };
}

export interface AnomalyInput {
  resource: string;
  rule: string;
  summary: string;
  userId: string | null;
  /** The grant the alert names; shown even when its row cannot be read. */
  grantId?: string | null;
  grant: Grant | undefined;
  /** What the finding saw. It comes back from stored JSON, so every field is read with care. */
  evidence?: Readonly<Record<string, unknown>> | undefined;
  /** The call that set the alert off (alerts queued before calls were carried have none). */
  call?: Partial<AlertCall> | undefined;
  revoked: boolean;
  at: Date;
}

/** Slack refuses a section whose text is over 3000 characters; stay under it with room to spare. */
const MAX_SECTION = 2900;
/** Longest single value an alert shows; the audit log keeps the whole of it. */
const MAX_ALERT_VALUE = 200;
const MAX_EVIDENCE_ENTRIES = 15;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * A value from a request (a path, an IP, a header) as inline code: escaped so it cannot
 * mention or link, with backticks and line breaks replaced so it cannot close the code span
 * and bring `*`, `_` or `~` formatting back to life, and cut to `max`.
 */
export function codeText(value: string, max = MAX_ALERT_VALUE): string {
  const flat = value
    .replace(/[\p{Cc}\u2028\u2029]+/gu, ' ')
    .replace(/`/g, '\u02cb')
    .trim();
  return flat === '' ? '—' : `\`${userText(flat, max)}\``;
}

/** `lastPath` → `last path`: evidence keys are ours, but come back from JSON, so only letters and digits stay. */
function evidenceLabel(key: string): string {
  const label = key
    .replace(/[^A-Za-z0-9_]/g, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/_/g, ' ')
    .toLowerCase()
    .slice(0, 40);
  return label === '' ? 'value' : label;
}

function evidenceValue(value: unknown, depth = 0): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number')
    return Number.isFinite(value) ? NUMBER.format(value) : codeText(String(value));
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string') {
    const at = ISO_TIME.test(value) ? new Date(value) : undefined;
    return at && !Number.isNaN(at.getTime())
      ? slackDate(at, '{date_short_pretty} {time_secs}')
      : codeText(value);
  }
  if (Array.isArray(value) && depth === 0) {
    const shown = value.slice(0, 5).map((item) => evidenceValue(item, 1));
    return `${shown.join(', ') || '—'}${value.length > 5 ? ` (+${value.length - 5} more)` : ''}`;
  }
  let json: string;
  try {
    json = JSON.stringify(value) ?? String(value);
  } catch {
    json = String(value);
  }
  return codeText(json);
}

/** Adds `lines` to `section` text while it stays under Slack's limit; says how many did not fit. */
function boundedLines(head: string, lines: readonly string[]): string {
  let text = head;
  for (const [index, line] of lines.entries()) {
    const rest = lines.length - index;
    const more = `\n…and ${rest} more (see \`jitgate audit export\`)`;
    if (text.length + 1 + line.length + (rest > 1 ? more.length : 0) > MAX_SECTION) return text + more;
    text += `\n${line}`;
  }
  return text;
}

function alertWho(input: AnomalyInput): string {
  const who = input.userId ? mention(input.userId) : 'an unidentified caller';
  const grantId = input.grant?.id ?? input.grantId ?? undefined;
  if (!grantId) return `*Who:* ${who} (no grant identified)`;
  const grant = input.grant;
  const detail = grant
    ? ` (${codeText(grant.scope, 100)}, ${
        grant.status === 'active' ? `until ${slackDate(grant.expiresAt)}` : grant.status
      })`
    : '';
  return `*Who:* ${who} with grant ${codeText(grantId, 64)}${detail}`;
}

function alertWhat(call: Partial<AlertCall> | undefined): string[] {
  if (!call) return [];
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const lines: string[] = [];
  const method = str(call.method);
  const path = str(call.path);
  if (method !== undefined || path !== undefined) {
    const status =
      typeof call.status === 'number' && Number.isInteger(call.status) ? ` → ${call.status}` : '';
    const decision = str(call.decision);
    lines.push(
      `*Call:* ${codeText(`${method ?? '?'} ${path ?? '?'}`, 500)}${status}${
        decision !== undefined ? ` ${codeText(decision, 64)}` : ''
      }`,
    );
  }
  const ip = str(call.clientIp);
  const at = new Date(str(call.at) ?? Number.NaN);
  const when = Number.isNaN(at.getTime()) ? undefined : slackDate(at, '{date_short_pretty} {time_secs}');
  if (ip !== undefined || when !== undefined) {
    lines.push(`*From:* ${ip !== undefined ? codeText(ip, 64) : '—'}${when ? ` at ${when}` : ''}`);
  }
  const requestId = str(call.requestId);
  if (requestId !== undefined) lines.push(`*Request id:* ${codeText(requestId, 100)}`);
  return lines;
}

/** Evidence entries as `• *label:* value`, skipping what the call lines already show. */
function alertEvidence(evidence: AnomalyInput['evidence'], call: Partial<AlertCall> | undefined): string[] {
  if (!evidence || typeof evidence !== 'object' || Array.isArray(evidence)) return [];
  const lines: string[] = [];
  for (const [key, value] of Object.entries(evidence)) {
    if (key === 'revokeNote') continue;
    if (key === 'requestId' && call?.requestId === value) continue;
    lines.push(`• *${evidenceLabel(key)}:* ${evidenceValue(value)}`);
  }
  return lines.length > MAX_EVIDENCE_ENTRIES
    ? [...lines.slice(0, MAX_EVIDENCE_ENTRIES), `• …and ${lines.length - MAX_EVIDENCE_ENTRIES} more`]
    : lines;
}

/** Verbatim: Slack turns no bare URL, `@here` or `#channel` in it into a link or a ping. */
const verbatimSection = (text: string): Block => ({
  type: 'section',
  text: { type: 'mrkdwn', text, verbatim: true },
});

/**
 * The alert in the resource's alert channel: who (person and grant), what (the call that set
 * it off: method and path, client IP, time, decision, request id), the finding's evidence,
 * and Revoke while the grant is active. Every value from a request is shown as escaped code,
 * so a hostile path cannot ping, link or format; every section stays under Slack's limit.
 */
export function anomalyAlert(input: AnomalyInput): SlackMessage {
  const who = input.userId ? ` by ${mention(input.userId)}` : '';
  const lines = [
    `:rotating_light: *Unusual activity* on *${userText(input.resource, 100)}*${who}`,
    `*Rule:* ${codeText(input.rule, 100)}`,
    userText(input.summary, 1000),
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  const facts = [alertWho(input), ...alertWhat(input.call)];
  const revokeNote = input.evidence?.revokeNote;
  if (typeof revokeNote === 'string') facts.push(`*Automatic revoke failed:* ${userText(revokeNote, 300)}`);
  blocks.push(verbatimSection(boundedLines(facts[0] ?? '', facts.slice(1))));
  const evidence = alertEvidence(input.evidence, input.call);
  if (evidence.length > 0) blocks.push(verbatimSection(boundedLines('*Evidence*', evidence)));
  if (input.grant) {
    if (input.revoked || input.grant.status !== 'active') {
      blocks.push(context(`Grant \`${input.grant.id}\` is ${input.grant.status}.`));
    } else {
      blocks.push({
        type: 'actions',
        block_id: `alert:${input.grant.id}`,
        elements: [
          button('Revoke grant', ACTIONS.revoke, input.grant.id, 'danger', {
            title: plain('Revoke this grant?'),
            text: { type: 'mrkdwn', text: 'The token stops working at once.' },
            confirm: plain('Revoke'),
            deny: plain('Cancel'),
          }),
        ],
      });
    }
  }
  blocks.push(context(`Detected ${slackDate(input.at)}`));
  return {
    text: escapeText(`Unusual activity on ${input.resource.slice(0, 100)}: ${input.rule.slice(0, 100)}`),
    blocks,
  };
}

// --- command answers ------------------------------------------------------------------------

export const USAGE = [
  '`/access` — open the request form',
  '`/access request <resource> [scope] <duration> <reason…>` — e.g. `/access request billing-api read 30m INC-123`',
  '`/access list` — your pending requests and active grants',
  '`/access revoke <grant>` — end a grant (yours, or any you approve)',
  '`/access extend <grant> <duration>` — ask for more time',
  '`/access active` — active grants on resources you approve, with last use',
  "`/access revoke-all <@user> [reason…]` — end all of a person's grants and requests on resources you approve",
  '`/access audit <grant>` — what a grant was used for (approvers)',
  '`/access help` — this text',
].join('\n');

export function helpMessage(): SlackMessage {
  return { text: 'How to use /access', blocks: [section('*How to use `/access`*'), section(USAGE)] };
}

/** What was wrong, then usage: every bad command gets this. */
export function errorMessage(problem: string, withUsage = true): SlackMessage {
  const blocks: Block[] = [section(`:warning: ${escapeText(problem)}`)];
  if (withUsage) blocks.push(context(USAGE));
  return { text: escapeText(problem), blocks };
}

/** A short answer (ephemeral). Text here is ours, but may quote user input, so it is escaped. */
export function noticeMessage(text: string): SlackMessage {
  return { text: escapeText(text), blocks: [section(escapeText(text))] };
}

export function requestSubmittedMessage(request: AccessRequest, autoApproved: boolean): SlackMessage {
  const what = scopeLabel(request.resource, request.scope);
  return autoApproved
    ? {
        text: `Access to ${request.resource} approved by policy`,
        blocks: [
          section(
            `:white_check_mark: ${what} for ${describeDuration(request.durationSeconds)} was approved by policy. Check your DMs.`,
          ),
        ],
      }
    : {
        text: `Request for ${request.resource} sent to approvers`,
        blocks: [
          section(
            `:outbox_tray: Your request for ${what} (${describeDuration(request.durationSeconds)}) is waiting for ${
              request.approvalsRequired
            } approval${request.approvalsRequired === 1 ? '' : 's'} in <#${request.approvalChannel ?? ''}>. ` +
              'You will get a DM when it is decided.',
          ),
        ],
      };
}

function requestLine(request: AccessRequest): string {
  return `${scopeLabel(request.resource, request.scope)} for ${describeDuration(request.durationSeconds)} · asked ${slackDate(
    request.createdAt,
  )} by ${mention(request.requesterId)}`;
}

/** When a grant last carried a proxied call (written per audit batch), for approvers judging idle access. */
export function lastUse(grant: Pick<Grant, 'lastUsedAt'>): string {
  return grant.lastUsedAt ? `last used ${slackDate(grant.lastUsedAt)}` : 'never used';
}

function grantLine(grant: Grant, now: Date, withOwner: boolean): string {
  const quota = quotaUse(grant);
  return `${scopeLabel(grant.resource, grant.scope)}${withOwner ? ` · ${mention(grant.userId)}` : ''} · until ${slackDate(
    grant.expiresAt,
  )} (${timeLeft(grant.expiresAt, now)})${quota ? ` · ${quota}` : ''}${withOwner ? ` · ${lastUse(grant)}` : ''}\n\`${grant.id}\``;
}

export interface Lists {
  pending: readonly AccessRequest[];
  active: readonly Grant[];
}

/** `/access list` and the requester half of App Home. */
export function myAccessBlocks(mine: Lists, now: Date): Block[] {
  const blocks: Block[] = [header('Your access')];
  if (mine.pending.length === 0 && mine.active.length === 0) {
    blocks.push(
      section('You have no pending requests and no active grants. Use `/access` to ask for access.'),
    );
    return blocks;
  }
  for (const request of mine.pending) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `:hourglass_flowing_sand: Pending: ${requestLine(request)}` },
      accessory: button('Cancel', ACTIONS.cancel, request.id),
    });
  }
  for (const grant of mine.active) {
    blocks.push(section(`:large_green_circle: ${grantLine(grant, now, false)}`), {
      type: 'actions',
      block_id: `mine:${grant.id}`,
      elements: [
        button('Show token', ACTIONS.showToken, grant.id),
        button('Extend 1h', ACTIONS.extend, encodeValue(grant.id, 3600)),
        button('Give up', ACTIONS.giveUp, grant.id, 'danger', giveUpConfirm()),
      ],
    });
  }
  return blocks;
}

/** `/access active` and the approver half of App Home. */
export function approverBlocks(lists: Lists, now: Date): Block[] {
  const blocks: Block[] = [header('To decide')];
  if (lists.pending.length === 0) blocks.push(context('Nothing is waiting for a decision.'));
  for (const request of lists.pending) {
    blocks.push(section(`${requestLine(request)}\n*Reason:* ${userText(request.reason, 500)}`), {
      type: 'actions',
      block_id: `home-decide:${request.id}`,
      elements: [
        button('Approve', ACTIONS.approve, request.id, 'primary'),
        button('Deny', ACTIONS.deny, request.id, 'danger'),
      ],
    });
  }
  blocks.push(header('Active grants'));
  if (lists.active.length === 0) blocks.push(context('No active grants on the resources you approve.'));
  for (const grant of lists.active) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: grantLine(grant, now, true) },
      accessory: button('Revoke', ACTIONS.revoke, grant.id, 'danger'),
    });
  }
  return blocks;
}

export function listMessage(mine: Lists, now: Date): SlackMessage {
  return { text: 'Your access', blocks: myAccessBlocks(mine, now) };
}

export function activeMessage(lists: Lists, now: Date): SlackMessage {
  return { text: 'Active grants', blocks: approverBlocks(lists, now) };
}

export function auditMessage(summary: GrantCallSummary): SlackMessage {
  const paths = summary.topPaths
    .slice(0, 10)
    .map((p) => `• \`${escapeText(`${p.method} ${p.path}`)}\` × ${p.count}`)
    .join('\n');
  const statuses = summary.byStatus.map((s) => `${s.status}: ${s.count}`).join(', ');
  const lines = [
    `*Grant* \`${summary.grantId}\` on *${escapeText(summary.resource)}* by ${mention(summary.userId)}`,
    `*Calls:* ${summary.totalCalls} (${summary.deniedCalls} denied)${statuses ? ` · ${statuses}` : ''}`,
    `*Seen:* ${summary.firstSeen ? slackDate(summary.firstSeen) : '—'} → ${
      summary.lastSeen ? slackDate(summary.lastSeen) : '—'
    }`,
    `*Client IPs:* ${summary.clientIps.map(escapeText).join(', ') || '—'}`,
    `*Response bytes:* ${summary.responseBytes}`,
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  if (paths) blocks.push(section(`*Top paths*\n${paths}`));
  return { text: `Audit of grant ${summary.grantId}`, blocks };
}

/** The answer to `/access revoke-all`: what ended, and what was left on resources the caller does not approve. */
export function revokeAllMessage(input: {
  userId: string;
  grants: readonly Grant[];
  requests: readonly AccessRequest[];
  untouchedResources: readonly string[];
}): SlackMessage {
  const who = mention(input.userId);
  if (input.grants.length + input.requests.length === 0 && input.untouchedResources.length === 0) {
    return {
      text: 'Nothing to revoke',
      blocks: [section(`${who} has no active grants and no pending requests.`)],
    };
  }
  const lines = [
    `:octagonal_sign: Revoked ${input.grants.length} grant${input.grants.length === 1 ? '' : 's'} and ended ${
      input.requests.length
    } pending request${input.requests.length === 1 ? '' : 's'} of ${who}.`,
  ];
  for (const grant of input.grants)
    lines.push(`• ${scopeLabel(grant.resource, grant.scope)} \`${grant.id}\``);
  if (input.untouchedResources.length > 0) {
    lines.push(
      `Left alone (you do not approve them): ${input.untouchedResources.map((r) => `*${escapeText(r)}*`).join(', ')}.`,
    );
  }
  return { text: `Revoked access of ${input.userId}`, blocks: [section(lines.join('\n'))] };
}

/** The note to a resource's approval channel when a person's access there ended at once. */
export function offboardedNote(input: {
  resource: string;
  userId: string;
  reason: string;
  by: string;
  grantIds: readonly string[];
  requestIds: readonly string[];
  at: Date;
}): SlackMessage {
  const byUser = /^slack:([UW][A-Z0-9]{2,})$/.exec(input.by)?.[1];
  const lines = [
    `:door: *Access ended* for ${mention(input.userId)} on *${escapeText(input.resource)}*`,
    `*Why:* ${userText(input.reason, 500)}${byUser ? ` (by ${mention(byUser)})` : ''}`,
    `${input.grantIds.length} grant${input.grantIds.length === 1 ? '' : 's'} revoked, ${
      input.requestIds.length
    } pending request${input.requestIds.length === 1 ? '' : 's'} ended.`,
  ];
  const ids = input.grantIds.map((id) => `\`${id}\``).join(' ');
  const blocks: Block[] = [section(lines.join('\n'))];
  if (ids) blocks.push(context(`Grants: ${ids}`));
  blocks.push(context(`Ended ${slackDate(input.at)}`));
  return {
    text: escapeText(`Access ended for ${input.userId} on ${input.resource}: ${input.reason}`),
    blocks,
  };
}

export function weeklyReportMessage(report: WeeklyReport): SlackMessage {
  const lines = [
    `:bar_chart: *Weekly access report* for *${escapeText(report.resource)}*`,
    `${slackDate(report.periodStart, '{date_short}')} – ${slackDate(report.periodEnd, '{date_short}')}`,
    `*Grants made:* ${report.grantsMade} · *used:* ${report.grantsUsed} · *unused:* ${report.grantsUnused}`,
    `*Calls:* ${report.calls} · *denied:* ${report.deniedCalls} · *alerts:* ${report.alerts}`,
    `*Revoked for idleness:* ${report.idleRevoked} · *offboarded:* ${report.offboarded}`,
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  if (report.grantsUnused > 0) {
    blocks.push(
      context('Unused grants were approved but never carried a call: worth asking whether they were needed.'),
    );
  }
  return { text: escapeText(`Weekly access report for ${report.resource}`), blocks };
}

// --- views ----------------------------------------------------------------------------------

export function homeView(mine: Lists, approver: Lists | undefined, now: Date): HomeView {
  const blocks: Block[] = [
    {
      type: 'actions',
      block_id: 'home-top',
      elements: [button('Request access', ACTIONS.openRequestModal, 'open', 'primary')],
    },
    ...myAccessBlocks(mine, now),
  ];
  if (approver) blocks.push({ type: 'divider' }, ...approverBlocks(approver, now));
  blocks.push(context(`Updated ${slackDate(now)}`));
  // Slack allows 100 blocks in a home tab.
  return { type: 'home', blocks: blocks.slice(0, 100) };
}

/**
 * The request modal: resource·scope and duration offered from the policy. Until a resource is
 * chosen the durations span every resource; choosing one (`initial.target`, sent back by the
 * select's dispatch action) narrows them to that resource's min..max.
 */
export function requestModal(
  policy: Policy,
  initial: { resource?: string; target?: string } = {},
): ModalView {
  const targets: types.PlainTextOption[] = [];
  let longest = 0;
  let shortest = Number.POSITIVE_INFINITY;
  const chosenName = initial.target?.split('|')[0] ?? initial.resource;
  const chosen =
    chosenName !== undefined && Object.hasOwn(policy.resources, chosenName)
      ? policy.resources[chosenName]
      : undefined;
  for (const resource of Object.values(policy.resources)) {
    if (!chosen || resource === chosen) {
      longest = Math.max(longest, resource.maxDurationSeconds);
      shortest = Math.min(shortest, resource.minDurationSeconds);
    }
    for (const scope of Object.values(resource.scopes)) {
      const auto =
        scope.autoApproveMaxSeconds !== undefined
          ? ` (instant ≤ ${describeDuration(scope.autoApproveMaxSeconds)})`
          : '';
      targets.push(option(`${resource.name} · ${scope.name}${auto}`, `${resource.name}|${scope.name}`));
    }
  }
  const durations = durationsBetween(shortest, longest).map((s) => option(describeDuration(s), String(s)));
  const initialTarget =
    targets.find((t) => t.value === initial.target) ??
    (chosen ? targets.find((t) => t.value?.startsWith(`${chosen.name}|`)) : undefined);
  const targetSelect: types.StaticSelect = {
    type: 'static_select',
    action_id: REQUEST_FIELDS.target.action,
    placeholder: plain('Choose a resource and scope'),
    options: targets.slice(0, 100),
  };
  if (initialTarget) targetSelect.initial_option = initialTarget;
  return {
    type: 'modal',
    callback_id: VIEWS.request,
    title: plain('Request access'),
    submit: plain('Request'),
    close: plain('Cancel'),
    blocks: [
      {
        type: 'input',
        block_id: REQUEST_FIELDS.target.block,
        // A choice is sent at once, so the durations can be narrowed to that resource's.
        dispatch_action: true,
        label: plain('Resource and scope'),
        element: targetSelect,
      },
      {
        type: 'input',
        block_id: REQUEST_FIELDS.duration.block,
        label: plain('For how long'),
        element: {
          type: 'static_select',
          action_id: REQUEST_FIELDS.duration.action,
          placeholder: plain('Duration'),
          options: durations,
        },
      },
      {
        type: 'input',
        block_id: REQUEST_FIELDS.reason.block,
        label: plain('Why do you need it?'),
        element: {
          type: 'plain_text_input',
          action_id: REQUEST_FIELDS.reason.action,
          multiline: true,
          max_length: 2000,
          placeholder: plain('Ticket or incident, and what you will do'),
        },
      },
    ],
  };
}

/** Shown instead of the request form to someone the policy's `requesters` leave out. */
export const NOT_A_REQUESTER_TEXT =
  'You are not among the people this workspace lets request access. If you need it, ask your security team to add you to the requesters in the jitgate policy.';

export function notARequesterModal(): ModalView {
  return {
    type: 'modal',
    title: plain('Request access'),
    close: plain('Close'),
    blocks: [section(NOT_A_REQUESTER_TEXT)],
  };
}

export function denyModal(request: AccessRequest): ModalView {
  return {
    type: 'modal',
    callback_id: VIEWS.deny,
    private_metadata: request.id,
    title: plain('Deny request'),
    submit: plain('Deny'),
    close: plain('Cancel'),
    blocks: [
      section(
        `Deny ${mention(request.requesterId)}'s request for ${scopeLabel(request.resource, request.scope)}?`,
      ),
      {
        type: 'input',
        block_id: DENY_FIELDS.reason.block,
        label: plain('Reason (sent to the requester)'),
        element: {
          type: 'plain_text_input',
          action_id: DENY_FIELDS.reason.action,
          multiline: true,
          max_length: 2000,
        },
      },
    ],
  };
}

/** The only place a token is ever shown: a modal, which Slack does not keep in history. */
export function tokenModal(grant: Grant, token: string, proxyUrl: string): ModalView {
  return {
    type: 'modal',
    callback_id: VIEWS.token,
    title: plain('Your access token'),
    close: plain('Done'),
    blocks: [
      section(
        `Token for ${scopeLabel(grant.resource, grant.scope)}, valid until ${slackDate(grant.expiresAt)}. ` +
          'Copy it now; it is not stored in Slack.',
      ),
      section(`\`\`\`${token}\`\`\``),
      section(
        `\`\`\`export JITGATE_TOKEN='${token}'\n${escapeText(curlExample(proxyUrl, grant.resource))}\`\`\``,
      ),
    ],
  };
}
