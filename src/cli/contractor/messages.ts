import type { DeviceApiErrorCode } from '../../api/device/errors.ts';
import type { DenialCode } from '../../proxy/denial.ts';
import { DPOP_REFUSAL_CODES } from '../../tokens/dpop.ts';

/** Refusals the CLI itself finds, before or after talking to a server. */
type LocalCode =
  | 'server_unreachable'
  | 'proxy_unreachable'
  | 'bad_answer'
  | 'not_logged_in'
  | 'not_local'
  | 'browser_refused';

/** Every code the CLI can meet: the proxy's denials, the device API's refusals and its own. */
export type CliCode = DenialCode | DeviceApiErrorCode | LocalCode;

/**
 * The one place a code becomes a sentence for the person at the terminal. Exhaustive: a code
 * added to the proxy, the device API or the access service does not compile until it is here.
 */
export function sentenceFor(code: CliCode): string {
  switch (code) {
    // The proxy.
    case 'bad_path':
      return 'The proxy refused that path (dot segments, encoded slashes or similar).';
    case 'missing_token':
      return 'The call carried no grant token.';
    case 'invalid_token':
      return 'The grant token was not accepted; fetch a new one with `jitgate token`.';
    case 'token_expired':
      return 'The grant token has expired; fetch a new one with `jitgate token`.';
    case 'wrong_resource':
      return 'That token is for another resource.';
    case 'grant_unconfirmed':
      return 'The proxy cannot confirm grants right now; try again in a moment.';
    case 'grant_not_found':
      return 'No active grant matches; ask for access with `jitgate request`.';
    case 'grant_revoked':
      return 'Your grant has been revoked.';
    case 'grant_expired':
      return 'Your grant has expired; ask again with `jitgate request`.';
    case 'out_of_scope':
      return "Your grant's scope does not allow that method on that path.";
    case 'rate_limited':
      return 'Too many calls for this grant; slow down and retry shortly.';
    case 'audit_unavailable':
      return 'The proxy cannot record calls right now, so it forwards none; try again shortly.';
    case 'upstream_unreachable':
      return 'The proxy could not reach the API behind it.';
    case 'ip_not_allowed':
      return 'Calls to this resource are not allowed from your network address.';
    case 'quota_exhausted':
      return 'This grant has used up its quota; ask for a new grant.';
    case 'quota_unconfirmed':
      return "The proxy cannot confirm this grant's quota right now, so it forwards nothing; try again in a moment.";
    case 'mask_unsupported':
      return 'The answer could not be masked as the policy requires, so the proxy withheld it.';
    case 'mask_too_large':
      return 'The answer was too large to mask, so the proxy withheld it.';
    case 'unknown_resource':
      return 'No such resource; check its name with whoever runs jitgate.';
    case 'method_not_allowed':
      return 'The proxy forwards only GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS.';
    case 'request_timeout':
      return 'The proxy gave up waiting for the call to arrive whole; check your network and retry.';
    case 'headers_too_large':
      return 'The call carried too many or too large headers for the proxy.';
    case 'ambiguous_response':
      return 'The API answered with conflicting headers on a masked scope, so the proxy withheld the answer.';
    case 'internal_error':
      return 'The proxy failed on this call; tell whoever runs jitgate the request id.';
    // Proofs of possession (the proxy and the device API).
    case 'dpop_required':
      return 'This token is bound to a device key and must be sent with a DPoP proof; use `jitgate curl` or `jitgate connect`.';
    case 'dpop_invalid':
      return 'The server did not accept the proof signed by this device; update jitgate, or `jitgate login` again.';
    case 'dpop_wrong_key':
      return 'This token is bound to another device; fetch one on this device with `jitgate token`.';
    case 'dpop_wrong_method':
    case 'dpop_wrong_url':
      return 'The proof did not match the call; if a gateway rewrites URLs, the server needs its public URL set.';
    case 'dpop_stale':
      return "The proof's time was not accepted; check that this machine's clock is right.";
    case 'dpop_replayed':
      return 'A proof was used twice; retry the call (each one gets a fresh proof).';
    case 'dpop_ath_mismatch':
      return 'The proof was made for another token; retry the call.';
    case 'dpop_nonce_required':
      return 'The server asked for a fresh nonce; retry the call.';
    case 'dpop_unavailable':
      return 'The server cannot check proofs for replay right now; try again shortly.';
    // Devices and pairing.
    case 'device_unknown':
      return 'This device is not paired; run `jitgate login --server <url>`.';
    case 'device_pending':
      return 'This device is not linked yet; confirm it in Slack with `/access link <code>`.';
    case 'device_revoked':
      return 'This device has been revoked; run `jitgate login` to pair it again.';
    case 'device_key_known':
      return 'This key was paired before; `jitgate login` makes a new one.';
    case 'device_name_invalid':
      return 'Choose a device name of 1 to 64 printable characters (`--name alice-laptop`).';
    case 'device_not_found':
      return 'No such device.';
    case 'not_device_owner':
      return 'That device belongs to someone else.';
    case 'pairing_code_malformed':
    case 'pairing_code_unknown':
    case 'pairing_code_wrong':
      return 'That pairing code did not match; check it against the terminal.';
    case 'pairing_code_expired':
      return 'The pairing code expired before anyone confirmed it; run `jitgate login` again.';
    case 'pairing_locked':
      return 'Too many wrong codes were tried for this device; run `jitgate login` again.';
    case 'pairing_rate_limited':
      return 'Too many pairings were started from this network address; wait a minute and run `jitgate login` again.';
    // Requests and grants.
    case 'not_allowed_to_request':
      return 'You are not among the people who may request access.';
    case 'unknown_scope':
      return 'No such scope on that resource.';
    case 'duration_too_short':
      return 'That duration is shorter than the resource allows.';
    case 'duration_too_long':
      return 'That duration is longer than the resource allows.';
    case 'reason_empty':
      return 'Say why you need access: the reason comes after the duration.';
    case 'reason_too_long':
      return 'That reason is too long; keep it under 2,000 characters.';
    case 'request_not_found':
      return 'No such request of yours.';
    case 'request_not_pending':
      return 'That request has already been decided.';
    case 'not_an_approver':
    case 'self_approval':
    case 'already_approved':
    case 'duration_longer_than_requested':
    case 'quota_above_policy':
      return 'That decision is for approvers, in Slack.';
    case 'grant_not_active':
      return 'That grant has already ended.';
    case 'not_allowed_to_revoke':
    case 'not_grant_owner':
      return 'That grant is not yours.';
    case 'extension_limit_reached':
      return 'This grant cannot be extended further; ask for a new one.';
    case 'extension_pending':
      return 'An extension of this grant is already waiting for approval.';
    case 'grant_version_changed':
    case 'not_due':
      return 'The grant changed meanwhile; try again.';
    case 'no_active_grant':
      return 'You hold no active grant on that resource; ask with `jitgate request`.';
    case 'text_has_control_characters':
      return 'The text holds a control character (a NUL, for example); remove it and try again.';
    case 'bad_request':
      return 'The server did not understand the call; update jitgate.';
    // The CLI's own.
    case 'server_unreachable':
      return 'Could not reach the jitgate server; check --server and your network.';
    case 'proxy_unreachable':
      return 'Could not reach the jitgate proxy.';
    case 'bad_answer':
      return 'The server answered with something that is not jitgate JSON.';
    case 'not_logged_in':
      return 'This machine has no linked device; run `jitgate login --server <url>` first.';
    case 'not_local':
      return 'Only calls to 127.0.0.1 or localhost are forwarded.';
    case 'browser_refused':
      return 'Calls from a web browser are not forwarded (a web page could otherwise use your grant).';
    default:
      return assertNever(code);
  }
}

