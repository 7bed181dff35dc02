import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.ts';
import { signingKeys } from '../../src/db/schema/index.ts';
import {
  createKeyStore,
  createVerifier,
  issueGrantToken,
  type KeyStore,
  type KeyStoreOptions,
  verifyGrantToken,
} from '../../src/tokens/index.ts';

const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `t_tokens_${randomBytes(6).toString('hex')}`;
const ISSUER = 'https://jitgate.test';
const MASTER_KEY = randomBytes(32).toString('base64');

const clockMs = Date.parse('2030-01-01T00:00:00Z');
const clock = { now: () => new Date(clockMs) };

// Two pools on one schema stand in for two jitgate processes.
let processA: Database;
let processB: Database;

beforeAll(async () => {
  processA = await openDatabase({ databaseUrl: DATABASE_URL, dataDir: '.unused', schemaName: SCHEMA });
  await processA.migrate();
  processB = await openDatabase({ databaseUrl: DATABASE_URL, dataDir: '.unused', schemaName: SCHEMA });
});

afterAll(async () => {
  await processA?.close();
  await processB?.close();
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop schema if exists "${SCHEMA}" cascade`);
  await sql.end();
});

beforeEach(async () => {
  await processA.db.delete(signingKeys);
});

type StoreOptions = Omit<KeyStoreOptions, 'db' | 'storage' | 'clock'>;
const storeOn = (database: Database, options: StoreOptions = {}) =>
  createKeyStore({ db: database.db, clock, ...options });

const rows = () => processA.db.select().from(signingKeys);

const issue = (keyStore: KeyStore, grantId = 'g-1') =>
  issueGrantToken(keyStore, {
    grantId,
    userId: 'U123',
    resource: 'billing-api',
    scope: 'read',
    expiresAt: new Date(clockMs + 3600_000),
    issuer: ISSUER,
  });

const verify = (keyStore: KeyStore, token: string) =>
  verifyGrantToken(keyStore, token, { issuer: ISSUER, clock });

describe('signing keys in Postgres', () => {
  it('generates and stores exactly one key when several instances load at once', async () => {
    const stores = [processA, processB, processA, processB, processA, processB].map((d) => storeOn(d));
    await Promise.all(stores.map((s) => s.load()));
    const stored = await rows();
    expect(stored).toHaveLength(1);
    for (const s of stores) expect(s.activeSigner().kid).toBe(stored[0]!.kid);
    // A restart reuses the stored key rather than making another.
    const again = storeOn(processB);
    await again.load();
    expect(again.activeSigner().kid).toBe(stored[0]!.kid);
    expect(await rows()).toHaveLength(1);
  });

  it('stores the private key as plain JWK text without a master key', async () => {
    await storeOn(processA).load();
    const [row] = await rows();
    expect(row!.privateJwk.startsWith('plain:{')).toBe(true);
    expect(row!.alg).toBe('EdDSA');
    expect(row!.publicJwk).not.toHaveProperty('d');
  });

  it('encrypts the stored private key under a master key and decrypts it on reload', async () => {
    const first = storeOn(processA, { masterKey: MASTER_KEY });
    await first.load();
    const [row] = await rows();
    expect(row!.privateJwk).toMatch(/^enc:v1:[\w-]+:[\w-]+:[\w-]+$/);
    expect(row!.privateJwk).not.toContain('"d":');

    const reloaded = storeOn(processB, { masterKey: MASTER_KEY });
    await reloaded.load();
    expect(reloaded.activeSigner().kid).toBe(row!.kid);
    // The reloaded private key signs tokens the first instance accepts.
    expect((await verify(first, await issue(reloaded))).ok).toBe(true);
  });

  it('fails loading with a clear error under a wrong or missing master key', async () => {
    await storeOn(processA, { masterKey: MASTER_KEY }).load();
    const wrong = storeOn(processB, { masterKey: randomBytes(32).toString('hex') });
    await expect(wrong.load()).rejects.toThrow(/cannot be decrypted: wrong master key/);
    await expect(storeOn(processB).load()).rejects.toThrow(/encrypted at rest, but no master key/);
  });

  it('a master key set later keeps plain keys working; the next rotation is stored encrypted', async () => {
    // What the README promises for JITGATE_MASTER_KEY configured after keys were generated.
    const before = storeOn(processA);
    await before.load();
    const oldToken = await issue(before);
    const oldKid = before.activeSigner().kid;

    const after = storeOn(processB, { masterKey: MASTER_KEY });
    await after.load();
    expect(after.activeSigner().kid).toBe(oldKid);
    expect((await verify(after, oldToken)).ok).toBe(true);
    expect((await rows()).find((r) => r.kid === oldKid)!.privateJwk.startsWith('plain:')).toBe(true);

    const { kid: newKid } = await after.rotate();
    await after.retire(oldKid);
    const stored = await rows();
    expect(stored.find((r) => r.kid === newKid)!.privateJwk).toMatch(/^enc:v1:/);
    // The retired row still holds its plain private key: retiring stops it verifying, not existing.
    expect(stored.find((r) => r.kid === oldKid)!.privateJwk.startsWith('plain:')).toBe(true);
    expect((await verify(after, await issue(after, 'g-2'))).ok).toBe(true);
  });

  it('rotates: the new kid signs, old tokens verify, another instance follows after refresh()', async () => {
    const a = storeOn(processA);
    const b = storeOn(processB);
    await a.load();
    await b.load();
    const oldKid = a.activeSigner().kid;
    const oldToken = await issue(a, 'g-old');

    const { kid: newKid } = await a.rotate();
    expect(newKid).not.toBe(oldKid);
    expect(a.activeSigner().kid).toBe(newKid);
    const newToken = await issue(a, 'g-new');
    expect(JSON.parse(Buffer.from(newToken.split('.')[0]!, 'base64url').toString()).kid).toBe(newKid);
    expect((await verify(a, oldToken)).ok).toBe(true);

    // Before refresh, b still signs with the old key but picks up the new kid on first sight of it.
    expect(b.activeSigner().kid).toBe(oldKid);
    expect((await verify(b, newToken)).ok).toBe(true);
    await b.refresh();
    expect(b.activeSigner().kid).toBe(newKid);
    expect((await verify(b, oldToken)).ok).toBe(true);
  });

  it('retire: tokens signed by the retired kid stop verifying here and, after refresh, elsewhere', async () => {
    const a = storeOn(processA);
    const b = storeOn(processB);
    await a.load();
    await b.load();
    const oldKid = a.activeSigner().kid;
    const oldToken = await issue(a, 'g-old');
    const cachedOnB = createVerifier(b, { issuer: ISSUER, clock });
    expect((await cachedOnB.verify(oldToken)).ok).toBe(true);

    await a.rotate();
    const newToken = await issue(a, 'g-new');
    await a.retire(oldKid);
    expect((await rows()).find((r) => r.kid === oldKid)?.retiredAt).toEqual(clock.now());
    expect(await verify(a, oldToken)).toMatchObject({ ok: false, code: 'unknown_key' });
    expect((await verify(a, newToken)).ok).toBe(true);

    await b.refresh();
    expect(await cachedOnB.verify(oldToken)).toMatchObject({ ok: false, code: 'unknown_key' });
    expect((await cachedOnB.verify(newToken)).ok).toBe(true);
    expect(b.activeSigner().kid).not.toBe(oldKid);
  });

  it('publishes public keys only', async () => {
    const a = storeOn(processA, { masterKey: MASTER_KEY });
    await a.load();
    await a.rotate();
    const jwks = a.jwks();
    expect(jwks.keys).toHaveLength(2);
    for (const key of jwks.keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
      expect(key).toMatchObject({ alg: 'EdDSA', use: 'sig', kty: 'OKP', crv: 'Ed25519' });
    }
    expect(JSON.stringify(jwks)).not.toContain('"d"');
  });

  it('uses a configured JITGATE_SIGNING_KEY as the signer and never stores it', async () => {
    const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = await exportJWK(pair.privateKey);
    const a = storeOn(processA, { configuredKey: JSON.stringify(jwk) });
    const b = storeOn(processB, { configuredKey: JSON.stringify(jwk) });
    await Promise.all([a.load(), b.load()]);
    expect(await rows()).toHaveLength(0);
    expect(a.activeSigner().kid).toBe(b.activeSigner().kid);
    expect(a.jwks().keys.map((k) => k.x)).toEqual([jwk.x]);
    expect((await verify(b, await issue(a))).ok).toBe(true);
  });
});
