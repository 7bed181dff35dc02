import type { types } from '@slack/bolt';
import { grantedQuota } from '../../access/transitions.ts';
import type { AccessRequest, Grant } from '../../db/schema/index.ts';
import { describeDuration, type ResourcePolicy } from '../../policy/index.ts';
import { isSlackUserId } from '../../shared/ids.ts';
import { encodeQuotaValue, encodeValue } from '../listeners/actions/values.ts';
import { durationsBetween, lowerQuotaChoices } from './choices.ts';
import { ACTIONS, versioned } from './ids.ts';
import { type Block, button, context, LIMITS, option, plain, type SlackMessage, section } from './kit.ts';
import {
  describeQuota,
  inlineText,
  mention,
  notificationText,
  quotedText,
  scopeLabel,
  slackDate,
} from './text.ts';

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

const REASON_LABEL = '*Reason:*\n';

/** A request's reason as its own quoted section: no line of it can pass for one of the labels above. */
function reasonSection(reason: string): Block {
  return section(`${REASON_LABEL}${quotedText(reason, LIMITS.sectionText - REASON_LABEL.length, 'reason')}`);
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
  ];
  const blocks: Block[] = [section(lines.join('\n')), reasonSection(request.reason)];
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
      const shorter = durationsBetween(resource?.minDurationSeconds ?? 1, request.durationSeconds - 1).map(
        (s) => option(`Approve for ${describeDuration(s)}`, encodeValue(request.id, s)),
      );
      const smaller = (request.extendsGrantId ? [] : lowerQuotaChoices(pendingQuota)).map((choice) =>
        option(`Approve for ${describeQuota(choice)}`, encodeQuotaValue(request.id, choice)),
      );
      for (const [actionId, placeholder, options] of [
        [ACTIONS.approveShorter, 'Approve for less…', shorter],
        [ACTIONS.approveLowerQuota, 'Approve with a smaller quota…', smaller],
      ] as const) {
        if (options.length > 0) {
          elements.push({
            type: 'static_select',
            action_id: actionId,
            placeholder: plain(placeholder),
            options,
          });
        }
      }
      blocks.push(versioned(`decide:${request.id}`, { type: 'actions', elements }));
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
      blocks.push(
        section(
          `:no_entry: Denied by ${mention(request.decidedBy ?? '')}${request.decisionNote ? ':' : '.'}`,
        ),
      );
      if (request.decisionNote) blocks.push(noteSection(request.decisionNote));
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
                request.decisionNote ? `: ${inlineText(request.decisionNote, 500)}` : ''
              }`,
        ),
      );
      text = `Cancelled: ${request.resource} for ${request.requesterId}`;
      break;
  }
  return { text: notificationText(text), blocks };
}

/** An approver's note (a denial's why) as its own quoted section. */
export function noteSection(note: string): Block {
  return section(quotedText(note, LIMITS.sectionText, 'note'));
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
      )}${grant.endReason ? `: ${inlineText(grant.endReason, 500)}` : ''}`;
    case 'expired':
      return `:hourglass: Grant \`${grant.id}\` expired ${slackDate(grant.expiresAt)}`;
  }
}

/** ` by <@U…>` for a person; nothing for the system (the reason, like `idle for 30m`, says why). */
export function revokedBy(endedBy: string | null): string {
  return isSlackUserId(endedBy) ? ` by ${mention(endedBy)}` : '';
}
