import { rulesAllow } from '../policy/scope-rules.ts';
import type { PolicyStore } from '../policy/store.ts';
import type { ResourcePolicy, ScopePolicy } from '../policy/types.ts';
import type { CallSink } from '../shared/call-record.ts';
import type { Clock } from '../shared/clock.ts';
import type { DpopVerifier } from '../tokens/dpop.ts';
import { expectedHtu } from '../tokens/dpop-htu.ts';
import type { GrantClaims, VerifyResult } from '../tokens/index.ts';
import type { ActiveGrant, ActiveGrantView, DeviceKeyState } from './active-grants.ts';
import type { Denial } from './denial.ts';
import type { CallLimits, LimitDecision } from './limits/call-limits.ts';
import { MAX_PATH_LENGTH, type NormalizedPath, normalizePath } from './normalize-path.ts';

export interface AuthorizeDeps {
  policy: PolicyStore;
  grants: ActiveGrantView;
  /**
   * `peek` answers synchronously from the verifier's cache; without it (or on a miss) the
   * call waits for `verify`.
   */
  verifier: {
    verify(token: string): Promise<VerifyResult>;
    peek?(token: string, now?: number): VerifyResult | undefined;
  };
  clock: Clock;
  sink: CallSink;
  /** Rate limit and quota: this process's own, or shared through Redis (src/proxy/limits/). */
  limits: CallLimits;
  /**
   * Proofs for tokens bound to a device key (`cnf.jkt`). Unset: such tokens are refused
   * (`dpop_unavailable`), never taken as bearer tokens.
   */
  dpop?: ProofChecks;
}

export interface ProofChecks {
  /** Its replay cache is Redis with REDIS_URL (shared by every proxy), in-process otherwise. */
  verifier: DpopVerifier;
  /**
   * The proxy's public base URL as clients call it (JITGATE_PUBLIC_URL): a proof's `htu` must be
   * it followed by the request's path as received (see `expectedHtu`). A function, so a test
   * proxy on port 0 can say it once it listens.
   */
  publicUrl(): string;
  /**
   * A revoked device's tokens are refused at once (the grant view holds revoked keys,
   * src/proxy/active-grants.ts); `unconfirmed` while that view is not live (fail closed).
   */
  deviceState(thumbprint: string): DeviceKeyState;
}

/** What a call sent as `Authorization: DPoP <token>` brings beyond the token. */
export interface ProofCarrier {
  /** The request's `DPoP` header(s). */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The request target as received (origin form). */
  url?: string | undefined;
}

/** Filled in as the checks learn things, so a denial's call record says as much as is known. */
export interface CallContext {
  resourceName: string;
  method: string;
  /**
   * The path asked for, recorded with the call whether or not it is allowed: normalised when
   * it normalises, else as sent (up to MAX_PATH_LENGTH), as evidence of what was tried.
   */
  path: string;
  grant: ActiveGrant | undefined;
  /**
   * Who a token we signed names, once its signature has verified: set for denied calls too
   * (expired token, revoked grant, another resource), so the record says whose token it was.
   */
  claimed: Pick<GrantClaims, 'grantId' | 'userId' | 'scope'> | undefined;
  /** Epoch ms of the call's one clock read; the checks compare expiry and rate against it. */
  now: number;
  /**
   * The client address the allowlists check (the TCP peer, or the X-Forwarded-For entry the
   * policy's `trust_proxy` picks); undefined when a trusted header named no usable address.
   */
  clientIp: string | undefined;
  /** Set when the call was admitted against its grant's quota (the appender then counts it). */
  quotaCounted: boolean;
}

export type Authorization =
  | {
      ok: true;
      resource: ResourcePolicy;
      scope: ScopePolicy;
      grant: ActiveGrant;
      upstreamPath: string;
      query: string;
    }
  | { ok: false; denial: Denial };

const deny = (code: Denial['code'], message: string): Authorization => ({
  ok: false,
  denial: { code, message },
});
const BEARER = /^Bearer +([^\s]+) *$/i;
const DPOP_SCHEME = /^DPoP +([^\s]+) *$/i;
const BEARER_PREFIX = 'Bearer ';
const MAX_RESOURCE_NAME = 64;

