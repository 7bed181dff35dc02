import { inspect } from 'node:util';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { Db } from '../db/client.ts';
import type { SigningKeyRow } from '../db/schema/index.ts';
import { type MasterKey, openPrivateJwk, parseMasterKey, sealPrivateJwk } from './key-crypto.ts';
import { createDbKeyStorage, createMemoryKeyStorage, type KeyStorage } from './key-storage.ts';

export const SIGNING_ALG = 'EdDSA';
const CURVE = 'Ed25519';

import type { Clock } from '../shared/clock.ts';

export type { Clock };

/** The only shape a published key has: no private member can slip in by spreading a JWK. */
interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

export interface Jwks {
  keys: PublicJwk[];
}

export interface ActiveSigner {
  kid: string;
  /** Non-extractable: even code holding it cannot export the private bytes. */
  key: CryptoKey;
}

interface KeyStoreSummary {
  activeKid: string | null;
  kids: string[];
  configuredKey: boolean;
  encryptedAtRest: boolean;
}

export interface KeyStore {
  readonly clock: Clock;
  /** Reads keys; on an empty store (and no configured key) generates and stores the first one. */
  load(): Promise<void>;
  /** Re-reads keys, e.g. after another process rotated or retired one. */
  refresh(): Promise<void>;
  /**
   * `refresh()`, but at most once per `unknownKidRefreshIntervalMs` (by the injected clock):
   * a token naming a kid we do not know may mean another process rotated, or may be a forgery;
   * a flood of bogus kids must not turn into a flood of queries. Resolves true if it refreshed.
   */
  refreshForUnknownKid(): Promise<boolean>;
  activeSigner(): ActiveSigner;
  /** The public key of a non-retired kid, or undefined. */
  verificationKey(kid: string): CryptoKey | undefined;
  /** True when this instance has seen `kid` retired (so a refresh cannot bring it back). */
  isRetired(kid: string): boolean;
  jwks(): Jwks;
  /** Adds a new key that signs from now on; older kids keep verifying until retired. */
  rotate(): Promise<{ kid: string }>;
  /** Marks a key retired: tokens signed by it stop verifying. Refuses to retire the last signer. */
  retire(kid: string): Promise<void>;
  /**
   * Deletes a retired key, private key included (retiring only stops it verifying). Refuses a
   * key that is not retired, so a signer or verifier in use cannot be deleted by mistake.
   */
  purge(kid: string): Promise<void>;
  /** Every stored key with its state, for `jitgate keys list`. No key material. */
  describeKeys(): Promise<{ kid: string; createdAt: Date; retiredAt: Date | null; signing: boolean }[]>;
  /** Called with each kid that stops verifying here (retired locally, or seen retired on refresh). */
  onRetire(listener: (kid: string) => void): () => void;
  toJSON(): KeyStoreSummary;
}

interface KeyStoreCommonOptions {
  /** JITGATE_SIGNING_KEY: a private Ed25519 JWK as JSON. Used as the signer and never stored. */
  configuredKey?: string | undefined;
  /** Encrypts stored private keys (AES-256-GCM); see key-crypto.ts for accepted forms. */
  masterKey?: string | undefined;
  clock: Clock;
  /** Minimum gap between refreshes triggered by unknown kids. Default 10 s. */
  unknownKidRefreshIntervalMs?: number;
}

export type KeyStoreOptions = KeyStoreCommonOptions & ({ db: Db } | { storage: KeyStorage });

const CONFIG_NAME = 'JITGATE_SIGNING_KEY';
const CONFIG_EXPECTED = `a private Ed25519 JWK as JSON, like {"kty":"OKP","crv":"Ed25519","x":"<base64url>","d":"<base64url>"}`;
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** An operator's key request that cannot be done as asked (unknown kid, last signer, …): not a fault. */
export class KeyStoreRefusal extends Error {
  override name = 'KeyStoreRefusal';
}

/** Thrown for a bad JITGATE_SIGNING_KEY; names the variable and what it expects, never its value. */
export class SigningKeyConfigError extends Error {
  override name = 'SigningKeyConfigError';
  /** What is wrong and what is expected, without the variable's name (config prefixes it). */
  readonly detail: string;
  constructor(problem: string) {
    super(`${CONFIG_NAME} ${problem}; expected ${CONFIG_EXPECTED}`);
    this.detail = `${problem}; expects ${CONFIG_EXPECTED}`;
  }
}

interface LoadedKey {
  kid: string;
  publicKey: CryptoKey;
  x: string;
  createdAt: Date;
}

interface KeySet {
  verify: Map<string, LoadedKey>;
  retired: Set<string>;
  signer: ActiveSigner | null;
}

export function createKeyStore(options: KeyStoreOptions): KeyStore {
  const storage = 'storage' in options ? options.storage : createDbKeyStorage(options.db);
  return buildKeyStore(storage, options);
}

/** A KeyStore without a database (unit tests, one-off tools); pass `storage` to share between stores. */
export function createMemoryKeyStore(options: KeyStoreCommonOptions & { storage?: KeyStorage }): KeyStore {
  return buildKeyStore(options.storage ?? createMemoryKeyStorage(), options);
}

