import { createHmac } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import type { SigningKeyRow } from '../../src/db/schema/index.ts';
import {
  createMemoryKeyStorage,
  createMemoryKeyStore,
  createVerifier,
  issueGrantToken,
  type KeyStorage,
  type KeyStore,
  LruCache,
  SigningKeyConfigError,
  type VerifyResult,
  verifyGrantToken,
} from '../../src/tokens/index.ts';
import { openPrivateJwk, parseMasterKey, sealPrivateJwk } from '../../src/tokens/key-crypto.ts';

const ISSUER = 'https://jitgate.test';
const T0 = new Date('2030-01-01T00:00:00Z');
const HOUR = 3600_000;

function testClock(start = T0) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    set: (d: Date) => {
      now = d.getTime();
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}
type TestClock = ReturnType<typeof testClock>;

/** Wraps storage to count reads, so tests can see the database is not hammered. */
function countingStorage(inner: KeyStorage = createMemoryKeyStorage()) {
  const counter = { lists: 0 };
  const storage: KeyStorage = {
    list: () => {
      counter.lists += 1;
      return inner.list();
    },
    insertIfNoActiveKey: (create) => inner.insertIfNoActiveKey(create),
    insert: (row: SigningKeyRow) => inner.insert(row),
    retire: (kid, at) => inner.retire(kid, at),
    purge: (kid) => inner.purge(kid),
  };
  return { storage, counter };
}

async function setup(opts: { storage?: KeyStorage; clock?: TestClock } = {}) {
  const clock = opts.clock ?? testClock();
  const keyStore = createMemoryKeyStore({ clock, ...(opts.storage ? { storage: opts.storage } : {}) });
  await keyStore.load();
  const grant = {
    grantId: '7f1c2a9e-0000-4000-8000-000000000001',
    userId: 'U123',
    resource: 'billing-api',
    scope: 'read',
    expiresAt: new Date(T0.getTime() + HOUR + 999),
    issuer: ISSUER,
  };
  const token = await issueGrantToken(keyStore, grant);
  const verify = (t: string, o: { tolerance?: number } = {}) =>
    verifyGrantToken(keyStore, t, { issuer: ISSUER, clock, clockToleranceSeconds: o.tolerance ?? 0 });
  return { clock, keyStore, grant, token, verify };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const parts = (token: string) => token.split('.') as [string, string, string];
const claimsOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(parts(token)[1], 'base64url').toString('utf8'));

function expectFailure(result: VerifyResult, code: string) {
  expect(result.ok).toBe(false);
  if (!result.ok) expect(result.code).toBe(code);
}

/** Signs arbitrary claims with the store's real signer, to test claim checks in isolation. */
async function signRaw(
  keyStore: KeyStore,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
) {
  const signer = keyStore.activeSigner();
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: signer.kid, typ: 'JWT', ...header })
    .sign(signer.key);
}

const validClaims = (exp: number) => ({
  iss: ISSUER,
  aud: 'billing-api',
  sub: 'U123',
  jti: 'g-1',
  scope: 'read',
  iat: Math.floor(T0.getTime() / 1000),
  exp,
});

