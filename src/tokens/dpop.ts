import { isUtf8 } from 'node:buffer';
import { createHash, createPublicKey, type KeyObject, verify as verifySignature } from 'node:crypto';
import type { Clock } from '../shared/clock.ts';
import { normalizeHtu } from './dpop-htu.ts';
import type { DpopNonces } from './dpop-nonces.ts';
import type { ReplayCache } from './dpop-replay.ts';
import { decodeHeader } from './grant-token.ts';
import { LruCache } from './token-cache.ts';

/**
 * DPoP proof verification (RFC 9449), shared by the proxy (calls with a bound grant token) and the
 * device API (calls signed by a paired device's key). Pure apart from the injected clock and
 * replay cache: no database, no network except the replay cache's one round trip.
 *
 * Refusals are values with a closed code each; they extend the proxy's denial codes (all 401 with
 * `WWW-Authenticate: DPoP …`, except `dpop_unavailable`, which fails closed with 503).
 */
export type DpopRefusalCode =
  /** No proof where one is needed (a bound token sent as Bearer, or without a `DPoP` header). */
  | 'dpop_required'
  /** Not a well-formed, validly signed `dpop+jwt` with an asymmetric algorithm and a public `jwk`. */
  | 'dpop_invalid'
  /** Signed by a key other than the one the token (or the device) is bound to. */
  | 'dpop_wrong_key'
  | 'dpop_wrong_method'
  | 'dpop_wrong_url'
  /** `iat` outside the accepted window (too old, or too far ahead of our clock). */
  | 'dpop_stale'
  /** This proof (`jti`) was already used within its window. */
  | 'dpop_replayed'
  /** `ath` missing or not the hash of the access token it came with. */
  | 'dpop_ath_mismatch'
  /** The server wants a (fresh) nonce: the refusal carries one for the `DPoP-Nonce` header. */
  | 'dpop_nonce_required'
  /** The replay cache cannot answer: refused, never accepted unchecked. */
  | 'dpop_unavailable';

export const DPOP_REFUSAL_CODES = [
  'dpop_required',
  'dpop_invalid',
  'dpop_wrong_key',
  'dpop_wrong_method',
  'dpop_wrong_url',
  'dpop_stale',
  'dpop_replayed',
  'dpop_ath_mismatch',
  'dpop_nonce_required',
  'dpop_unavailable',
] as const satisfies readonly DpopRefusalCode[];

export const DPOP_PROOF_TYPE = 'dpop+jwt';
/** Asymmetric only: `none` and HMAC algorithms prove nothing about a key the client holds. */
const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'Ed25519'] as const;
type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];
/** Proofs larger than this are refused unparsed; ours are about 600 bytes. */
const MAX_PROOF_BYTES = 4096;
const MAX_JTI_LENGTH = 128;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Both algorithms sign with 64 bytes (ES256 as r‖s, RFC 7518 §3.4): 86 base64url characters. */
const SIGNATURE_CHARS = 86;
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
/** Members that only a private (or symmetric) JWK has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** The public key a proof carries, reduced to the members its thumbprint covers. */
export type DpopPublicJwk =
  | { kty: 'EC'; crv: 'P-256'; x: string; y: string }
  | { kty: 'OKP'; crv: 'Ed25519'; x: string };

type DpopResult =
  | { ok: true; thumbprint: string; jwk: DpopPublicJwk; jti: string; issuedAt: Date }
  | { ok: false; code: DpopRefusalCode; message: string /** With `dpop_nonce_required`. */; nonce?: string };

export interface ProofCheck {
  /** The `DPoP` header as received: absent, one value, or several (always refused). */
  proof: string | readonly string[] | undefined;
  /** The request's method, compared exactly with `htm`. */
  method: string;
  /** The URL the client called, as `expectedHtu` forms it; compared with `htu` after normalising both. */
  htu: string;
  /** The access token sent with the proof; when given, `ath` must be its hash. */
  accessToken?: string;
  /** RFC 7638 thumbprint the signing key must have (`cnf.jkt`, or a device's key); unset: any key. */
  boundKey?: string;
}

export interface DpopVerifierOptions {
  clock: Clock;
  replay: ReplayCache;
  /** Seconds after `iat` a proof is accepted. Default 60. */
  maxAgeSeconds?: number;
  /** Seconds `iat` may lie ahead of our clock (a client clock running fast). Default 5. */
  futureSkewSeconds?: number;
  /** When set, every proof must carry a nonce these issued recently. */
  nonces?: DpopNonces;
  /**
   * Entries in each of the verifier's two LRUs: checked proof headers, by their text, and imported
   * public keys, by canonical JWK. Default 10,000.
   */
  keyCacheSize?: number;
}