function assertNever(code: never): never {
  throw new Error(`no sentence for ${String(code)}`);
}

/** Listed once more, for `explain` and for the test that every code has its sentence. */
export const ALL_CODES = [
  'bad_path',
  'missing_token',
  'invalid_token',
  'token_expired',
  'wrong_resource',
  'grant_unconfirmed',
  'grant_not_found',
  'grant_revoked',
  'grant_expired',
  'out_of_scope',
  'rate_limited',
  'audit_unavailable',
  'upstream_unreachable',
  'ip_not_allowed',
  'quota_exhausted',
  'quota_unconfirmed',
  'mask_unsupported',
  'mask_too_large',
  'unknown_resource',
  'method_not_allowed',
  'request_timeout',
  'headers_too_large',
  'ambiguous_response',
  'internal_error',
  ...DPOP_REFUSAL_CODES,
  'device_unknown',
  'device_pending',
  'device_revoked',
  'device_key_known',
  'device_name_invalid',
  'device_not_found',
  'not_device_owner',
  'pairing_code_malformed',
  'pairing_code_unknown',
  'pairing_code_wrong',
  'pairing_code_expired',
  'pairing_locked',
  'pairing_rate_limited',
  'not_allowed_to_request',
  'unknown_scope',
  'duration_too_short',
  'duration_too_long',
  'reason_empty',
  'reason_too_long',
  'request_not_found',
  'request_not_pending',
  'not_an_approver',
  'self_approval',
  'already_approved',
  'duration_longer_than_requested',
  'quota_above_policy',
  'grant_not_active',
  'not_allowed_to_revoke',
  'not_grant_owner',
  'extension_limit_reached',
  'extension_pending',
  'grant_version_changed',
  'not_due',
  'no_active_grant',
  'text_has_control_characters',
  'bad_request',
  'server_unreachable',
  'proxy_unreachable',
  'bad_answer',
  'not_logged_in',
  'not_local',
  'browser_refused',
] as const satisfies readonly CliCode[];

// Compile-time: ALL_CODES lists every CliCode (a missing one makes this `never`, which fails).
type Missing = Exclude<CliCode, (typeof ALL_CODES)[number]>;
const everyCodeListed: [Missing] extends [never] ? true : Missing = true;
void everyCodeListed;

const KNOWN: ReadonlySet<string> = new Set(ALL_CODES);

/** A sentence for a code as a server sent it: ours when we know the code, else the server's message. */
export function explain(code: string, serverMessage: string): string {
  return KNOWN.has(code) ? sentenceFor(code as CliCode) : serverMessage;
}
