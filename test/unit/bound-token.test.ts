import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { manualClock } from '../../src/shared/clock.ts';
import { issueDeviceBoundToken } from '../../src/tokens/device-token.ts';
import { createMemoryKeyStore, issueGrantToken, verifyGrantToken } from '../../src/tokens/index.ts';

const ISSUER = 'jitgate';
const JKT = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
const clock = manualClock(new Date('2030-01-01T00:00:00Z'));
const keyStore = createMemoryKeyStore({ clock });
await keyStore.load();
const grant = {
  id: '3f2b1c9e-0000-4000-8000-000000000001',
  userId: 'UALICE',
  resource: 'billing-api',
  scope: 'read',
  expiresAt: new Date('2030-01-01T01:00:00Z'),
};
const verify = (token: string) => verifyGrantToken(keyStore, token, { issuer: ISSUER, clock });

/** A token as ours are, but with any `cnf` (what a forger with our key, or a bug, would make). */
function withCnf(cnf: unknown): Promise<string> {
  const signer = keyStore.activeSigner();
  return new SignJWT({ scope: 'read', cnf })
    .setProtectedHeader({ alg: 'EdDSA', kid: signer.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience('billing-api')
    .setSubject('UALICE')
    .setJti(grant.id)
    .setIssuedAt(Math.floor(clock.now().getTime() / 1000))
    .setExpirationTime(Math.floor(grant.expiresAt.getTime() / 1000))
    .sign(signer.key);
}

describe('device-bound grant tokens (cnf.jkt)', () => {
  it('a bound token carries cnf.jkt and verifies with boundKey; an unbound one has none', async () => {
    const bound = await issueDeviceBoundToken(keyStore, grant, { userId: 'UALICE', thumbprint: JKT }, ISSUER);
    const payload = JSON.parse(Buffer.from(bound.split('.')[1]!, 'base64url').toString());
    expect(payload.cnf).toEqual({ jkt: JKT });
    expect(await verify(bound)).toMatchObject({ ok: true, claims: { grantId: grant.id, boundKey: JKT } });

    const plain = await issueGrantToken(keyStore, { ...grant, grantId: grant.id, issuer: ISSUER });
    const verified = await verify(plain);
    expect(verified.ok && 'boundKey' in verified.claims).toBe(false);
  });

  it.each([
    ['a string', 'abc'],
    ['an array', [JKT]],
    ['another confirmation method', { 'x5t#S256': JKT }],
    ['jkt with another member', { jkt: JKT, kid: 'x' }],
    ['a jkt that is no SHA-256 thumbprint', { jkt: 'short' }],
    ['null', null],
  ])('a token whose cnf is %s is refused, never taken for unbound', async (_name, cnf) => {
    expect(await verify(await withCnf(cnf))).toMatchObject({ ok: false, code: 'invalid_token' });
  });

  it("refuses to bind someone's grant to another person's device, or to a malformed key", async () => {
    await expect(
      issueDeviceBoundToken(keyStore, grant, { userId: 'UMALLORY', thumbprint: JKT }, ISSUER),
    ).rejects.toThrow(/another user/);
    await expect(
      issueGrantToken(keyStore, { ...grant, grantId: grant.id, issuer: ISSUER, boundKey: 'nope' }),
    ).rejects.toThrow(/thumbprint/);
  });
});
