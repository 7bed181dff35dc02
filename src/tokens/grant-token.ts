import { errors, jwtVerify, SignJWT } from 'jose';
import { type Clock, type KeyStore, SIGNING_ALG } from './keys.ts';

/** Tokens larger than this are refused before any parsing; ours are ~400 bytes. */
export const MAX_TOKEN_BYTES = 4096;
const TOKEN_TYPE = 'JWT';
const MAX_KID_LENGTH = 128;
// Compact JWS only: three non-empty base64url parts. JWE (5 parts) and JSON serialisations fail here.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
// An Ed25519 signature is 64 bytes: 86 base64url characters whose last one carries 2 bits and 4
// zero bits. Base64 decoders ignore those 4 bits, so without this check 16 spellings of one
// signature would all verify and one token would have several distinct strings (cache keys, hashes).
const CANONICAL_ED25519_SIGNATURE = /\.[A-Za-z0-9_-]{85}[AQgw]$/;
/** A SHA-256 JWK thumbprint (RFC 7638), as `cnf.jkt` carries it. */
const JKT = /^[A-Za-z0-9_-]{43}$/;

export interface GrantTokenInput {
  /** The grant's id; becomes `jti`, which is what `/access revoke` takes. */
  grantId: string;
  /** Slack user id; becomes `sub`. */
  userId: string;
  /** Resource name; becomes `aud`, compared by the proxy with the URL's resource. */
  resource: string;
  scope: string;
  /** The grant's expiry; `exp` is its floor in seconds. */
  expiresAt: Date;
  issuer: string;
  /** `iat`; defaults to the key store's clock. */
  issuedAt?: Date;
  /** Optional `nbf`. */
  notBefore?: Date;
  /** RFC 7638 thumbprint of a device key: the token then carries `cnf.jkt` (DPoP, RFC 9449). */
  boundKey?: string;
}

export interface GrantClaims {
  grantId: string;
  userId: string;
  resource: string;
  scope: string;
  expiresAt: Date;
  /** `cnf.jkt`: the token is usable only with DPoP proofs signed by the key with this thumbprint. */
  boundKey?: string;
}

type VerifyErrorCode = 'invalid_token' | 'token_expired' | 'unknown_key';

export type VerifyResult =
  | {
      ok: true;
      claims: GrantClaims /** The signing key, so caches can drop entries on retire. */;
      kid: string;
    }
  | {
      ok: false;
      code: VerifyErrorCode;
      message: string;
      /**
       * With `token_expired` only: the claims of the token, whose signature, issuer and type
       * did verify (jose checks expiry last), so the refused call can be attributed to its grant.
       */
      expiredClaims?: GrantClaims;
    };

export interface VerifyOptions {
  issuer: string;
  clock: Clock;
  clockToleranceSeconds?: number;
}

const toSeconds = (d: Date): number => Math.floor(d.getTime() / 1000);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/**
 * The token for a grant row as it stands: its id, owner, resource, scope and expiry; with
 * `boundKey`, bound to that device key (`cnf.jkt`).
 */
export function issueTokenForGrant(
  keyStore: KeyStore,
  grant: { id: string; userId: string; resource: string; scope: string; expiresAt: Date },
  issuer: string,
  boundKey?: string,
): Promise<string> {
  return issueGrantToken(keyStore, {
    grantId: grant.id,
    userId: grant.userId,
    resource: grant.resource,
    scope: grant.scope,
    expiresAt: grant.expiresAt,
    issuer,
    ...(boundKey === undefined ? {} : { boundKey }),
  });
}

export async function issueGrantToken(keyStore: KeyStore, input: GrantTokenInput): Promise<string> {
  for (const field of ['grantId', 'userId', 'resource', 'scope', 'issuer'] as const) {
    if (!nonEmpty(input[field])) throw new Error(`issueGrantToken: ${field} must be a non-empty string`);
  }
  const issuedAt = input.issuedAt ?? keyStore.clock.now();
  const exp = toSeconds(input.expiresAt);
  // A token that is dead on arrival is a caller bug, not something to hand to a user.
  if (!(exp > toSeconds(issuedAt))) throw new Error('issueGrantToken: expiresAt must be after issuedAt');
  const signer = keyStore.activeSigner();
  if (input.boundKey !== undefined && !JKT.test(input.boundKey)) {
    throw new Error('issueGrantToken: boundKey must be a SHA-256 JWK thumbprint');
  }
  const cnf = input.boundKey === undefined ? {} : { cnf: { jkt: input.boundKey } };
  const jwt = new SignJWT({ scope: input.scope, ...cnf })
    .setProtectedHeader({ alg: SIGNING_ALG, kid: signer.kid, typ: TOKEN_TYPE })
    .setIssuer(input.issuer)
    .setAudience(input.resource)
    .setSubject(input.userId)
    .setJti(input.grantId)
    .setIssuedAt(toSeconds(issuedAt))
    .setExpirationTime(exp);
  if (input.notBefore) jwt.setNotBefore(toSeconds(input.notBefore));
  return jwt.sign(signer.key);
}

