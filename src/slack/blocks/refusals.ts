import type { AccessErrorCode, AccessRefusal } from '../../access/outcomes.ts';
import { describeDuration, type RequestCheckCode } from '../../policy/index.ts';
import { errorMessage } from './answers.ts';
import { REQUEST_FIELDS } from './ids.ts';
import type { SlackMessage } from './kit.ts';

/** `a, b, c and 40 more`: a policy can name many resources, and an answer should stay short. */
function someOf(names: readonly string[], shown = 10): string {
  const listed = names.slice(0, shown).join(', ');
  return names.length > shown ? `${listed} and ${names.length - shown} more` : listed;
}

const hex = (codePoint: number) => codePoint.toString(16).toUpperCase().padStart(4, '0');

type RefusalOf<C extends AccessRefusal['code']> = Extract<AccessRefusal, { code: C }>;

function quotaText(refusal: RefusalOf<'quota_above_policy'>): string {
  switch (refusal.problem) {
    case 'nothing_named':
      return 'A lower quota names a number of calls or of response bytes.';
    case 'not_whole':
      return `A quota is a whole number of ${refusal.unit}, at least 1.`;
    case 'above_policy':
      return `You can lower the quota below the policy's ${refusal.cap.toLocaleString('en-US')} ${refusal.unit}, not raise it.`;
  }
}

function endedGrantText(refusal: RefusalOf<'grant_not_active'>): string {
  switch (refusal.attempted) {
    case 'approve_extension':
      return refusal.raced
        ? 'The grant changed while extending it; try again.'
        : 'The grant to extend has already ended.';
    case 'extend':
      return 'This grant has already ended; request access again.';
    case 'revoke':
      return `This grant has already ${refusal.status === 'active' ? 'ended' : refusal.status}.`;
    case 'expire':
      return `This grant has already ${refusal.status === 'revoked' ? 'been revoked' : 'expired'}.`;
    case 'remind':
      return 'This grant has already ended.';
  }
}

/**
 * What each refusal of the access actions says to a person: the one switch from refusal to
 * words, exhaustive over the union (a new code does not compile until it has a sentence).
 * The console and the APIs show the same sentence, so a refusal reads alike wherever it is met.
 */
export function refusalText(refusal: AccessRefusal): string {
  switch (refusal.code) {
    case 'unknown_resource':
      return refusal.known
        ? `Unknown resource "${refusal.resource}". Known: ${someOf(refusal.known)}.`
        : `Resource ${refusal.resource} is no longer in the policy.`;
    case 'unknown_scope':
      return `Unknown scope "${refusal.scope}" for ${refusal.resource}. Scopes: ${someOf(refusal.known)}.`;
    case 'duration_too_short':
      return `${refusal.resource} grants last at least ${describeDuration(refusal.minSeconds)}.`;
    case 'duration_too_long':
      return `${refusal.resource} grants last at most ${describeDuration(refusal.maxSeconds)}.`;
    case 'reason_empty':
      return 'Say why you need access.';
    case 'reason_too_long':
      return `The reason is ${refusal.length} characters; keep it under ${refusal.max}.`;
    case 'text_has_control_characters': {
      const code = hex(refusal.codePoint);
      return `The ${refusal.field} contains a control character (U+${code}${code === '0000' ? ', NUL' : ''}); remove it and try again.`;
    }
    case 'not_allowed_to_request':
      return 'You are not among the people this workspace lets request access.';
    case 'request_not_found':
      return 'No such request.';
    case 'request_not_pending':
      return `This request was already ${refusal.status}${refusal.decidedBy ? ` by ${refusal.decidedBy}` : ''}.`;
    case 'not_an_approver':
      return refusal.attempted === 'extend'
        ? `Only the grant's owner or approvers of ${refusal.resource} can extend it.`
        : `Only approvers of ${refusal.resource} can decide this request.`;
    case 'self_approval':
      return refusal.attempted === 'approve'
        ? 'Nobody approves their own request.'
        : 'Nobody decides their own request.';
    case 'already_approved':
      return 'You have already approved this request.';
    case 'duration_longer_than_requested':
      return `You can approve up to the ${describeDuration(refusal.requestedSeconds)} asked for, not more.`;
    case 'quota_above_policy':
      return quotaText(refusal);
    case 'grant_not_found':
      return 'No such grant.';
    case 'grant_not_active':
      return endedGrantText(refusal);
    case 'not_allowed_to_revoke':
      if (refusal.of === 'grant') {
        return `Only the grant's owner or approvers of ${refusal.resource} can revoke it.`;
      }
      return refusal.held === null
        ? '`revoke-all` is for approvers, and you approve no resource.'
        : `You approve none of the resources this person holds access to (${refusal.held.join(', ')}).`;
    case 'not_grant_owner':
      return refusal.attempted === 'extend'
        ? 'Only the grant owner can extend it.'
        : 'Only the requester can cancel a request.';
    case 'extension_limit_reached':
      return `This grant has been extended ${refusal.extensions} times, the most ${refusal.resource} allows.`;
    case 'extension_pending':
      return 'An extension of this grant is already waiting for approval.';
    case 'grant_version_changed':
      return 'The grant changed (extended) since this reminder was planned.';
    case 'not_due':
      return refusal.subject === 'grant'
        ? 'The grant has not reached its expiry yet.'
        : 'The request has not timed out yet.';
  }
}

/** Refusals caused by what was typed: a command's answer shows the usage with them. */
function isTypingMistake(code: AccessErrorCode): boolean {
  switch (code) {
    case 'unknown_resource':
    case 'unknown_scope':
    case 'duration_too_short':
    case 'duration_too_long':
    case 'reason_empty':
    case 'reason_too_long':
    case 'text_has_control_characters':
      return true;
    default:
      return false;
  }
}

/**
 * A refusal as an ephemeral answer. `typed`: the person typed a command, so a refusal of what
 * they typed comes with the usage; after a click or a form there is nothing to retype.
 */
export function refusalMessage(refusal: AccessRefusal, typed = false): SlackMessage {
  return errorMessage(refusalText(refusal), typed && isTypingMistake(refusal.code));
}

/** The request form's field a policy refusal belongs under, so the modal shows it in place. */
export function requestFieldOf(code: RequestCheckCode): string {
  switch (code) {
    case 'unknown_resource':
      return REQUEST_FIELDS.resource.block;
    case 'unknown_scope':
      return REQUEST_FIELDS.scope.block;
    case 'duration_too_short':
    case 'duration_too_long':
      return REQUEST_FIELDS.duration.block;
    case 'reason_empty':
    case 'reason_too_long':
      return REQUEST_FIELDS.reason.block;
  }
}
