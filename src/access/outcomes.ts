import type { GrantStatus, RequestStatus } from '../db/schema/index.ts';
import type { RequestCheckRefusal } from '../policy/index.ts';

/** Free text a person gives jitgate. */
export type FreeTextField = 'reason' | 'note';

/** What was being done with a grant when it turned out to have ended. */
type GrantAttempt = 'extend' | 'approve_extension' | 'revoke' | 'expire' | 'remind';

/**
 * Every reason the access actions refuse, as a closed union of values: a code and the facts
 * a sentence about it needs (names, numbers, states), never the sentence. Each transport
 * words them in one switch (Slack: src/slack/blocks/refusals.ts) and maps the code once
 * (HTTP status: src/api/refusals.ts and src/api/device/errors.ts; the CLI: src/cli/contractor/messages.ts),
 * so a code added here does not compile until each of them says what it means. A broken
 * database is a fault and throws.
 */
export type AccessRefusal =
  | RequestCheckRefusal
  | { code: 'text_has_control_characters'; field: FreeTextField; codePoint: number }
  | { code: 'not_allowed_to_request' }
  | { code: 'request_not_found' }
  | { code: 'request_not_pending'; status: RequestStatus; decidedBy: string | null }
  | { code: 'not_an_approver'; resource: string; attempted: 'decide' | 'extend' }
  | { code: 'self_approval'; attempted: 'approve' | 'deny' }
  | { code: 'already_approved' }
  | { code: 'duration_longer_than_requested'; requestedSeconds: number }
  | { code: 'quota_above_policy'; problem: 'nothing_named' }
  | { code: 'quota_above_policy'; problem: 'not_whole'; unit: QuotaUnit }
  | { code: 'quota_above_policy'; problem: 'above_policy'; unit: QuotaUnit; cap: number }
  | { code: 'grant_not_found' }
  /** `raced`: the grant changed between reading and writing it (try again). */
  | { code: 'grant_not_active'; status: GrantStatus; attempted: GrantAttempt; raced?: boolean }
  | { code: 'not_allowed_to_revoke'; of: 'grant'; resource: string }
  /** `held`: the resources the person holds something on; null when the caller approves nothing at all. */
  | { code: 'not_allowed_to_revoke'; of: 'person'; held: readonly string[] | null }
  | { code: 'not_grant_owner'; attempted: 'extend' | 'cancel' }
  | { code: 'extension_limit_reached'; resource: string; extensions: number }
  | { code: 'extension_pending' }
  | { code: 'grant_version_changed' }
  | { code: 'not_due'; subject: 'grant' | 'request' };

export type QuotaUnit = 'calls' | 'response bytes';

export type AccessErrorCode = AccessRefusal['code'];

export type Refusal = { ok: false } & AccessRefusal;
export type Outcome<T> = { ok: true; value: T } | Refusal;

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const refuse = (refusal: AccessRefusal): Refusal => ({ ok: false, ...refusal });

/** Whether a step's answer is a refusal rather than the thing it looked for. */
export const isRefusal = (value: object): value is Refusal => 'ok' in value && value.ok === false;
