import type { AccessRequest, Grant } from '../../db/schema/index.ts';
import { describeDuration } from '../../policy/index.ts';
import type { GrantCallSummary } from '../../shared/grant-summary.ts';
import { type Block, context, LIMITS, type SlackMessage, section } from './kit.ts';
import { approverPage, type Lists, myAccessPage } from './lists.ts';
import {
  boundedLines,
  codeText,
  escapeText,
  fitRendered,
  inlineText,
  mention,
  NUMBER,
  notificationText,
  plural,
  scopeLabel,
  slackDate,
} from './text.ts';

/** What `/access` answers (ephemerally) and what a click answers. */

/** Usage as typed: `<resource>` is escaped, or Slack would read it as a link or mention. */
const USAGE = [
  '`/access` — open the request form',
  '`/access request <resource> [scope] <duration> <reason…>` — e.g. `/access request billing-api read 30m INC-123`',
  '`/access list` — your pending requests and active grants',
  '`/access revoke <grant>` — end a grant (yours, or any you approve)',
  '`/access extend <grant> <duration>` — ask for more time',
  '`/access active` — active grants on resources you approve, with last use',
  "`/access revoke-all <@user> [reason…]` — end all of a person's grants and requests on resources you approve",
  '`/access audit <grant>` — what a grant was used for (approvers)',
  '`/access link <code>` — link the device `jitgate login` shows the code on',
  '`/access devices` — your linked devices, each with Revoke',
  '`/access help` — this text',
]
  .map(escapeText)
  .join('\n');

export function helpMessage(): SlackMessage {
  return { text: 'How to use /access', blocks: [section('*How to use `/access`*'), section(USAGE)] };
}

/** Our own words, which may quote what was typed: escaped and sized for a section. */
const said = (text: string): string => fitRendered(text, LIMITS.sectionText - 20, escapeText);

/** What was wrong, then usage: every bad command gets this. */
export function errorMessage(problem: string, withUsage = true): SlackMessage {
  const blocks: Block[] = [section(`:warning: ${said(problem)}`)];
  if (withUsage) blocks.push(context(USAGE));
  return { text: notificationText(problem), blocks };
}

/** A short answer (ephemeral). Text here is ours, but may quote user input, so it is escaped. */
export function noticeMessage(text: string): SlackMessage {
  return { text: notificationText(text), blocks: [section(said(text))] };
}

export function requestSubmittedMessage(request: AccessRequest, autoApproved: boolean): SlackMessage {
  const what = scopeLabel(request.resource, request.scope);
  return autoApproved
    ? {
        text: notificationText(`Access to ${request.resource} approved by policy`),
        blocks: [
          section(
            `:white_check_mark: ${what} for ${describeDuration(request.durationSeconds)} was approved by policy. Check your DMs.`,
          ),
        ],
      }
    : {
        text: notificationText(`Request for ${request.resource} sent to approvers`),
        blocks: [
          section(
            `:outbox_tray: Your request for ${what} (${describeDuration(request.durationSeconds)}) is waiting for ${plural(
              request.approvalsRequired,
              'approval',
            )} in <#${request.approvalChannel ?? ''}>. You will get a DM when it is decided.`,
          ),
        ],
      };
}

/** `/access list`, one page; later pages come from its Next button. */
export function listMessage(mine: Lists, now: Date, page = 1): SlackMessage {
  return { text: 'Your access', blocks: myAccessPage(mine, now, page) };
}

/** `/access active`, one page; later pages come from its Next button. */
export function activeMessage(lists: Lists, now: Date, page = 1): SlackMessage {
  return { text: 'Active grants', blocks: approverPage(lists, now, page) };
}

const MAX_IPS_SHOWN = 20;
const SEE_EXPORT = 'see `jitgate audit export --grant`';

export function auditMessage(summary: GrantCallSummary): SlackMessage {
  const statuses = summary.byStatus.map((s) => `${s.status}: ${NUMBER.format(s.count)}`).join(', ');
  const ips = summary.clientIps.slice(0, MAX_IPS_SHOWN).map((ip) => inlineText(ip, 64));
  const moreIps = summary.clientIps.length - ips.length;
  const lines = [
    `*Grant* \`${inlineText(summary.grantId, 64)}\` on *${inlineText(summary.resource, 100)}* by ${mention(summary.userId)}`,
    `*Calls:* ${NUMBER.format(summary.totalCalls)} (${NUMBER.format(summary.deniedCalls)} denied)${statuses ? ` · ${statuses}` : ''}`,
    `*Seen:* ${summary.firstSeen ? slackDate(summary.firstSeen) : '—'} → ${
      summary.lastSeen ? slackDate(summary.lastSeen) : '—'
    }`,
    `*Client IPs:* ${ips.join(', ') || '—'}${moreIps > 0 ? ` and ${NUMBER.format(moreIps)} more (${SEE_EXPORT})` : ''}`,
    `*Response bytes:* ${NUMBER.format(summary.responseBytes)}`,
  ];
  const blocks: Block[] = [section(lines.join('\n'))];
  const paths = summary.topPaths.map(
    (p) => `• ${codeText(`${p.method} ${p.path}`, 300)} × ${NUMBER.format(p.count)}`,
  );
  if (paths.length > 0) blocks.push(section(boundedLines('*Top paths*', paths, SEE_EXPORT)));
  return { text: notificationText(`Audit of grant ${summary.grantId}`), blocks };
}

const MAX_RESOURCES_NAMED = 10;

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
  const head = `:octagonal_sign: Revoked ${plural(input.grants.length, 'grant')} and ended ${plural(
    input.requests.length,
    'pending request',
  )} of ${who}.`;
  const lines = input.grants.map((grant) => `• ${scopeLabel(grant.resource, grant.scope)} \`${grant.id}\``);
  const blocks: Block[] = [
    section(
      boundedLines(
        head,
        lines,
        `every one is in the audit log: \`jitgate audit export --user ${input.userId}\``,
      ),
    ),
  ];
  if (input.untouchedResources.length > 0) {
    const named = input.untouchedResources
      .slice(0, MAX_RESOURCES_NAMED)
      .map((r) => `*${inlineText(r, 100)}*`);
    const more = input.untouchedResources.length - named.length;
    blocks.push(
      section(
        `Left alone (you do not approve them): ${named.join(', ')}${more > 0 ? ` and ${NUMBER.format(more)} more` : ''}.`,
      ),
    );
  }
  return { text: notificationText(`Revoked access of ${input.userId}`), blocks };
}
