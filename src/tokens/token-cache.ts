import { type GrantClaims, MAX_TOKEN_BYTES, type VerifyResult, verifyGrantToken } from './grant-token.ts';
import type { Clock, KeyStore } from './keys.ts';

interface CacheEntry<V> {
  value: V;
  /** Epoch ms from which the entry is a miss. */
  validUntil: number;
  kid: string | undefined;
}

export interface LruCacheOptions {
  maxEntries: number;
  clock: Clock;
}

/**
 * A bounded LRU over a Map (whose insertion order is the recency order).
 *
 * The verifier keys it by the raw token string. Hashing the token first (sha256) cost ~1 µs per
 * proxied call, about as much as the whole lookup, and bought nothing: a Map already hashes its
 * string keys, memory stays bounded (entries × MAX_TOKEN_BYTES, and callers refuse anything
 * larger before it gets here: at most 10,000 × 4 KB = 40 MB, ~5 MB with our ~450-byte tokens),
 * and invariant 3 is about logs, audit rows and Slack, never process memory — every request
 * already holds its token in its headers, and this cache is never logged or serialised.
 */
export class LruCache<V> {
  readonly #entries = new Map<string, CacheEntry<V>>();
  readonly #max: number;
  readonly #clock: Clock;

  constructor(options: LruCacheOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new Error('LruCache: maxEntries must be a positive integer');
    }
    this.#max = options.maxEntries;
    this.#clock = options.clock;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** `now` (epoch ms) saves a clock read when the caller already has one. */
  get(key: string, now?: number): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if ((now ?? this.#clock.now().getTime()) >= entry.validUntil) return undefined;
    this.#entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: V, validUntil: number, kid?: string): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, validUntil, kid });
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  /** O(n); run only when a key is retired, which is rare. */
  deleteByKid(kid: string): void {
    for (const [key, entry] of this.#entries) if (entry.kid === kid) this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

export interface VerifierOptions {
  issuer: string;
  clock: Clock;
  clockToleranceSeconds?: number;
  /** Verified tokens kept; default 10,000. */
  maxEntries?: number;
  /**
   * Failures (`invalid_token`, `token_expired`) are remembered this long, so one bad token
   * replayed in a loop costs a Map lookup, not a signature check. Default 5 s; 0 disables.
   * `unknown_key` is never remembered: a rotation elsewhere can make it valid a moment later.
   */
  failureTtlMs?: number;
  /** Failures kept; default 1,000 (a flood of distinct forgeries just churns this small LRU). */
  maxFailureEntries?: number;
}

export interface Verifier {
  verify(token: string): Promise<VerifyResult>;
  /**
   * The remembered result for `token` (a verified token, or a remembered failure) without
   * verifying, or undefined: then call verify(). Synchronous, so the proxy's hot path needs no
   * promise for a token it has seen. `now` (epoch ms) saves a clock read.
   */
  peek(token: string, now?: number): VerifyResult | undefined;
  clear(): void;
  /** Stops listening to the key store. */
  close(): void;
  readonly size: number;
}

type Failure = Extract<VerifyResult, { ok: false }>;
type Success = Extract<VerifyResult, { ok: true }>;

/** Cache + verifyGrantToken, so the proxy pays the ~EdDSA verify once per token, not per call. */
export function createVerifier(keyStore: KeyStore, options: VerifierOptions): Verifier {
  const { clock } = options;
  const toleranceMs = (options.clockToleranceSeconds ?? 0) * 1000;
  const failureTtlMs = options.failureTtlMs ?? 5000;
  const successes = new LruCache<Success>({ maxEntries: options.maxEntries ?? 10_000, clock });
  const failures =
    failureTtlMs > 0
      ? new LruCache<Failure>({ maxEntries: options.maxFailureEntries ?? 1000, clock })
      : undefined;
  // The last verified token served, compared with `===` before the Map: a keep-alive client
  // sends the same token call after call, and comparing two equal 400-byte strings (a memcmp,
  // tens of ns) is far cheaper than hashing a fresh one for a Map lookup (~0.4 µs) plus the
  // LRU's delete and re-insert. It is checked exactly like a Map hit (exp, kid) and dropped by
  // clear() and on retire, so it answers nothing the Map would not.
  let lastToken: string | undefined;
  let lastResult: Success | undefined;
  const forgetLast = () => {
    lastToken = undefined;
    lastResult = undefined;
  };
  const unsubscribe = keyStore.onRetire((kid) => {
    successes.deleteByKid(kid);
    if (lastResult?.kid === kid) forgetLast();
  });
  const usable = (hit: Success, at: number) =>
    // Same boundary as jose's exp check: valid while now < exp + tolerance. The kid check
    // makes a retire seen by refresh() effective even before onRetire purges.
    at < hit.claims.expiresAt.getTime() + toleranceMs && keyStore.verificationKey(hit.kid) !== undefined;

  function peek(token: string, now?: number): VerifyResult | undefined {
    // Oversized input is never a key (verify refuses it uncached), so it is never hashed either.
    if (typeof token !== 'string' || token.length > MAX_TOKEN_BYTES) return undefined;
    const at = now ?? clock.now().getTime();
    if (lastResult !== undefined && token === lastToken) {
      if (usable(lastResult, at)) return lastResult;
      forgetLast();
    }
    const hit = successes.get(token, at);
    if (hit && usable(hit, at)) {
      lastToken = token;
      lastResult = hit;
      return hit;
    }
    return failures?.get(token, at);
  }

  return {
    peek,
    async verify(token) {
      const known = peek(token);
      if (known) return known;
      const result = await verifyGrantToken(keyStore, token, options);
      if (typeof token !== 'string' || token.length > MAX_TOKEN_BYTES) return result;
      if (result.ok) {
        const shared = freeze(result);
        // Same boundary as jose's exp check: valid while now < exp + tolerance.
        successes.set(token, shared, result.claims.expiresAt.getTime() + toleranceMs, result.kid);
        return shared;
      }
      if (failures && result.code !== 'unknown_key') {
        failures.set(token, result, clock.now().getTime() + failureTtlMs);
      }
      return result;
    },
    clear() {
      forgetLast();
      successes.clear();
      failures?.clear();
    },
    close: unsubscribe,
    get size() {
      return successes.size;
    },
  };
}

function freeze(result: Success): Success {
  // Shared between callers: a caller mutating its claims must not change what the next one sees.
  const claims: GrantClaims = Object.freeze({ ...result.claims });
  return Object.freeze({ ok: true, kid: result.kid, claims });
}
