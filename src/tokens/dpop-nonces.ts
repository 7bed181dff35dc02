import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../shared/clock.ts';

/**
 * Server-provided nonces (RFC 9449 §8–9), stateless: a nonce is a time window's number and an HMAC
 * of it, so every process holding the same secret issues and accepts the same nonces without any
 * shared store. One is accepted during its window and the next.
 */
export interface DpopNonces {
  current(): string;
  accepts(nonce: unknown): boolean;
}

export function createDpopNonces(options: {
  secret: Uint8Array;
  clock: Clock;
  windowSeconds?: number;
}): DpopNonces {
  if (options.secret.length < 32) throw new Error('createDpopNonces: the secret needs at least 32 bytes');
  const windowMs = (options.windowSeconds ?? 300) * 1000;
  const windowOf = () => Math.floor(options.clock.now().getTime() / windowMs);
  const nonceFor = (window: number): string => {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(window));
    const mac = createHmac('sha256', options.secret).update(counter).digest().subarray(0, 16);
    return Buffer.concat([counter, mac]).toString('base64url');
  };
  return {
    current: () => nonceFor(windowOf()),
    accepts(nonce) {
      if (typeof nonce !== 'string' || nonce.length !== 32) return false;
      const window = windowOf();
      return [window, window - 1].some((w) => {
        const expected = Buffer.from(nonceFor(w));
        const given = Buffer.from(nonce);
        return given.length === expected.length && timingSafeEqual(given, expected);
      });
    },
  };
}