/** What a request targets: the resource named by its first segment, and the rest normalised once. */
export interface CallTarget {
  /** The first segment as sent (empty when the target is not a path: `*`, an absolute URL). */
  name: string;
  normalized: NormalizedPath;
}

/**
 * Reads the resource name and path of `url` into `ctx` (so even a call refused before any
 * check records what it asked for) and returns them for `authorizeCall`.
 */
export function identifyTarget(ctx: CallContext, url: string): CallTarget {
  let end = 1;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f || c === 0x3f) break;
    end++;
  }
  const name = url.charCodeAt(0) === 0x2f ? url.slice(1, end) : '';
  ctx.resourceName = name.length <= MAX_RESOURCE_NAME ? name : name.slice(0, MAX_RESOURCE_NAME);
  const normalized = normalizePath(url.slice(end));
  ctx.path = normalized.ok ? normalized.path : rawPathOf(url.slice(end));
  return { name, normalized };
}

/**
 * Every check a call must pass before it is forwarded, in the contract's order. Expected
 * outcomes are values; only faults (a broken key store) throw or reject. Nothing here touches
 * the database: the grant comes from the live in-memory view, the token from a cached verify.
 *
 * Synchronous when the token is in the verifier's cache (every call after a token's first) and
 * the limits are this process's own: the hot path then allocates no promise and takes no
 * microtask hop. A cache miss returns a promise, for the signature check; so do shared limits
 * (REDIS_URL), for their one round trip.
 */
export function authorizeCall(
  deps: AuthorizeDeps,
  ctx: CallContext,
  target: CallTarget,
  authorization: string | undefined,
  /** The request itself (headers and target), read only for a token sent as `DPoP`. */
  carrier?: ProofCarrier,
): Authorization | Promise<Authorization> {
  // 1. The resource named by the first segment.
  const { name, normalized } = target;
  const resources = deps.policy.current().resources;
  const resource = Object.hasOwn(resources, name) ? resources[name] : undefined;
  if (!resource) return deny('unknown_resource', 'No such resource on this proxy.');

  // 1b. The resource's IP allowlist, before any token work: a caller from elsewhere learns nothing.
  if (resource.ipAllow && !ipAllowed(resource.ipAllow, ctx.clientIp)) return ipDenied(ctx.clientIp, name);

  // 2. A bearer token that verifies (signature, algorithm, issuer, exp), cached per token.
  if (authorization === undefined || authorization === '') {
    return deny('missing_token', 'Send the grant token as "Authorization: Bearer <token>".');
  }
  // Fast path: the canonical `Bearer <token>` looked up as is, skipping the regex. Equivalent
  // to the strict parse below: a success is only cached for a string that verified as a
  // compact JWS (no whitespace), for which BEARER extracts exactly that string; a cached
  // failure is a denial either way. Any other form misses here and is parsed strictly.
  if (deps.verifier.peek && authorization.startsWith(BEARER_PREFIX)) {
    const known = deps.verifier.peek(authorization.slice(BEARER_PREFIX.length), ctx.now);
    if (known) return afterVerify(deps, ctx, name, normalized, resource, known);
  }
  const bearer = BEARER.exec(authorization);
  if (!bearer) {
    const dpop = DPOP_SCHEME.exec(authorization);
    if (!dpop) {
      return deny('invalid_token', 'The Authorization header must be "Bearer <token>" or "DPoP <token>".');
    }
    const bound: BoundCall = { token: dpop[1]!, carrier: carrier ?? { headers: {} } };
    const known = deps.verifier.peek?.(bound.token, ctx.now);
    if (known) return afterVerify(deps, ctx, name, normalized, resource, known, bound);
    return deps.verifier.verify(bound.token).then((verified) => {
      ctx.now = deps.clock.now().getTime();
      return afterVerify(deps, ctx, name, normalized, resource, verified, bound);
    });
  }
  const token = bearer[1]!;
  const known = deps.verifier.peek?.(token, ctx.now);
  if (known) return afterVerify(deps, ctx, name, normalized, resource, known);
  return deps.verifier.verify(token).then((verified) => {
    // A signature check takes a while: the later checks compare against the time after it.
    ctx.now = deps.clock.now().getTime();
    return afterVerify(deps, ctx, name, normalized, resource, verified);
  });
}

