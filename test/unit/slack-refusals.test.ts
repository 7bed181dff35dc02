import { describe, expect, it } from 'vitest';
import type { AccessErrorCode, AccessRefusal } from '../../src/access/outcomes.ts';
import { REQUEST_FIELDS } from '../../src/slack/blocks/ids.ts';
import type { SlackMessage } from '../../src/slack/blocks/kit.ts';
import { refusalMessage, refusalText, requestFieldOf } from '../../src/slack/blocks/refusals.ts';

/**
 * Every refusal's words, as the access service wrote them before refusals became values: the
 * sentences people meet in Slack, the console and the APIs did not change with the refactor.
 */
const WORDS: [AccessRefusal, string][] = [
  [
    { code: 'unknown_resource', resource: 'nope', known: ['admin-api', 'billing-api'] },
    'Unknown resource "nope". Known: admin-api, billing-api.',
  ],
  [
    { code: 'unknown_resource', resource: 'r', known: Array.from({ length: 12 }, (_, i) => `r${i}`) },
    'Unknown resource "r". Known: r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 and 2 more.',
  ],
  [{ code: 'unknown_resource', resource: 'gone-api' }, 'Resource gone-api is no longer in the policy.'],
  [
    { code: 'unknown_scope', resource: 'billing-api', scope: 'root', known: ['read', 'write'] },
    'Unknown scope "root" for billing-api. Scopes: read, write.',
  ],
  [
    { code: 'duration_too_short', resource: 'billing-api', minSeconds: 60 },
    'billing-api grants last at least 1m.',
  ],
  [
    { code: 'duration_too_long', resource: 'billing-api', maxSeconds: 28_800 },
    'billing-api grants last at most 8h.',
  ],
  [{ code: 'reason_empty' }, 'Say why you need access.'],
  [
    { code: 'reason_too_long', length: 2001, max: 2000 },
    'The reason is 2001 characters; keep it under 2000.',
  ],
  [
    { code: 'text_has_control_characters', field: 'reason', codePoint: 0 },
    'The reason contains a control character (U+0000, NUL); remove it and try again.',
  ],
  [
    { code: 'text_has_control_characters', field: 'note', codePoint: 7 },
    'The note contains a control character (U+0007); remove it and try again.',
  ],
  [{ code: 'not_allowed_to_request' }, 'You are not among the people this workspace lets request access.'],
  [{ code: 'request_not_found' }, 'No such request.'],
  [
    { code: 'request_not_pending', status: 'approved', decidedBy: 'UAPPROVER1' },
    'This request was already approved by UAPPROVER1.',
  ],
  [{ code: 'request_not_pending', status: 'expired', decidedBy: null }, 'This request was already expired.'],
  [
    { code: 'not_an_approver', resource: 'billing-api', attempted: 'decide' },
    'Only approvers of billing-api can decide this request.',
  ],
  [
    { code: 'not_an_approver', resource: 'billing-api', attempted: 'extend' },
    "Only the grant's owner or approvers of billing-api can extend it.",
  ],
  [{ code: 'self_approval', attempted: 'approve' }, 'Nobody approves their own request.'],
  [{ code: 'self_approval', attempted: 'deny' }, 'Nobody decides their own request.'],
  [{ code: 'already_approved' }, 'You have already approved this request.'],
  [
    { code: 'duration_longer_than_requested', requestedSeconds: 7200 },
    'You can approve up to the 2h asked for, not more.',
  ],
  [
    { code: 'quota_above_policy', problem: 'nothing_named' },
    'A lower quota names a number of calls or of response bytes.',
  ],
  [
    { code: 'quota_above_policy', problem: 'not_whole', unit: 'calls' },
    'A quota is a whole number of calls, at least 1.',
  ],
  [
    { code: 'quota_above_policy', problem: 'above_policy', unit: 'response bytes', cap: 10_485_760 },
    "You can lower the quota below the policy's 10,485,760 response bytes, not raise it.",
  ],
  [{ code: 'grant_not_found' }, 'No such grant.'],
  [
    { code: 'grant_not_active', status: 'expired', attempted: 'approve_extension' },
    'The grant to extend has already ended.',
  ],
  [
    { code: 'grant_not_active', status: 'active', attempted: 'approve_extension', raced: true },
    'The grant changed while extending it; try again.',
  ],
  [
    { code: 'grant_not_active', status: 'revoked', attempted: 'extend' },
    'This grant has already ended; request access again.',
  ],
  [{ code: 'grant_not_active', status: 'revoked', attempted: 'revoke' }, 'This grant has already revoked.'],
  [{ code: 'grant_not_active', status: 'active', attempted: 'revoke' }, 'This grant has already ended.'],
  [
    { code: 'grant_not_active', status: 'revoked', attempted: 'expire' },
    'This grant has already been revoked.',
  ],
  [{ code: 'grant_not_active', status: 'expired', attempted: 'expire' }, 'This grant has already expired.'],
  [{ code: 'grant_not_active', status: 'active', attempted: 'remind' }, 'This grant has already ended.'],
  [
    { code: 'not_allowed_to_revoke', of: 'grant', resource: 'billing-api' },
    "Only the grant's owner or approvers of billing-api can revoke it.",
  ],
  [
    { code: 'not_allowed_to_revoke', of: 'person', held: null },
    '`revoke-all` is for approvers, and you approve no resource.',
  ],
  [
    { code: 'not_allowed_to_revoke', of: 'person', held: ['admin-api', 'billing-api'] },
    'You approve none of the resources this person holds access to (admin-api, billing-api).',
  ],
  [{ code: 'not_grant_owner', attempted: 'extend' }, 'Only the grant owner can extend it.'],
  [{ code: 'not_grant_owner', attempted: 'cancel' }, 'Only the requester can cancel a request.'],
  [
    { code: 'extension_limit_reached', resource: 'billing-api', extensions: 2 },
    'This grant has been extended 2 times, the most billing-api allows.',
  ],
  [{ code: 'extension_pending' }, 'An extension of this grant is already waiting for approval.'],
  [{ code: 'grant_version_changed' }, 'The grant changed (extended) since this reminder was planned.'],
  [{ code: 'not_due', subject: 'grant' }, 'The grant has not reached its expiry yet.'],
  [{ code: 'not_due', subject: 'request' }, 'The request has not timed out yet.'],
];