describe('grant tokens: happy path', () => {
  it('issues a token that verifies back to the grant', async () => {
    const { token, verify, grant, keyStore } = await setup();
    const result = await verify(token);
    expect(result).toEqual({
      ok: true,
      kid: keyStore.activeSigner().kid,
      claims: {
        grantId: grant.grantId,
        userId: 'U123',
        resource: 'billing-api',
        scope: 'read',
        expiresAt: new Date(T0.getTime() + HOUR), // floored to the second
      },
    });
    const header = JSON.parse(Buffer.from(parts(token)[0], 'base64url').toString('utf8'));
    expect(header).toEqual({ alg: 'EdDSA', kid: keyStore.activeSigner().kid, typ: 'JWT' });
    expect(claimsOf(token)).toMatchObject({
      iss: ISSUER,
      aud: 'billing-api',
      sub: 'U123',
      jti: grant.grantId,
    });
    expect(claimsOf(token).iat).toBe(T0.getTime() / 1000);
  });

  it('uses the base64url SHA-256 thumbprint as kid and publishes only public parts', async () => {
    const { keyStore } = await setup();
    const { keys } = keyStore.jwks();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toEqual({
      kty: 'OKP',
      crv: 'Ed25519',
      x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      kid: keyStore.activeSigner().kid,
      alg: 'EdDSA',
      use: 'sig',
    });
    expect(keyStore.activeSigner().kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(keyStore.jwks())).not.toContain('"d"');
  });

  it('refuses to issue a token that is already expired', async () => {
    const { keyStore, grant } = await setup();
    await expect(issueGrantToken(keyStore, { ...grant, expiresAt: T0 })).rejects.toThrow(/expiresAt/);
  });

  it('accepts a token within the clock tolerance after exp', async () => {
    const { token, verify, clock } = await setup();
    clock.set(new Date(T0.getTime() + HOUR + 10_000));
    expect((await verify(token, { tolerance: 30 })).ok).toBe(true);
  });
});

describe('grant tokens: errors', () => {
  it('reports token_expired once the clock reaches exp', async () => {
    const { token, verify, clock, grant } = await setup();
    clock.set(new Date(T0.getTime() + HOUR - 1));
    expect((await verify(token)).ok).toBe(true);
    clock.set(new Date(T0.getTime() + HOUR));
    const expired = await verify(token);
    expectFailure(expired, 'token_expired');
    // Its signature did verify: the proxy may say whose token it was.
    expect(expired).toMatchObject({
      expiredClaims: {
        grantId: grant.grantId,
        userId: grant.userId,
        resource: grant.resource,
        scope: grant.scope,
      },
    });
  });

  it('names no claims for an expired token that does not verify', async () => {
    const { token, verify, clock } = await setup();
    clock.set(new Date(T0.getTime() + HOUR));
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const flipped = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
    const result = await verify(flipped);
    expect(result.ok).toBe(false);
    expect(result).not.toHaveProperty('expiredClaims');
  });

  it('reports invalid_token for a wrong issuer', async () => {
    const { keyStore, grant, verify } = await setup();
    const token = await issueGrantToken(keyStore, { ...grant, issuer: 'https://evil.test' });
    expectFailure(await verify(token), 'invalid_token');
  });

  it('reports unknown_key for a kid it has never seen, refreshing at most once per interval', async () => {
    const { storage, counter } = countingStorage();
    const { keyStore, verify, clock } = await setup({ storage });
    const forged = (kid: string) => signRaw(keyStore, validClaims(2e9), { kid });
    const before = counter.lists;
    for (let i = 0; i < 50; i++) expectFailure(await verify(await forged(`bogus-${i}`)), 'unknown_key');
    expect(counter.lists - before).toBe(1);
    clock.advance(10_000);
    expectFailure(await verify(await forged('bogus-again')), 'unknown_key');
    expect(counter.lists - before).toBe(2);
  });

  it.each([
    ['jti', { jti: undefined }],
    ['sub', { sub: undefined }],
    ['scope', { scope: undefined }],
    ['aud', { aud: undefined }],
    ['iat', { iat: undefined }],
    ['exp', { exp: undefined }],
    ['empty sub', { sub: '' }],
    ['numeric scope', { scope: 7 }],
    ['audience array', { aud: ['billing-api', 'other-api'] }],
    ['future nbf', { nbf: Math.floor(T0.getTime() / 1000) + 60 }],
  ])('reports invalid_token when %s is wrong', async (_name, patch) => {
    const { keyStore, verify } = await setup();
    const claims: Record<string, unknown> = {
      ...validClaims(Math.floor(T0.getTime() / 1000) + 600),
      ...patch,
    };
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    expectFailure(await verify(await signRaw(keyStore, claims)), 'invalid_token');
  });

  it('reports invalid_token for a missing typ or another typ', async () => {
    const { keyStore, verify } = await setup();
    const claims = validClaims(Math.floor(T0.getTime() / 1000) + 600);
    expect((await verify(await signRaw(keyStore, claims))).ok).toBe(true);
    expectFailure(await verify(await signRaw(keyStore, claims, { typ: 'at+jwt' })), 'invalid_token');
  });
});