export interface DpopVerifier {
  verify(check: ProofCheck): Promise<DpopResult>;
}

const refuse = (code: DpopRefusalCode, message: string): DpopResult => ({ ok: false, code, message });

/** `crypto.verify`'s arguments for one public key, imported once. */
interface VerifyKey {
  /** SHA-256 for ES256; none for EdDSA (Ed25519 hashes internally). */
  digest: 'sha256' | null;
  /** For ES256 with the JWS signature encoding (r‖s, RFC 7518 §3.4), not DER. */
  key: KeyObject | { key: KeyObject; dsaEncoding: 'ieee-p1363' };
}

/** What a proof's header says about who signed it, once checked. */
interface Signer {
  alg: DpopAlgorithm;
  jwk: DpopPublicJwk;
  /** The RFC 7638 members in their canonical JSON: the thumbprint's input, and the key cache's key. */
  canonical: string;
  thumbprint: string;
  /** Set on the headers the cache keeps: each one's key, imported. */
  verifyKey?: VerifyKey;
}

/**
 * Checks, cheapest first: shape and header (typ, alg, jwk) → key thumbprint against the bound key
 * (a stolen token with the thief's own key stops here, before any key import or signature work)
 * → signature → claims (htm, htu, iat, ath, nonce) → replay, last, so a refused proof never uses
 * up its `jti`.
 *
 * All of it is node:crypto and synchronous: SHA-256 for the thumbprint and `ath`, and one
 * `crypto.verify` per proof on a key imported once. (jose's `jwtVerify` went through WebCrypto:
 * a promise, WebIDL argument conversion and a job per call on top of the signature itself, and
 * the header and claims parsed again; see `npm run bench -- proxy-dpop`.)
 */
