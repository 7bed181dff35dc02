import { type DpopRefusalCode, dpopRefusalStatus, isDpopRefusalCode } from '../tokens/dpop.ts';

/**
 * Every expected way a proxied call does not reach (or come back from) the upstream.
 * Outcomes are values; `denialStatus` is the one place a code becomes an HTTP status.
 */
export type DenialCode =
  | 'bad_path'
  | 'unknown_resource'
  | 'missing_token'
  | 'invalid_token'
  | 'token_expired'
  | 'wrong_resource'
  | 'grant_unconfirmed'
  | 'grant_not_found'
  | 'grant_revoked'
  | 'grant_expired'
  | 'out_of_scope'
  | 'rate_limited'
  | 'audit_unavailable'
  | 'upstream_unreachable'
  | 'ip_not_allowed'
  | 'quota_exhausted'
  // Issue 18: a grant with a quota whose shared count cannot be confirmed (Redis unreachable or
  // recovering from lost data), under JITGATE_QUOTA_WHEN_REDIS_DOWN=fail_closed.
  | 'quota_unconfirmed'
  | 'mask_unsupported'
  | 'mask_too_large'
  // Issue 14: refusals that used to come from the router, Node's parser or a crash.
  | 'bad_request'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'headers_too_large'
  | 'ambiguous_response'
  | 'internal_error'
  // Issue 17: a token bound to a device key (`cnf.jkt`) needs a DPoP proof by that key; each way a
  // proof fails has its own code (src/tokens/dpop.ts), and a revoked device's tokens are refused.
  | DpopRefusalCode
  | 'device_revoked';

export interface Denial {
  code: DenialCode;
  message: string;
  /** Only for `rate_limited`: seconds until a call would be allowed. */
  retryAfterSeconds?: number;
  /** Only for `dpop_nonce_required`: the nonce to sign with, sent as `DPoP-Nonce`. */
  nonce?: string;
}

export function denialStatus(code: DenialCode): number {
  if (isDpopRefusalCode(code)) return dpopRefusalStatus(code);
  switch (code) {
    case 'bad_path':
    case 'bad_request':
      return 400;
    case 'missing_token':
    case 'invalid_token':
      return 401;
    // The contract: a token that verifies but whose time is up is "expired" (403), like its grant.
    case 'token_expired':
    case 'wrong_resource':
    case 'grant_not_found':
    case 'grant_revoked':
    case 'grant_expired':
    case 'out_of_scope':
    case 'ip_not_allowed':
    case 'quota_exhausted':
    case 'device_revoked':
      return 403;
    case 'unknown_resource':
      return 404;
    // TRACE, CONNECT and methods no scope can name (PROPFIND, QUERY, …): never forwarded.
    case 'method_not_allowed':
      return 405;
    // The client's headers did not arrive in time (a slowloris, or a stalled client).
    case 'request_timeout':
      return 408;
    case 'rate_limited':
      return 429;
    case 'headers_too_large':
      return 431;
    // A fault in the proxy itself; the body says only that, and the request id.
    case 'internal_error':
      return 500;
    // The upstream answered, but not with something the policy lets through.
    case 'upstream_unreachable':
    case 'mask_unsupported':
    case 'mask_too_large':
    case 'ambiguous_response':
      return 502;
    // Fail closed: we cannot confirm the grant or its quota, or cannot record the call.
    case 'grant_unconfirmed':
    case 'quota_unconfirmed':
    case 'audit_unavailable':
      return 503;
    default:
      return assertNever(code);
  }
}

function assertNever(code: never): never {
  throw new Error(`unhandled denial code ${String(code)}`);
}

/** The contract's body: `{ "error": "<code>", "message": "…" }`. */
export function denialBody(denial: Denial): string {
  return JSON.stringify({ error: denial.code, message: denial.message });
}