/** A token sent as `Authorization: DPoP <token>`, with the request its proof must match. */
interface BoundCall {
  token: string;
  carrier: ProofCarrier;
}

/**
 * Step 3b for a token bound to a device key: the proof in `DPoP` is signed by that key, for this
 * method and URL, fresh, for this token, and never seen before (RFC 9449 §4.3, src/tokens/dpop.ts).
 * The replay check is the verifier's one round trip (Redis with REDIS_URL), never PostgreSQL.
 */
async function checkProof(
  deps: AuthorizeDeps,
  ctx: CallContext,
  bound: BoundCall,
  boundKey: string,
): Promise<Denial | undefined> {
  const checks = deps.dpop;
  if (!checks) {
    return { code: 'dpop_unavailable', message: 'This proxy does not take device-bound tokens.' };
  }
  switch (checks.deviceState(boundKey)) {
    case 'revoked':
      return { code: 'device_revoked', message: 'The device this token is bound to has been revoked.' };
    case 'unconfirmed':
      return {
        code: 'grant_unconfirmed',
        message: 'The proxy cannot confirm devices right now; try again shortly.',
      };
    case 'usable':
      break;
  }
  const result = await checks.verifier.verify({
    proof: bound.carrier.headers.dpop,
    method: ctx.method,
    htu: expectedHtu(checks.publicUrl(), bound.carrier.url ?? '') ?? '',
    accessToken: bound.token,
    boundKey,
  });
  if (result.ok) return undefined;
  return { code: result.code, message: result.message, ...(result.nonce ? { nonce: result.nonce } : {}) };
}

/** Checks 3–8, once the token's verification result is known. */
function afterVerify(
  deps: AuthorizeDeps,
  ctx: CallContext,
  name: string,
  normalized: NormalizedPath,
  resource: ResourcePolicy,
  verified: VerifyResult,
  bound?: BoundCall,
): Authorization | Promise<Authorization> {
  if (!verified.ok) {
    if (verified.expiredClaims) ctx.claimed = verified.expiredClaims;
    // An unknown signing key is, to the client, an invalid token.
    return deny(verified.code === 'token_expired' ? 'token_expired' : 'invalid_token', verified.message);
  }
  const claims = verified.claims;
  ctx.claimed = claims;

  // 3. The token was issued for this resource.
  if (claims.resource !== name) return deny('wrong_resource', 'This token is for another resource.');

  // 3b. A token bound to a device key is good only with a proof by that key; sent as Bearer, a
  // copied token is refused outright. A bearer token costs this branch one property read.
  if (claims.boundKey !== undefined) {
    if (!bound) {
      return deny(
        'dpop_required',
        'This token is bound to a device key: send it as "Authorization: DPoP <token>" with a DPoP proof (jitgate curl or jitgate connect do).',
      );
    }
    const boundKey = claims.boundKey;
    return checkProof(deps, ctx, bound, boundKey).then((refused) => {
      if (refused) return { ok: false, denial: refused };
      ctx.now = deps.clock.now().getTime();
      return afterProof(deps, ctx, normalized, resource, claims);
    });
  }
  if (bound) {
    return deny(
      'invalid_token',
      'This token is not bound to a key: send it as "Authorization: Bearer <token>".',
    );
  }
  return afterProof(deps, ctx, normalized, resource, claims);
}