export function createDpopVerifier(options: DpopVerifierOptions): DpopVerifier {
  const maxAgeSeconds = options.maxAgeSeconds ?? 60;
  const futureSkewSeconds = options.futureSkewSeconds ?? 5;
  const maxEntries = options.keyCacheSize ?? 10_000;
  // Two bounded LRUs, filled only by headers that passed every header check and keys that imported
  // (the signature is checked on every proof, cached or not):
  // - every proof a device makes has the same header (typ, alg, jwk: nothing per call), so the
  //   checked header is kept by its encoded text (identical text, identical header), with its key;
  // - imported keys are kept by their canonical JWK, so header variants naming one key (member
  //   order, extra members) share one import. Either way a cached key is exactly the one the
  //   proof's own header names: a hit never verifies a proof with another key than its own.
  const headers = new LruCache<Signer>({ maxEntries, clock: options.clock });
  const keys = new LruCache<VerifyKey>({ maxEntries, clock: options.clock });

  /** The header's signer, checked, with its imported key when it has one already. */
  function signerOf(encodedHeader: string, proof: string, nowMs: number): Signer | string {
    const known = headers.get(encodedHeader, nowMs);
    if (known) return known;
    const header = decodeHeader(proof);
    if (!header) return 'The DPoP proof header is not a JSON object.';
    if (header.typ !== DPOP_PROOF_TYPE) return `The DPoP proof must have typ "${DPOP_PROOF_TYPE}".`;
    const alg = header.alg;
    if (!isDpopAlgorithm(alg)) return `The DPoP proof must be signed with ${DPOP_ALGORITHMS.join(', ')}.`;
    // No extension is understood here, so none can be critical (RFC 7515 §4.1.11).
    if (header.crit !== undefined) return 'The DPoP proof header must not have "crit".';
    const jwk = publicJwkOf(header.jwk, alg);
    if (typeof jwk === 'string') return jwk;
    const canonical = canonicalJwk(jwk);
    return {
      alg,
      jwk,
      canonical,
      thumbprint: createHash('sha256').update(canonical, 'ascii').digest('base64url'),
    };
  }

  /** The signer's key, imported (or from the key cache), or why it is no key. */
  function keyOf(signer: Signer, nowMs: number): VerifyKey | string {
    const known = keys.get(signer.canonical, nowMs);
    if (known) return known;
    let key: KeyObject;
    try {
      // Only the members `publicJwkOf` validated: the import checks the point is on the curve.
      key = createPublicKey({ key: signer.jwk, format: 'jwk' });
    } catch {
      // A point off the curve, say: the client's doing, never a fault of ours.
      return 'The jwk is not a valid public key.';
    }
    const fits =
      key.type === 'public' &&
      (signer.alg === 'ES256'
        ? key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
        : key.asymmetricKeyType === 'ed25519');
    if (!fits) return 'The jwk is not a valid public key.';
    const imported: VerifyKey =
      signer.alg === 'ES256'
        ? { digest: 'sha256', key: { key, dsaEncoding: 'ieee-p1363' } }
        : { digest: null, key };
    keys.set(signer.canonical, imported, Number.POSITIVE_INFINITY);
    return imported;
  }

  return {
    async verify(check) {
      if (check.proof === undefined || check.proof === '') {
        return refuse('dpop_required', 'Send a DPoP proof in the "DPoP" header.');
      }
      if (typeof check.proof !== 'string') {
        return refuse('dpop_invalid', 'Send exactly one "DPoP" header.');
      }
      const proof = check.proof;
      if (proof.length > MAX_PROOF_BYTES) return refuse('dpop_invalid', 'The DPoP proof is too large.');
      if (!COMPACT_JWS.test(proof)) return refuse('dpop_invalid', 'The DPoP proof is not a compact JWS.');
      const headerEnd = proof.indexOf('.');
      const payloadEnd = proof.indexOf('.', headerEnd + 1);
      const nowMs = options.clock.now().getTime();
      const encodedHeader = proof.slice(0, headerEnd);
      const signer = signerOf(encodedHeader, proof, nowMs);
      if (typeof signer === 'string') return refuse('dpop_invalid', signer);
      const { jwk, thumbprint } = signer;
      if (check.boundKey !== undefined && thumbprint !== check.boundKey) {
        return refuse(
          'dpop_wrong_key',
          'The DPoP proof is signed by another key than the one this is bound to.',
        );
      }
      const verifyKey = signer.verifyKey ?? keyOf(signer, nowMs);
      if (typeof verifyKey === 'string') return refuse('dpop_invalid', verifyKey);
      if (!signer.verifyKey) headers.set(encodedHeader, { ...signer, verifyKey }, Number.POSITIVE_INFINITY);

      if (proof.length - payloadEnd - 1 !== SIGNATURE_CHARS) {
        return refuse('dpop_invalid', 'The DPoP proof signature is invalid.');
      }
      let signed: boolean;
      try {
        signed = verifySignature(
          verifyKey.digest,
          Buffer.from(proof.slice(0, payloadEnd), 'latin1'),
          verifyKey.key,
          Buffer.from(proof.slice(payloadEnd + 1), 'base64url'),
        );
      } catch {
        signed = false;
      }
      if (!signed) return refuse('dpop_invalid', 'The DPoP proof signature is invalid.');

      const claims = claimsOf(proof.slice(headerEnd + 1, payloadEnd));
      if (!claims) return refuse('dpop_invalid', 'The DPoP proof payload is not a JSON object.');
      const { jti, htm, htu, iat, ath, exp, nbf } = claims;
      // Not part of RFC 9449, but a proof that says when it expires or starts is held to it (RFC 7519).
      if ((exp !== undefined && typeof exp !== 'number') || (nbf !== undefined && typeof nbf !== 'number')) {
        return refuse('dpop_invalid', 'The DPoP proof has a non-numeric exp or nbf claim.');
      }
      const nowSeconds = nowMs / 1000;
      if (exp !== undefined && exp <= Math.floor(nowSeconds)) {
        return refuse('dpop_stale', 'The DPoP proof has expired.');
      }
      if (nbf !== undefined && nbf > Math.floor(nowSeconds)) {
        return refuse('dpop_stale', 'The DPoP proof is not valid yet.');
      }
      if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
        return refuse('dpop_invalid', 'The DPoP proof needs a jti of 1 to 128 characters.');
      }
      if (typeof htm !== 'string' || typeof htu !== 'string') {
        return refuse('dpop_invalid', 'The DPoP proof needs htm and htu claims.');
      }
      if (typeof iat !== 'number' || !Number.isFinite(iat)) {
        return refuse('dpop_invalid', 'The DPoP proof needs a numeric iat claim.');
      }
      if (htm !== check.method) {
        return refuse('dpop_wrong_method', `The DPoP proof is for ${quoted(htm)}, not ${check.method}.`);
      }
      const expected = normalizeHtu(check.htu);
      // The same text normalises the same: parsed once when the client names the URL as we do.
      if (expected === undefined || (htu !== check.htu && normalizeHtu(htu) !== expected)) {
        return refuse('dpop_wrong_url', 'The DPoP proof is for another URL (htu).');
      }
      if (iat < nowSeconds - maxAgeSeconds) {
        return refuse(
          'dpop_stale',
          `The DPoP proof is older than ${maxAgeSeconds} s; make a fresh one per call.`,
        );
      }
      if (iat > nowSeconds + futureSkewSeconds) {
        return refuse('dpop_stale', "The DPoP proof's iat is in the future; check the machine's clock.");
      }
      if (check.accessToken !== undefined && ath !== accessTokenHash(check.accessToken)) {
        return refuse(
          'dpop_ath_mismatch',
          ath === undefined
            ? 'The DPoP proof needs an ath claim: the hash of the access token.'
            : 'The DPoP proof was made for another access token (ath).',
        );
      }
      if (options.nonces && !options.nonces.accepts(claims.nonce)) {
        return {
          ok: false,
          code: 'dpop_nonce_required',
          message: 'Make the DPoP proof again with the nonce from the DPoP-Nonce header.',
          nonce: options.nonces.current(),
        };
      }

      // Kept until the proof would be refused as stale anyway: iat + the window, and no longer.
      const ttlMs = (iat + maxAgeSeconds) * 1000 - nowMs;
      switch (await options.replay.claim(`${thumbprint}:${jti}`, ttlMs)) {
        case 'fresh':
          return { ok: true, thumbprint, jwk, jti, issuedAt: new Date(iat * 1000) };
        case 'replayed':
          return refuse('dpop_replayed', 'This DPoP proof was already used; make a fresh one per call.');
        case 'unavailable':
          return refuse(
            'dpop_unavailable',
            'Proofs cannot be checked for replay right now; try again shortly.',
          );
      }
    },
  };
}

