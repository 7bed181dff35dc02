import type { types } from '@slack/bolt';
import type { AccessRequest, Grant } from '../../db/schema/index.ts';
import type { ResourcePolicy } from '../../policy/index.ts';
import { noteSection, revokedBy } from './approval.ts';
import { extendOptions } from './choices.ts';
import { ACTIONS, versioned } from './ids.ts';
import { button, confirmDialog, context, plain, type SlackMessage, section } from './kit.ts';
import {
  describeQuota,
  escapeText,
  inlineText,
  mention,
  notificationText,
  scopeLabel,
  slackDate,
  timeLeft,
} from './text.ts';

/** What the requester is told in their DMs with the bot. */

export interface GrantDmInput {
  grant: Grant;
  proxyUrl: string;
  approvers: readonly string[];
  /** `sender_constraint: dpop`: no bearer token works, so the DM points at the CLI instead of curl. */
  boundOnly?: boolean;
}

/** The curl line the DM shows; the token itself comes only from the modal. */
export function curlExample(proxyUrl: string, resource: string): string {
  return `curl -H "Authorization: Bearer $JITGATE_TOKEN" ${proxyUrl}/${resource}/<path>`;
}

export function giveUpConfirm(): types.ConfirmationDialog {
  return confirmDialog('Give up access?', 'The token stops working at once.', 'Give up', 'Keep it');
}

export function grantApprovedDm(input: GrantDmInput): SlackMessage {
  const { grant, proxyUrl } = input;
  const by = input.approvers.length > 0 ? input.approvers.map(mention).join(', ') : 'policy (auto-approved)';
  return {
    text: notificationText(`Your access to ${grant.resource} is approved`),
    blocks: [
      section(
        `:white_check_mark: Your access to ${scopeLabel(grant.resource, grant.scope)} is approved by ${by}.\n` +
          `It lasts until ${slackDate(grant.expiresAt)}. Grant id: \`${grant.id}\``,
      ),
      input.boundOnly
        ? section(
            `*Proxy URL:* \`${escapeText(`${proxyUrl}/${grant.resource}/…`)}\`\n` +
              `This grant takes only tokens bound to your device: use the jitgate CLI (*Show token* says how), e.g.\n\`\`\`jitgate connect ${escapeText(grant.resource)} --port 9000\`\`\``,
          )
        : section(
            `*Proxy URL:* \`${escapeText(`${proxyUrl}/${grant.resource}/…`)}\`\n` +
              `Press *Show token*, then:\n\`\`\`export JITGATE_TOKEN=&lt;token from Show token&gt;\n${escapeText(
                curlExample(proxyUrl, grant.resource),
              )}\`\`\``,
          ),
      versioned(`grant:${grant.id}`, {
        type: 'actions',
        elements: [
          button('Show token', ACTIONS.showToken, grant.id, 'primary'),
          button('Give up access', ACTIONS.giveUp, grant.id, undefined, giveUpConfirm()),
        ],
      }),
      context('The token is shown only in a private window, never in this conversation.'),
    ],
  };
}

export function grantExtendedDm(grant: Grant): SlackMessage {
  return {
    text: notificationText(`Your access to ${grant.resource} was extended`),
    blocks: [
      section(
        `:arrows_counterclockwise: Your access to ${scopeLabel(grant.resource, grant.scope)} now lasts until ${slackDate(
          grant.expiresAt,
        )}. Your current token still stops at the old time; press *Show token* for one valid until the new expiry.`,
      ),
      versioned(`grant:${grant.id}`, {
        type: 'actions',
        elements: [button('Show token', ACTIONS.showToken, grant.id)],
      }),
    ],
  };
}

export function requestDeniedDm(request: AccessRequest): SlackMessage {
  return {
    text: notificationText(`Your request for ${request.resource} was denied`),
    blocks: [
      section(
        `:no_entry: Your request for ${scopeLabel(request.resource, request.scope)} was denied by ${mention(
          request.decidedBy ?? '',
        )}${request.decisionNote ? ':' : '.'}`,
      ),
      ...(request.decisionNote ? [noteSection(request.decisionNote)] : []),
    ],
  };
}

export function requestTimedOutDm(request: AccessRequest): SlackMessage {
  return {
    text: notificationText(`Your request for ${request.resource} timed out`),
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
  const why = grant.endReason ? `: ${inlineText(grant.endReason, 500)}` : '';
  return {
    text: notificationText(
      self ? `You gave up your access to ${grant.resource}` : `Your access to ${grant.resource} was revoked`,
    ),
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

export function grantExpiredDm(grant: Grant): SlackMessage {
  return {
    text: notificationText(`Your access to ${grant.resource} has expired`),
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
    text: notificationText(`Your access to ${grant.resource} has used up its quota`),
    blocks: [
      section(
        `:no_entry_sign: Your access to ${scopeLabel(grant.resource, grant.scope)} has used up its quota${
          quota ? ` (${quota})` : ''
        }; the proxy now refuses its calls with \`quota_exhausted\`. Ask again with \`/access\` if you need more.`,
      ),
    ],
  };
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
    text: notificationText(`Your access to ${grant.resource} ends soon`),
    blocks: [
      section(
        `:bell: Your access to ${scopeLabel(grant.resource, grant.scope)} ends ${slackDate(grant.expiresAt)} (${timeLeft(
          grant.expiresAt,
          now,
        )}).`,
      ),
      versioned(`remind:${grant.id}`, { type: 'actions', elements }),
    ],
  };
}
