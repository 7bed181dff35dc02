import { hkdfSync } from 'node:crypto';
import { EncryptJWT, errors, type JWTPayload, jwtDecrypt } from 'jose';

/**
 * Cookies the console sets are sealed: encrypted and authenticated (JWE, `dir` + A256GCM,
 * jose) with a key derived from JITGATE_SESSION_SECRET. A reader learns nothing from one and
 * a changed byte makes it void. Each purpose (`session`, `login`) gets its own audience, so a
 * sealed value made for one is refused as the other.
 */
export interface Sealer {
  seal(purpose: string, payload: JWTPayload, expiresAt: Date, now: Date): Promise<string>;
  /** The payload, or undefined when the value is forged, changed, expired or for another purpose. */
  open(purpose: string, sealed: string, now: Date): Promise<JWTPayload | undefined>;
}

export function createSealer(secret: string): Sealer {
  const key = new Uint8Array(hkdfSync('sha256', secret, 'jitgate-console', 'sealed-cookie-v1', 32));
  return {
    async seal(purpose, payload, expiresAt, now) {
      return new EncryptJWT(payload)
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
        .setAudience(purpose)
        .setIssuedAt(Math.floor(now.getTime() / 1000))
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .encrypt(key);
    },
    async open(purpose, sealed, now) {
      try {
        const { payload } = await jwtDecrypt(sealed, key, {
          audience: purpose,
          currentDate: now,
          keyManagementAlgorithms: ['dir'],
          contentEncryptionAlgorithms: ['A256GCM'],
        });
        return payload;
      } catch (error) {
        if (error instanceof errors.JOSEError) return undefined;
        throw error;
      }
    },
  };
}