describe('grant tokens: security', () => {
  it('rejects a token whose signature has one flipped byte', async () => {
    const { token, verify } = await setup();
    const [h, p, s] = parts(token);
    const sig = Buffer.from(s, 'base64url');
    for (const i of [0, 31, 63]) {
      const copy = Buffer.from(sig);
      copy[i] = (copy[i] ?? 0) ^ 0x01;
      expectFailure(await verify(`${h}.${p}.${copy.toString('base64url')}`), 'invalid_token');
    }
  });

  it('rejects a token signed by another Ed25519 key that claims our kid', async () => {
    const { keyStore, verify } = await setup();
    const other = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const forged = await new SignJWT(validClaims(2e9))
      .setProtectedHeader({ alg: 'EdDSA', kid: keyStore.activeSigner().kid, typ: 'JWT' })
      .sign(other.privateKey);
    expectFailure(await verify(forged), 'invalid_token');
  });

  it('rejects alg none, with and without a kid', async () => {
    const { keyStore, verify } = await setup();
    const claims = b64(validClaims(2e9));
    expectFailure(await verify(`${b64({ alg: 'none' })}.${claims}.`), 'invalid_token');
    const kid = keyStore.activeSigner().kid;
    expectFailure(await verify(`${b64({ alg: 'none', kid, typ: 'JWT' })}.${claims}.`), 'invalid_token');
    expectFailure(
      await verify(`${b64({ alg: 'none', kid, typ: 'JWT' })}.${claims}.${'A'.repeat(86)}`),
      'invalid_token',
    );
  });

  it('rejects HS256 tokens keyed with the public key (algorithm confusion)', async () => {
    const { keyStore, verify } = await setup();
    const kid = keyStore.activeSigner().kid;
    const jwk = keyStore.jwks().keys[0]!;
    const secrets = [Buffer.from(jwk.x, 'base64url'), Buffer.from(JSON.stringify(jwk)), Buffer.from(jwk.x)];
    for (const secret of secrets) {
      const input = `${b64({ alg: 'HS256', kid, typ: 'JWT' })}.${b64(validClaims(2e9))}`;
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      expectFailure(await verify(`${input}.${mac}`), 'invalid_token');
      // Padded to an Ed25519-sized signature, so only the alg check can stop it.
      const padded = Buffer.concat([Buffer.from(mac, 'base64url'), Buffer.alloc(32)]).toString('base64url');
      expectFailure(await verify(`${input}.${padded}`), 'invalid_token');
    }
  });

  it('rejects an RS256 token carrying our kid', async () => {
    const { keyStore, verify } = await setup();
    const rsa = await generateKeyPair('RS256');
    const token = await new SignJWT(validClaims(2e9))
      .setProtectedHeader({ alg: 'RS256', kid: keyStore.activeSigner().kid, typ: 'JWT' })
      .sign(rsa.privateKey);
    expectFailure(await verify(token), 'invalid_token');
  });

  it('rejects oversized tokens quickly, JWE-shaped and garbage input', async () => {
    const { token, verify } = await setup();
    const huge = `${token}${'A'.repeat(1_000_000)}`;
    const started = performance.now();
    expectFailure(await verify(huge), 'invalid_token');
    expect(performance.now() - started).toBeLessThan(50);
    expectFailure(await verify(`${token}.${'A'.repeat(4096 - token.length)}`), 'invalid_token');
    const jwe = `${b64({ alg: 'dir', enc: 'A256GCM' })}..AAAA.BBBB.CCCC`;
    const garbage = [
      '',
      '.',
      '..',
      'a.b.c',
      'Bearer x',
      'null',
      '{}',
      jwe,
      `${token} `,
      ` ${token}`,
      `${token}.`,
      token.replace(/\./g, ''),
      `${b64([1, 2])}.${b64({})}.${'A'.repeat(86)}`,
      `${b64('x')}.${b64({})}.${'A'.repeat(86)}`,
      `!!!.${parts(token)[1]}.${parts(token)[2]}`,
    ];
    for (const g of garbage) expectFailure(await verify(g), 'invalid_token');
  });

  it('rejects non-canonical spellings of a valid signature', async () => {
    const { token, verify } = await setup();
    const last = token.at(-1)!;
    // Characters whose top two bits match decode to the same 64 bytes in lenient decoders.
    const index = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(last);
    const sibling = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[index + 1]!;
    expectFailure(await verify(token.slice(0, -1) + sibling), 'invalid_token');
  });

  it('property: random strings never verify', async () => {
    const { verify } = await setup();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 600 }),
          fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((p) => p.join('.')),
        ),
        async (s) => {
          expect((await verify(s)).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: any mutation of a valid token fails unless it is the identical token', async () => {
    const { token, verify } = await setup();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
    const mutation = fc.oneof(
      fc
        .tuple(fc.nat(token.length - 1), fc.constantFrom(...alphabet))
        .map(([i, c]) => token.slice(0, i) + c + token.slice(i + 1)),
      fc
        .tuple(fc.nat(token.length), fc.constantFrom(...alphabet))
        .map(([i, c]) => token.slice(0, i) + c + token.slice(i)),
      fc.nat(token.length - 1).map((i) => token.slice(0, i) + token.slice(i + 1)),
      fc.nat(token.length - 1).map((i) => token.slice(0, i)),
      fc.tuple(fc.nat(token.length - 1), fc.nat(token.length - 1)).map(([a, b]) => {
        const chars = [...token];
        [chars[a], chars[b]] = [chars[b]!, chars[a]!];
        return chars.join('');
      }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (mutated) => {
        const result = await verify(mutated);
        expect(result.ok).toBe(mutated === token);
      }),
      { numRuns: 500 },
    );
  });
});

