import { describe, expect, it } from 'vitest';
import { manualClock } from '../../src/shared/clock.ts';
import { createMemoryKeyStore, createVerifier, issueGrantToken } from '../../src/tokens/index.ts';

// The proxy's synchronous path trusts `peek` (cache, plus a last-token memo in front of it):
// it must never answer what a fresh verify() would not.

const ISSUER = 'https://jitgate.test';
const HOUR = 3600_000;

async function setup() {
  const clock = manualClock(new Date('2030-01-01T00:00:00Z'));
  const keyStore = createMemoryKeyStore({ clock });
  await keyStore.load();
  const issue = (grantId: string, expiresInMs = HOUR) =>
    issueGrantToken(keyStore, {
      grantId,
      userId: 'U123',
      resource: 'billing-api',
      scope: 'read',
      expiresAt: new Date(clock.now().getTime() + expiresInMs),
      issuer: ISSUER,
    });
  const verifier = createVerifier(keyStore, { issuer: ISSUER, clock });
  return { clock, keyStore, issue, verifier };
}

describe('verifier peek (the proxy hot path)', () => {
  it('knows nothing before verify, then returns the very result verify cached', async () => {
    const { issue, verifier } = await setup();
    const token = await issue('g-1');
    expect(verifier.peek(token)).toBeUndefined();
    const verified = await verifier.verify(token);
    expect(verified.ok).toBe(true);
    expect(verifier.peek(token)).toBe(verified);
    // A different string object with the same content (as off the wire) hits too.
    expect(verifier.peek(`${token.slice(0, 10)}${token.slice(10)}`)).toBe(verified);
  });

  it('keeps two alternating tokens apart', async () => {
    const { issue, verifier } = await setup();
    const [a, b] = await Promise.all([issue('g-a'), issue('g-b')]);
    await verifier.verify(a);
    await verifier.verify(b);
    for (let i = 0; i < 3; i++) {
      const ra = verifier.peek(a);
      const rb = verifier.peek(b);
      expect(ra?.ok && ra.claims.grantId).toBe('g-a');
      expect(rb?.ok && rb.claims.grantId).toBe('g-b');
    }
    expect(verifier.peek(`${a}x`)).toBeUndefined();
    expect(verifier.peek(a.slice(0, -1))).toBeUndefined();
  });

  it('stops answering at exp, and verify then reports the expiry', async () => {
    const { clock, issue, verifier } = await setup();
    const token = await issue('g-exp', 2000);
    await verifier.verify(token);
    clock.advance(1999);
    expect(verifier.peek(token)?.ok).toBe(true);
    clock.advance(1);
    expect(verifier.peek(token)).toBeUndefined();
    const after = await verifier.verify(token);
    expect(after.ok).toBe(false);
    expect(!after.ok && after.code).toBe('token_expired');
    // The failure is remembered and peek now returns it (still a denial).
    expect(verifier.peek(token)?.ok).toBe(false);
  });

  it('forgets everything on clear() and a retired key’s tokens at once', async () => {
    const { keyStore, issue, verifier } = await setup();
    const token = await issue('g-clear');
    await verifier.verify(token);
    verifier.clear();
    expect(verifier.peek(token)).toBeUndefined();

    const oldKid = keyStore.activeSigner().kid;
    await verifier.verify(token);
    expect(verifier.peek(token)?.ok).toBe(true);
    await keyStore.rotate();
    await keyStore.retire(oldKid);
    expect(verifier.peek(token)).toBeUndefined();
    const after = await verifier.verify(token);
    expect(!after.ok && after.code).toBe('unknown_key');
  });

  it('never holds oversized input', async () => {
    const { verifier } = await setup();
    const huge = 'a'.repeat(5000);
    expect((await verifier.verify(huge)).ok).toBe(false);
    expect(verifier.peek(huge)).toBeUndefined();
  });
});
