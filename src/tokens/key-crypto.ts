import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Encryption at rest of private signing JWKs.
 *
 * Stored forms of `signing_keys.private_jwk`:
 * - `enc:v1:<iv>:<tag>:<ciphertext>` (each part base64url): AES-256-GCM, 12-byte random IV,
 *   16-byte tag, with the row's `kid` as additional authenticated data so a ciphertext moved to
 *   another row does not decrypt.
 * - `plain:<jwk json>`: no master key configured.
 *
 * The master key string is read as 32 raw bytes when it is 64 hex characters or base64/base64url
 * of exactly 32 bytes; any other string is stretched with HKDF-SHA256 (fixed salt and info below).
 * A passphrase therefore works, but a random 32-byte key (`openssl rand -base64 32`) is what to use.
 */
const ENC_PREFIX = 'enc:v1:';
const PLAIN_PREFIX = 'plain:';
const HKDF_SALT = 'jitgate/signing-keys';
const HKDF_INFO = 'jitgate master key v1';

/** A 32-byte AES key derived from the configured master key; opaque so it is never printed. */
export interface MasterKey {
  readonly bytes: Buffer;
}

export function parseMasterKey(value: string): MasterKey {
  const trimmed = value.trim();
  if (trimmed.length === 0) throw new Error('master key is empty; expected 32 bytes as base64 or hex');
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) bytes = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(trimmed)) {
    const decoded = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (decoded.length === 32) bytes = decoded;
  }
  bytes ??= Buffer.from(hkdfSync('sha256', Buffer.from(trimmed, 'utf8'), HKDF_SALT, HKDF_INFO, 32));
  const key: MasterKey = { bytes };
  // Hide the bytes from console.log / JSON.stringify of anything that holds this object.
  Object.defineProperty(key, 'bytes', { enumerable: false });
  return key;
}

export function sealPrivateJwk(json: string, kid: string, masterKey: MasterKey | undefined): string {
  if (!masterKey) return PLAIN_PREFIX + json;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', masterKey.bytes, iv);
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return `${ENC_PREFIX}${iv.toString('base64url')}:${tag.toString('base64url')}:${ciphertext.toString('base64url')}`;
}

/** Thrown when a stored private key cannot be opened; the message never contains key material. */
class KeyDecryptionError extends Error {
  override name = 'KeyDecryptionError';
}

export function openPrivateJwk(stored: string, kid: string, masterKey: MasterKey | undefined): string {
  if (stored.startsWith(PLAIN_PREFIX)) {
    // Accepted even with a master key set, so keys stored before one was configured keep working.
    return stored.slice(PLAIN_PREFIX.length);
  }
  if (!stored.startsWith(ENC_PREFIX)) {
    throw new KeyDecryptionError(`signing key ${kid}: stored private key has an unknown format`);
  }
  if (!masterKey) {
    throw new KeyDecryptionError(
      `signing key ${kid} is encrypted at rest, but no master key is configured to decrypt it`,
    );
  }
  const parts = stored.slice(ENC_PREFIX.length).split(':');
  if (parts.length !== 3) {
    throw new KeyDecryptionError(`signing key ${kid}: stored private key is malformed (enc:v1)`);
  }
  const [iv, tag, ciphertext] = parts.map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer];
  try {
    const decipher = createDecipheriv('aes-256-gcm', masterKey.bytes, iv);
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyDecryptionError(
      `signing key ${kid} cannot be decrypted: wrong master key, or the stored row was altered`,
    );
  }
}