const invalid = (message: string): VerifyResult => ({ ok: false, code: 'invalid_token', message });

/**
 * Expected outcomes (bad, expired, unknown-key tokens) are values; faults (database down during
 * the unknown-kid refresh, a broken key store) throw.
 */
export async function verifyGrantToken(
  keyStore: KeyStore,
  token: string,
  options: VerifyOptions,
): Promise<VerifyResult> {
  // Length first: nothing below runs on attacker-sized input.
  if (typeof token !== 'string' || token.length > MAX_TOKEN_BYTES) return invalid('token is too large');
  if (!COMPACT_JWS.test(token)) return invalid('token is not a compact JWS');
  if (!CANONICAL_ED25519_SIGNATURE.test(token)) return invalid('token signature is malformed');

  const header = decodeHeader(token);
  if (!header) return invalid('token header is not a JSON object');
  // jose would refuse these too (algorithms is pinned below); checking here skips the key lookup.
  if (header.alg !== SIGNING_ALG) return invalid('token algorithm is not EdDSA');
  const kid = header.kid;
  if (!nonEmpty(kid) || kid.length > MAX_KID_LENGTH) return invalid('token has no valid kid');

  let key = keyStore.verificationKey(kid);
  if (!key) {
    if (keyStore.isRetired(kid))
      return { ok: false, code: 'unknown_key', message: 'token signing key is retired' };
    // Maybe another instance rotated; the store rate-limits this so bogus kids cannot hammer the db.
    if (await keyStore.refreshForUnknownKid()) key = keyStore.verificationKey(kid);
    if (!key) return { ok: false, code: 'unknown_key', message: 'token signing key is unknown' };
  }

  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [SIGNING_ALG],
      issuer: options.issuer,
      typ: TOKEN_TYPE,
      currentDate: options.clock.now(),
      clockTolerance: options.clockToleranceSeconds ?? 0,
      requiredClaims: ['jti', 'sub', 'aud', 'scope', 'exp', 'iat'],
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) {
      const expiredClaims = claimsOf(err.payload);
      return {
        ok: false,
        code: 'token_expired',
        message: 'token has expired',
        ...(expiredClaims.ok ? { expiredClaims: expiredClaims.claims } : {}),
      };
    }
    if (err instanceof errors.JWTClaimValidationFailed) {
      return invalid(
        `token claim "${err.claim}" is ${err.reason === 'missing' ? 'missing' : 'not acceptable'}`,
      );
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('token signature is invalid');
    if (err instanceof errors.JOSEError) return invalid('token is malformed');
    throw err;
  }

  const claims = claimsOf(payload);
  return claims.ok ? { ok: true, kid, claims: claims.claims } : invalid(claims.problem);
}

/** A verified payload's grant claims, or what is wrong with them. */
function claimsOf(
  payload: Record<string, unknown>,
): { ok: true; claims: GrantClaims } | { ok: false; problem: string } {
  const { jti, sub, aud, scope, exp, cnf } = payload;
  if (!nonEmpty(jti) || !nonEmpty(sub) || !nonEmpty(scope))
    return { ok: false, problem: 'token has malformed claims' };
  // One audience only: the proxy compares it with the resource named in the URL.
  if (!nonEmpty(aud)) return { ok: false, problem: 'token audience must be a single resource' };
  if (typeof exp !== 'number' || !Number.isFinite(exp))
    return { ok: false, problem: 'token has malformed exp' };
  // A confirmation we cannot read must not pass for "unbound": such a token is refused outright.
  const boundKey = cnf === undefined ? undefined : jktOf(cnf);
  if (boundKey === null) return { ok: false, problem: 'token has a malformed cnf claim' };
  return {
    ok: true,
    claims: {
      grantId: jti,
      userId: sub,
      resource: aud,
      scope,
      expiresAt: new Date(exp * 1000),
      ...(boundKey === undefined ? {} : { boundKey }),
    },
  };
}

/** The `jkt` of a `cnf` claim that holds exactly that, or null. */
function jktOf(cnf: unknown): string | null {
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) return null;
  const members = Object.keys(cnf);
  const jkt = (cnf as { jkt?: unknown }).jkt;
  return members.length === 1 && typeof jkt === 'string' && JKT.test(jkt) ? jkt : null;
}

/** A compact JWS's header as a JSON object, or undefined; nothing is verified. */
export function decodeHeader(token: string): Record<string, unknown> | undefined {
  const encoded = token.slice(0, token.indexOf('.'));
  try {
    const value: unknown = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
