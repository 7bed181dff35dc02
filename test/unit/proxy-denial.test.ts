import { describe, expect, it } from 'vitest';
import { type DenialCode, denialBody, denialStatus } from '../../src/proxy/denial.ts';

describe('denials', () => {
  it('maps every code to the contract status', () => {
    const expected: Record<DenialCode, number> = {
      bad_path: 400,
      unknown_resource: 404,
      missing_token: 401,
      invalid_token: 401,
      token_expired: 403,
      wrong_resource: 403,
      grant_unconfirmed: 503,
      grant_not_found: 403,
      grant_revoked: 403,
      grant_expired: 403,
      out_of_scope: 403,
      rate_limited: 429,
      audit_unavailable: 503,
      upstream_unreachable: 502,
      ip_not_allowed: 403,
      quota_exhausted: 403,
      quota_unconfirmed: 503,
      mask_unsupported: 502,
      mask_too_large: 502,
      bad_request: 400,
      method_not_allowed: 405,
      request_timeout: 408,
      headers_too_large: 431,
      ambiguous_response: 502,
      internal_error: 500,
      dpop_required: 401,
      dpop_invalid: 401,
      dpop_wrong_key: 401,
      dpop_wrong_method: 401,
      dpop_wrong_url: 401,
      dpop_stale: 401,
      dpop_replayed: 401,
      dpop_ath_mismatch: 401,
      dpop_nonce_required: 401,
      dpop_unavailable: 503,
      device_revoked: 403,
    };
    for (const [code, status] of Object.entries(expected))
      expect(denialStatus(code as DenialCode)).toBe(status);
  });

  it('renders the contract body', () => {
    expect(JSON.parse(denialBody({ code: 'out_of_scope', message: 'no' }))).toEqual({
      error: 'out_of_scope',
      message: 'no',
    });
  });
});
