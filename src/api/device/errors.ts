import type { AccessErrorCode } from '../../access/outcomes.ts';
import type { DeviceErrorCode } from '../../devices/index.ts';
import { type DpopRefusalCode, dpopRefusalStatus, isDpopRefusalCode } from '../../tokens/dpop.ts';

/** Every refusal the device API answers with, as `{ "error": code, "message": … }`. */
export type DeviceApiErrorCode =
  | DpopRefusalCode
  | DeviceErrorCode
  | AccessErrorCode
  /** The proof's key belongs to no device: pair it with `jitgate login` first. */
  | 'device_unknown'
  /** The device is paired but nobody has confirmed it in Slack yet. */
  | 'device_pending'
  | 'no_active_grant'
  /** Too many pairings started from one address: `POST /pairings` is rate limited. */
  | 'pairing_rate_limited'
  | 'bad_request';

export interface DeviceApiRefusal {
  code: DeviceApiErrorCode;
  message: string;
  /** With `dpop_nonce_required`: the nonce to sign with next time. */
  nonce?: string;
}

/** The one place a device API refusal becomes an HTTP status. */
export function deviceApiStatus(code: DeviceApiErrorCode): number {
  if (isDpopRefusalCode(code)) return dpopRefusalStatus(code);
  switch (code) {
    case 'device_unknown':
      return 401;
    case 'bad_request':
    case 'device_name_invalid':
    case 'pairing_code_malformed':
    case 'unknown_scope':
    case 'duration_too_short':
    case 'duration_too_long':
    case 'reason_empty':
    case 'reason_too_long':
    case 'duration_longer_than_requested':
    case 'quota_above_policy':
      return 400;
    case 'device_pending':
    case 'device_revoked':
    case 'not_device_owner':
    case 'not_allowed_to_request':
    case 'not_an_approver':
    case 'self_approval':
    case 'not_allowed_to_revoke':
    case 'not_grant_owner':
    case 'pairing_locked':
      return 403;
    case 'unknown_resource':
    case 'request_not_found':
    case 'grant_not_found':
    case 'device_not_found':
    case 'no_active_grant':
    case 'pairing_code_unknown':
      return 404;
    case 'device_key_known':
    case 'request_not_pending':
    case 'already_approved':
    case 'grant_not_active':
    case 'extension_limit_reached':
    case 'extension_pending':
    case 'grant_version_changed':
    case 'not_due':
      return 409;
    case 'pairing_code_wrong':
    case 'text_has_control_characters':
      return 422;
    case 'pairing_code_expired':
      return 410;
    case 'pairing_rate_limited':
      return 429;
    default:
      return assertNever(code);
  }
}

function assertNever(code: never): never {
  throw new Error(`unhandled device API code ${String(code)}`);
}
