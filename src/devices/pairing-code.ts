import { createHash, randomInt } from 'node:crypto';

/**
 * Pairing codes: `HHHH-SSSS` in Crockford's base32 (no I, L, O or U, so nothing reads as
 * another character). The handle `HHHH` finds the pending device; the secret `SSSS` proves the
 * person saw this device's screen and is stored only as a hash.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const PART = 4;
const CODE = new RegExp(`^[${ALPHABET}]{${PART * 2}}$`);

export interface PairingCode {
  /** As shown to the person: `K7QF-3M9X`. */
  display: string;
  handle: string;
  secret: string;
}

export function newPairingCode(): PairingCode {
  const draw = () => Array.from({ length: PART }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
  const handle = draw();
  const secret = draw();
  return { display: `${handle}-${secret}`, handle, secret };
}

/**
 * A code as typed (any case, with or without the dash or spaces; O read as 0, I and L as 1),
 * or undefined when it cannot be one.
 */
export function parsePairingCode(typed: string): Omit<PairingCode, 'display'> | undefined {
  if (typed.length > 32) return undefined;
  const plain = typed.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (!CODE.test(plain)) return undefined;
  return { handle: plain.slice(0, PART), secret: plain.slice(PART) };
}

/** Salted with the device id, so equal secrets of two devices hash apart. */
export function pairingSecretHash(deviceId: string, secret: string): string {
  return createHash('sha256').update(`jitgate-pairing:${deviceId}:${secret}`).digest('hex');
}