describe('key store', () => {
  it('rotates: the new kid signs, the old kid keeps verifying, retire stops it', async () => {
    const { keyStore, token, verify, grant } = await setup();
    const oldKid = keyStore.activeSigner().kid;
    const { kid } = await keyStore.rotate();
    expect(kid).not.toBe(oldKid);
    expect(keyStore.activeSigner().kid).toBe(kid);
    expect(keyStore.jwks().keys.map((k) => k.kid)).toEqual([oldKid, kid]);
    const fresh = await issueGrantToken(keyStore, grant);
    expect((await verify(fresh)).ok).toBe(true);
    expect((await verify(token)).ok).toBe(true);
    await keyStore.retire(oldKid);
    expectFailure(await verify(token), 'unknown_key');
    expect((await verify(fresh)).ok).toBe(true);
    expect(keyStore.jwks().keys.map((k) => k.kid)).toEqual([kid]);
  });

  it('refuses to retire the only signer', async () => {
    const { keyStore } = await setup();
    await expect(keyStore.retire(keyStore.activeSigner().kid)).rejects.toThrow(
      /only active signing key; rotate first/,
    );
  });

  it('a second instance on the same storage sees a rotation after refresh()', async () => {
    const storage = createMemoryKeyStorage();
    const clock = testClock();
    const a = createMemoryKeyStore({ clock, storage });
    const b = createMemoryKeyStore({ clock, storage });
    await Promise.all([a.load(), b.load()]);
    expect(a.activeSigner().kid).toBe(b.activeSigner().kid);
    expect(await storage.list()).toHaveLength(1);
    const { kid } = await a.rotate();
    expect(b.activeSigner().kid).not.toBe(kid);
    await b.refresh();
    expect(b.activeSigner().kid).toBe(kid);
  });

  it('hides private material from inspect and JSON', async () => {
    const { keyStore } = await setup();
    const masked = createMemoryKeyStore({ clock: testClock(), masterKey: 'correct horse battery staple' });
    await masked.load();
    for (const ks of [keyStore, masked]) {
      const shown = `${inspect(ks, { depth: 10 })} ${JSON.stringify(ks)} ${inspect(ks.activeSigner(), { depth: 10 })}`;
      expect(shown).not.toMatch(/"d"|\bd:/);
      expect(shown).not.toContain('correct horse');
      expect(shown).toContain(ks.activeSigner().kid);
    }
  });

  describe('configured JITGATE_SIGNING_KEY', () => {
    it('signs with the configured key and stores nothing', async () => {
      const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const jwk = await exportJWK(pair.privateKey);
      const { storage, counter } = countingStorage();
      const clock = testClock();
      const keyStore = createMemoryKeyStore({ clock, storage, configuredKey: JSON.stringify(jwk) });
      await keyStore.load();
      expect(counter.lists).toBe(1);
      expect(await storage.list()).toEqual([]);
      expect(keyStore.jwks().keys).toEqual([expect.objectContaining({ x: jwk.x })]);
      await expect(keyStore.rotate()).rejects.toThrow(/JITGATE_SIGNING_KEY/);
    });

    const secret = 'hunter2-SUPER-SECRET';
    it.each([
      ['not JSON', `{${secret}`],
      ['not an object', JSON.stringify(secret)],
      ['an RSA key', JSON.stringify({ kty: 'RSA', n: secret, e: 'AQAB', d: secret })],
      ['an X25519 key', JSON.stringify({ kty: 'OKP', crv: 'X25519', x: 'A'.repeat(43), d: secret })],
      ['public only', JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) })],
      ['malformed d', JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43), d: secret })],
    ])('rejects %s, naming the variable but not echoing it', (_name, value) => {
      let error: unknown;
      try {
        createMemoryKeyStore({ clock: testClock(), configuredKey: value });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SigningKeyConfigError);
      const text = `${(error as Error).message} ${inspect(error)}`;
      expect(text).toContain('JITGATE_SIGNING_KEY');
      expect(text).toContain('Ed25519 JWK');
      expect(text).not.toContain(secret);
    });

    it('rejects a d that does not belong to x when loading', async () => {
      const a = await exportJWK(
        (await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })).privateKey,
      );
      const b = await exportJWK(
        (await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })).privateKey,
      );
      const keyStore = createMemoryKeyStore({
        clock: testClock(),
        configuredKey: JSON.stringify({ ...a, d: b.d }),
      });
      const error = await keyStore.load().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SigningKeyConfigError);
      expect(String(error)).not.toContain(String(b.d));
    });
  });
});

