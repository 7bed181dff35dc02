import type { AccessRequest } from '../../db/schema/index.ts';
import { describeDuration } from '../../policy/index.ts';
import { ACTIONS, versioned } from './ids.ts';
import { type Block, button, context, type SlackMessage, section } from './kit.ts';
import { mention, notificationText, scopeLabel } from './text.ts';

/**
 * What jitgate sends when Slack refused a message for good: a short stand-in that Slack will
 * take, and a word to the person who would otherwise wait for nothing.
 */

/** Why Slack would not post to a channel, in words someone can act on. */
function channelProblem(code: string): string {
  switch (code) {
    case 'not_in_channel':
      return 'jitgate is not a member of that channel: invite it with `/invite @jitgate`';
    case 'channel_not_found':
      return 'that channel does not exist or jitgate cannot see it: check `approval_channel` in the policy';
    case 'is_archived':
      return 'that channel is archived: unarchive it or point `approval_channel` at another one';
    default:
      return `Slack answered \`${code}\``;
  }
}

/**
 * Any message Slack refused for its content: its notification line alone, which Slack shows
 * as plain text, and a note that the full message could not be shown.
 */
export function shortMessage(message: SlackMessage, code: string): SlackMessage {
  return {
    text: notificationText(
      `${message.text} — jitgate could not show this message in full (Slack answered ${code}); the audit log has the details.`,
    ),
    blocks: [],
  };
}

/**
 * The approval message when Slack refused the full one: who asks for what, without the
 * requester's own words, and the buttons while it is pending, so approvers can still decide.
 */
export function approvalMessageFallback(request: AccessRequest, code: string): SlackMessage {
  const blocks: Block[] = [
    section(
      `*Access request* from ${mention(request.requesterId)}: ${scopeLabel(request.resource, request.scope)} for ${describeDuration(
        request.durationSeconds,
      )} (${request.status}).`,
    ),
    context(
      `The full message could not be shown (Slack answered \`${code}\`); the reason is in \`/access active\`, App Home and the audit log.`,
    ),
  ];
  if (request.status === 'pending') {
    blocks.push(
      versioned(`decide-short:${request.id}`, {
        type: 'actions',
        elements: [
          button('Approve', ACTIONS.approve, request.id, 'primary'),
          button('Deny', ACTIONS.deny, request.id, 'danger'),
        ],
      }),
    );
  }
  return {
    text: notificationText(
      `Access request from ${request.requesterId} for ${request.resource} (${request.status})`,
    ),
    blocks,
  };
}

/** To the requester, when their request could not be shown to the approvers at all. */
export function approversUnreachableDm(request: AccessRequest, channel: string, code: string): SlackMessage {
  return {
    text: notificationText(`Your request for ${request.resource} could not reach its approvers`),
    blocks: [
      section(
        `:warning: Your request for ${scopeLabel(request.resource, request.scope)} could not be posted to the approvers' channel <#${channel}>: ${channelProblem(
          code,
        )}. It stays pending until it times out; ask an approver directly, or ask whoever runs jitgate to fix the channel.`,
      ),
    ],
  };
}
