/**
 * Refusals are values, not exceptions: each transport (Slack text, CLI exit code, HTTP)
 * maps these codes once. A broken database is a fault and throws.
 */
export type AccessErrorCode =
  | 'not_allowed_to_request'
  | 'unknown_resource'
  | 'unknown_scope'
  | 'duration_too_short'
  | 'duration_too_long'
  | 'reason_empty'
  | 'reason_too_long'
  | 'text_has_control_characters'
  | 'request_not_found'
  | 'request_not_pending'
  | 'not_an_approver'
  | 'self_approval'
  | 'already_approved'
  | 'duration_longer_than_requested'
  | 'quota_above_policy'
  | 'grant_not_found'
  | 'grant_not_active'
  | 'not_allowed_to_revoke'
  | 'not_grant_owner'
  | 'extension_limit_reached'
  | 'extension_pending'
  | 'grant_version_changed'
  | 'not_due';

export type Refusal = { ok: false; code: AccessErrorCode; message: string };
export type Outcome<T> = { ok: true; value: T } | Refusal;

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const refuse = (code: AccessErrorCode, message: string): Refusal => ({ ok: false, code, message });