describe('private key encryption at rest', () => {
  it('accepts hex, base64 and passphrase master keys', () => {
    const raw = Buffer.alloc(32, 7);
    expect(parseMasterKey(raw.toString('hex')).bytes).toEqual(raw);
    expect(parseMasterKey(raw.toString('base64')).bytes).toEqual(raw);
    expect(parseMasterKey(raw.toString('base64url')).bytes).toEqual(raw);
    expect(parseMasterKey('a passphrase').bytes).toHaveLength(32);
    expect(JSON.stringify(parseMasterKey(raw.toString('hex')))).toBe('{}');
  });

  it('round-trips, binds the ciphertext to its kid, and names a wrong key clearly', () => {
    const key = parseMasterKey('one');
    const sealed = sealPrivateJwk('{"d":"x"}', 'kid-1', key);
    expect(sealed).toMatch(/^enc:v1:[\w-]+:[\w-]+:[\w-]+$/);
    expect(openPrivateJwk(sealed, 'kid-1', key)).toBe('{"d":"x"}');
    expect(() => openPrivateJwk(sealed, 'kid-2', key)).toThrow(/cannot be decrypted/);
    expect(() => openPrivateJwk(sealed, 'kid-1', parseMasterKey('two'))).toThrow(/wrong master key/);
    expect(() => openPrivateJwk(sealed, 'kid-1', undefined)).toThrow(/no master key/);
    expect(sealPrivateJwk('{}', 'k', undefined)).toBe('plain:{}');
  });
});

