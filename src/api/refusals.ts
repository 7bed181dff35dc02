import type { AccessErrorCode } from '../access/outcomes.ts';

/** The HTTP status of each refusal the access service can give: one switch, every code. */
export function statusOfRefusal(code: AccessErrorCode): number {
  switch (code) {
    case 'request_not_found':
    case 'grant_not_found':
    case 'unknown_resource':
    case 'unknown_scope':
      return 404;
    case 'not_allowed_to_request':
    case 'not_an_approver':
    case 'self_approval':
    case 'not_allowed_to_revoke':
    case 'not_grant_owner':
      return 403;
    case 'request_not_pending':
    case 'already_approved':
    case 'grant_not_active':
    case 'extension_pending':
    case 'extension_limit_reached':
    case 'grant_version_changed':
    case 'not_due':
      return 409;
    case 'duration_too_short':
    case 'duration_too_long':
    case 'duration_longer_than_requested':
    case 'reason_empty':
    case 'reason_too_long':
    case 'quota_above_policy':
    case 'text_has_control_characters':
      return 422;
  }
}