function buildKeyStore(storage: KeyStorage, options: KeyStoreCommonOptions): KeyStore {
  const { clock } = options;
  const masterKey: MasterKey | undefined =
    options.masterKey !== undefined ? parseMasterKey(options.masterKey) : undefined;
  const refreshIntervalMs = options.unknownKidRefreshIntervalMs ?? 10_000;
  // Parsed lazily in load() (async import), but its shape is checked now so a bad value fails fast.
  const configuredJwk =
    options.configuredKey !== undefined ? parseConfiguredKey(options.configuredKey) : undefined;

  let configured: (LoadedKey & { privateKey: CryptoKey }) | undefined;
  let keys: KeySet = { verify: new Map(), retired: new Set(), signer: null };
  let lastUnknownKidRefresh = Number.NEGATIVE_INFINITY;
  let chain: Promise<unknown> = Promise.resolve();
  const listeners = new Set<(kid: string) => void>();

  // Refreshes run one after another so an older snapshot never overwrites a newer one.
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => undefined);
    return run;
  };

  async function loadConfigured(): Promise<void> {
    if (!configuredJwk || configured) return;
    let privateKey: CryptoKey;
    try {
      privateKey = await importJWK(
        { kty: 'OKP', crv: CURVE, x: configuredJwk.x, d: configuredJwk.d },
        SIGNING_ALG,
        {
          extractable: false,
        },
      );
    } catch {
      // Node rejects a `d` that does not belong to `x` here; jose's message is dropped on purpose.
      throw new SigningKeyConfigError('is not a usable Ed25519 private key ("d" does not match "x")');
    }
    const publicJwk = { kty: 'OKP', crv: CURVE, x: configuredJwk.x };
    configured = {
      kid: await calculateJwkThumbprint(publicJwk),
      x: configuredJwk.x,
      publicKey: await importJWK({ kty: 'OKP', crv: CURVE, x: configuredJwk.x }, SIGNING_ALG),
      privateKey,
      createdAt: new Date(0),
    };
  }

  async function read(): Promise<void> {
    const rows = await storage.list();
    const next: KeySet = { verify: new Map(), retired: new Set(), signer: null };
    let newest: SigningKeyRow | undefined;
    for (const row of rows) {
      if (row.retiredAt !== null) {
        next.retired.add(row.kid);
        continue;
      }
      if (row.alg !== SIGNING_ALG) continue;
      const x = publicX(row);
      next.verify.set(row.kid, {
        kid: row.kid,
        x,
        publicKey: await importJWK({ kty: 'OKP', crv: CURVE, x }, SIGNING_ALG),
        createdAt: row.createdAt,
      });
      // list() is ordered oldest first; the newest non-retired key signs.
      newest = row;
    }
    if (configured) {
      next.verify.set(configured.kid, configured);
      next.signer = { kid: configured.kid, key: configured.privateKey };
    } else if (newest) {
      // Only the signer's private key is decrypted; the others stay sealed in the database.
      const reuse = keys.signer?.kid === newest.kid ? keys.signer : null;
      next.signer = reuse ?? { kid: newest.kid, key: await importStoredPrivate(newest) };
    }
    // Retired or deleted elsewhere: either way the kid stops verifying and caches must forget it.
    const newlyRetired = [...keys.verify.keys()].filter((kid) => !next.verify.has(kid));
    keys = next;
    for (const kid of newlyRetired) notifyRetired(kid);
  }

  async function importStoredPrivate(row: SigningKeyRow): Promise<CryptoKey> {
    const json = openPrivateJwk(row.privateJwk, row.kid, masterKey);
    const jwk = parseJwkObject(json);
    if (!jwk || typeof jwk.d !== 'string')
      throw new Error(`signing key ${row.kid}: stored private key is malformed`);
    try {
      return await importJWK({ kty: 'OKP', crv: CURVE, x: publicX(row), d: jwk.d }, SIGNING_ALG, {
        extractable: false,
      });
    } catch {
      throw new Error(`signing key ${row.kid}: stored private key does not match its public key`);
    }
  }

  function notifyRetired(kid: string): void {
    for (const listener of listeners) listener(kid);
  }

  async function newKeyRow(createdAt: Date): Promise<SigningKeyRow> {
    // Extractable only long enough to export it for storage; the signer is re-imported sealed.
    const pair = await generateKeyPair(SIGNING_ALG, { crv: CURVE, extractable: true });
    const jwk = await exportJWK(pair.privateKey);
    if (typeof jwk.x !== 'string' || typeof jwk.d !== 'string') throw new Error('Ed25519 key export failed');
    const publicJwk = { kty: 'OKP', crv: CURVE, x: jwk.x };
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJson = JSON.stringify({ kty: 'OKP', crv: CURVE, x: jwk.x, d: jwk.d });
    return {
      kid,
      alg: SIGNING_ALG,
      privateJwk: sealPrivateJwk(privateJson, kid, masterKey),
      publicJwk,
      createdAt,
      retiredAt: null,
    };
  }

  const summary = (): KeyStoreSummary => ({
    activeKid: keys.signer?.kid ?? null,
    kids: [...keys.verify.keys()],
    configuredKey: configuredJwk !== undefined,
    encryptedAtRest: masterKey !== undefined,
  });

  const store: KeyStore = {
    clock,
    load: () =>
      serial(async () => {
        await loadConfigured();
        if (!configured) await storage.insertIfNoActiveKey(() => newKeyRow(clock.now()));
        await read();
      }),
    refresh: () => serial(read),
    async refreshForUnknownKid() {
      const now = clock.now().getTime();
      // The attempt, not its success, starts the window: a failing database is not hammered either.
      if (now - lastUnknownKidRefresh < refreshIntervalMs) return false;
      lastUnknownKidRefresh = now;
      await store.refresh();
      return true;
    },
    activeSigner() {
      if (!keys.signer)
        throw new Error('no active signing key: call load() first, or rotate() after retiring');
      return keys.signer;
    },
    verificationKey: (kid) => keys.verify.get(kid)?.publicKey,
    isRetired: (kid) => keys.retired.has(kid),
    jwks: () => ({
      keys: [...keys.verify.values()].map((k) => ({
        kty: 'OKP',
        crv: CURVE,
        x: k.x,
        kid: k.kid,
        alg: SIGNING_ALG,
        use: 'sig',
      })),
    }),
    rotate: () =>
      serial(async () => {
        if (configuredJwk) {
          throw new KeyStoreRefusal(
            `the signing key comes from ${CONFIG_NAME}; rotate by changing that variable`,
          );
        }
        const rows = await storage.list();
        const newest = rows.reduce(
          (max, r) => Math.max(max, r.createdAt.getTime()),
          Number.NEGATIVE_INFINITY,
        );
        // Strictly newer than every stored key, so "newest signs" holds even with a frozen test clock.
        const createdAt = new Date(Math.max(clock.now().getTime(), newest + 1));
        const row = await newKeyRow(createdAt);
        await storage.insert(row);
        await read();
        return { kid: row.kid };
      }),
    retire: (kid) =>
      serial(async () => {
        if (configured?.kid === kid) {
          throw new KeyStoreRefusal(
            `key ${kid} comes from ${CONFIG_NAME} and cannot be retired; change the variable`,
          );
        }
        const rows = await storage.list();
        const active = rows.filter((r) => r.retiredAt === null);
        if (!configured && active.length === 1 && active[0]?.kid === kid) {
          throw new KeyStoreRefusal(`key ${kid} is the only active signing key; rotate first`);
        }
        const changed = await storage.retire(kid, clock.now());
        if (!changed && !rows.some((r) => r.kid === kid))
          throw new KeyStoreRefusal(`unknown signing key ${kid}`);
        await read();
      }),
    purge: (kid) =>
      serial(async () => {
        if (await storage.purge(kid)) return;
        const row = (await storage.list()).find((r) => r.kid === kid);
        throw new KeyStoreRefusal(
          row
            ? `key ${kid} is not retired; retire it first`
            : `unknown signing key ${kid} (or already purged)`,
        );
      }),
    async describeKeys() {
      const rows = await storage.list();
      return rows.map((r) => ({
        kid: r.kid,
        createdAt: r.createdAt,
        retiredAt: r.retiredAt,
        signing: keys.signer?.kid === r.kid,
      }));
    },
    onRetire(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    toJSON: summary,
  };
  // console.log / util.inspect show the summary, never key objects or the master key.
  Object.defineProperty(store, inspect.custom, { value: () => `KeyStore ${JSON.stringify(summary())}` });
  return store;
}