describe('token cache', () => {
  async function cached(opts: { maxEntries?: number; failureTtlMs?: number } = {}) {
    const base = await setup();
    const verifier = createVerifier(base.keyStore, { issuer: ISSUER, clock: base.clock, ...opts });
    return { ...base, verifier };
  }

  it('returns the same claims on a hit without verifying again', async () => {
    const { verifier, token } = await cached();
    const first = await verifier.verify(token);
    const second = await verifier.verify(token);
    expect(first.ok).toBe(true);
    expect(second).toBe(first);
    expect(verifier.size).toBe(1);
    expect(Object.isFrozen(first.ok && first.claims)).toBe(true);
  });

  it('misses and evicts once the clock passes exp', async () => {
    const { verifier, token, clock } = await cached();
    expect((await verifier.verify(token)).ok).toBe(true);
    clock.set(new Date(T0.getTime() + HOUR));
    expectFailure(await verifier.verify(token), 'token_expired');
    expect(verifier.size).toBe(0);
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const { verifier, keyStore, grant } = await cached({ maxEntries: 3 });
    const tokens = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => issueGrantToken(keyStore, { ...grant, grantId: `g-${i}` })),
    );
    for (const t of tokens) expect((await verifier.verify(t)).ok).toBe(true);
    expect(verifier.size).toBe(3);
    expect((await verifier.verify(tokens[0]!)).ok).toBe(true);
    expect(verifier.size).toBe(3);
  });

  it('LruCache evicts in recency order', () => {
    const clock = testClock();
    const lru = new LruCache<number>({ maxEntries: 2, clock });
    const far = T0.getTime() + HOUR;
    lru.set('a', 1, far);
    lru.set('b', 2, far);
    expect(lru.get('a')).toBe(1);
    lru.set('c', 3, far);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
  });

  it('never returns ok for a failed token, cached or not', async () => {
    for (const failureTtlMs of [0, 5000]) {
      const { verifier, token } = await cached({ failureTtlMs });
      const bad = `${token.slice(0, -2)}${token.at(-2) === 'A' ? 'B' : 'A'}${token.at(-1)}`;
      for (let i = 0; i < 3; i++) expectFailure(await verifier.verify(bad), 'invalid_token');
      expect((await verifier.verify(token)).ok).toBe(true);
      expectFailure(await verifier.verify(bad), 'invalid_token');
    }
  });

  it('does not remember unknown_key: a token from a key rotated in elsewhere verifies after refresh', async () => {
    const storage = createMemoryKeyStorage();
    const clock = testClock();
    const proxy = createMemoryKeyStore({ clock, storage });
    const issuer = createMemoryKeyStore({ clock, storage });
    await Promise.all([proxy.load(), issuer.load()]);
    const verifier = createVerifier(proxy, { issuer: ISSUER, clock });
    // Use up the unknown-kid refresh window first.
    expectFailure(
      await verifier.verify(await signRaw(proxy, validClaims(2e9), { kid: 'bogus' })),
      'unknown_key',
    );
    await issuer.rotate();
    const token = await issueGrantToken(issuer, {
      grantId: 'g',
      userId: 'U1',
      resource: 'r',
      scope: 's',
      expiresAt: new Date(T0.getTime() + HOUR),
      issuer: ISSUER,
    });
    expectFailure(await verifier.verify(token), 'unknown_key');
    clock.advance(10_000);
    expect((await verifier.verify(token)).ok).toBe(true);
  });

  it('retiring a kid clears its entries and the token stops verifying', async () => {
    const { verifier, token, keyStore, grant } = await cached();
    const oldKid = keyStore.activeSigner().kid;
    await keyStore.rotate();
    const fresh = await issueGrantToken(keyStore, grant);
    expect((await verifier.verify(token)).ok).toBe(true);
    expect((await verifier.verify(fresh)).ok).toBe(true);
    expect(verifier.size).toBe(2);
    await keyStore.retire(oldKid);
    expect(verifier.size).toBe(1);
    expectFailure(await verifier.verify(token), 'unknown_key');
    expect((await verifier.verify(fresh)).ok).toBe(true);
  });
});