/** The proof's claims: strict UTF-8 JSON, an object; undefined for anything else. */
function claimsOf(encodedPayload: string): Record<string, unknown> | undefined {
  // A length of 4n + 1 is no base64url (a decoder would drop the last character silently).
  if (encodedPayload.length % 4 === 1) return undefined;
  const bytes = Buffer.from(encodedPayload, 'base64url');
  if (!isUtf8(bytes)) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The RFC 7638 thumbprint input: the required members in lexicographic order, no whitespace.
 * `x` and `y` are base64url text (checked by `publicJwkOf`), which JSON needs no escaping for.
 */
function canonicalJwk(jwk: DpopPublicJwk): string {
  return jwk.kty === 'EC'
    ? `{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`
    : `{"crv":"${jwk.crv}","kty":"OKP","x":"${jwk.x}"}`;
}

const isDpopAlgorithm = (value: unknown): value is DpopAlgorithm =>
  typeof value === 'string' && (DPOP_ALGORITHMS as readonly string[]).includes(value);

/** The header's `jwk` reduced to its public members for `alg`, or what is wrong with it. */
function publicJwkOf(value: unknown, alg: DpopAlgorithm): DpopPublicJwk | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'The DPoP proof header needs the public key as "jwk".';
  }
  const jwk = value as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) {
    return 'The DPoP proof header carries private key material; send the public key only.';
  }
  if (alg === 'ES256') {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') return 'An ES256 proof needs an EC P-256 jwk.';
    if (!isB64url32(jwk.x) || !isB64url32(jwk.y)) return 'The jwk has no valid x and y.';
    return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') return `An ${alg} proof needs an OKP Ed25519 jwk.`;
  if (!isB64url32(jwk.x)) return 'The jwk has no valid x.';
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
}

const isB64url32 = (value: unknown): value is string => typeof value === 'string' && B64URL_32.test(value);

const quoted = (text: string): string => JSON.stringify(text.length > 16 ? `${text.slice(0, 16)}…` : text);

/** `ath`: base64url of the SHA-256 of the access token's ASCII text (RFC 9449 §4.2). */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

export const isDpopRefusalCode = (code: string): code is DpopRefusalCode =>
  (DPOP_REFUSAL_CODES as readonly string[]).includes(code);

/** The one place a DPoP refusal becomes an HTTP status. */
export function dpopRefusalStatus(code: DpopRefusalCode): 401 | 503 {
  return code === 'dpop_unavailable' ? 503 : 401;
}

/** Response headers for a refusal: the RFC 9449 §7.1 challenge, and a nonce when one is wanted. */
export function dpopChallengeHeaders(refusal: {
  code: DpopRefusalCode;
  nonce?: string;
}): Record<string, string> {
  const algs = `algs="${DPOP_ALGORITHMS.join(' ')}"`;
  switch (refusal.code) {
    case 'dpop_unavailable':
      return {};
    case 'dpop_required':
      return { 'www-authenticate': `DPoP error="invalid_token", ${algs}` };
    case 'dpop_nonce_required':
      return {
        'www-authenticate': `DPoP error="use_dpop_nonce", ${algs}`,
        ...(refusal.nonce ? { 'dpop-nonce': refusal.nonce } : {}),
      };
    case 'dpop_invalid':
    case 'dpop_wrong_key':
    case 'dpop_wrong_method':
    case 'dpop_wrong_url':
    case 'dpop_stale':
    case 'dpop_replayed':
    case 'dpop_ath_mismatch':
      return { 'www-authenticate': `DPoP error="invalid_dpop_proof", ${algs}` };
  }
}
