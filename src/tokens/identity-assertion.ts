import { SignJWT } from 'jose';
import { type ActiveSigner, SIGNING_ALG } from './keys.ts';

/**
 * The identity assertion a proxy sends upstream (policy `identity_assertion`): a short-lived
 * JWT signed with the grant-token keys, so an upstream can check who is calling with the
 * proxy's `/.well-known/jwks.json` and make its own decisions.
 *
 * It can never pass as a grant token: its `typ` is `jitgate-identity+jwt` (grant tokens are
 * verified with `typ: JWT` pinned) and its `jti` is an id the proxy makes for it, never a
 * grant id — nor the request id, which the client may choose (and repeat).
 */
export const IDENTITY_ASSERTION_TYPE = 'jitgate-identity+jwt';

export interface IdentityAssertionInput {
  issuer: string;
  /** The resource; becomes `aud`, so one upstream cannot replay another's assertion. */
  resource: string;
  userId: string;
  grantId: string;
  scope: string;
  requestId: string;
  /** `jti`: unique per assertion, made by the proxy. */
  assertionId: string;
  now: Date;
  ttlSeconds: number;
}

export function issueIdentityAssertion(signer: ActiveSigner, input: IdentityAssertionInput): Promise<string> {
  const iat = Math.floor(input.now.getTime() / 1000);
  return new SignJWT({ grant: input.grantId, scope: input.scope, request_id: input.requestId })
    .setProtectedHeader({ alg: SIGNING_ALG, kid: signer.kid, typ: IDENTITY_ASSERTION_TYPE })
    .setIssuer(input.issuer)
    .setAudience(input.resource)
    .setSubject(input.userId)
    .setJti(input.assertionId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + input.ttlSeconds)
    .sign(signer.key);
}