/** Every code of the union, once (a missing one fails to compile below). */
const ALL: Record<AccessErrorCode, true> = {
  unknown_resource: true,
  unknown_scope: true,
  duration_too_short: true,
  duration_too_long: true,
  reason_empty: true,
  reason_too_long: true,
  text_has_control_characters: true,
  not_allowed_to_request: true,
  request_not_found: true,
  request_not_pending: true,
  not_an_approver: true,
  self_approval: true,
  already_approved: true,
  duration_longer_than_requested: true,
  quota_above_policy: true,
  grant_not_found: true,
  grant_not_active: true,
  not_allowed_to_revoke: true,
  not_grant_owner: true,
  extension_limit_reached: true,
  extension_pending: true,
  grant_version_changed: true,
  not_due: true,
};

const blockText = (message: SlackMessage) => JSON.stringify(message.blocks);

describe('refusal words (Slack, the console and the APIs)', () => {
  it.each(WORDS)('%j reads as before', (refusal, words) => {
    expect(refusalText(refusal)).toBe(words);
  });

  it('has words for every code', () => {
    expect(new Set(WORDS.map(([r]) => r.code))).toEqual(new Set(Object.keys(ALL)));
  });

  it('shows the usage after a typed command only for what was typed wrong', () => {
    const typo = refusalMessage({ code: 'reason_empty' }, true);
    const state = refusalMessage({ code: 'extension_pending' }, true);
    const clicked = refusalMessage({ code: 'reason_empty' });
    expect(blockText(typo)).toContain('/access request');
    expect(blockText(state)).not.toContain('/access request');
    expect(blockText(clicked)).not.toContain('/access request');
  });

  it('puts a policy refusal under the request form field it is about', () => {
    expect(requestFieldOf('unknown_resource')).toBe(REQUEST_FIELDS.resource.block);
    expect(requestFieldOf('unknown_scope')).toBe(REQUEST_FIELDS.scope.block);
    expect(requestFieldOf('duration_too_short')).toBe(REQUEST_FIELDS.duration.block);
    expect(requestFieldOf('duration_too_long')).toBe(REQUEST_FIELDS.duration.block);
    expect(requestFieldOf('reason_empty')).toBe(REQUEST_FIELDS.reason.block);
    expect(requestFieldOf('reason_too_long')).toBe(REQUEST_FIELDS.reason.block);
  });
});