function parseJwkObject(json: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function publicX(row: SigningKeyRow): string {
  const { kty, crv, x } = row.publicJwk;
  if (kty !== 'OKP' || crv !== CURVE || typeof x !== 'string' || !B64URL_32.test(x)) {
    throw new Error(`signing key ${row.kid}: stored public key is not an Ed25519 JWK`);
  }
  return x;
}

/** Checks the shape of JITGATE_SIGNING_KEY; the messages never include the value (JSON.parse's would). */
export function parseConfiguredKey(value: string): { x: string; d: string } {
  const jwk = parseJwkObject(value);
  if (!jwk) throw new SigningKeyConfigError('is not a JSON object');
  if (jwk.kty !== 'OKP' || jwk.crv !== CURVE) throw new SigningKeyConfigError('is not an OKP Ed25519 key');
  if (typeof jwk.d !== 'string') throw new SigningKeyConfigError('is a public key (no "d")');
  if (typeof jwk.x !== 'string' || !B64URL_32.test(jwk.x) || !B64URL_32.test(jwk.d)) {
    throw new SigningKeyConfigError('has malformed "x" or "d" (32 bytes base64url each)');
  }
  if (jwk.alg !== undefined && jwk.alg !== SIGNING_ALG && jwk.alg !== CURVE) {
    throw new SigningKeyConfigError('has an "alg" other than EdDSA');
  }
  return { x: jwk.x, d: jwk.d };
}