/** Checks 4–8: the grant, its expiry, scope, audit capacity and limits. */
function afterProof(
  deps: AuthorizeDeps,
  ctx: CallContext,
  normalized: NormalizedPath,
  resource: ResourcePolicy,
  claims: GrantClaims,
): Authorization | Promise<Authorization> {
  const name = claims.resource;
  // 4. Its grant is active in the live view (never trusting the token alone: revocation).
  const found = deps.grants.lookup(claims.grantId);
  switch (found.kind) {
    case 'unconfirmed':
      return deny('grant_unconfirmed', 'The proxy cannot confirm grants right now; try again shortly.');
    case 'unknown':
      return deny('grant_not_found', 'This token has no active grant.');
    case 'ended':
      return found.status === 'revoked'
        ? deny('grant_revoked', 'This grant has been revoked.')
        : deny('grant_expired', 'This grant has expired.');
    case 'active':
      break;
  }
  const grant = found.grant;
  // The row must agree with the signed claims; a mismatch is a token for some other grant.
  if (grant.resource !== name || grant.userId !== claims.userId || grant.scope !== claims.scope) {
    return deny('grant_not_found', 'This token does not match its grant.');
  }
  ctx.grant = grant;

  // 5. Unexpired now, by this proxy's clock: never waiting for the scheduler to end it.
  const now = ctx.now;
  if (now >= grant.expiresAt) return deny('grant_expired', 'This grant has expired.');
  if (now < grant.startsAt) return deny('grant_not_found', 'This grant has not started yet.');

  // 6. The normalised path (what the upstream will receive) is in the grant's scope.
  if (!normalized.ok) return deny('bad_path', `Refused path: ${normalized.message}.`);
  const scope = Object.hasOwn(resource.scopes, grant.scope) ? resource.scopes[grant.scope] : undefined;
  if (!scope || !rulesAllow(scope.rules, ctx.method, normalized.path)) {
    return deny('out_of_scope', `Scope "${grant.scope}" does not allow ${ctx.method} on this path.`);
  }
  // 6a. Policy `sender_constraint: dpop` (resource or scope): a bearer token is not enough.
  if (scope.senderConstraint === 'dpop' && claims.boundKey === undefined) {
    return deny(
      'dpop_required',
      `Scope "${grant.scope}" of ${name} takes only device-bound tokens: use the jitgate CLI (jitgate login, then jitgate curl or jitgate connect).`,
    );
  }
  // 6b. The scope's IP allowlist, in addition to the resource's.
  if (scope.ipAllow && !ipAllowed(scope.ipAllow, ctx.clientIp)) return ipDenied(ctx.clientIp, name);

  // 7. The call can be recorded: an unaudited call is not forwarded (nor counted).
  if (!deps.sink.hasCapacity()) {
    return deny('audit_unavailable', 'The proxy cannot record calls right now; try again shortly.');
  }

  // 8. The grant's rate limit and quota, last, in one step: only a call that will be forwarded
  // counts against them. With REDIS_URL this is the call's one Redis round trip.
  const allowed: Authorization = {
    ok: true,
    resource,
    scope,
    grant,
    upstreamPath: normalized.upstreamPath,
    query: normalized.query,
  };
  const limited = deps.limits.take(grant, resource.rateLimit, now);
  if (limited instanceof Promise) return limited.then((decision) => afterLimits(ctx, decision, allowed));
  return afterLimits(ctx, limited, allowed);
}

function afterLimits(ctx: CallContext, decision: LimitDecision, allowed: Authorization): Authorization {
  if (!decision.ok) return { ok: false, denial: decision.denial };
  if (decision.quotaCounted) ctx.quotaCounted = true;
  return allowed;
}

function ipAllowed(list: { allows(address: string): boolean }, address: string | undefined): boolean {
  return address !== undefined && list.allows(address);
}

function ipDenied(address: string | undefined, resource: string): Authorization {
  return deny(
    'ip_not_allowed',
    address === undefined
      ? `Calls to ${resource} must come from an allowed address, and this call's address is unknown.`
      : `Calls to ${resource} are not allowed from ${address}.`,
  );
}

/** A path that did not normalise, as the record keeps it: without the query, bounded. */
function rawPathOf(target: string): string {
  const queryAt = target.indexOf('?');
  const path = queryAt === -1 ? target : target.slice(0, queryAt);
  return path.length <= MAX_PATH_LENGTH ? path : path.slice(0, MAX_PATH_LENGTH);
}
